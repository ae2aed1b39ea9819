"""``rnnlens quickstart``: the first thing to run. Trains a small LSTM on the built-in corpus (the Python
standard library's own source, no download), then prints a sample and the test loss."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..run import CONFIG, load_model
from ..runtime import resolve_device
from ..sample import sample
from . import train as train_cmd
from .common import add_device_flag, add_json_flag, emit_json, say

# Smaller batches than the paper's 100x100 give more updates per character, which matters in a short run.
PRESET = ["--dataset", "pystdlib", "--model", "lstm", "--layers", "2", "--params", "130k",
          "--batch-size", "32", "--seq-len", "64", "--eval-every", "300", "--eval-chars", "100000"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart", help="train a small LSTM on the built-in corpus, then sample from it (a few minutes on CPU)",
        description="Train a 2-layer LSTM with about 130K parameters on the built-in corpus (Python standard library "
        "source, no download) with the paper's recipe (batches of 32 rows x 64 steps) for two epochs, then print a sample and the test loss. "
        "Running it again continues or reuses the same run.")
    p.add_argument("--out", default="runs/quickstart", help="run directory (default: runs/quickstart)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes over the training text (default: 2)")
    p.add_argument("--length", type=int, default=400, help="characters to sample (default: 400)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    train_parser = argparse.ArgumentParser(add_help=False)
    sub = train_parser.add_subparsers()
    train_cmd.add_parser(sub)
    if (out / CONFIG).is_file():
        argv = ["train", "--resume", "--out", str(out)]
    else:
        argv = ["train", *PRESET, "--epochs", str(args.epochs), "--out", str(out)]
    train_args = train_parser.parse_args(argv + ["--device", args.device, "--threads", str(args.threads)]
                                         + (["--quiet"] if args.quiet else [])
                                         + (["--json"] if args.json else []))
    if args.json:  # the train step's own JSON would be a second object on stdout
        train_args.json = False
        train_args.quiet = True
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the sample (or the JSON object)
        status = train_cmd.run(train_args)
    if status != 0:
        return status
    model, cfg, _ = load_model(out, "best", resolve_device(args.device))
    text = sample(model, cfg.vocab, cfg.text, "def ", args.length, temperature=0.8, seed=0)
    from ..fsutil import read_json
    from ..run import SUMMARY

    summary = read_json(out / SUMMARY)
    if args.json:
        emit_json({"run": str(out), "sample": text, **summary})
        return 0
    say("\n--- sample (temperature 0.8) ---")
    sys.stdout.write(text + "\n")
    say("--- end of sample ---")
    say(f"test loss: {summary['test_loss_nats']:.4f} nats/char ({summary['test_loss_bits']:.4f} bits/char) "
        f"over {summary['test_chars']:,} characters; run saved in {out}")
    say(f"next: rnnlens sample {out} --prime 'import ' --length 300    or    rnnlens eval {out} --split val")
    return 0
