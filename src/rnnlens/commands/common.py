"""Pieces shared by several subcommands: JSON output, device flag, the progress bar."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tqdm import tqdm

from ..data.splits import Split


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of text")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N", help="CPU threads for torch (default: 0 = torch's choice, one "
        "per core; on a busy shared machine 1 can be many times faster)"
    )


def emit_json(obj: dict[str, Any]) -> None:
    """One JSON object on stdout (non-finite floats become null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    sys.stdout.write(json.dumps(clean(obj)) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    """A human-readable line on stderr (stdout stays clean for --json)."""
    print(message, file=sys.stderr, flush=True)


class BarReporter:
    """Training progress as a tqdm bar on stderr: step, loss, chars/s, rate and ETA."""

    def __init__(self, enabled: bool = True, desc: str = "train") -> None:
        self.enabled = enabled
        self.desc = desc
        self.bar: tqdm | None = None

    def start(self, total_steps: int, done_steps: int, chars_per_step: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=total_steps, initial=done_steps, desc=self.desc, unit="step", file=sys.stderr,
                            dynamic_ncols=True, mininterval=0.5, smoothing=0.05)

    def update(self, step: int, loss: float, chars_per_s: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.3f} | {chars_per_s:,.0f} chars/s | lr {lr:.2e}", refresh=False)
            self.bar.update(step - self.bar.n)

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        elif self.enabled:
            say(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def add_run_source_flags(parser: argparse.ArgumentParser, default_split: str = "test") -> None:
    """RUN plus where its text comes from (one of the run's splits, or any file read with the run's units),
    which weights, and the device."""
    parser.add_argument("run", metavar="RUN", help="run directory (the --out of rnnlens train)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--split", choices=["train", "val", "test"], default=default_split,
                     help=f"which split of the run's corpus (default: {default_split})")
    src.add_argument("--text", metavar="FILE", help="use this file instead of a split (read with the run's units "
                     "and newline mode, cut into up to --batch-size rows; the first character of each row has no "
                     "prediction)")
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the named corpora (default: $RNNLENS_DATA)")
    parser.add_argument("--weights", choices=["best", "last"], default="best",
                        help="best-on-validation weights or the latest training state (default: best)")
    add_device_flag(parser)


def load_source(args: argparse.Namespace, cfg) -> tuple[np.ndarray, Split, str]:
    """(every symbol of the source text, the split to stream, a label: the split's name or text-<file stem>)."""
    from ..run import load_symbols
    from ..data.splits import make_splits, stream_split
    from ..data.text import read_symbols

    if getattr(args, "text", None):
        symbols = read_symbols(args.text, cfg.text)
        return symbols, stream_split(cfg.vocab.encode(symbols), cfg.split.batch_size, "text"), f"text-{Path(args.text).stem}"
    symbols = load_symbols(cfg, args.data_dir)
    return symbols, make_splits(cfg.vocab.encode(symbols), cfg.split)[args.split], args.split


def load_run_and_split(args: argparse.Namespace):
    """(model, RunConfig, Split, label) for the flags of :func:`add_run_source_flags`."""
    from ..run import load_model
    from ..runtime import resolve_device

    model, cfg, _ = load_model(args.run, "best" if args.weights == "best" else "state", resolve_device(args.device))
    _, split, label = load_source(args, cfg)
    return model, cfg, split, label
