"""``rnnlens ngram``: fit the paper's Kneser-Ney n-gram baseline on a train split and score val or test."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from rnnlens.commands.common import add_json_flag, emit_json, say
from rnnlens.data.corpora import CORPORA, DEFAULT_FRACTIONS, get_spec, load_corpus_bytes
from rnnlens.exceptions import RnnlensError
from rnnlens.ngram.model import MAX_N, KneserNeyLM, NGramConfig, row_streams
from rnnlens.data.splits import SplitConfig, make_splits
from rnnlens.data.text import TextConfig, Vocab, read_file_bytes, read_symbols


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ngram", help="interpolated modified Kneser-Ney character n-gram baseline (the paper's Table 2)",
        description="Fit an unpruned interpolated modified Kneser-Ney character model on the train split and "
        "report the loss on the val or test split. As in the paper, --n is the number of characters of "
        "context, so the model's order is n+1 (the paper's '20-gram' is --n 20, order 21). The vocabulary "
        "is built from the whole text (as char-rnn did). Each train row of the split is a separate stream: "
        "no n-gram spans two rows. With --load, a saved model is scored instead of fitting one.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help=f"a named corpus: {', '.join(CORPORA)}")
    src.add_argument("--text", metavar="FILE", help="your own text file (split fractions "
                     f"{DEFAULT_FRACTIONS[0]}/{DEFAULT_FRACTIONS[1]}/{DEFAULT_FRACTIONS[2]} unless --fractions)")
    p.add_argument("--n", type=int, default=20, help=f"context length in characters, 1..{MAX_N}; the model's "
                   "order is n+1 (default: 20, the paper's 20-gram)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA)")
    p.add_argument("--layout", choices=["interleaved", "contiguous"], default="interleaved",
                   help="split layout: interleaved = char-rnn's B rows cut into column blocks (the paper's), "
                   "contiguous = three consecutive parts (default: interleaved)")
    p.add_argument("--split", choices=["val", "test"], default="test", help="which split to score (default: test)")
    p.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                   help="split fractions (default: the corpus preset, e.g. 0.8 0.1 0.1 for warpeace)")
    p.add_argument("--batch-size", type=int, default=100, help="rows B of the split layout (default: 100)")
    p.add_argument("--seq-len", type=int, default=100, help="column block width S of the split layout (default: 100)")
    p.add_argument("--unit", choices=["byte", "char"], default="byte",
                   help="symbols: bytes (the paper's) or Unicode code points (default: byte)")
    p.add_argument("--newline", choices=["keep", "lf", "crlf"], default="keep",
                   help="newline normalisation before counting (default: keep)")
    p.add_argument("--save", metavar="PATH", help="write the fitted model here (.npz, no pickles)")
    p.add_argument("--load", metavar="PATH", help="score this saved model instead of fitting one; its unit must "
                   "match --unit and every symbol of the text must be in its vocabulary")
    add_json_flag(p)
    p.set_defaults(func=run)


def _corpus(args: argparse.Namespace) -> tuple[bytes, tuple[float, float, float]]:
    if args.dataset:
        spec = get_spec(args.dataset)
        data, fractions = load_corpus_bytes(args.dataset, args.data_dir), spec.fractions
    else:
        data = read_file_bytes(args.text)
        fractions = DEFAULT_FRACTIONS
    if args.fractions:
        fractions = tuple(args.fractions)
    return data, fractions


def _loaded_vocab(model: KneserNeyLM, unit: str, path: str) -> Vocab:
    if model.symbols is None or model.unit is None:
        raise RnnlensError(f"n-gram model {path} has no vocabulary; save it with `rnnlens ngram --save`")
    if model.unit != unit:
        raise RnnlensError(f"n-gram model {path} counts unit {model.unit!r}, not {unit!r}; pass --unit {model.unit}")
    return Vocab(unit=model.unit, symbols=model.symbols)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    cfg = NGramConfig(args.n)
    data, fractions = _corpus(args)
    symbols = read_symbols(data, TextConfig(unit=args.unit, newline=args.newline))
    model = None
    if args.load:
        model = KneserNeyLM.load(args.load)
        if model.n != cfg.n:
            say(f"using the saved model's n = {model.n} (--n {cfg.n} ignored)")
        vocab = _loaded_vocab(model, args.unit, args.load)
    else:
        vocab = Vocab.build(symbols, args.unit)
    ids = vocab.encode(symbols)
    splits = make_splits(ids, SplitConfig(layout=args.layout, fractions=fractions,
                                          batch_size=args.batch_size, seq_len=args.seq_len))
    build_s = 0.0
    if model is None:
        say(f"fitting an order-{cfg.order} Kneser-Ney model (n = {cfg.n}) on {splits['train'].num_chars:,} "
            "train characters ...")
        t0 = time.perf_counter()
        train = splits["train"]
        model = KneserNeyLM.fit_streams(row_streams(train.x, train.y), len(vocab), cfg,
                                        unit=vocab.unit, symbols=vocab.symbols)
        build_s = time.perf_counter() - t0
    target = splits[args.split]
    if target.num_chars == 0:
        raise RnnlensError(f"the {args.split} split is empty; use a longer text or other --fractions")
    t0 = time.perf_counter()
    logp, _ = model.score_rows(target.x, target.y)
    score_s = time.perf_counter() - t0
    loss = float(-logp.mean())
    if args.save:
        model.save(args.save)
    result = {"n": model.n, "order": model.cfg.order, "loss_nats": loss, "loss_bits": loss / math.log(2),
              "chars": target.num_chars, "build_s": build_s, "score_s": score_s}
    if args.json:
        emit_json(result)
    else:
        say(f"{args.split} split, n = {model.n} (order {model.cfg.order}): {loss:.4f} nats/char, "
            f"{result['loss_bits']:.4f} bits/char over {target.num_chars:,} characters "
            f"(build {build_s:.1f} s, score {score_s:.1f} s)")
    return 0
