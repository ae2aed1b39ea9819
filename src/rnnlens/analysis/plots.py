"""Figures of the comparison and error analyses (matplotlib, Agg backend, written atomically as PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from ..fsutil import atomic_write  # noqa: E402
from .oracles import ORACLES, Breakdown  # noqa: E402

_FAMILY_COLOURS = {"ngram": "Blues", "memory": "Oranges", "rare": "Greens", "word": "Purples",
                   "punct": "Reds", "boost": "Greys"}


def save_figure(fig, path: str | os.PathLike, dpi: int = 90) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def venn_figure(counts: dict[str, int], names: list[str], title: str = ""):
    """Two or three circles with the count of every region (``counts`` from compare.venn_counts)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    centres = [(-0.55, 0.35), (0.55, 0.35), (0.0, -0.55)][:len(names)] if len(names) == 3 else \
        [(-0.55, 0.0), (0.55, 0.0)][:len(names)]
    colours = ["tab:red", "tab:blue", "tab:green"]
    for (cx, cy), c, name in zip(centres, colours, names):
        ax.add_patch(Circle((cx, cy), 1.0, alpha=0.18, color=c))
        ax.add_patch(Circle((cx, cy), 1.0, fill=False, color=c, lw=1.5))
        ax.text(cx, cy + (1.15 if cy >= 0 else -1.15), name, ha="center", va="center", fontsize=11, color=c,
                weight="bold")
    # label every region at the centre of mass of a grid of points that lie in exactly its circles
    g = np.linspace(-2.0, 2.0, 161)
    gx, gy = np.meshgrid(g, g)
    inside = [(gx - cx) ** 2 + (gy - cy) ** 2 < 1.0 for cx, cy in centres]
    for key, value in counts.items():
        if key == "none":
            continue
        members = set(key.split("&"))
        sel = np.ones_like(gx, dtype=bool)
        for name, m in zip(names, inside):
            sel &= m if name in members else ~m
        if sel.any():
            ax.text(gx[sel].mean(), gy[sel].mean(), f"{value:,}", ha="center", va="center", fontsize=10)
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-1.9 if len(names) == 3 else -1.3, 1.7 if len(names) == 3 else 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title + (f"\ncorrect under all: {counts.get('none', 0):,}" if "none" in counts else ""), fontsize=10)
    return fig


def per_char_figure(top: dict[str, list[dict]], a: str, b: str, title: str = ""):
    """Mean probability of the correct character under ``a`` and ``b`` for the top gains and losses of a."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, key, label in zip(axes, ("gains", "losses"), (f"{a} gains most", f"{a} loses most")):
        rows = top[key]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r[a] for r in rows], width=0.4, label=a, color="tab:red")
        ax.bar([x + 0.2 for x in xs], [r[b] for r in rows], width=0.4, label=b, color="tab:blue")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([_short(r["char"]) for r in rows], fontsize=9)
        ax.set_title(label, fontsize=10)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("mean P(correct char)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _short(desc: str) -> str:
    """'a' (byte 0x61) -> a; byte 0x0A -> \\n-like short labels."""
    if desc.startswith("'") or desc.startswith('"'):
        ch = desc[1:desc.index(" (") - 1] if " (" in desc else desc
        return {" ": "spc"}.get(ch, ch)
    if desc == "byte 0x0A":
        return "\\n"
    if desc == "byte 0x0D":
        return "\\r"
    return desc.replace("byte ", "")


def brace_figure(buckets: list[dict], models: list[str], title: str = ""):
    """Mean probability of ``}`` per distance bucket for each model (empty buckets skipped)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rows = [r for r in buckets if r["count"]]
    labels = [f"{r['lo']}-{r['hi'] - 1}" if r["hi"] else f"{r['lo']}+" for r in rows]
    for m, c in zip(models, ("tab:red", "tab:blue", "tab:green")):
        ax.plot(range(len(rows)), [r[m] for r in rows], marker="o", label=m, color=c)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=60, fontsize=8)
    ax.set_xlabel("distance from '{' to '}' (characters)")
    ax.set_ylabel("mean P('}')")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def dynamics_figure(steps: list[int], points: list[dict], refs: list[str], title: str = ""):
    """Symmetric KL to each reference model (left) and reference loss minus model loss (right) against training
    step."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in refs:
        a1.plot(steps, [p["refs"][r]["skl"] for p in points], marker=".", label=r)
        a2.plot(steps, [p["refs"][r]["ref_minus_model"] for p in points], marker=".", label=r)
    a1.set_xlabel("training step")
    a1.set_ylabel("mean symmetric KL (nats)")
    a2.set_xlabel("training step")
    a2.set_ylabel("reference loss - model loss (nats/char)")
    a2.axhline(0, color="k", lw=0.5)
    a1.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _step_label(oracle: str, param) -> str:
    if param is None:
        return oracle
    return {"ngram": f"{param}-gram", "memory": f"mem {param}", "rare": f"<={param}", "boost": f"+{param}"}[oracle]


def oracle_figure(breakdowns: dict[str, Breakdown], title: str = ""):
    """The paper's Fig. 6 as horizontal stacked bars: one bar per model, one segment per oracle step
    (a colour per oracle, darker for larger parameters), width = share of that model's errors."""
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.9 * len(breakdowns)))
    names = list(breakdowns)
    for row, name in enumerate(names):
        b = breakdowns[name]
        left = 0.0
        for fam in ORACLES:
            steps = [s for s in b.steps if s.oracle == fam]
            cmap = plt.get_cmap(_FAMILY_COLOURS[fam])
            for k, s in enumerate(steps):
                w = s.removed / max(b.errors, 1)
                shade = 0.35 + 0.5 * (k + 1) / max(len(steps), 1)
                ax.barh(row, w, left=left, color=cmap(shade), edgecolor="white", lw=0.3,
                        label=fam if (row == 0 and k == len(steps) - 1) else None)
                if w > 0.035:
                    tag = _step_label(fam, s.param)
                    ax.text(left + w / 2, row, tag, ha="center", va="center", fontsize=6.5)
                left += w
        w = b.remaining / max(b.errors, 1)
        ax.barh(row, w, left=left, color="#eeeeee", edgecolor="white", label="remaining" if row == 0 else None)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{n}\n{breakdowns[n].errors:,} errors\n({breakdowns[n].errors / max(breakdowns[n].chars, 1):.0%})"
                        for n in names], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the model's errors removed (oracles applied left to right)")
    ax.legend(ncol=7, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.5 / (1 + len(names))))
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    return fig
