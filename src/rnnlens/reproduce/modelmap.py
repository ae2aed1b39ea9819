"""The paper's map of models (supplementary): every grid model placed in 2-D by how often each pair agrees
on the most likely next character.

The paper used t-SNE; rnnlens uses classical (Torgerson) multidimensional scaling with numpy, which needs
no extra dependency and is deterministic: the distance between two models is the fraction of test
positions where their argmax predictions differ, and the 2-D coordinates are the top two eigenvectors of
the double-centred squared-distance matrix scaled by the square roots of their eigenvalues.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from ..fsutil import atomic_write
from ..model import CharRNN
from ..data.splits import Split


@torch.no_grad()
def argmax_predictions(model: CharRNN, split: Split, seq_len: int, max_chars: int = 0) -> np.ndarray:
    """(B, N') int64 most likely next id at each position of the split's row streams, state carried; the
    first columns up to ``max_chars`` characters in all (0: every column)."""
    rows, total = split.x.shape
    cols = min(total, -(-max_chars // rows)) if max_chars > 0 else total
    device = next(model.parameters()).device
    state, out = None, []
    for j in range(0, cols, seq_len):
        x = torch.from_numpy(split.x[:, j:min(j + seq_len, cols)]).to(device)  # (B, T)
        logits, state = model(x, state)  # (B, T, K)
        out.append(logits.argmax(-1).cpu().numpy())
    return np.concatenate(out, axis=1)


def agreement_matrix(preds: Sequence[np.ndarray]) -> np.ndarray:
    """(M, M) share of positions where models i and j predict the same most likely character."""
    flat = np.stack([np.asarray(p).reshape(-1) for p in preds])  # (M, N)
    m = flat.shape[0]
    agree = np.ones((m, m))
    for i in range(m):
        for j in range(i + 1, m):
            agree[i, j] = agree[j, i] = float((flat[i] == flat[j]).mean())
    return agree


def classical_mds(dist: np.ndarray, dims: int = 2) -> np.ndarray:
    """(M, dims) coordinates whose Euclidean distances best match ``dist`` (M, M) (Torgerson's MDS).

    Exact (up to rotation and reflection) when ``dist`` is Euclidean in ``dims`` dimensions.
    """
    d2 = np.asarray(dist, dtype=np.float64) ** 2
    m = d2.shape[0]
    centre = np.eye(m) - np.full((m, m), 1.0 / m)
    gram = -0.5 * centre @ d2 @ centre
    vals, vecs = np.linalg.eigh(gram)  # ascending
    order = np.argsort(vals)[::-1][:dims]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    coords = vecs * np.sqrt(vals)
    if coords.shape[1] < dims:
        coords = np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))
    return coords


def plot_map(coords: np.ndarray, labels: Sequence[dict], path: str | os.PathLike, title: str) -> None:
    """Scatter of the models: colour = type, marker = depth, size grows with the parameter count."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 5.0), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colour = {"rnn": "C3", "lstm": "C0", "gru": "C2"}
    marker = {1: "o", 2: "s", 3: "^"}
    sizes = np.array([float(l["params"]) for l in labels])
    scale = 30 + 120 * (np.log(sizes) - np.log(sizes.min())) / max(np.log(sizes.max() / sizes.min()), 1e-9)
    for k, l in enumerate(labels):
        ax.scatter(coords[k, 0], coords[k, 1], s=scale[k], color=colour.get(l["cell"], "0.5"),
                   marker=marker.get(int(l["layers"]), "D"), alpha=0.8, edgecolors="black", linewidths=0.5)
        ax.annotate(f"{l['cell']}-{l['layers']}l-{l['budget']}", (coords[k, 0], coords[k, 1]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("MDS 1")
    ax.set_ylabel("MDS 2")
    ax.grid(alpha=0.3)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
