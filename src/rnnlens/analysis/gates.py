"""Gate saturation, the paper's Figure 3: how often each gate unit is nearly closed or nearly open.

A gate activation is *left-saturated* when below ``left`` (0.1) and *right-saturated* when above ``right``
(0.9). For every unit of every sigmoid gate (LSTM forget/input/output, GRU reset/update) we count, over all
time steps of a split, how often it is in each regime. Counting streams over capture blocks, so memory does
not grow with the text. GRU ``update_gate`` is PyTorch's z (the share of the *old* state kept,
``h = (1 - z) * n + z * h_prev``); the paper's z is ``1 - update_gate``, so its left and right swap.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..capture.core import GATES, CaptureBlock, gate_names, iter_capture
from ..exceptions import RnnlensError
from ..fsutil import atomic_write, atomic_write_json, atomic_write_text
from ..model import CharRNN
from ..data.splits import Split

FORMAT = "rnnlens-gates-v1"


@dataclass(frozen=True)
class SaturationConfig:
    """Thresholds: activation < left is left-saturated, > right is right-saturated; a unit counts as
    *mostly* left/right-saturated in the summary when it is so for more than ``mostly`` of the steps."""

    left: float = 0.1
    right: float = 0.9
    mostly: float = 0.9

    def __post_init__(self) -> None:
        for name in ("left", "right", "mostly"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
                raise RnnlensError(f"--{name} must be a number in [0, 1], got {v!r}; e.g. --left 0.1 --right 0.9")
        if self.left > self.right:
            raise RnnlensError(f"--left ({self.left}) must not exceed --right ({self.right}); e.g. --left 0.1 --right 0.9")

    def to_dict(self) -> dict:
        return {"left": self.left, "right": self.right, "mostly": self.mostly}


@dataclass
class GateSaturation:
    """One gate of one layer: per-unit counts of saturated steps out of ``steps``."""

    name: str            # dotted capture name, e.g. layers.1.forget_gate
    layer: int
    gate: str            # forget_gate, input_gate, output_gate, reset_gate, update_gate
    left_count: np.ndarray   # (H,) int64
    right_count: np.ndarray  # (H,) int64
    steps: int

    @property
    def left(self) -> np.ndarray:
        """(H,) fraction of steps left-saturated."""
        return self.left_count / self.steps

    @property
    def right(self) -> np.ndarray:
        """(H,) fraction of steps right-saturated."""
        return self.right_count / self.steps

    def summary(self, mostly: float) -> dict:
        left, right = self.left, self.right
        return {"name": self.name, "layer": self.layer, "gate": self.gate, "units": int(left.size),
                "mean_left": float(left.mean()), "mean_right": float(right.mean()),
                "mostly_left": int((left > mostly).sum()), "mostly_right": int((right > mostly).sum()),
                "max_left": float(left.max()), "max_right": float(right.max())}


@dataclass
class SaturationResult:
    cell: str
    layers: int
    config: SaturationConfig
    steps: int
    gates: list[GateSaturation]

    def summary(self) -> list[dict]:
        """One row per layer and gate type (means, counts of mostly-saturated units, maxima)."""
        return [g.summary(self.config.mostly) for g in self.gates]

    def to_dict(self) -> dict:
        """Everything, per unit: the JSON table."""
        return {"format": FORMAT, "cell": self.cell, "layers": self.layers, "steps": self.steps,
                "thresholds": self.config.to_dict(), "summary": self.summary(),
                "gates": {g.name: {"left": g.left.tolist(), "right": g.right.tolist(),
                                   "left_count": g.left_count.tolist(), "right_count": g.right_count.tolist()}
                          for g in self.gates}}

    def to_csv(self) -> str:
        """One line per gate unit."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "gate", "unit", "left_fraction", "right_fraction", "left_count", "right_count", "steps"])
        for g in self.gates:
            for u in range(g.left_count.size):
                w.writerow([g.layer, g.gate, u, f"{g.left[u]:.6f}", f"{g.right[u]:.6f}",
                            int(g.left_count[u]), int(g.right_count[u]), g.steps])
        return buf.getvalue()


class SaturationCounter:
    """Streaming per-unit counts of saturated steps; feed it capture blocks holding the gate names."""

    def __init__(self, names: list[str], config: SaturationConfig) -> None:
        self.names = names
        self.config = config
        self.left: dict[str, torch.Tensor] = {}
        self.right: dict[str, torch.Tensor] = {}
        self.steps = 0

    def update(self, block: CaptureBlock) -> None:
        for n in self.names:
            a = block[n]  # (B, T, H), maybe a strided view of a (B, T, G*H) buffer
            a = a.reshape(-1, a.shape[-1])  # (B*T, H)
            lc = (a < self.config.left).sum(dim=0)
            rc = (a > self.config.right).sum(dim=0)
            self.left[n] = self.left[n] + lc if n in self.left else lc
            self.right[n] = self.right[n] + rc if n in self.right else rc
        self.steps += block.x.numel()

    def result(self, cell: str, layers: int) -> SaturationResult:
        if self.steps == 0:
            raise RnnlensError("no time steps were counted; pass a non-empty split or text")
        gates = []
        for n in self.names:
            _, layer, gate = n.split(".")
            gates.append(GateSaturation(n, int(layer), gate, self.left[n].cpu().numpy().astype(np.int64),
                                        self.right[n].cpu().numpy().astype(np.int64), self.steps))
        return SaturationResult(cell, layers, self.config, self.steps, gates)


def gate_saturation(model: CharRNN, split: Split, seq_len: int, config: SaturationConfig | None = None,
                    max_chars: int = 0) -> SaturationResult:
    """Per-unit saturation fractions of every gate over a split, streamed in unroll blocks."""
    config = config or SaturationConfig()
    cfg = model.config
    names = gate_names(cfg)
    if not names:
        raise RnnlensError(f"a vanilla {cfg.cell} has no gates; gate saturation needs an lstm or gru run")
    counter = SaturationCounter(names, config)
    for block in iter_capture(model, split, seq_len, names, max_chars):
        counter.update(block)
    return counter.result(cfg.cell, cfg.layers)


_LABELS = {"forget_gate": "forget gate", "input_gate": "input gate", "output_gate": "output gate",
           "reset_gate": "reset gate", "update_gate": "update gate z (PyTorch; paper: 1-z)"}


def plot_saturation(result: SaturationResult, path: str | os.PathLike, title: str = "") -> Path:
    """The paper's Figure 3 layout: one scatter per layer (rows) and gate type (columns), x = fraction of
    steps left-saturated, y = fraction right-saturated, with the line x + y = 1 (always saturated) as guide."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kinds = GATES[result.cell]
    fig = Figure(figsize=(3.0 * len(kinds), 2.9 * result.layers + 0.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(result.layers, len(kinds), squeeze=False)
    by_name = {g.name: g for g in result.gates}
    for layer in range(result.layers):
        for col, kind in enumerate(kinds):
            ax = axes[layer][col]
            g = by_name[f"layers.{layer}.{kind}"]
            ax.plot([0, 1], [1, 0], color="0.6", linestyle="--", linewidth=0.8)
            ax.scatter(g.left, g.right, s=12, alpha=0.6, color=f"C{col}", edgecolors="none")
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.set_aspect("equal")
            ax.set_title(f"layers.{layer}: {_LABELS[kind]}", fontsize=8)
            if layer == result.layers - 1:
                ax.set_xlabel(f"fraction left-saturated (< {result.config.left:g})", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"fraction right-saturated (> {result.config.right:g})", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title or f"gate saturation, {result.layers}-layer {result.cell.upper()}, {result.steps:,} steps",
                 fontsize=10)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def write_saturation(result: SaturationResult, out_dir: str | os.PathLike, title: str = "") -> dict[str, str]:
    """saturation.json (full table and summary), saturation.csv (one line per unit), saturation.png."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RnnlensError(f"{out} exists and is not a directory; choose another --out")
    paths = {"json": out / "saturation.json", "csv": out / "saturation.csv", "figure": out / "saturation.png"}
    atomic_write_json(paths["json"], result.to_dict())
    atomic_write_text(paths["csv"], result.to_csv())
    plot_saturation(result, paths["figure"], title)
    return {k: str(v) for k, v in paths.items()}
