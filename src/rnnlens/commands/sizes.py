"""``rnnlens sizes``: the hidden size each model type and depth gets for each parameter budget."""

from __future__ import annotations

import argparse

from ..exceptions import RnnlensError
from ..model import CELL_TYPES, PAPER_BUDGETS, hidden_for_budget, param_count, parse_budget
from .common import add_json_flag, emit_json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sizes", help="hidden sizes per type, depth and parameter budget (the paper's size table)",
        description="For every model type and depth, the hidden size whose total parameter count (one-hot input, "
        "PyTorch layers with two bias vectors per gate block, linear readout) is closest to each budget.")
    p.add_argument("--vocab-size", type=int, default=87, help="K, the vocabulary size (default: 87, War and Peace)")
    p.add_argument("--budgets", default=",".join(PAPER_BUDGETS), help="comma-separated budgets (default: the paper's four, each the exact size "
                   "of a 1-layer LSTM with 64/128/256/512 cells)")
    p.add_argument("--layers", default="1,2,3", help="comma-separated depths (default: 1,2,3)")
    add_json_flag(p)
    p.set_defaults(func=run)


def size_table(vocab_size: int, budgets: list[str], depths: list[int]) -> list[dict]:
    rows = []
    for budget_name in budgets:
        budget = parse_budget(budget_name, vocab_size)
        for cell in CELL_TYPES:
            for layers in depths:
                hidden = hidden_for_budget(cell, layers, budget, vocab_size)
                rows.append({"budget": budget_name, "target": budget, "model": cell, "layers": layers,
                             "hidden": hidden, "params": param_count(cell, layers, hidden, vocab_size)})
    return rows


def run(args: argparse.Namespace) -> int:
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    try:
        depths = [int(x) for x in args.layers.split(",") if x.strip()]
    except ValueError:
        raise RnnlensError(f"--layers must be comma-separated whole numbers like 1,2,3, got {args.layers!r}") from None
    if not depths or any(not 1 <= d <= 8 for d in depths):
        raise RnnlensError(f"--layers must list depths between 1 and 8, got {args.layers!r}")
    if args.vocab_size < 2:
        raise RnnlensError(f"--vocab-size must be at least 2, got {args.vocab_size}")
    rows = size_table(args.vocab_size, budgets, depths)
    if args.json:
        emit_json({"vocab_size": args.vocab_size, "sizes": rows})
        return 0
    print(f"K = {args.vocab_size}")
    print(f"{'budget':>7} {'model':>5} {'layers':>6} {'hidden':>6} {'params':>10}")
    for r in rows:
        print(f"{r['budget']:>7} {r['model']:>5} {r['layers']:>6} {r['hidden']:>6} {r['params']:>10,}")
    return 0
