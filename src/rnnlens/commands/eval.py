"""``rnnlens eval``: loss of a trained run on one of its splits or on any text file."""

from __future__ import annotations

import argparse

from ..evaluate import evaluate
from .common import add_json_flag, add_run_source_flags, emit_json, load_run_and_split


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="loss in nats and bits per character on a split or a text file",
        description="Evaluate a run's weights. Rows of text are streams with the hidden state carried "
        "across unroll blocks, as in training.")
    add_run_source_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, cfg, split, _ = load_run_and_split(args)
    result = evaluate(model, split, cfg.split.seq_len)
    if args.json:
        emit_json(result.to_dict())
    else:
        where = args.text or f"the {args.split} split"
        print(f"{where}: {result.loss_nats:.4f} nats/char, {result.loss_bits:.4f} bits/char over {result.chars:,} characters")
    return 0
