"""``rnnlens train``: train a model with the paper's recipe (every default overridable), or resume one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..api import prepare_run
from ..data.corpora import CORPORA
from ..exceptions import RnnlensError
from ..model import CELL_TYPES, param_count
from ..newrun import new_run_config
from ..precision import CHOICES
from ..run import RunConfig
from ..runtime import resolve_device
from ..train import train
from .common import BarReporter, add_device_flag, add_json_flag, emit_json, say

# Flags that define a run (each the name of a setting of rnnlens.newrun.new_run_config); on --resume they must be
# absent.
RUN_FLAGS = ("dataset", "text", "unit", "newline", "layout", "fractions", "batch_size", "seq_len", "model", "layers",
             "params", "hidden", "dropout", "epochs", "max_steps", "lr", "alpha", "lr_decay", "lr_decay_after",
             "clip", "init_range", "eval_every", "eval_chars", "patience", "checkpoint_every", "snapshot_every", "seed",
             "precision", "stall_after", "stall_margin", "tensorboard")


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """--dataset/--text and how the text becomes symbols and splits (shared with other commands)."""
    g = p.add_argument_group("data")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=sorted(CORPORA), help="a named corpus: warpeace, linux (from the data "
                     "directory, see `rnnlens data`) or pystdlib (built in, no download); default: pystdlib")
    src.add_argument("--text", metavar="FILE", help="train on your own text file instead")
    g.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA, "
                   "else ~/.cache/rnnlens/data)")
    g.add_argument("--unit", choices=["byte", "char"], help="symbols are bytes (the paper's unit, default) or "
                   "Unicode code points")
    g.add_argument("--newline", choices=["keep", "lf", "crlf"], help="newline normalisation (default: keep)")
    g.add_argument("--layout", choices=["interleaved", "contiguous"], help="split layout: char-rnn's interleaved "
                   "column blocks (the paper's, default) or three contiguous parts")
    g.add_argument("--fractions", metavar="TR,VA,TE", help="train/val/test fractions (default: the corpus preset: "
                   "warpeace 0.8,0.1,0.1, linux 0.9,0.05,0.05, others 0.9,0.05,0.05)")
    g.add_argument("--batch-size", type=int, help="B, rows of text per batch (default: 100)")
    g.add_argument("--seq-len", type=int, help="S, unroll length in characters (default: 100)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a character-level RNN/LSTM/GRU (paper recipe by default)",
        description="Train a character-level language model with the recipe of Karpathy, Johnson & Fei-Fei "
        "(2015): RMSProp lr 2e-3 alpha 0.95, batch 100, unroll 100 with the state carried, element-wise "
        "clipping at 5, 50 epochs, lr x0.95 per epoch after epoch 10, uniform init +-0.08, best-on-validation "
        "weights kept. Ctrl-C saves; --resume continues bit-exactly.",
    )
    add_data_flags(p)
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=CELL_TYPES, help="recurrent cell type (default: lstm)")
    m.add_argument("--layers", type=int, help="stacked layers, 1 to 3 in the paper (default: 2)")
    size = m.add_mutually_exclusive_group()
    size.add_argument("--params", metavar="BUDGET", help="parameter budget: the paper's 50k, 130k, 400k, 1.3m (the exact size "
                      "of a 1-layer LSTM with 64/128/256/512 cells over this vocabulary) or any number; picks the "
                      "hidden size whose total parameter count is closest (default: 130k)")
    size.add_argument("--hidden", type=int, help="hidden size, instead of --params")
    m.add_argument("--dropout", type=float, help="dropout between layers (default: 0)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, help="passes over the training split (default: 50)")
    t.add_argument("--max-steps", type=int, help="stop after this many updates (default: 0 = no limit)")
    t.add_argument("--lr", type=float, help="RMSProp learning rate (default: 2e-3)")
    t.add_argument("--alpha", type=float, help="RMSProp decay (default: 0.95)")
    t.add_argument("--lr-decay", type=float, help="lr factor per epoch after --lr-decay-after (default: 0.95)")
    t.add_argument("--lr-decay-after", type=int, help="epochs at the full lr (default: 10)")
    t.add_argument("--clip", type=float, help="element-wise gradient clip, 0 = off (default: 5)")
    t.add_argument("--init-range", type=float, help="uniform init range (default: 0.08)")
    t.add_argument("--eval-every", type=int, help="validate every N updates, besides every epoch end (default: 1000)")
    t.add_argument("--eval-chars", type=int, help="validate on at most N characters, 0 = all (default: 0)")
    t.add_argument("--patience", type=int, help="stop after N validations without improvement, 0 = never (default: 0)")
    t.add_argument("--checkpoint-every", type=float, help="save resumable state every N seconds (default: 60)")
    t.add_argument("--snapshot-every", type=int, help="keep the weights every N updates in RUN/snapshots "
                   "(for training dynamics; default: 0 = off)")
    t.add_argument("--seed", type=int, help="random seed (default: 0)")
    t.add_argument("--precision", choices=CHOICES, help="fp32, bf16 (autocast of the forward pass; weights, optimizer, "
                   "loss and the carried state stay fp32) or auto (bf16 where the GPU or CPU does it natively, else "
                   "fp32); evaluation and analyses always run in fp32 (default: fp32)")
    t.add_argument("--stall-after", type=int, help="from this update on, stop a run whose best validation loss is not "
                   "--stall-margin below the unigram model's, as stalled; 0 = never (default: 500)")
    t.add_argument("--stall-margin", type=float, help="nats a learning run must be below the unigram loss (default: 0.1)")
    r = p.add_argument_group("run")
    r.add_argument("--out", metavar="RUN", help="run directory (default: runs/<dataset>-<model>-<layers>l-<size>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its saved state")
    add_device_flag(r)
    r.add_argument("--tensorboard", nargs="?", const=True, metavar="DIR", help="also log the training scalars (losses, "
                   "lr, chars/s, gradient norm) for TensorBoard, in DIR (default: RUN/tensorboard); needs the extra "
                   "rnnlens[tensorboard]; a resumed run keeps logging there")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(r)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace, device=None) -> tuple[RunConfig, dict]:
    """A new run's config from the flags, and its splits: :func:`rnnlens.newrun.new_run_config` with the
    flags the user gave (a flag's name is its setting's name; the defaults are the library's)."""
    return new_run_config(**given_settings(args), device=device if device is not None else "cpu")


def given_settings(args: argparse.Namespace) -> dict:
    """The run settings among the flags, those that were given."""
    return {k: getattr(args, k) for k in (*RUN_FLAGS, "data_dir") if getattr(args, k, None) is not None}


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.resume:
        if not args.out:
            raise RnnlensError("--resume needs --out RUN, the run directory to continue")
        given = [k for k in RUN_FLAGS if getattr(args, k, None) not in (None, False)]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise RnnlensError(f"--resume continues the run with its saved settings; drop {flags} (or train a new run "
                               "with another --out)")
    settings = {} if args.resume else given_settings(args)
    out, cfg, splits = prepare_run(args.out, args.resume, device, **settings)
    if not args.json:
        m = cfg.model
        say(f"run {out}: {m.layers}-layer {m.cell}, hidden {m.hidden}, "
            f"{param_count(m.cell, m.layers, m.hidden, m.vocab_size):,} parameters, K={m.vocab_size}, "
            f"{cfg.source.label}, device {device}, {cfg.train.precision}")
    outcome = train(out, device, BarReporter(enabled=not args.quiet), data_dir=args.data_dir, splits=splits)
    result = {"run": str(out), "status": outcome.status, "step": outcome.step, **(outcome.summary or {})}
    if outcome.status == "interrupted":
        say(f"interrupted at step {outcome.step}; the state is saved. Continue with: "
            f"rnnlens train --resume --out {out}")
    if outcome.summary and outcome.status in ("stalled", "diverged"):
        say(f"rnnlens: warning: {outcome.summary.get('health')}; its weights are kept but are not a result")
    if args.json:
        emit_json(result)
    elif outcome.summary and outcome.status not in ("stalled", "diverged"):
        s = outcome.summary
        test = f"{s['test_loss_nats']:.4f} nats/char ({s['test_loss_bits']:.4f} bits)" if s["test_loss_nats"] else "n/a"
        print(f"{outcome.status}: best val {s['best_val_loss']:.4f} nats/char at step {s['best_step']}; test {test}; "
            f"{s['chars_per_s']:,.0f} chars/s")
    if outcome.status in ("stalled", "diverged"):
        return 3
    return 130 if outcome.status == "interrupted" else 0
