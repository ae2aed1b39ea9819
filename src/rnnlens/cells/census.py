"""The census of interpretable cells across a grid of models: a result the paper does not have.

For every trained model, :func:`rnnlens.cells.discover.discover` scores every cell (LSTM: tanh(c); GRU and
RNN: h, their only state) against every text feature on the test split, and the census keeps, per feature,
the share of the model's cells that pass the discovery thresholds (|r| >= 0.5 for a graded feature,
AUC >= 0.9 for a binary one), plus the share interpretable for at least one memory feature. The rows are
(type, depth, budget, dropout) x feature; the figure is a heat map of those shares.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text

MODEL_KEYS = ("cell", "layers", "budget", "dropout", "params", "state")


def census_row(model: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """One model's census line from its identity (``MODEL_KEYS``) and a discovery report (``DiscoveryReport.to_dict()``)."""
    shares = {f["name"]: (None if f["skipped"] else f["fraction"]) for f in report["features"]}
    counts = {f["name"]: (None if f["skipped"] else f["interpretable"]) for f in report["features"]}
    return {**{k: model.get(k) for k in MODEL_KEYS}, "n_cells": report["n_cells"], "n_chars": report["n_chars"],
            "interpretable_any_memory": report["fraction_interpretable"], "shares": shares, "counts": counts}


def _label(row: dict[str, Any]) -> str:
    d = row.get("dropout")
    return f"{row['cell']} {row['layers']}L {row['budget']}" + (f" d{d:g}" if d else "")


def feature_order(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Features in the order of the first row, leaving out those every model skipped."""
    names = list(rows[0]["shares"]) if rows else []
    return [n for n in names if any(r["shares"].get(n) is not None for r in rows)]


def census_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The census as a table: the header and one line per model, the share (%) of its cells per feature."""
    rows = sorted(rows, key=lambda r: (r["cell"], r["layers"], str(r["budget"]), r.get("dropout") or 0))
    names = feature_order(rows)
    head = ["model", "cells", "any memory feature", *names]
    body = [[_label(r), str(r["n_cells"]), f"{100 * r['interpretable_any_memory']:.1f}",
             *("-" if r["shares"].get(n) is None else f"{100 * r['shares'][n]:.1f}" for n in names)] for r in rows]
    return head, body


def census_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The census as a Markdown table (:func:`census_table`)."""
    head, body = census_table(rows)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def plot_census(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str) -> Path:
    """A heat map: models (type x depth x budget x dropout) down, features across, colour = share of cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: (r["cell"], r["layers"], str(r["budget"]), r.get("dropout") or 0))
    names = feature_order(rows) + ["any memory feature"]
    grid = np.array([[np.nan if r["shares"].get(n) is None else 100 * r["shares"][n] for n in names[:-1]]
                     + [100 * r["interpretable_any_memory"]] for r in rows], dtype=float).reshape(len(rows), len(names))
    width = max(6.0, 1.0 + 0.55 * len(names))
    fig, ax = plt.subplots(figsize=(width, 1.2 + 0.38 * max(1, len(rows))))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", vmin=0)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows], fontsize=8)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}" if grid[i, j] < 10 else f"{grid[i, j]:.0f}", ha="center",
                        va="center", fontsize=7,
                        color="white" if grid[i, j] < 0.6 * np.nanmax(grid) else "black")
    fig.colorbar(im, ax=ax, label="% of its cells")
    ax.set_title(textwrap.fill(title, width=int(width * 13)), fontsize=9)  # ~13 characters per inch at 9 pt
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_census(rows: Sequence[dict[str, Any]], out: str | os.PathLike, title: str) -> dict[str, Path]:
    """census.json, census.md and census.png under ``out``."""
    out = Path(out)
    paths = {"json": out / "census.json", "table": out / "census.md", "figure": out / "census.png"}
    atomic_write_json(paths["json"], {"rows": list(rows)})
    atomic_write_text(paths["table"], census_markdown(rows))
    if rows:
        plot_census(rows, paths["figure"], title)
    return paths
