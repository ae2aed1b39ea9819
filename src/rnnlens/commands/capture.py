"""``rnnlens capture``: write every hidden state, cell state and gate of a run over a split or text to disk."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..capture.store import DTYPES, capture_to_dir
from ..fsutil import record_path
from .common import add_json_flag, add_run_source_flags, emit_json, load_run_and_split, say


def add_input_flags(p: argparse.ArgumentParser, max_chars_default: int | None = 0,
                    max_chars_help: str = "only the first columns of every row, enough for N characters (default: all)") -> None:
    """The run/source flags plus --max-chars, shared with ``rnnlens gates`` and ``rnnlens ablate``."""
    add_run_source_flags(p)
    p.add_argument("--max-chars", type=int, default=max_chars_default, metavar="N", help=max_chars_help)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "capture", help="save every hidden state, cell state and gate over a split or text (memory-mapped .npy)",
        description="Run a split (rows streamed in unroll blocks with the state carried, as in training) or a "
        "text file through a run's model and write the selected activations to DIR: one <name>.npy per name, "
        "shape (rows, columns, units), x.npy/y.npy ids and index.json (row starts map (row, column) to text "
        "offsets). Names: layers.L.h, layers.L.c, layers.L.{input,forget,output}_gate, layers.L.candidate "
        "(LSTM); layers.L.{reset,update}_gate (GRU; update_gate is PyTorch's z, the share of the old state "
        "kept); layers.L.pre (RNN); logits, next_prob, loss. See docs/capture.md.")
    add_input_flags(p)
    p.add_argument("--names", metavar="FILTER", help="comma-separated glob patterns, e.g. 'layers.*.forget_gate,loss' (default: all)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/capture-<split or text name>)")
    p.add_argument("--dtype", choices=DTYPES, default="float16", help="storage type of activations (default: float16)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, cfg, split, label = load_run_and_split(args)
    out = Path(args.out) if args.out else Path(args.run) / f"capture-{label}"
    info = {"run": record_path(args.run), "weights": args.weights, "source": args.text or label}
    cap = capture_to_dir(model, split, cfg.split.seq_len, out, args.names, args.dtype, args.max_chars, info)
    rows, cols = cap.shape
    nbytes = sum(a.nbytes for a in cap.arrays.values())
    result = {"out": str(out), "names": cap.names, "rows": rows, "cols": cols, "chars": rows * cols,
              "dtype": args.dtype, "bytes": nbytes}
    if "loss" in cap:
        result["loss_nats"] = float(cap["loss"].astype("float64").mean())
    if args.json:
        emit_json(result)
    else:
        say(f"captured {len(cap.names)} arrays over {rows * cols:,} characters ({rows} rows x {cols} columns), "
            f"{nbytes / 1e6:,.1f} MB in {out}")
    return 0
