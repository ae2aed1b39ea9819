"""``rnnlens quickstart``: the first thing to run. On the built-in corpus (the Python standard library's own
source, no download) it trains a small LSTM, runs the n-gram and n-NN baselines, finds interpretable cells,
measures gate saturation, compares the LSTM with the baselines and analyses the errors by oracles, writes
the report, then prints a sample and the test loss. It is ``rnnlens reproduce --preset quick`` plus the
sample."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..exceptions import RnnlensError
from ..fsutil import read_json
from ..reproduce.plan import PRESETS
from ..reproduce.runner import make_plan, reproduce
from ..reproduce.stages import read_result
from ..run import SUMMARY, load_model
from ..runtime import resolve_device
from ..sample import sample
from .common import add_device_flag, add_json_flag, emit_json, say
from .reproduce import StageBar


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart", help="train a small LSTM on the built-in corpus, analyse it, write a report, sample (3-8 minutes on 2 CPU cores)",
        description="On the built-in corpus (Python standard library source, no download): train a 2-layer LSTM "
        "of about 130K parameters with the paper's recipe (batches of 32 rows x 64 steps, 4 epochs), fit the "
        "n-gram and n-NN baselines, find interpretable cells, measure gate saturation, compare the LSTM with the "
        "baselines, break the errors down by oracles, and write OUT/report.html; then print a sample and the test loss. This is rnnlens reproduce "
        "--preset quick. Running it again reuses (or resumes) what is done.")
    p.add_argument("--out", default="runs/quickstart", help="output folder (default: runs/quickstart)")
    p.add_argument("--epochs", type=float, default=4.0, help="passes over the training text (default: 4)")
    p.add_argument("--chars", type=int, default=0, metavar="N", help="use only the first N bytes of the corpus "
                   "(default: all of it, about 2 MB); for a faster first look")
    p.add_argument("--length", type=int, default=400, help="characters to sample (default: 400)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.epochs <= 0 or args.chars < 0 or args.length < 1:
        raise RnnlensError("--epochs must be > 0, --chars >= 0 and --length >= 1")
    if args.chars and args.chars < 20_000:
        raise RnnlensError(f"--chars {args.chars} is too little text for the splits and the baselines; use at "
                           "least 20000 (or 0 for the whole corpus)")
    preset = replace(PRESETS["quick"], epochs=args.epochs, slice_bytes=args.chars)
    device = str(resolve_device(args.device))
    planned = make_plan(preset, None, None, device)
    outcome = reproduce(args.out, planned, device, threads=args.threads,
                        progress=StageBar(not args.quiet and not args.json))
    if outcome.errors:
        for sid, err in outcome.errors.items():
            say(f"failed: {sid}: {err.splitlines()[0]}")
    train_id = next(s.id for s in planned.stages if s.kind == "train")
    rec = read_result(args.out, train_id)
    if rec is None:
        raise RnnlensError(f"the LSTM of the quickstart did not finish training; run the same command again "
                           f"to resume it (details: {args.out}/stages/{train_id}/failed.json)")
    run_dir = Path(args.out) / rec["run"]
    model, cfg, _ = load_model(run_dir, "best", device)
    text = sample(model, cfg.vocab, cfg.text, "def ", args.length, temperature=0.8, seed=0)
    summary = read_json(run_dir / SUMMARY)
    report = Path(args.out) / "report.html"
    failed = sorted(outcome.errors)
    if args.json:
        emit_json({"run": str(run_dir), "report": str(report), "failed": failed, "sample": text, **summary})
        return 1 if failed else 0
    say("\n--- sample (temperature 0.8) ---")
    sys.stdout.write(text + "\n")
    say("--- end of sample ---")
    say(f"test loss: {summary['test_loss_nats']:.4f} nats/char ({summary['test_loss_bits']:.4f} bits/char) "
        f"over {summary['test_chars']:,} characters; run saved in {run_dir}")
    say(f"report (baselines, cells, gates, comparisons, errors): {report}")
    say(f"next: rnnlens serve {run_dir} --oracles    or    rnnlens sample {run_dir} --prime 'import ' --length 300")
    return 1 if failed else 0
