"""``rnnlens runs``: every run under a folder, with its status, as a table (or JSON); ``--watch`` refreshes."""

from __future__ import annotations

import argparse
import sys
import time

from ..runlist import find_runs, format_table
from .common import add_json_flag, emit_json, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "runs", help="list the runs under a folder: status (running, complete, early_stopped, interrupted ...), size, progress, losses",
        description="Every run under DIR (recursively: training runs, reproduction stages, shipped models/) as a table: "
        "status (running = a live process holds the run's lock; else the finished status from summary.json; "
        "interrupted = training state but no summary: continue with rnnlens train --resume --out RUN), type, layers, "
        "hidden, parameters, dataset, precision, updates and epochs done, best validation and test loss (nats/char), "
        "chars/s and the age of the last write.")
    p.add_argument("dir", nargs="?", default="runs", metavar="DIR", help="the folder to search (default: runs)")
    p.add_argument("--watch", nargs="?", type=float, const=5.0, metavar="SECONDS",
                   help="redraw the table every SECONDS (default 5) until Ctrl-C")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        emit_json({"dir": args.dir, "runs": [r.to_dict() for r in find_runs(args.dir)]})
        return 0
    if not args.watch:
        rows = find_runs(args.dir)
        for line in format_table(rows, args.dir) if rows else [f"no runs under {args.dir}"]:
            print(line)
        return 0
    try:
        while True:
            rows = find_runs(args.dir)
            lines = format_table(rows, args.dir) if rows else [f"no runs under {args.dir}"]
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + f"\n\n{time.strftime('%H:%M:%S')}, every "
                             f"{args.watch:g} s; Ctrl-C to stop\n")
            sys.stdout.flush()
            time.sleep(max(args.watch, 0.5))
    except KeyboardInterrupt:
        say("")
        return 0
