"""``rnnlens eval``: loss of a trained run on one of its splits or on any text file."""

from __future__ import annotations

import argparse

from ..evaluate import evaluate
from ..run import load_model, load_splits
from ..runtime import resolve_device
from ..splits import stream_split
from ..textdata import read_symbols
from .common import add_device_flag, add_json_flag, emit_json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="loss in nats and bits per character on a split or a text file",
        description="Evaluate a run's best weights. Rows of text are streams with the hidden state carried "
        "across unroll blocks, as in training. With --text, the file is read with the run's units and newline "
        "mode and cut into up to --batch-size rows (the first character of each row has no prediction).")
    p.add_argument("run", metavar="RUN", help="run directory (the --out of rnnlens train)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="which split (default: test)")
    p.add_argument("--text", metavar="FILE", help="evaluate on this file instead of a split")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA)")
    p.add_argument("--weights", choices=["best", "last"], default="best", help="which weights (default: best)")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, cfg, meta = load_model(args.run, "best" if args.weights == "best" else "state", resolve_device(args.device))
    if args.text:
        split = stream_split(cfg.vocab.encode(read_symbols(args.text, cfg.text)), cfg.split.batch_size, "text")
    else:
        split = load_splits(cfg, args.data_dir)[args.split]
    result = evaluate(model, split, cfg.split.seq_len)
    if args.json:
        emit_json(result.to_dict())
    else:
        where = args.text or f"the {args.split} split"
        print(f"{where}: {result.loss_nats:.4f} nats/char, {result.loss_bits:.4f} bits/char over {result.chars:,} characters")
    return 0
