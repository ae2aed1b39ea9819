"""``rnnlens curves``: training and validation loss of one or more runs on one figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.curves import X_AXES, plot_curves, read_curve
from .common import add_json_flag, emit_json, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "curves", help="plot the training and validation loss of one or more runs (also while they train)",
        description="Read each run's metrics.jsonl (one line per validation; a run still training is read as far as "
        "it has written) and draw validation (solid) and training (dashed) loss in nats/char against --x, the best "
        "validation marked, each run named by type, depth x width, parameters, dropout and precision; with one run "
        "the learning rate on a second axis. Works on shipped models/ folders too.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (rnnlens train --out, or models/<name>)")
    p.add_argument("--x", choices=X_AXES, default="updates", help="the x axis (default: updates)")
    p.add_argument("--out", metavar="FILE", help="FILE.png or FILE.svg (default: RUN/curves.png for one run, "
                   "curves.png here for several)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    curves = [read_curve(r) for r in args.runs]
    out = Path(args.out) if args.out else (Path(args.runs[0]) / "curves.png" if len(args.runs) == 1 else Path("curves.png"))
    plot_curves(curves, out, args.x)
    if args.json:
        emit_json({"out": str(out), "x": args.x, "runs": [c.to_dict() for c in curves]})
        return 0
    for c in curves:
        b = c.best
        say(f"{c.run}: {c.label}, {len(c.updates)} validations, best val {c.val_loss[b]:.4f} at update "
            f"{c.updates[b]:,} (epoch {c.epochs[b]:.1f}); {c.status}"
            + (f", test {c.test_loss:.4f}" if c.test_loss is not None else ""))
    say(f"-> {out}")
    return 0
