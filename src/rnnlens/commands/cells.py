"""``rnnlens cells``: find interpretable cells (--find), draw one cell over text (--cell), or the histogram
of tanh(c) over a split (--histogram)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..cells.analysis import (FIND_CHARS, SNIPPET_CHARS, cell_histogram, cell_state, cell_values, find_cells,
                              parse_cell, state_label, write_cell, write_findings, write_histogram)
from ..cells.features import SYNTAXES
from ..data.splits import make_splits
from ..data.text import read_symbols
from ..exceptions import RnnlensError
from ..model import CharRNN
from ..run import RunConfig, load_model, load_symbols
from ..runtime import resolve_device
from .common import add_json_flag, add_run_source_flags, emit_json, load_source, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "cells", help="find interpretable cells, draw a cell over text, or the tanh(c) histogram",
        description="--find: score every cell against text features (line position, quotes, comments, bracket "
        "depth, indentation, if conditions, ...; Pearson r or ROC AUC) and write a report with each feature's best "
        "cell. --cell LAYER:INDEX: colour a text by one cell's tanh(c) (or h), -1 red to +1 blue, as HTML or PNG. "
        "--histogram: the distribution of tanh(c) over a split. See docs/cells.md.")
    add_run_source_flags(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--find", action="store_true", help="rank cells by how well they track each text feature")
    mode.add_argument("--cell", metavar="LAYER:INDEX", help="draw this cell, e.g. 1:42 (layers and cells count from 0)")
    mode.add_argument("--histogram", action="store_true", help="histogram of tanh(c) (h for GRU/RNN) per layer")
    p.add_argument("--state", choices=["c", "h"], help="tanh(c) or h (default: c for an LSTM, h otherwise)")
    p.add_argument("--top", type=int, default=5, metavar="N", help="--find: best cells listed per feature (default: 5)")
    p.add_argument("--max-chars", type=int, metavar="N", help="--find/--histogram: characters to use "
                   "(default: 50,000 for --find, all for --histogram)")
    p.add_argument("--chars", type=int, metavar="N",
                   help="--cell: characters drawn (default: 2000); --find: characters per heatmap (default: 600)")
    p.add_argument("--syntax", choices=SYNTAXES, default="auto", help="--find: how strings and comments are "
                   "recognised: c, python, prose or auto (default)")
    p.add_argument("--width", type=int, default=100, metavar="COLS", help="line width of the drawings (default: 100)")
    p.add_argument("--out", metavar="PATH", help="--find/--histogram: output folder (default: RUN/cells); --cell: "
                   "FILE.html or FILE.png (default: RUN/cells/cell-LAYER-INDEX.html and .png)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, cfg, _ = load_model(args.run, "best" if args.weights == "best" else "state", resolve_device(args.device))
    state = cell_state(cfg, args.state)
    if args.cell:
        return _draw_cell(args, model, cfg, state)
    if args.histogram:
        return _histogram(args, model, cfg, state)
    return _find(args, model, cfg, state)


def _draw_cell(args: argparse.Namespace, model: CharRNN, cfg: RunConfig, state: str) -> int:
    layer, index = parse_cell(args.cell, cfg)
    chars = 2000 if args.chars is None else args.chars
    if chars < 1:
        raise RnnlensError(f"--chars must be at least 1, got {chars}")
    if args.text:
        symbols = read_symbols(args.text, cfg.text)[:chars]
        where = args.text
    else:
        split = make_splits(cfg.vocab.encode(load_symbols(cfg, args.data_dir)), cfg.split)[args.split or "test"]
        symbols = np.asarray(cfg.vocab.symbols)[split.x[0, :chars]]
        where = f"the {split.name} split (row 0)"
    name = f"layers.{layer}.{state}"
    outs = [Path(args.out)] if args.out else [Path(args.run) / "cells" / f"cell-{layer}-{index}.{e}" for e in ("html", "png")]
    for out in outs:
        if out.suffix.lower() not in (".html", ".png"):
            raise RnnlensError(f"--out {out} must end in .html or .png; pick one of the two")
    vals = cell_values(model, cfg, symbols, layer, index, state)
    write_cell(symbols, vals, cfg.vocab.unit, f"{name}:{index} ({state_label(state)}) over {where}", outs, args.width)
    if args.json:
        emit_json({"cell": f"{name}:{index}", "chars": len(vals), "out": [str(o) for o in outs],
                   "mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max())})
    else:
        say(f"{name}:{index} over {len(vals):,} characters (mean {vals.mean():+.3f}, range {vals.min():+.3f}.."
            f"{vals.max():+.3f}) -> {', '.join(map(str, outs))}")
    return 0


def _label(args: argparse.Namespace, cfg: RunConfig) -> str:
    return Path(args.text).name if args.text else f"{cfg.source.label} {args.split}"


def _find(args: argparse.Namespace, model: CharRNN, cfg: RunConfig, state: str) -> int:
    symbols, split, _ = load_source(args, cfg)
    findings = find_cells(model, cfg, symbols, split, _label(args, cfg), state,
                          FIND_CHARS if args.max_chars is None else args.max_chars, args.top, args.syntax,
                          SNIPPET_CHARS if args.chars is None else args.chars)
    out = Path(args.out) if args.out else Path(args.run) / "cells"
    title = f"Interpretable cells of {Path(args.run).name} on {findings.label} ({state_label(state)})"
    write_findings(findings, out, cfg.vocab.unit, title, args.width, run=args.run)
    if args.json:
        emit_json({"out": str(out), **findings.report.to_dict()})
    else:
        for line in findings.report.format_lines():
            say(line)
        say(f"report: {out / 'report.html'} (+ report.json and one PNG per feature)")
    return 0


def _histogram(args: argparse.Namespace, model: CharRNN, cfg: RunConfig, state: str) -> int:
    _, split, _ = load_source(args, cfg)
    label = _label(args, cfg)
    hist = cell_histogram(model, cfg, split, state, args.max_chars or 0)
    out = Path(args.out) if args.out else Path(args.run) / "cells"
    write_histogram(hist, out, state, label)
    what = state_label(state)
    if args.json:
        emit_json({"out": str(out), "state": what, **hist.to_dict()})
    else:
        inner = hist.interior_peaks()
        fmt = lambda v: "none" if v is None else f"{v:+.2f}"  # noqa: E731
        for n, (lo, hi) in hist.peaks().items():
            say(f"{n}: {int(hist.counts[n].sum()):,} values of {what}; fullest bins at {lo:+.2f} and {hi:+.2f}; "
                f"interior peaks (|x| < 0.9) at {fmt(inner[n][0])} and {fmt(inner[n][1])}")
        say(f"-> {out / 'histogram.png'}, {out / 'histogram.json'}")
    return 0
