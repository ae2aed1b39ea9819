"""Training curves: the training and validation loss of one or more runs, read from their metrics.jsonl;
``plot_curves`` draws runs in one panel, ``plot_curve_grid`` one panel per cell type (the reproduce report).

Each line of a run's metrics.jsonl is one validation: ``step``, ``epoch``, ``train_loss`` (the mean training
loss since the previous line), ``val_loss``, ``lr``, ``elapsed_s`` (nats/char; see rnnlens.train). A run
that is still training is read as far as it has written (a partial last line is ignored). The x axis is
updates, epochs, characters trained on (updates x batch x unroll) or seconds of training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..exceptions import RnnlensError
from ..fsutil import atomic_write, read_json
from ..model import param_count
from ..run import CONFIG, METRICS, SUMMARY, load_config

X_AXES = ("updates", "epochs", "chars", "seconds")
_X_LABEL = {"updates": "updates", "epochs": "epochs", "chars": "characters trained on", "seconds": "seconds of training"}


@dataclass
class Curve:
    """One run's curve: per validation, x values of every axis, the losses and the learning rate."""

    run: str
    label: str
    updates: np.ndarray
    epochs: np.ndarray
    chars: np.ndarray
    seconds: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    lr: np.ndarray
    status: str = "running or interrupted"
    test_loss: float | None = None
    extra: dict = field(default_factory=dict)

    def x(self, axis: str) -> np.ndarray:
        if axis not in X_AXES:
            raise RnnlensError(f"x must be one of {', '.join(X_AXES)}, got {axis!r}", field="x")
        return getattr(self, axis)

    @property
    def best(self) -> int:
        """Index of the lowest validation loss."""
        return int(np.nanargmin(self.val_loss))

    def to_dict(self) -> dict:
        b = self.best
        return {"run": self.run, "label": self.label, "status": self.status, "test_loss": self.test_loss,
                "best": {"update": int(self.updates[b]), "epoch": float(self.epochs[b]), "val_loss": float(self.val_loss[b])},
                "points": [{"update": int(u), "epoch": float(e), "chars": int(c), "seconds": float(s), "train_loss": float(t),
                            "val_loss": float(v), "lr": float(r)}
                           for u, e, c, s, t, v, r in zip(self.updates, self.epochs, self.chars, self.seconds,
                                                          self.train_loss, self.val_loss, self.lr)]}


def run_label(cfg, precision: str | None = None) -> str:
    """``warpeace LSTM 2x308 1.28M d0.3 bf16``: corpus, type, depth x width, parameters, dropout, precision."""
    m = cfg.model
    n = param_count(m.cell, m.layers, m.hidden, m.vocab_size)
    size = f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"
    corpus = cfg.source.dataset or "text"
    return f"{corpus} {m.cell.upper()} {m.layers}x{m.hidden} {size} d{m.dropout:g} {precision or cfg.train.precision}"


def read_curve(run_dir: str | os.PathLike) -> Curve:
    """The curve of one run folder (a training run or a shipped model)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RnnlensError(f"{run_dir} is not a run (no {CONFIG}); pass a folder made by rnnlens train or one of models/")
    cfg = load_config(run_dir)
    rows = []
    path = run_dir / METRICS
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if isinstance(rec, dict) and "step" in rec and "val_loss" in rec:
                rows.append(rec)
    if not rows:
        raise RnnlensError(f"{run_dir} has no validation yet ({METRICS} is empty or missing); wait for its first "
                           f"validation (every --eval-every updates and at each epoch end)")
    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else {}
    per_update = cfg.split.batch_size * cfg.split.seq_len
    col = lambda k, d=np.nan: np.array([float(r.get(k, d)) for r in rows])  # noqa: E731
    updates = col("step").astype(np.int64)
    return Curve(str(run_dir), run_label(cfg, summary.get("precision")), updates, col("epoch"), updates * per_update,
                 col("elapsed_s"), col("train_loss"), col("val_loss"), col("lr"),
                 summary.get("status", "running or interrupted"), summary.get("test_loss_nats"))


def plot_curves(curves: list[Curve], path: str | os.PathLike, x: str = "updates", title: str = "") -> Path:
    """One figure: validation (solid) and training (dashed) loss of every curve against ``x``, the best
    validation marked; with one curve, the learning rate on a second axis. PNG or SVG by the suffix."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise RnnlensError(f"--out {path} must end in .png or .svg", field="out")
    if not curves:
        raise RnnlensError("no curves to plot; pass at least one run")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    for k, c in enumerate(curves):
        colour = f"C{k % 10}"
        xs = c.x(x)
        name = c.label if len({cc.label for cc in curves}) == len(curves) else f"{c.label} ({Path(c.run).name})"
        ax.plot(xs, c.val_loss, color=colour, lw=1.6, label=f"{name} val")
        ax.plot(xs, c.train_loss, color=colour, lw=1.0, ls="--", alpha=0.8, label=f"{name} train")
        b = c.best
        ax.plot([xs[b]], [c.val_loss[b]], marker="o", color=colour, ms=6)
        ax.annotate(f"{c.val_loss[b]:.3f}", (xs[b], c.val_loss[b]), textcoords="offset points", xytext=(4, -12),
                    fontsize=8, color=colour)
    ax.set_xlabel(_X_LABEL[x])
    ax.set_ylabel("loss (nats/char)")
    ax.grid(alpha=0.3)
    if len(curves) == 1:
        ax2 = ax.twinx()
        ax2.plot(curves[0].x(x), curves[0].lr, color="gray", lw=0.9, ls=":", label="learning rate")
        ax2.set_ylabel("learning rate", color="gray")
        ax2.legend(loc="upper center", fontsize=8)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or ("training curves" if len(curves) > 1 else Path(curves[0].run).name), fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt))
    plt.close(fig)
    return path


PAPER_LINE = "paper best"


def plot_curve_grid(runs_by_type: dict[str, list[Curve]], path: str | os.PathLike, paper_best: float | None = None,
                    x: str = "epochs", title: str = ""):
    """One panel per cell type (in the order of ``runs_by_type``, types without curves left out), a line of
    validation loss against ``x`` per curve (its ``label`` in the legend) with exactly the curve's points, and
    ``paper_best`` as a dashed horizontal line labelled "paper best" in every panel (none when it is None).
    Written as PNG atomically; returns the matplotlib Figure so callers can read the plotted series back."""
    from matplotlib.figure import Figure

    types = [t for t, cs in runs_by_type.items() if cs]
    if not types:
        raise RnnlensError("no curves to plot; every run lacks a validation yet")
    fig = Figure(figsize=(4.2 * len(types) + 0.6, 3.8), dpi=100)
    axes = fig.subplots(1, len(types), sharey=True, squeeze=False)[0]
    for ax, cell in zip(axes, types):
        for k, c in enumerate(runs_by_type[cell]):
            ax.plot(c.x(x), c.val_loss, color=f"C{k % 10}", lw=1.5, marker=".", ms=5, label=c.label)
        if paper_best is not None:
            ax.axhline(paper_best, color="black", ls="--", lw=1.0, label=f"{PAPER_LINE} {paper_best:g} (test)")
        ax.set_title(cell.upper(), fontsize=10)
        ax.set_xlabel(_X_LABEL[x])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0].set_ylabel("validation loss (nats/char)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return fig
