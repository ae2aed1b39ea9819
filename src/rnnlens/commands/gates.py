"""``rnnlens gates``: gate saturation of a run over a split or text (the paper's Figure 3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.gates import SaturationConfig, gate_saturation, write_saturation
from .capture import add_input_flags
from .common import add_json_flag, emit_json, load_run_and_split, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gates", help="gate saturation: how often each gate unit is nearly closed or open (Figure 3)",
        description="For every unit of every LSTM forget/input/output gate or GRU reset/update gate, the fraction "
        "of time steps with activation < --left (left-saturated) and > --right (right-saturated), counted over a "
        "split (streamed with the state carried, as in training) or a text file. Writes saturation.json, "
        "saturation.csv and saturation.png (one scatter per layer and gate type) to --out. The GRU update gate "
        "is PyTorch's z (the share of the old state kept); the paper's z is 1 - z.")
    add_input_flags(p)
    p.add_argument("--left", type=float, default=0.1, help="left-saturated below this activation (default: 0.1)")
    p.add_argument("--right", type=float, default=0.9, help="right-saturated above this activation (default: 0.9)")
    p.add_argument("--mostly", type=float, default=0.9,
                   help="summary counts units saturated more than this fraction of the time (default: 0.9)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/gates-<split or text name>)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = SaturationConfig(args.left, args.right, args.mostly)
    model, cfg, split, label = load_run_and_split(args)
    result = gate_saturation(model, split, cfg.split.seq_len, config, args.max_chars)
    out = Path(args.out) if args.out else Path(args.run) / f"gates-{label}"
    paths = write_saturation(result, out, f"gate saturation, {cfg.model.layers}-layer {cfg.model.cell.upper()}, "
                             f"{label}, {result.steps:,} steps")
    if args.json:
        emit_json({"steps": result.steps, "thresholds": config.to_dict(), "summary": result.summary(), "files": paths})
        return 0
    say(f"gate saturation over {result.steps:,} steps of {label} (left < {config.left:g}, right > {config.right:g})")
    say(f"{'layer':>5} {'gate':<12} {'units':>5} {'mean left':>9} {'mean right':>10} "
        f"{'>' + format(config.mostly, 'g') + ' left':>9} {'>' + format(config.mostly, 'g') + ' right':>10}")
    for row in result.summary():
        say(f"{row['layer']:>5} {row['gate']:<12} {row['units']:>5} {row['mean_left']:>9.3f} {row['mean_right']:>10.3f} "
            f"{row['mostly_left']:>9} {row['mostly_right']:>10}")
    say(f"table: {paths['json']}, {paths['csv']}; figure: {paths['figure']}")
    return 0
