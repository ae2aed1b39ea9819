"""``rnnlens cells``: find interpretable cells (--find), draw one cell over text (--cell), or the histogram
of tanh(c) over a split (--histogram)."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import torch

from ..capture.core import iter_capture, run_with_cache
from ..cells.viz import Snippet, best_window, histogram, plot_histogram, render_html, render_png, report_page
from ..cells.discover import DiscoveryConfig, discover
from ..exceptions import RnnlensError
from ..cells.features import SYNTAXES, compute_features
from ..fsutil import atomic_write_json, atomic_write_text
from ..model import CharRNN
from ..run import RunConfig, load_model, load_symbols
from ..runtime import resolve_device
from ..data.splits import Split, make_splits
from ..data.text import read_symbols
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
    state = _state(cfg, args.state)
    if args.cell:
        return _draw_cell(args, model, cfg, state)
    if args.histogram:
        return _histogram(args, model, cfg, state)
    return _find(args, model, cfg, state)


def _state(cfg: RunConfig, state: str | None) -> str:
    if state is None:
        return "c" if cfg.model.cell == "lstm" else "h"
    if state == "c" and cfg.model.cell != "lstm":
        raise RnnlensError(f"a {cfg.model.cell} model has no cell state c; use --state h")
    return state


def _as_values(t: torch.Tensor, state: str) -> np.ndarray:
    """A captured tensor as float32 numpy, with tanh applied to cell states (c is unbounded)."""
    return (torch.tanh(t) if state == "c" else t).float().cpu().numpy()


def parse_cell(spec: str, cfg: RunConfig) -> tuple[int, int]:
    """``"LAYER:INDEX"`` -> (layer, index), both checked against the model; ``layers.1`` is accepted too."""
    m = re.fullmatch(r"\s*(?:layers\.)?(\d+)(?:\.[ch])?\s*:\s*(\d+)\s*", spec)
    layers, hidden = cfg.model.layers, cfg.model.hidden
    if not m:
        raise RnnlensError(f"cannot read cell {spec!r}; write LAYER:INDEX with LAYER in 0..{layers - 1} "
                           f"and INDEX in 0..{hidden - 1}, e.g. {layers - 1}:0")
    layer, index = int(m.group(1)), int(m.group(2))
    if layer >= layers:
        raise RnnlensError(f"layer {layer} does not exist; this model has layers 0..{layers - 1}")
    if index >= hidden:
        raise RnnlensError(f"cell index {index} is out of range; layer {layer} has cells 0..{hidden - 1}")
    return layer, index


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
    ids = torch.from_numpy(cfg.vocab.encode(symbols))[None]  # (1, T); unseen characters raise here
    name = f"layers.{layer}.{state}"
    values, carry = [], None
    for j in range(0, ids.shape[1], cfg.split.seq_len):
        block = run_with_cache(model, ids[:, j:j + cfg.split.seq_len], carry, name)
        carry = block.state
        values.append(_as_values(block[name][0, :, index], state))
    vals = np.concatenate(values)
    title = f"{name}:{index} ({'tanh(c)' if state == 'c' else 'h'}) over {where}"
    outs = [Path(args.out)] if args.out else [Path(args.run) / "cells" / f"cell-{layer}-{index}.{e}" for e in ("html", "png")]
    for out in outs:
        if out.suffix.lower() == ".html":
            render_html(symbols, vals, cfg.vocab.unit, title, out, args.width)
        elif out.suffix.lower() == ".png":
            render_png(symbols, vals, cfg.vocab.unit, out, title, args.width)
        else:
            raise RnnlensError(f"--out {out} must end in .html or .png; pick one of the two")
    if args.json:
        emit_json({"cell": f"{name}:{index}", "chars": len(vals), "out": [str(o) for o in outs],
                   "mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max())})
    else:
        say(f"{name}:{index} over {len(vals):,} characters (mean {vals.mean():+.3f}, range {vals.min():+.3f}.."
            f"{vals.max():+.3f}) -> {', '.join(map(str, outs))}")
    return 0


def _source(args: argparse.Namespace, cfg: RunConfig) -> tuple[np.ndarray, Split, str]:
    """(all symbols of the source text, its split to stream, a label for titles) for --split / --text."""
    symbols, split, _ = load_source(args, cfg)
    label = Path(args.text).name if args.text else f"{cfg.source.label} {args.split}"
    return symbols, split, label


def _capture(model: CharRNN, split: Split, seq_len: int, names: list[str], state: str, max_chars: int,
             warmup: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Stream the split; return name -> (B, cols, H) values (after dropping ``warmup`` columns, where the
    state still starts from zero) and the (B, cols) text positions of those columns."""
    rows, total = split.x.shape
    warmup = min(warmup, total // 4)
    cols = min(total, warmup + math.ceil(max_chars / rows)) if max_chars > 0 else total
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for block in iter_capture(model, split, seq_len, names, cols * rows):
        for n in names:
            parts[n].append(_as_values(block[n], state))
    acts = {n: np.concatenate(p, axis=1)[:, warmup:cols] for n, p in parts.items()}
    return acts, split.positions()[:, warmup:cols]


def _find(args: argparse.Namespace, model: CharRNN, cfg: RunConfig, state: str) -> int:
    symbols, split, label = _source(args, cfg)
    names = [f"layers.{k}.{state}" for k in range(cfg.model.layers)]
    max_chars = 50_000 if args.max_chars is None else args.max_chars
    acts, pos = _capture(model, split, cfg.split.seq_len, names, state, max_chars, warmup=cfg.split.seq_len)
    full = compute_features(symbols, syntax=args.syntax)  # on the whole text, so every span has its context
    rows, cols = pos.shape
    values = {k: v[pos] for k, v in full.items()}  # (B, cols)
    flat = {n: a.reshape(rows * cols, -1) for n, a in acts.items()}  # row-major: row streams one after another
    report = discover(flat, values={k: v.reshape(-1) for k, v in values.items()},
                      config=DiscoveryConfig(top=args.top))
    out = Path(args.out) if args.out else Path(args.run) / "cells"
    snippet_chars = 600 if args.chars is None else max(args.chars, 1)
    snippets = []
    for f in report.features:
        if f.skipped:
            continue
        best = f.best[0]
        r, s = best_window(values[f.name], snippet_chars)
        span = slice(s, s + min(snippet_chars, cols))
        snippets.append(Snippet(f.name, f"{best.label}", symbols[pos[r, span]], acts[best.layer][r, span, best.index],
                                int(pos[r, s])))
    title = f"Interpretable cells of {Path(args.run).name} on {label} ({'tanh(c)' if state == 'c' else 'h'})"
    atomic_write_text(out / "report.html", report_page(report, snippets, cfg.vocab.unit, title, args.width))
    atomic_write_json(out / "report.json", {"run": str(Path(args.run).resolve()), "source": label, "state": state,
                                            **report.to_dict()})
    for sn in snippets:
        render_png(sn.symbols, sn.values, cfg.vocab.unit, out / f"{sn.feature}.png", f"{sn.feature}: {sn.cell}",
                   args.width)
    if args.json:
        emit_json({"out": str(out), **report.to_dict()})
    else:
        for line in report.format_lines():
            say(line)
        say(f"report: {out / 'report.html'} (+ report.json and one PNG per feature)")
    return 0


def _histogram(args: argparse.Namespace, model: CharRNN, cfg: RunConfig, state: str) -> int:
    _, split, label = _source(args, cfg)
    names = [f"layers.{k}.{state}" for k in range(cfg.model.layers)]
    max_chars = args.max_chars or 0
    chunks = ({n: _as_values(b[n], state) for n in names}
              for b in iter_capture(model, split, cfg.split.seq_len, names, max_chars))
    hist = histogram(chunks)
    out = Path(args.out) if args.out else Path(args.run) / "cells"
    what = "tanh(c)" if state == "c" else "h"
    plot_histogram(hist, out / "histogram.png", f"{what} over {label}")
    atomic_write_json(out / "histogram.json", {"state": what, "source": label, **hist.to_dict()})
    if args.json:
        emit_json({"out": str(out), "state": what, **hist.to_dict()})
    else:
        for n, (lo, hi) in hist.peaks().items():
            say(f"{n}: {int(hist.counts[n].sum()):,} values of {what}; fullest bins at {lo:+.2f} and {hi:+.2f}")
        say(f"-> {out / 'histogram.png'}, {out / 'histogram.json'}")
    return 0
