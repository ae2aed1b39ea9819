"""The explorer's data: a run's cached capture over one text, held in memory, answering the server's queries.

Positions: the explorer shows the source's row streams one after the other (row 0's columns, then row 1's,
...), so position ``p`` is column ``p % cols`` of row ``p // cols``; each row starts a new display line.
Display lines also break after every line feed and wrap at ``width`` characters.

Values: ``values[c, p]`` is cell ``c`` (``c = layer * H + index``) at position ``p``: tanh(c) for an
LSTM, h otherwise, float16 in one (C, N) array (C = layers x H), so one cell over any slice and a few
cells over the whole text are contiguous reads.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..cells.viz import glyphs
from ..exceptions import RnnlensError
from ..ngram.model import KneserNeyLM
from ..run import RunConfig
from ..data.splits import make_splits
from .cache import CacheFiles, build_or_open, stamp_for, state_values
from .categories import build_or_open_categories
from .search import SearchConfig, search


@dataclass(frozen=True)
class ExplorerConfig:
    """Display and limits."""

    width: int = 100        # display columns before a line wraps
    max_lines: int = 300    # lines per /api/lines request
    max_window: int = 5000  # positions per /api/states request (the hidden-state plot's window)
    top: int = 5            # next-character candidates shown
    find_chars: int = 50_000  # characters used to score cells against features when building the cache


def line_starts(x_flat: np.ndarray, newline_ids: np.ndarray, row_len: int, width: int) -> np.ndarray:
    """(lines,) start position of every display line: after each line feed, at each row start, wrapped at width."""
    n = len(x_flat)
    cuts = np.flatnonzero(np.isin(x_flat, newline_ids)) + 1
    seg = np.unique(np.concatenate([[0], cuts, np.arange(0, n, row_len)]))
    seg = seg[seg < n]
    lens = np.diff(np.concatenate([seg, [n]]))
    pieces = -(-lens // width)  # ceil
    first = np.repeat(seg, pieces)
    k = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    return first + k * width


class ExplorerData:
    """Everything the server answers from, loaded once."""

    def __init__(self, cfg: RunConfig, files: CacheFiles, label: str, config: ExplorerConfig = ExplorerConfig(),
                 ngram: KneserNeyLM | None = None, categories: tuple[np.ndarray, dict] | None = None,
                 model=None, split=None) -> None:
        self.cfg, self.label, self.config, self.ngram = cfg, label, config, ngram
        # the model and split, for ablations computed on demand (None: the toggle answers with an error)
        self.model, self.split = model, split
        self._ablations: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        # (N,) oracle family per character (-1: correct) and its summary, when started with oracles
        self.categories, self.cat_summary = categories if categories is not None else (None, None)
        cap = files.capture
        self.state = files.state
        self.rows, self.cols = cap.shape
        self.layers, self.hidden = cfg.model.layers, cfg.model.hidden
        self.x = np.asarray(cap.x).reshape(-1)  # (N,) ids in display order
        self.y = np.asarray(cap.y).reshape(-1)
        self.n = len(self.x)
        self.logits = cap["logits"]  # (B, cols, K) float16 memmap
        self.next_prob = np.asarray(cap["next_prob"], dtype=np.float32).reshape(-1)
        self.loss = np.asarray(cap["loss"], dtype=np.float32).reshape(-1)
        self.loss_here = self._shift(self.loss, np.nan)
        self.values = np.empty((self.layers * self.hidden, self.n), dtype=np.float16)  # (C, N)
        step = max(1, 2_000_000 // max(self.rows * self.hidden, 1))
        for k in range(self.layers):
            for j in range(0, self.cols, step):
                part = state_values(cap, k, self.state, slice(j, j + step))  # (B, n, H)
                block = self.values[k * self.hidden:(k + 1) * self.hidden].reshape(self.hidden, self.rows, self.cols)
                block[:, :, j:j + part.shape[1]] = part.transpose(2, 0, 1)
        syms = np.asarray(cfg.vocab.symbols)
        self.glyphs = [g for r in range(self.rows)
                       for g in glyphs(syms[self.x[r * self.cols:(r + 1) * self.cols]], cfg.vocab.unit)]
        self.vocab_glyphs = glyphs(syms, cfg.vocab.unit) if cfg.vocab.unit == "char" else [
            glyphs([s], "byte")[0] if s < 0x80 else f"\\x{s:02x}" for s in syms]
        newline_ids = np.flatnonzero(syms == 10)
        self.line_starts = line_starts(self.x, newline_ids, self.cols, config.width)
        self.cells = files.cells
        self.gates = files.gates
        self.cat_here = None if self.categories is None else self._shift(self.categories, -1)

    def _shift(self, a: np.ndarray, fill) -> np.ndarray:
        """(N,) per prediction (made after position p) -> (N,) per predicted character (position p + 1): the
        loss and error colours sit on the character that was predicted; a row's first column gets ``fill``
        (it was predicted outside the text)."""
        out = np.empty_like(a)
        out[1:] = a[:-1]
        out[::self.cols] = fill
        return out

    # ---- queries (arguments are validated by the server; these check ranges again) ----

    def info(self) -> dict[str, Any]:
        m = self.cfg.model
        return {"label": self.label, "source": self.cfg.source.label, "cell": m.cell, "layers": m.layers,
                "hidden": m.hidden, "state": "tanh(c)" if self.state == "c" else "h", "chars": self.n,
                "rows": self.rows, "cols": self.cols, "lines": int(len(self.line_starts)), "width": self.config.width,
                "max_lines": self.config.max_lines,
                "max_window": self.config.max_window, "threshold": SearchConfig().threshold,
                "ngram": None if self.ngram is None else self.ngram.n, "mean_loss": float(self.loss.mean()),
                "oracles": self.cat_summary}

    def check_cell(self, layer: int, index: int) -> int:
        if not 0 <= layer < self.layers or not 0 <= index < self.hidden:
            raise RnnlensError(f"no cell {layer}:{index}; layers 0..{self.layers - 1}, cells 0..{self.hidden - 1}")
        return layer * self.hidden + index

    def lines(self, first: int, count: int, color: str, cell: tuple[int, int] | None) -> dict[str, Any]:
        """Display lines ``first .. first+count-1``: their start positions, glyphs, and colour values
        (the cell's value; or, on each character, the loss of predicting it in nats, null where it was not
        predicted, or the oracle family index of that prediction, -1 if correct), rounded to 3 decimals."""
        total = len(self.line_starts)
        if not 0 <= first < total or not 1 <= count <= self.config.max_lines:
            raise RnnlensError(f"lines must be first in 0..{total - 1} and count in 1..{self.config.max_lines}")
        last = min(first + count, total)
        a = int(self.line_starts[first])
        b = int(self.line_starts[last]) if last < total else self.n
        if color == "loss":
            vals = self.loss_here[a:b]
        elif color == "ablation":
            if cell is None:
                raise RnnlensError("colour by ablation needs a cell: select one first")
            vals = self._shift(self.ablation(*cell)[0] - self.loss, np.nan)[a:b]
        elif color == "error":
            if self.cat_here is None:
                raise RnnlensError("no oracle categories: start the explorer with --oracles (a split of the run's corpus)")
            vals = self.cat_here[a:b].astype(np.float32)
        elif cell is not None:
            vals = self.values[self.check_cell(*cell), a:b].astype(np.float32)
        else:
            vals = np.zeros(b - a, dtype=np.float32)
        return {"first": first, "starts": [int(s) for s in self.line_starts[first:last]], "end": b,
                "glyphs": self.glyphs[a:b], "values": [None if v != v else v for v in np.round(vals, 3).tolist()]}

    def states(self, start: int, length: int, layer: int) -> dict[str, Any]:
        """Every cell of ``layer`` over positions ``start .. start+length-1`` (the hidden-state plot's window):
        ``values`` is the (H, length) float16 matrix as stored (tanh(c) or h), row-major little-endian bytes in
        base64, 2 bytes a value (a 308-cell layer over 400 positions: 246 KB of bytes, 329 KB as base64)."""
        self._check_pos(start)
        if not 1 <= length <= min(self.config.max_window, self.n - start):
            raise RnnlensError(f"a window must have 1..{self.config.max_window} positions inside the text "
                               f"0..{self.n - 1}; got {length} from {start}")
        if not 0 <= layer < self.layers:
            raise RnnlensError(f"no layer {layer}; layers 0..{self.layers - 1}")
        block = self.values[layer * self.hidden:(layer + 1) * self.hidden, start:start + length]  # (H, len)
        raw = np.ascontiguousarray(block, dtype="<f2").tobytes()
        return {"start": start, "len": length, "layer": layer, "cells": self.hidden,
                "state": "tanh(c)" if self.state == "c" else "h", "dtype": "float16",
                "values": base64.b64encode(raw).decode("ascii")}

    def plot_window(self, line: int, rows: int, max_len: int, end: int | None = None) -> tuple[int, int]:
        """(start, length) of the hidden-state plot's window as the page computes it: from the start of display
        line ``line`` to the start of line ``line + rows`` (or ``end``, the end of the lines the page holds, if
        sooner), at most ``max_len`` and ``config.max_window`` positions, at least one."""
        total = len(self.line_starts)
        if not 0 <= line < total or rows < 1 or max_len < 1:
            raise RnnlensError(f"a plot window needs a line in 0..{total - 1}, rows >= 1 and a length >= 1; got "
                               f"line {line}, rows {rows}, length {max_len}")
        a = int(self.line_starts[line])
        b = int(self.line_starts[line + rows]) if line + rows < total else self.n
        b = b if end is None else min(b, end)
        return a, max(1, min(b - a, max_len, self.config.max_window))

    def ablation(self, layer: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(loss (N,), logits (B, cols, K) float16) of the model with cell ``layer:index`` set to zero at every
        step (inside the recurrence, :mod:`rnnlens.capture.hooks`); computed once per cell, the last two kept."""
        from ..capture.hooks import iter_hooked, set_cell

        self.check_cell(layer, index)
        key = (layer, index)
        if key not in self._ablations:
            if self.model is None or self.split is None:
                raise RnnlensError("this explorer was opened without its model; ablation needs rnnlens serve RUN")
            name = f"layers.{layer}.{self.state}"
            loss, logits = [], []
            for block in iter_hooked(self.model, self.split, self.cfg.split.seq_len, {name: set_cell(index, 0.0)},
                                     ["logits", "loss"]):
                loss.append(block["loss"].float().cpu().numpy())
                logits.append(block["logits"].to(torch.float16).cpu().numpy())
            while len(self._ablations) >= 2:
                self._ablations.pop(next(iter(self._ablations)))
            self._ablations[key] = (np.concatenate(loss, axis=1).reshape(-1), np.concatenate(logits, axis=1))
        return self._ablations[key]

    def line_of(self, pos: int) -> int:
        return int(np.searchsorted(self.line_starts, pos, side="right") - 1)

    def predict(self, pos: int, ablate: tuple[int, int] | None = None) -> dict[str, Any]:
        """The model's top next-character candidates after position ``pos`` and the actual one's probability,
        beside the n-gram's when one is loaded; ``here``: how this character itself was predicted (its
        probability and, with oracles, its error category), None at the first column of a row. With
        ``ablate`` (a cell), ``ablated``: the same prediction with that cell zeroed at every step."""
        self._check_pos(pos)
        r, j = divmod(pos, self.cols)
        logits = np.asarray(self.logits[r, j], dtype=np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        actual = int(self.y[pos])
        out = {"pos": pos, "char": self.glyphs[pos], "actual": self.vocab_glyphs[actual],
               "prob": float(self.next_prob[pos]), "loss": float(self.loss[pos]), "top": self._top(p), "ngram": None,
               "here": None}
        if pos % self.cols:  # this character was predicted after the previous one: how well, which error
            here = {"prob": float(self.next_prob[pos - 1]), "category": None}
            if self.categories is not None:
                c = int(self.categories[pos - 1])
                here["category"] = "correct" if c < 0 else self.cat_summary["families"][c]
            out["here"] = here
        if self.ngram is not None:
            ctx = self.x[max(r * self.cols, pos - self.ngram.n + 1):pos + 1][None]  # its row only: (1, <= n)
            q = self.ngram.next_distributions(ctx)[0]
            out["ngram"] = {"prob": float(q[actual]), "top": self._top(q)}
        if ablate is not None:
            loss, logits_ab = self.ablation(*ablate)
            la = np.asarray(logits_ab[r, j], dtype=np.float64)
            q = np.exp(la - la.max())
            q /= q.sum()
            out["ablated"] = {"cell": f"{ablate[0]}:{ablate[1]}", "prob": float(q[actual]), "loss": float(loss[pos]),
                              "top": self._top(q)}
        return out

    def _top(self, p: np.ndarray) -> list[dict[str, Any]]:
        k = min(self.config.top, len(p))
        idx = np.argsort(-p, kind="stable")[:k]
        return [{"char": self.vocab_glyphs[i], "prob": round(float(p[i]), 4)} for i in idx]

    def _check_pos(self, pos: int) -> None:
        if not 0 <= pos < self.n:
            raise RnnlensError(f"position {pos} is outside the text 0..{self.n - 1}")

    def search(self, start: int, end: int, config: SearchConfig) -> dict[str, Any]:
        """LSTMVis pattern search over the span ``[start, end]`` (see :mod:`.search`)."""
        self._check_pos(start)
        self._check_pos(end)
        if end < start or end - start >= 1000:
            raise RnnlensError("a span must have start <= end and at most 1000 characters")
        res = search(self.values, start, end, config, self.cols)
        cells = [{"layer": int(c // self.hidden), "index": int(c % self.hidden)} for c in res.cells]
        matches = [{"start": m.start, "end": m.end, "score": round(m.score, 4), "sharp": round(m.sharp, 4),
                    "line": self.line_of(m.start), "text": "".join(self.glyphs[max(m.start - 20, 0):m.end + 21]),
                    "offset": m.start - max(m.start - 20, 0), "query": m.start <= end and m.end >= start}
                   for m in res.matches]
        return {"start": start, "end": end, "threshold": config.threshold, "cells": cells, "count": res.count,
                "matches": matches}


def load_explorer(model, cfg: RunConfig, split, symbols: np.ndarray, label: str, run_dir: str | os.PathLike,
                  weights: str = "best", cache_dir: str | os.PathLike | None = None,
                  config: ExplorerConfig = ExplorerConfig(), ngram_path: str | os.PathLike | None = None,
                  oracles: bool = False, say: Callable[[str], None] = lambda _m: None) -> ExplorerData:
    """Open (or build) the cache for ``split`` under ``cache_dir`` (default ``RUN/explorer-<label>``) and load it.
    With ``oracles``, also each character's oracle error category (``split`` must be the run's split ``label``)."""
    folder = Path(cache_dir) if cache_dir else Path(run_dir) / f"explorer-{label}"
    stamp = stamp_for(run_dir, weights, split)
    files = build_or_open(model, cfg, split, symbols, folder, stamp, config.find_chars)
    categories = None
    if oracles:
        why = ("oracle categories need a split of the run's own corpus (they use its train split); "
               "leave out --text or --oracles")
        if label not in ("train", "val", "test"):
            raise RnnlensError(why)
        ids = cfg.vocab.encode(symbols)
        splits = make_splits(ids, cfg.split)
        if not np.array_equal(splits[label].x, split.x):
            raise RnnlensError(why)
        categories = build_or_open_categories(model, cfg, splits, label, ids, folder, stamp, say=say)
    ngram = None
    if ngram_path:
        ngram = KneserNeyLM.load(ngram_path)
        if ngram.vocab_size != cfg.model.vocab_size or (
                ngram.symbols is not None and tuple(ngram.symbols) != tuple(cfg.vocab.symbols)):
            raise RnnlensError(f"the n-gram model's vocabulary ({ngram.vocab_size} symbols) is not the run's "
                               f"({cfg.model.vocab_size}); train it on the run's corpus with the same units")
    return ExplorerData(cfg, files, label, config, ngram, categories, model=model, split=split)
