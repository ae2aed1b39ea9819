"""The explorer's precomputed cache: one capture of the whole source text plus small JSON summaries.

Folder (default ``RUN/explorer-<split or text-NAME>``):

* a capture directory (:func:`rnnlens.capture.store.capture_to_dir`, float16) of every layer's state
  (``layers.L.c`` for an LSTM, shown as tanh(c); ``layers.L.h`` otherwise), ``logits``, ``next_prob`` and ``loss``;
* ``gates.json``: per layer and gate type, every unit's left/right saturated fractions (Figure 3);
* ``cells.json``: every cell's best-tracked text feature and its score (:func:`rnnlens.cells.discover.discover`);
* ``explorer.json`` (written last): what the cache was built from (weights file size and time, a hash of the
  text ids); a mismatch or a missing file rebuilds everything.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..capture.store import Capture, capture_to_dir, open_capture
from ..cells.discover import DiscoveryConfig, discover
from ..exceptions import RnnlensError
from ..cells.features import compute_features
from ..fsutil import atomic_write_json, read_json
from ..analysis.gates import gate_saturation
from ..model import CharRNN
from ..run import RunConfig
from ..data.splits import Split

STAMP = "explorer.json"
VERSION = 1


@dataclass
class CacheFiles:
    """What :func:`build_or_open` returns: the capture, the gates and cell summaries, and the state name."""

    capture: Capture
    gates: list[dict[str, Any]]   # {"layer", "gate", "left": [...], "right": [...]} per gate type
    cells: list[dict[str, Any]]   # {"layer", "index", "feature", "score", "sign", "metric"} per cell
    state: str                    # "c" (values are tanh(c)) or "h"


def state_name(cfg: RunConfig) -> str:
    return "c" if cfg.model.cell == "lstm" else "h"


def stamp_for(run_dir: str | os.PathLike, weights: str, split: Split) -> dict[str, Any]:
    """What identifies a cache: the weights file and the exact ids of the text."""
    wfile = Path(run_dir) / ("best.safetensors" if weights == "best" else "state.safetensors")
    st = wfile.stat()
    digest = hashlib.sha256(np.ascontiguousarray(split.x).tobytes()).hexdigest()
    return {"version": VERSION, "weights": wfile.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "split": split.name, "shape": list(split.x.shape), "ids_sha256": digest}


def build_or_open(model: CharRNN, cfg: RunConfig, split: Split, symbols: np.ndarray, folder: str | os.PathLike,
                  stamp: dict[str, Any], find_chars: int = 50_000) -> CacheFiles:
    """Open the cache in ``folder`` when it matches ``stamp``, else (re)build it (one capture pass, one gate
    pass, discovery on up to ``find_chars`` characters)."""
    out = Path(folder)
    state = state_name(cfg)
    try:
        if read_json(out / STAMP) == stamp:
            return CacheFiles(open_capture(out), read_json(out / "gates.json"), read_json(out / "cells.json"), state)
    except (OSError, ValueError, RnnlensError):
        pass
    (out / STAMP).unlink(missing_ok=True)
    names = [f"layers.{k}.{state}" for k in range(cfg.model.layers)] + ["logits", "next_prob", "loss"]
    cap = capture_to_dir(model, split, cfg.split.seq_len, out, names, dtype="float16", info={"explorer": stamp})
    gates = _gates(model, cfg, split)
    cells = _cells(cap, cfg, symbols, state, find_chars)
    atomic_write_json(out / "gates.json", gates)
    atomic_write_json(out / "cells.json", cells)
    atomic_write_json(out / STAMP, stamp)
    return CacheFiles(cap, gates, cells, state)


def _gates(model: CharRNN, cfg: RunConfig, split: Split) -> list[dict[str, Any]]:
    if cfg.model.cell not in ("lstm", "gru"):
        return []
    res = gate_saturation(model, split, cfg.split.seq_len)
    return [{"layer": g.layer, "gate": g.gate, "left": [round(float(v), 5) for v in g.left],
             "right": [round(float(v), 5) for v in g.right]} for g in res.gates]


def state_values(cap: Capture, layer: int, state: str, cols: slice = slice(None)) -> np.ndarray:
    """(B, n, H) float32 values of a layer over some columns: tanh(c) or h."""
    a = np.asarray(cap[f"layers.{layer}.{state}"][:, cols], dtype=np.float32)
    return np.tanh(a) if state == "c" else a


def _cells(cap: Capture, cfg: RunConfig, symbols: np.ndarray, state: str, find_chars: int) -> list[dict[str, Any]]:
    """Each cell's best feature over a sample of the text (after one unroll of warm-up), as in ``cells --find``."""
    rows, total = cap.shape
    warm = min(cfg.split.seq_len, total // 4)
    cols = slice(warm, min(total, warm + math.ceil(find_chars / rows)))
    pos = cap.positions()[:, cols].reshape(-1)
    values = {k: v[pos] for k, v in compute_features(symbols).items()}
    acts = {f"layers.{k}.{state}": state_values(cap, k, state, cols).reshape(len(pos), -1)
            for k in range(cfg.model.layers)}
    n_cells = cfg.model.layers * cfg.model.hidden
    report = discover(acts, values=values, config=DiscoveryConfig(top=n_cells))
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for f in report.features:
        for c in f.best:
            key = (int(c.layer.split(".")[1]), c.index)
            if key not in best or c.score > best[key]["score"]:
                best[key] = {"feature": f.name, "score": round(c.score, 4), "sign": c.sign, "metric": f.metric}
    empty = {"feature": None, "score": 0.0, "sign": 0, "metric": None}
    return [{"layer": k, "index": i, **best.get((k, i), empty)}
            for k in range(cfg.model.layers) for i in range(cfg.model.hidden)]
