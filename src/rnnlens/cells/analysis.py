"""The cells analyses of a trained model as library calls: discovery with its report, one cell over a text,
and the histogram of tanh(c). ``rnnlens cells`` and the reproduction's cells stage are thin layers over these.

Inputs are a model (eval mode), its :class:`RunConfig`, the source text's symbols and the :class:`Split` to
stream (a split of the run's corpus, or a text cut into rows by ``stream_split``); each function returns
its results and the ``write_*`` functions put them in a folder (atomically, file by file).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..capture.core import counted_columns, iter_capture, run_with_cache
from ..data.splits import Split
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, atomic_write_text, record_path
from ..model import CharRNN
from ..run import RunConfig
from .discover import DiscoveryConfig, DiscoveryReport, discover
from .features import compute_features
from .viz import Histogram, Snippet, best_window, histogram, plot_histogram, render_html, render_png, report_page

FIND_CHARS = 50_000      # characters scored by default
SNIPPET_CHARS = 600      # characters per heatmap of the report


def cell_state(cfg: RunConfig, state: str | None = None) -> str:
    """The state cells are read from: ``"c"`` (shown as tanh(c)) for an LSTM by default, else ``"h"``."""
    if state is None:
        return "c" if cfg.model.cell == "lstm" else "h"
    if state not in ("c", "h"):
        raise RnnlensError(f"state must be c or h, got {state!r}", field="state")
    if state == "c" and cfg.model.cell != "lstm":
        raise RnnlensError(f"a {cfg.model.cell} model has no cell state c; use --state h")
    return state


def state_label(state: str) -> str:
    return "tanh(c)" if state == "c" else "h"


def as_values(t: torch.Tensor, state: str) -> np.ndarray:
    """A captured tensor as float32 numpy, with tanh applied to cell states (c is unbounded)."""
    return (torch.tanh(t) if state == "c" else t).float().cpu().numpy()


def parse_cell(spec: str, cfg: RunConfig) -> tuple[int, int]:
    """``"LAYER:INDEX"`` -> (layer, index), both checked against the model; ``layers.1`` is accepted too."""
    m = re.fullmatch(r"\s*(?:layers\.)?(\d+)(?:\.[ch])?\s*:\s*(\d+)\s*", spec)
    layers, hidden = cfg.model.layers, cfg.model.hidden
    if not m:
        raise RnnlensError(f"cannot read cell {spec!r}; write LAYER:INDEX with LAYER in 0..{layers - 1} "
                           f"and INDEX in 0..{hidden - 1}, e.g. {layers - 1}:0")
    return check_cell(int(m.group(1)), int(m.group(2)), cfg)


def check_cell(layer: int, index: int, cfg: RunConfig) -> tuple[int, int]:
    layers, hidden = cfg.model.layers, cfg.model.hidden
    if not 0 <= layer < layers:
        raise RnnlensError(f"layer {layer} does not exist; this model has layers 0..{layers - 1}")
    if not 0 <= index < hidden:
        raise RnnlensError(f"cell index {index} is out of range; layer {layer} has cells 0..{hidden - 1}")
    return layer, index


def cell_values(model: CharRNN, cfg: RunConfig, symbols: np.ndarray, layer: int, index: int,
                state: str) -> np.ndarray:
    """One cell's value (tanh(c) or h) after every character of ``symbols``, read as one stream: (N,)."""
    check_cell(layer, index, cfg)
    ids = torch.from_numpy(cfg.vocab.encode(symbols))[None]  # (1, T); unseen characters raise here
    name = f"layers.{layer}.{state}"
    values, carry = [], None
    for j in range(0, ids.shape[1], cfg.split.seq_len):
        block = run_with_cache(model, ids[:, j:j + cfg.split.seq_len], carry, name)
        carry = block.state
        values.append(as_values(block[name][0, :, index], state))
    return np.concatenate(values)


def write_cell(symbols: np.ndarray, values: np.ndarray, unit: str, title: str, outs: list[Path],
               width: int = 100) -> list[Path]:
    """Draw a cell's values over its text to each of ``outs`` (``.html`` or ``.png``)."""
    for out in outs:
        if out.suffix.lower() not in (".html", ".png"):
            raise RnnlensError(f"--out {out} must end in .html or .png; pick one of the two")
    for out in outs:
        if out.suffix.lower() == ".html":
            render_html(symbols, values, unit, title, out, width)
        else:
            render_png(symbols, values, unit, out, title, width)
    return outs


def capture_states(model: CharRNN, split: Split, seq_len: int, names: list[str], state: str, max_chars: int,
                   warmup: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Stream the split; return name -> (B, cols, H) values (after dropping ``warmup`` columns, where the
    state still starts from zero) and the (B, cols) text positions of those columns."""
    rows = split.x.shape[0]
    warmup, cols = counted_columns(split, max_chars, warmup)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for block in iter_capture(model, split, seq_len, names, cols * rows):
        for n in names:
            parts[n].append(as_values(block[n], state))
    acts = {n: np.concatenate(p, axis=1)[:, warmup:cols] for n, p in parts.items()}
    return acts, split.positions()[:, warmup:cols]


@dataclass
class CellFindings:
    """What :func:`find_cells` found: the ranking, one heatmap snippet per feature, and what it was run on."""

    report: DiscoveryReport
    snippets: list[Snippet]
    state: str
    label: str

    def to_dict(self) -> dict:
        return {"source": self.label, "state": self.state, **self.report.to_dict()}


def find_cells(model: CharRNN, cfg: RunConfig, symbols: np.ndarray, split: Split, label: str = "text",
               state: str | None = None, max_chars: int = FIND_CHARS, top: int = 5, syntax: str = "auto",
               snippet_chars: int = SNIPPET_CHARS) -> CellFindings:
    """Rank every cell by how well it tracks each text feature (:mod:`rnnlens.cells.discover`) over the first
    ``max_chars`` characters of ``split`` (0 = all), the first unroll block of each row left out."""
    state = cell_state(cfg, state)
    if max_chars < 0:
        raise RnnlensError(f"max_chars must be >= 0 (0 = all), got {max_chars}", field="max_chars")
    names = [f"layers.{k}.{state}" for k in range(cfg.model.layers)]
    acts, pos = capture_states(model, split, cfg.split.seq_len, names, state, max_chars, warmup=cfg.split.seq_len)
    full = compute_features(symbols, syntax=syntax)  # on the whole text, so every span has its context
    rows, cols = pos.shape
    values = {k: v[pos] for k, v in full.items()}  # (B, cols)
    flat = {n: a.reshape(rows * cols, -1) for n, a in acts.items()}  # row-major: row streams one after another
    report = discover(flat, values={k: v.reshape(-1) for k, v in values.items()}, config=DiscoveryConfig(top=top))
    snippet_chars = max(int(snippet_chars), 1)
    snippets = []
    for f in report.features:
        if f.skipped:
            continue
        best = f.best[0]
        r, s = best_window(values[f.name], snippet_chars)
        span = slice(s, s + min(snippet_chars, cols))
        snippets.append(Snippet(f.name, f"{best.label}", symbols[pos[r, span]], acts[best.layer][r, span, best.index],
                                int(pos[r, s])))
    return CellFindings(report, snippets, state, label)


def write_findings(findings: CellFindings, out: str | os.PathLike, unit: str, title: str, width: int = 100,
                   run: str | os.PathLike | None = None, images: bool = True) -> dict[str, str]:
    """``out/report.html``, ``out/report.json`` and (``images``) one PNG heatmap per feature; returns their paths.
    The HTML page shows the same heatmaps itself; the PNGs (about a second each) are for papers and slides."""
    out = Path(out)
    atomic_write_text(out / "report.html", report_page(findings.report, findings.snippets, unit, title, width))
    head = {"run": record_path(run)} if run is not None else {}
    atomic_write_json(out / "report.json", {**head, **findings.to_dict()})
    paths = {"html": str(out / "report.html"), "json": str(out / "report.json")}
    for sn in findings.snippets if images else ():
        render_png(sn.symbols, sn.values, unit, out / f"{sn.feature}.png", f"{sn.feature}: {sn.cell}", width)
        paths[sn.feature] = str(out / f"{sn.feature}.png")
    return paths


def cell_histogram(model: CharRNN, cfg: RunConfig, split: Split, state: str | None = None,
                   max_chars: int = 0) -> Histogram:
    """The distribution of tanh(c) (or h) per layer over a split (0 = all of it)."""
    state = cell_state(cfg, state)
    names = [f"layers.{k}.{state}" for k in range(cfg.model.layers)]
    chunks = ({n: as_values(b[n], state) for n in names}
              for b in iter_capture(model, split, cfg.split.seq_len, names, max_chars))
    return histogram(chunks)


def write_histogram(hist: Histogram, out: str | os.PathLike, state: str, label: str) -> dict[str, str]:
    """``out/histogram.png`` and ``out/histogram.json``; returns their paths."""
    out = Path(out)
    what = state_label(state)
    plot_histogram(hist, out / "histogram.png", f"{what} over {label}")
    atomic_write_json(out / "histogram.json", {"state": what, "source": label, **hist.to_dict()})
    return {"figure": str(out / "histogram.png"), "json": str(out / "histogram.json")}
