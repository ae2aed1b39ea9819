"""Where recurrence wins and where it fails (the paper's Fig. 4 and 5), on plain arrays.

* :func:`venn_counts`: overlap of the error sets of two or three models (every region of the diagram).
* :func:`per_char_stats` / :func:`top_differences`: mean probability of the correct character per target
  character, and the characters where one model gains or loses most against another.
* :func:`symmetric_kl`: ``KL(P||Q) + KL(Q||P)`` between predictive distributions, position by position,
  for the training dynamics (the LSTM first agrees with the 1-NN, then the 2-, 3-, 4-NN).
* :func:`context_buckets` / :func:`winning_stretches`: where an n-gram's memory wins: the loss of each
  model by the context length the n-gram matched, and the stretches of text where it leads most.

All inputs are numpy arrays over the same M predictions; no model is run here.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from ..exceptions import RnnlensError
from ..data.text import Vocab, describe_symbol


def error_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """True where the correct character got probability < threshold (the paper's "error")."""
    return np.asarray(prob) < threshold


def region_name(members: tuple[str, ...]) -> str:
    return "&".join(members) if members else "none"


def venn_counts(sets: dict[str, np.ndarray]) -> dict[str, int]:
    """Counts of every region of the Venn diagram of 1..3 boolean masks over the same positions.

    Keys name the sets a region belongs to *exactly* (``"lstm&ngram"``: errors of both but not of the
    others), in the order of ``sets``; ``"none"`` counts positions in no set. Every region is present,
    empty ones with 0, and the counts add up to the number of positions.
    """
    names = list(sets)
    if not 1 <= len(names) <= 3:
        raise RnnlensError(f"a Venn diagram needs 1 to 3 sets, got {len(names)}")
    masks = [np.asarray(sets[n], dtype=bool).reshape(-1) for n in names]
    if any(m.shape != masks[0].shape for m in masks):
        raise RnnlensError("the sets of a Venn diagram must cover the same positions (equal lengths)")
    code = sum(m.astype(np.int64) << i for i, m in enumerate(masks))
    counts = np.bincount(code, minlength=1 << len(names))
    out = {}
    for r in range(len(names) + 1):
        for members in combinations(range(len(names)), r):
            out[region_name(tuple(names[i] for i in members))] = int(counts[sum(1 << i for i in members)])
    return out


def per_char_stats(y: np.ndarray, probs: dict[str, np.ndarray], vocab: Vocab) -> list[dict]:
    """For every character id that occurs as a target: its count and each model's mean probability of it.

    y: (M,) target ids; probs: model name -> (M,) probability given to the target.
    """
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    K = len(vocab)
    counts = np.bincount(y, minlength=K)
    means = {}
    for name, p in probs.items():
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if p.shape != y.shape:
            raise RnnlensError(f"probabilities of {name} do not match the targets ({p.shape} vs {y.shape})")
        means[name] = np.bincount(y, weights=p, minlength=K) / np.maximum(counts, 1)
    rows = []
    for i in np.flatnonzero(counts).tolist():
        sym = vocab.symbols[i]
        rows.append({"id": i, "symbol": sym, "char": describe_symbol(sym, vocab.unit), "count": int(counts[i]),
                     **{name: float(m[i]) for name, m in means.items()}})
    return rows


def top_differences(stats: list[dict], a: str, b: str, k: int = 10, min_count: int = 50) -> dict[str, list[dict]]:
    """The k characters (seen >= min_count times) where model ``a`` gains most over ``b`` and loses most.

    Ties in the difference are broken by count (more frequent first), then by id.
    """
    rows = [dict(r, diff=r[a] - r[b]) for r in stats if r["count"] >= min_count]
    gains = sorted(rows, key=lambda r: (-r["diff"], -r["count"], r["id"]))
    losses = sorted(rows, key=lambda r: (r["diff"], -r["count"], r["id"]))
    return {"gains": gains[:k], "losses": losses[:k]}


def symmetric_kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """(M, K) distributions -> (M,) ``sum_k (p_k - q_k) (log p_k - log q_k)`` = KL(P||Q) + KL(Q||P), in nats.

    Probabilities are clipped at ``eps`` below (so a zero in one distribution gives a large, finite value).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise RnnlensError(f"symmetric KL needs two (M, K) arrays of the same shape, got {p.shape} and {q.shape}")
    lp, lq = np.log(np.maximum(p, eps)), np.log(np.maximum(q, eps))
    return np.sum((p - q) * (lp - lq), axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (..., K) logits in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def dynamics_point(model_dist: np.ndarray, refs: dict[str, np.ndarray], y: np.ndarray) -> dict:
    """One checkpoint of the training dynamics.

    model_dist: (M, K) the trained model's distributions; refs: name -> (M, K) reference distributions
    (e.g. the 1..4-NN); y: (M,) targets. Returns the model's mean loss and, per reference, the mean
    symmetric KL and ``ref_minus_model`` = reference loss - model loss (nats per character; positive where the
    model is ahead of the reference, the reading of the paper's figure).
    """
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    rows = np.arange(len(y))

    def loss(d: np.ndarray) -> float:
        return float(-np.mean(np.log(np.maximum(np.asarray(d, dtype=np.float64)[rows, y], 1e-300))))

    mine = loss(model_dist)
    return {"loss": mine, "refs": {name: {"skl": float(np.mean(symmetric_kl(model_dist, d))),
                                           "ref_minus_model": loss(d) - mine} for name, d in refs.items()}}


def context_buckets(matched: np.ndarray, losses: dict[str, np.ndarray], edges: Sequence[int]) -> list[dict]:
    """Where an n-gram's memory helps: the characters bucketed by the context length the n-gram matched,
    ``[edges[i], edges[i+1])`` (the last bucket open-ended). Per bucket: ``count``, ``share`` of all
    characters, and per model the mean loss (``name``) and the bucket's part of the model's overall loss
    (``name total``: sum over the bucket / all characters, so the parts add up to the overall loss).

    matched: (M,) context lengths; losses: name -> (M,) loss in nats of each character."""
    m = np.asarray(matched, dtype=np.int64).reshape(-1)
    if not len(edges) or list(edges) != sorted(set(edges)) or edges[0] != 0:
        raise RnnlensError(f"context edges must be distinct, increasing and start at 0, got {list(edges)}")
    idx = np.searchsorted(np.asarray(edges), m, side="right") - 1
    rows = []
    for b, lo in enumerate(edges):
        sel = idx == b
        row: dict = {"lo": int(lo), "hi": int(edges[b + 1]) if b + 1 < len(edges) else None,
                     "count": int(sel.sum()), "share": float(sel.mean()) if len(m) else 0.0}
        for name, loss in losses.items():
            v = np.asarray(loss, dtype=np.float64).reshape(-1)[sel]
            row[name] = float(v.mean()) if len(v) else None
            row[f"{name} total"] = float(v.sum() / max(len(m), 1))
        rows.append(row)
    return rows


def winning_stretches(diff: np.ndarray, width: int, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` non-overlapping stretches of ``width`` consecutive characters of a row where ``diff``
    (B, N) is largest on average: (row, first column, mean), best first. Greedy: the best window of all
    rows, then the best one that overlaps none chosen, and so on."""
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2 or width < 1 or d.shape[1] < width:
        return []
    c = np.concatenate([np.zeros((d.shape[0], 1)), np.cumsum(d, axis=1)], axis=1)
    means = (c[:, width:] - c[:, :-width]) / width  # (B, N - width + 1)
    out: list[tuple[int, int, float]] = []
    for _ in range(k):
        r, j = np.unravel_index(int(np.argmax(means)), means.shape)
        if not np.isfinite(means[r, j]):
            break
        out.append((int(r), int(j), float(means[r, j])))
        means[r, max(0, j - width + 1):j + width] = -np.inf
    return out
