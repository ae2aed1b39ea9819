"""Ablate a cell and measure what changes: the loss, per text region, per predicted character, over the text.

:func:`ablate` sets one cell (LSTM ``c``, GRU/RNN ``h`` by default: the state ``rnnlens cells`` reads) to a
value at every step, inside the recurrence (:mod:`rnnlens.capture.hooks`), and streams a split with the
state carried as in evaluation. The clean and the ablated model run side by side in one batch (rows 0..B-1
clean, B..2B-1 ablated), so both see exactly the same characters. Value rules: ``"zero"``, ``"mean"`` (the
cell's mean over the same characters, from a clean pass), or a number.

Like ``cells --find``, the first unroll of every row (``warmup`` columns, where the state still starts from
zero) is run but not counted. Per position the result keeps ``delta = ablated loss - clean loss`` (nats; > 0: the ablation hurts). A
position is the state after reading character t predicting t + 1, so regions use the text features of
:mod:`rnnlens.cells.features` at t (binary: inside / outside; graded: quartile bins), and characters are
the predicted ones (t + 1).

:func:`rank_cells` ablates every cell of the chosen layers in turn over a shorter stretch (a causal census),
many cells per pass: row block k of a batch ablates cell k.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..capture.core import counted_columns, iter_capture
from ..capture.hooks import run_with_hooks, set_cell
from ..cells.analysis import cell_state, check_cell
from ..cells.features import FEATURES, compute_features
from ..cells.viz import render_html, render_png
from ..data.splits import Split
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, record_path
from ..model import CharRNN
from ..run import RunConfig

Progress = Callable[[int, int], None]


@dataclass
class AblationConfig:
    """Which cell, set to what, over how much text."""

    layer: int
    index: int
    value: str | float = "zero"      # "zero", "mean" or a number
    state: str | None = None         # "c" (LSTM default) or "h"
    max_chars: int = 100_000         # 0 = the whole split
    warmup: int | None = None        # columns run but not counted (default: one unroll, as cells --find)
    syntax: str = "auto"
    top_chars: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.value, str) and self.value not in ("zero", "mean"):
            try:
                self.value = float(self.value)
            except ValueError:
                raise RnnlensError(f"value must be zero, mean or a number, got {self.value!r}", field="value") from None
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 0:
            raise RnnlensError(f"max_chars must be an integer >= 0 (0 = all), got {self.max_chars!r}", field="max_chars")


@dataclass
class Ablation:
    """What one ablation did. ``delta`` and ``positions`` are (B, cols): loss change and text offset."""

    cell: str
    value_rule: str
    value: float
    loss_nats: float
    ablated_loss_nats: float
    delta: np.ndarray
    positions: np.ndarray
    regions: list[dict] = field(default_factory=list)
    characters: list[dict] = field(default_factory=list)

    @property
    def chars(self) -> int:
        return int(self.delta.size)

    def to_dict(self) -> dict:
        return {"cell": self.cell, "value_rule": self.value_rule, "value": self.value, "chars": self.chars,
                "loss_nats": self.loss_nats, "ablated_loss_nats": self.ablated_loss_nats,
                "delta_nats": self.ablated_loss_nats - self.loss_nats,
                "regions": self.regions, "characters": self.characters}


def _cell_means(model: CharRNN, split: Split, seq_len: int, names: list[str], cols: tuple[int, int]
                ) -> dict[str, torch.Tensor]:
    """Mean of every cell of ``names`` over the counted columns of the split (clean): name -> (H,)."""
    sums: dict[str, torch.Tensor] = {}
    n = 0
    for block in iter_capture(model, split, seq_len, names, cols[1] * split.x.shape[0]):
        skip = max(0, cols[0] - block.start)
        for name in names:
            v = block[name][:, skip:].double().sum(dim=(0, 1))
            sums[name] = sums[name] + v if name in sums else v
        n += block.x[:, skip:].numel()
    return {k: (v / n).float() for k, v in sums.items()}


def _paired_losses(model: CharRNN, split: Split, seq_len: int, name: str, index: torch.Tensor,
                   values: torch.Tensor, cols: tuple[int, int], progress: Progress | None = None) -> np.ndarray:
    """Stream the split with the rows repeated 1 + len(index) times: copy 0 clean, copy k with cell
    ``index[k-1]`` of ``name`` set to ``values[k-1]`` (from column 0, warmup included). Returns the losses
    of the counted columns (1 + n, B, end - warmup)."""
    warmup, cols = cols
    rows = split.x.shape[0]
    n = len(index)
    per_row_index = index.repeat_interleave(rows)     # (n * B,)
    per_row_value = values.repeat_interleave(rows)
    hook = set_cell(per_row_index, per_row_value, rows=slice(rows, None))
    x_all = torch.from_numpy(np.ascontiguousarray(split.x[:, :cols]))
    y_all = torch.from_numpy(np.ascontiguousarray(split.y[:, :cols]))
    out, state = [], None
    for j in range(0, cols, seq_len):
        xb, yb = x_all[:, j:j + seq_len].repeat(n + 1, 1), y_all[:, j:j + seq_len].repeat(n + 1, 1)
        block = run_with_hooks(model, xb, {name: hook}, state, ["loss"], yb, j)
        state = block.state
        out.append(block["loss"].float().cpu().numpy().reshape(n + 1, rows, -1))
        if progress is not None:
            progress(min(j + seq_len, cols), cols)
    return np.concatenate(out, axis=2)[:, :, warmup:]


def _value(rule: str | float, mean: float) -> tuple[str, float]:
    if rule == "zero":
        return "zero", 0.0
    if rule == "mean":
        return "mean", mean
    return "number", float(rule)


def _regions(symbols: np.ndarray, pos: np.ndarray, clean: np.ndarray, abl: np.ndarray, syntax: str) -> list[dict]:
    feats = compute_features(symbols, syntax=syntax)
    out = []
    for name, full in feats.items():
        v = full[pos]
        if FEATURES[name].kind == "binary":
            groups = [("inside", v > 0.5), ("outside", v <= 0.5)]
        else:
            edges = np.unique(np.quantile(v, [0.25, 0.5, 0.75]))
            bins = np.digitize(v, edges, right=True)
            bounds = [float(v.min()), *edges.tolist(), float(v.max())]
            groups = [(f"{bounds[k]:g}..{bounds[k + 1]:g}", bins == k) for k in range(len(edges) + 1)]
        groups = [(label, m) for label, m in groups if m.any()]
        if len(groups) < 2:
            continue  # the feature does not vary over this text (e.g. comments in prose)
        for label, m in groups:
            out.append({"feature": name, "region": label, "chars": int(m.sum()), "loss_nats": float(clean[m].mean()),
                        "ablated_loss_nats": float(abl[m].mean()), "delta_nats": float((abl[m] - clean[m]).mean())})
    return out


def _characters(symbols: np.ndarray, pos: np.ndarray, clean: np.ndarray, abl: np.ndarray, top: int,
                unit: str) -> list[dict]:
    """The predicted characters whose loss moved most in total (count x mean change), largest |total| first."""
    target = symbols[pos + 1].reshape(-1)
    d, c = (abl - clean).reshape(-1), clean.reshape(-1)
    chars, inv, counts = np.unique(target, return_inverse=True, return_counts=True)
    total = np.bincount(inv, weights=d, minlength=len(chars))
    base = np.bincount(inv, weights=c, minlength=len(chars))
    order = np.argsort(-np.abs(total))[:top]
    label = (lambda s: bytes([int(s)]).decode("latin-1")) if unit == "byte" else (lambda s: chr(int(s)))
    return [{"char": label(chars[k]), "count": int(counts[k]), "loss_nats": float(base[k] / counts[k]),
             "ablated_loss_nats": float((base[k] + total[k]) / counts[k]), "delta_nats": float(total[k] / counts[k]),
             "share_of_change": float(total[k] / d.sum()) if d.sum() else 0.0} for k in order]


def ablate(model: CharRNN, cfg: RunConfig, symbols: np.ndarray, split: Split, config: AblationConfig,
           progress: Progress | None = None) -> Ablation:
    """Ablate ``config``'s cell over the first ``max_chars`` predictions of ``split`` (``symbols``: the
    whole source text the split positions point into) and compare with the clean model."""
    state = cell_state(cfg, config.state)
    layer, index = check_cell(config.layer, config.index, cfg)
    name = f"layers.{layer}.{state}"
    cols = counted_columns(split, config.max_chars, cfg.split.seq_len if config.warmup is None else config.warmup)
    mean = float(_cell_means(model, split, cfg.split.seq_len, [name], cols)[name][index]) if config.value == "mean" else 0.0
    rule, value = _value(config.value, mean)
    losses = _paired_losses(model, split, cfg.split.seq_len, name, torch.tensor([index]), torch.tensor([value]),
                            cols, progress)
    clean, abl = losses[0], losses[1]
    pos = split.positions()[:, cols[0]:cols[1]]
    return Ablation(f"{name}:{index}", rule, value, float(clean.mean()), float(abl.mean()), abl - clean, pos,
                    _regions(symbols, pos, clean, abl, config.syntax),
                    _characters(symbols, pos, clean, abl, config.top_chars, cfg.vocab.unit))


def rank_cells(model: CharRNN, cfg: RunConfig, split: Split, layers: list[int] | None = None, state: str | None = None,
               value: str | float = "zero", max_chars: int = 10_000, chunk: int = 32,
               progress: Progress | None = None, warmup: int | None = None) -> list[dict]:
    """Ablate every cell of ``layers`` (default: all) in turn over the first ``max_chars`` predictions; the
    cells sorted by the loss increase (largest first): ``{"cell", "layer", "index", "value", "delta_nats"}``.
    ``progress(done, total)`` counts cells."""
    state = cell_state(cfg, state)
    AblationConfig(0, 0, value, state, max_chars)  # validate the value rule and max_chars
    layers = list(range(cfg.model.layers)) if layers is None else [check_cell(k, 0, cfg)[0] for k in layers]
    if not isinstance(chunk, int) or chunk < 1:
        raise RnnlensError(f"chunk must be a positive integer, got {chunk!r}", field="chunk")
    cols = counted_columns(split, max_chars, cfg.split.seq_len if warmup is None else warmup)
    H = cfg.model.hidden
    names = [f"layers.{k}.{state}" for k in layers]
    means = _cell_means(model, split, cfg.split.seq_len, names, cols) if value == "mean" else {}
    rows, total, done = [], len(layers) * H, 0
    for layer, name in zip(layers, names):
        for s in range(0, H, chunk):
            idx = torch.arange(s, min(s + chunk, H))
            vals = means[name][idx] if value == "mean" else torch.full((len(idx),), _value(value, 0.0)[1])
            losses = _paired_losses(model, split, cfg.split.seq_len, name, idx, vals, cols)
            base = float(losses[0].mean())
            for k, i in enumerate(idx.tolist()):
                rows.append({"cell": f"{name}:{i}", "layer": layer, "index": i, "value": float(vals[k]),
                             "loss_nats": base, "ablated_loss_nats": float(losses[k + 1].mean()),
                             "delta_nats": float(losses[k + 1].mean()) - base})
            done += len(idx)
            if progress is not None:
                progress(done, total)
    return sorted(rows, key=lambda r: -r["delta_nats"])


def write_ablation(result: Ablation, symbols: np.ndarray, unit: str, out: str | os.PathLike, title: str,
                   window: int = 1200, run: str | os.PathLike | None = None) -> dict[str, str]:
    """``out/ablation.json`` and a heatmap of the loss change (``ablation.html``, ``ablation.png``) over the
    ``window`` characters of one row where the ablation moved the loss most (blue: the ablation hurts)."""
    out = Path(out)
    rows, cols = result.delta.shape
    w = min(window, cols)
    csum = np.concatenate([np.zeros((rows, 1)), np.cumsum(np.abs(result.delta), axis=1)], axis=1)
    win = csum[:, w:] - csum[:, :cols - w + 1]
    r, s = np.unravel_index(int(np.argmax(win)), win.shape)
    d = result.delta[r, s:s + w]
    scale = float(np.abs(d).max()) or 1.0
    shown = symbols[result.positions[r, s:s + w] + 1]  # the predicted characters
    head = f"{title}: loss change under the ablation, per predicted character (+-{scale:.2f} nats at full colour)"
    render_html(shown, d / scale, unit, head, out / "ablation.html")
    render_png(shown, d / scale, unit, out / "ablation.png", head)
    head_json = {"run": record_path(run)} if run is not None else {}
    atomic_write_json(out / "ablation.json", {**head_json, **result.to_dict(),
                                              "heatmap": {"row": int(r), "offset": int(result.positions[r, s] + 1),
                                                          "chars": int(w), "scale_nats": scale}})
    return {"json": str(out / "ablation.json"), "html": str(out / "ablation.html"), "png": str(out / "ablation.png")}
