"""``rnnlens reproduce``: the paper's Table 1 grid, Table 2 and the analyses, then report.html, in one command."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from tqdm import tqdm

from ..precision import resolve_precision
from ..reproduce.calibrate import calibrate_cpu
from ..reproduce.plan import DATASETS, PRESETS, format_plan
from ..reproduce.runner import make_plan, reproduce
from ..reproduce.schedule import simulate
from ..runtime import resolve_device
from .common import add_json_flag, emit_json, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce the paper: the Table 1 grid, Table 2, every analysis, and a report",
        description="Runs, in dependency order, the Table 1 grid (type x depth x budget, dropout chosen on "
        "validation), the Table 2 baselines and the analyses (cells, gates, map of models), then writes "
        "OUT/report.html, OUT/summary.md and OUT/results.json; the shipped preset adopts the trained models of "
        "--models-dir instead of training. Resumable: run the same command again to "
        "continue; finished stages are skipped. See docs/reproduce.md for what each preset covers.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="smoke", help="quick (the quickstart: one LSTM "
                   "on the built-in corpus, 3-8 min on a CPU), smoke (about a minute, checks the pipeline), cpu "
                   "(2-3 h on 2 cores with native bf16, several times that without: --dry-run --calibrate), "
                   "paper (the full recipe, for GPUs), cpu-paper (the paper's 1.3M models, days of CPU), "
                   "shipped (every analysis on the trained models in --models-dir, no training) (default: smoke)")
    p.add_argument("--models-dir", metavar="DIR", default="models", help="where the trained models that a preset "
                   "adopts instead of training are (the shipped preset: wp-lstm-1.3m, wp-gru-1.3m, wp-rnn-1.3m, "
                   "wp-lstm-50k, lk-lstm-1.3m); the records point into it, nothing is copied (default: ./models, "
                   "the repository's models/ when run from its root)")
    p.add_argument("--datasets", metavar="A,B", help=f"comma-separated corpora among {', '.join(DATASETS)} "
                   "(default: the preset's)")
    p.add_argument("--out", metavar="DIR", default="reproduce", help="output folder (default: ./reproduce)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA)")
    p.add_argument("--workers", type=int, default=0, help="parallel stages (default: one per CPU core, one on a GPU)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="local: a pool of worker "
                   "processes on this machine; ray: each stage as a task on a Ray cluster (pip install "
                   "'rnnlens[ray]'; docs/reproduce.md) (default: local)")
    p.add_argument("--address", metavar="ADDR", help="with --executor ray: the cluster (auto, HOST:PORT or "
                   "ray://HOST:PORT; default: start a local Ray instance for this run)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default: 1)")
    p.add_argument("--force", action="store_true", help="replace results of another configuration in --out")
    p.add_argument("--dry-run", action="store_true", help="print the plan (every run with its size, parameter "
                   "count and estimated time) and exit")
    p.add_argument("--calibrate", action="store_true", help="with --dry-run on a CPU: first time a few training "
                   "updates of two small LSTMs on this machine (a few seconds) and scale the training estimates to it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(func=run)


class StageBar:
    """One overall bar over the stages, the current stage in its description."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def start(self, total: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=total, desc="reproduce", unit="stage", file=sys.stderr, dynamic_ncols=True)

    def stage(self, stage_id: str, status: str) -> None:
        if self.bar is None:
            return
        if status == "running":
            self.bar.set_postfix_str(stage_id)
            return
        if status in ("failed", "blocked"):
            self.bar.write(f"{stage_id}: {status}", file=sys.stderr)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from ..exceptions import RnnlensError

    if args.address and args.executor != "ray":
        raise RnnlensError("--address is for --executor ray; add --executor ray or leave out --address")
    if args.workers < 0 or args.threads < 1:
        raise RnnlensError("--workers must be >= 0 (0: the default) and --threads >= 1")
    if args.calibrate and not args.dry_run:
        raise RnnlensError("--calibrate only scales the estimates of --dry-run; add --dry-run or leave it out")
    device = str(resolve_device(args.device))
    if args.calibrate and device != "cpu":
        raise RnnlensError(f"--calibrate times the CPU, but the plan is for {device}; add --device cpu or leave it out")
    planned = make_plan(args.preset, args.datasets, args.data_dir, device, args.workers, args.models_dir)
    calibration = None
    if args.calibrate:  # after make_plan, so that bad input is refused before any timing
        calibration = calibrate_cpu(planned.preset.precision, args.threads)
        planned = make_plan(args.preset, args.datasets, args.data_dir, device, args.workers, args.models_dir,
                            cpu_scale=calibration.scale)
    if args.dry_run:
        if args.json:
            emit_json({"preset": planned.preset.name, "workers": planned.workers,
                       "precision": resolve_precision(planned.preset.precision, device),
                       "compute_seconds": sum(s.est_seconds for s in planned.stages),
                       "wall_seconds": simulate(planned.stages, planned.workers).wall,
                       "calibration": None if calibration is None else asdict(calibration),
                       "stages": [s.to_dict() for s in planned.stages]})
        else:
            for line in format_plan(planned.preset, planned.stages, planned.workers, device):
                print(line)
            if calibration is not None:
                print(calibration.describe())
            elif device == "cpu":
                print("(training estimates from a 2-core AMD EPYC with AVX512-BF16; other CPUs differ by up to 3x: "
                      "--calibrate times this one in a few seconds)")
        return 0
    outcome = reproduce(args.out, planned, device, args.data_dir, args.force, args.threads,
                        StageBar(not args.quiet and not args.json), executor=args.executor, address=args.address)
    counts = {k: outcome.count(k) for k in ("done", "skipped", "failed", "blocked")}
    if args.json:
        emit_json({"out": args.out, **counts, "errors": outcome.errors})
    else:
        for sid, err in outcome.errors.items():
            say(f"failed: {sid}: {err.splitlines()[0]}")
        say(f"{counts['done']} stages run, {counts['skipped']} up to date, {counts['failed']} failed, "
            f"{counts['blocked']} blocked; report: {args.out}/report.html")
    return 1 if counts["failed"] or counts["blocked"] else 0
