"""``rnnlens nnn``: train the paper's n-NN baseline (hidden size picked on val) and score val or test."""

from __future__ import annotations

import argparse
import math

from ..baselines.table import TableData, load_data
from ..exceptions import RnnlensError
from ..baselines.nnn import MAX_N, NNNConfig, load_nnn, save_nnn, train_nnn_grid
from ..runtime import resolve_device
from ..data.splits import SplitConfig
from ..data.text import TextConfig
from .common import add_device_flag, add_json_flag, emit_json, say
from ..newrun import parse_fractions
from .train import add_data_flags


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "nnn", help="the paper's n-NN baseline: a tanh MLP on the one-hot codes of the last n characters",
        description="Train a one-hidden-layer tanh network on the concatenated one-hot codes of the last n "
        "characters (the paper's n-NN, Table 2) with the paper's recipe (RMSProp lr 2e-3 alpha 0.95, "
        "element-wise clipping at 5), keeping the best weights on val; with several --hidden sizes, the one "
        "with the best val loss wins. Positions and splits are the neural models' (whole-text vocabulary, "
        "the corpus' split, B=S=100 interleaved); the first n-1 positions of each row have a padded context.")
    add_data_flags(p)
    m = p.add_argument_group("n-NN")
    m.add_argument("--n", type=int, default=4, help=f"characters of context, 1..{MAX_N} (default: 4)")
    m.add_argument("--hidden", default="256", metavar="H[,H...]", help="hidden size, or a comma-separated grid "
                   "picked on val, e.g. 128,256,512 (default: 256)")
    m.add_argument("--epochs", type=int, default=20, help="at most this many epochs (default: 20)")
    m.add_argument("--epoch-positions", type=int, default=0, help="train positions per epoch, 0 = all (default: 0)")
    m.add_argument("--batch", type=int, default=1024, help="positions per minibatch (default: 1024)")
    m.add_argument("--patience", type=int, default=3, help="stop after N epochs without a better val loss, "
                   "0 = never (default: 3)")
    m.add_argument("--lr", type=float, default=2e-3, help="RMSProp learning rate (default: 2e-3)")
    m.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    r = p.add_argument_group("run")
    r.add_argument("--split", choices=["val", "test"], default="test", help="which split to score (default: test)")
    r.add_argument("--save", metavar="PATH", help="write the model here (.safetensors with JSON metadata)")
    r.add_argument("--load", metavar="PATH", help="score this saved model instead of training one; its unit must "
                   "match --unit and every symbol of the text must be in its vocabulary")
    add_device_flag(r)
    r.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    add_json_flag(r)
    p.set_defaults(func=run)


def parse_hiddens(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(h) for h in str(text).split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(h < 1 for h in sizes):
        raise RnnlensError(f"--hidden must be positive integers like 256 or 128,256,512, got {text!r}")
    return sizes


def data_from_args(args: argparse.Namespace, vocab=None) -> TableData:
    """The text of --dataset/--text (default pystdlib) cut like the neural models' splits."""
    dataset = args.dataset if args.dataset or args.text else "pystdlib"
    text_cfg = TextConfig(unit=args.unit or (vocab.unit if vocab else "byte"), newline=args.newline or "keep")
    split_cfg = SplitConfig(layout=args.layout or "interleaved", fractions=parse_fractions(args.fractions, dataset),
                            batch_size=args.batch_size or 100, seq_len=args.seq_len or 100)
    return load_data(None if args.text else dataset, args.data_dir, args.text, text_cfg, split_cfg, vocab)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    cfg = NNNConfig(n=args.n, hidden=parse_hiddens(args.hidden)[0], epochs=args.epochs,
                    epoch_positions=args.epoch_positions, batch=args.batch, patience=args.patience, lr=args.lr,
                    seed=args.seed)
    progress = None if args.quiet or args.json else say
    info: dict = {}
    if args.load:
        model, vocab, _ = load_nnn(args.load, device=device)
        if args.unit and args.unit != vocab.unit:
            raise RnnlensError(f"n-NN model {args.load} reads unit {vocab.unit!r}, not {args.unit!r}; "
                               f"pass --unit {vocab.unit}")
        data = data_from_args(args, vocab)
    else:
        data = data_from_args(args)
        if progress:
            progress(f"training {cfg.n}-NN models (hidden {args.hidden}) on {data.splits['train'].num_chars:,} "
                     f"positions of {data.label}, K={len(data.vocab)}, device {device}")
        model, info = train_nnn_grid(data.splits, len(data.vocab), cfg, parse_hiddens(args.hidden), device, progress)
    target = data.splits[args.split]
    loss = model.loss_rows(target.x, target.y)
    if args.save:
        save_nnn(args.save, model, data.vocab, {"val_loss": info.get("best_val"), f"{args.split}_loss": loss})
    result = {"n": model.n, "hidden": model.hidden, "split": args.split, "loss_nats": loss,
              "loss_bits": loss / math.log(2), "chars": target.num_chars,
              **{k: info[k] for k in ("best_val", "best_epoch", "epochs_run", "grid", "train_s") if k in info}}
    if args.json:
        emit_json(result)
    else:
        say(f"{args.split} split, {model.n}-NN hidden {model.hidden}: {loss:.4f} nats/char, "
            f"{result['loss_bits']:.4f} bits/char over {target.num_chars:,} characters")
    return 0
