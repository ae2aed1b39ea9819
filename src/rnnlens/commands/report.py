"""``rnnlens report DIR``: rebuild report.html, summary.md and results.json of a reproduction without recomputing."""

from __future__ import annotations

import argparse

from ..reproduce.report import write_report
from .common import add_json_flag, emit_json, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="rebuild the report of a reproduction from its results (no recomputation)",
        description="Reads DIR/plan.json and every finished stage's record and writes DIR/report.html, "
        "DIR/summary.md and DIR/results.json again, and the training curves of every run "
        "(DIR/figures/curves-<corpus>.png, read from the runs' metrics.jsonl).")
    p.add_argument("dir", metavar="DIR", help="the --out folder of rnnlens reproduce")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = write_report(args.dir)
    done = sum(1 for s in results["stages"].values() if s["status"] == "done")
    if args.json:
        emit_json({"dir": args.dir, "stages": len(results["stages"]), "done": done})
    else:
        say(f"{done} of {len(results['stages'])} stages finished; wrote {args.dir}/report.html, summary.md, "
            "results.json")
    return 0
