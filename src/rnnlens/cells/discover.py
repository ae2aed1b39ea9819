"""Automatic discovery of interpretable cells: rank every cell by how well it tracks each text feature.

Input: activations as plain arrays, ``name -> (N, H)`` (N characters in text order, one column per cell;
row t is the state *after reading* character t, the same alignment as :mod:`rnnlens.cells.features`), plus
the text's symbols (N,) or precomputed feature values. Cell-state arrays should be passed as ``tanh(c)``
(what the paper colours): Pearson correlation depends on the transform, ROC AUC does not.

Scores, vectorised over cells (in blocks of ``DiscoveryConfig.block`` columns to bound memory):

* graded features: Pearson r between the cell and the feature; score ``|r|``, sign of r.
* binary features: ROC AUC of the cell as a detector of the feature (the probability that a random
  character inside scores higher than a random one outside; ties count one half), from average ranks:
  ``AUC = (sum of ranks inside - n1 (n1 + 1) / 2) / (n1 n0)``. Score ``max(AUC, 1 - AUC)`` and sign +1 when
  the cell is high inside, -1 when it is low inside: both are equally good trackers.

A cell is *interpretable* for a feature when ``|r| >= 0.5`` (graded) or ``AUC >= 0.9`` (binary). The report
gives, per feature, the top cells and the fraction of all cells over the threshold, and overall the
fraction of cells that are interpretable for at least one *memory* feature (the character-class
features ``in_word``, ``after_space``, ``uppercase`` are left out of that figure: they find character
detectors). The paper's authors guessed about 5% of cells are interpretable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from ..exceptions import RnnlensError
from .features import FEATURES, Syntax, compute_features


@dataclass(frozen=True)
class DiscoveryConfig:
    """Thresholds and limits of :func:`discover`."""

    top: int = 5                 # best cells reported per feature
    r_threshold: float = 0.5     # |Pearson r| for a graded feature
    auc_threshold: float = 0.9   # max(AUC, 1 - AUC) for a binary feature
    min_count: int = 10          # a binary feature needs this many characters inside and outside
    block: int = 32              # cells scored at once (memory: about 6 * N * block * 8 bytes)

    def __post_init__(self) -> None:
        if self.top < 1:
            raise RnnlensError(f"top must be at least 1, got {self.top}")
        if not 0 < self.r_threshold <= 1 or not 0.5 < self.auc_threshold <= 1:
            raise RnnlensError("thresholds must be 0 < r <= 1 and 0.5 < AUC <= 1; e.g. 0.5 and 0.9")


@dataclass(frozen=True)
class CellScore:
    """One cell's score for a feature: ``layer`` (an activation name), ``index`` (the column), ``score``
    (|r| or max(AUC, 1 - AUC)), ``sign`` (+1: high where the feature is high / inside), ``raw`` (r or AUC)."""

    layer: str
    index: int
    score: float
    sign: int
    raw: float

    @property
    def label(self) -> str:
        return f"{self.layer}:{self.index}"


@dataclass
class FeatureResult:
    """Discovery result for one feature."""

    name: str
    kind: str              # graded | binary
    metric: str            # pearson | auc
    memory: bool
    description: str
    threshold: float
    mean: float            # the feature's mean over the sample (for a binary one: the share inside)
    best: list[CellScore] = field(default_factory=list)
    interpretable: int = 0  # cells at or over the threshold
    fraction: float = 0.0   # ... as a share of all cells
    skipped: str | None = None  # why the feature was not scored (constant over the sample, too few inside)


@dataclass
class DiscoveryReport:
    n_chars: int
    layers: dict[str, int]          # activation name -> number of cells
    features: list[FeatureResult]
    interpretable_cells: int        # cells over the threshold for at least one memory feature
    config: DiscoveryConfig

    @property
    def n_cells(self) -> int:
        return sum(self.layers.values())

    @property
    def fraction_interpretable(self) -> float:
        return self.interpretable_cells / max(self.n_cells, 1)

    def to_dict(self) -> dict:
        return {"n_chars": self.n_chars, "n_cells": self.n_cells, "layers": self.layers,
                "interpretable_cells": self.interpretable_cells, "fraction_interpretable": self.fraction_interpretable,
                "config": asdict(self.config), "features": [asdict(f) for f in self.features]}

    def format_lines(self) -> list[str]:
        """A human-readable table: one line per feature with its best cells."""
        lines = [f"{self.n_cells} cells over {self.n_chars:,} characters; interpretable (|r| >= "
                 f"{self.config.r_threshold:g} or AUC >= {self.config.auc_threshold:g} on a memory feature): "
                 f"{self.interpretable_cells} = {100 * self.fraction_interpretable:.1f}%"]
        for f in self.features:
            head = f"{f.name:17s} {'r  ' if f.metric == 'pearson' else 'AUC'}"
            if f.skipped:
                lines.append(f"{head}  skipped: {f.skipped}")
                continue
            cells = "  ".join(f"{c.label} {c.score:.3f}{'+' if c.sign > 0 else '-'}" for c in f.best)
            lines.append(f"{head}  {100 * f.fraction:5.1f}% pass  {cells}")
        return lines


def pearson_scores(acts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pearson r of every cell with every feature: acts (N, H), values (N, F) -> (H, F).

    A constant cell or feature gets r = 0.
    """
    a = acts.astype(np.float64)
    a -= a.mean(axis=0)
    v = values.astype(np.float64)
    v -= v.mean(axis=0)
    num = a.T @ v  # (H, F)
    den = np.sqrt((a * a).sum(axis=0))[:, None] * np.sqrt((v * v).sum(axis=0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    return np.where(den > 0, r, 0.0)


def average_ranks(acts: np.ndarray) -> np.ndarray:
    """Ranks 1..N of each column's values, ties sharing their average rank: (N, H) -> (N, H) float64."""
    n = acts.shape[0]
    order = np.argsort(acts, axis=0, kind="stable")
    ordered = np.take_along_axis(acts, order, axis=0)
    idx = np.arange(n)[:, None]
    new = np.ones(ordered.shape, bool)
    new[1:] = ordered[1:] != ordered[:-1]  # first of a run of equal values
    last = np.ones(ordered.shape, bool)
    last[:-1] = new[1:]
    first_pos = np.maximum.accumulate(np.where(new, idx, 0), axis=0)
    last_pos = np.flip(np.minimum.accumulate(np.flip(np.where(last, idx, n - 1), axis=0), axis=0), axis=0)
    ranks = np.empty(ordered.shape, np.float64)
    np.put_along_axis(ranks, order, (first_pos + last_pos) / 2.0 + 1.0, axis=0)
    return ranks


def auc_scores(acts: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """ROC AUC of every cell for every binary feature: acts (N, H), inside (N, F) 0/1 -> (H, F).

    A feature with nobody inside (or nobody outside) gets 0.5.
    """
    pos = inside.astype(np.float64)
    n1 = pos.sum(axis=0)  # (F,)
    n0 = pos.shape[0] - n1
    rank_sum = average_ranks(acts).T @ pos  # (H, F)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, 0.5)


def _check_inputs(activations: dict[str, np.ndarray], n: int | None) -> int:
    if not activations:
        raise RnnlensError("no activations to search; pass at least one (N, H) array")
    sizes = {name: a.shape for name, a in activations.items()}
    bad = [k for k, s in sizes.items() if len(s) != 2]
    if bad:
        raise RnnlensError(f"activations must be 2-D (N characters, H cells); {bad[0]} has shape {sizes[bad[0]]}")
    lengths = {s[0] for s in sizes.values()}
    if len(lengths) != 1 or (n is not None and lengths != {n}):
        raise RnnlensError(f"activations and text disagree in length ({sorted(lengths)} vs {n}); "
                           "pass one row per character")
    return lengths.pop()


def discover(activations: dict[str, np.ndarray], symbols: np.ndarray | str | None = None,
             features: Sequence[str] | None = None, values: dict[str, np.ndarray] | None = None,
             syntax: Syntax = "auto", config: DiscoveryConfig = DiscoveryConfig()) -> DiscoveryReport:
    """Rank every cell of every activation array by how well it tracks each feature.

    activations: name -> (N, H) array (e.g. ``{"layers.0.c": tanh(c), ...}``).
    symbols: the N characters (to compute ``features`` with :func:`compute_features`), or None when
        ``values`` (feature name -> (N,) values, e.g. computed on a longer text and gathered) is given.
    """
    if values is None:
        if symbols is None:
            raise RnnlensError("discover needs the text's symbols or precomputed feature values")
        values = compute_features(symbols, features, syntax)
    elif features is not None:
        values = {k: values[k] for k in features}
    n = _check_inputs(activations, len(next(iter(values.values()))) if values else None)
    results: list[FeatureResult] = []
    usable: dict[str, list[str]] = {"graded": [], "binary": []}
    for name, v in values.items():
        spec = FEATURES[name]
        metric = "pearson" if spec.kind == "graded" else "auc"
        res = FeatureResult(name, spec.kind, metric, spec.memory, spec.description,
                            config.r_threshold if metric == "pearson" else config.auc_threshold, float(np.mean(v)))
        inside = int(np.count_nonzero(v))
        if np.all(v == v[0]):
            res.skipped = "constant over the text"
        elif spec.kind == "binary" and min(inside, n - inside) < config.min_count:
            res.skipped = f"only {min(inside, n - inside)} characters {'inside' if inside < n / 2 else 'outside'}"
        else:
            usable[spec.kind].append(name)
        results.append(res)

    # scores[feature] -> list of (layer, (H,) signed raw score) blocks
    scores: dict[str, list[tuple[str, int, np.ndarray]]] = {k: [] for k in values}
    for layer, acts in activations.items():
        for lo in range(0, acts.shape[1], config.block):
            block = np.asarray(acts[:, lo:lo + config.block], dtype=np.float64)  # (N, h)
            for kind, scorer in (("graded", pearson_scores), ("binary", auc_scores)):
                names = usable[kind]
                if names:
                    s = scorer(block, np.stack([values[k] for k in names], axis=1))  # (h, F)
                    for j, k in enumerate(names):
                        scores[k].append((layer, lo, s[:, j]))
    passing: set[tuple[str, int]] = set()
    for res in results:
        if res.skipped:
            continue
        raw = np.concatenate([s for _, _, s in scores[res.name]])
        where = [(layer, lo + i) for layer, lo, s in scores[res.name] for i in range(len(s))]
        score = np.abs(raw) if res.metric == "pearson" else np.maximum(raw, 1 - raw)
        centre = 0.0 if res.metric == "pearson" else 0.5
        order = np.argsort(-score, kind="stable")[: config.top]
        res.best = [CellScore(where[i][0], where[i][1], float(score[i]), 1 if raw[i] >= centre else -1, float(raw[i]))
                    for i in order]
        ok = np.flatnonzero(score >= res.threshold)
        res.interpretable = len(ok)
        res.fraction = len(ok) / len(score)
        if res.memory:
            passing.update(where[i] for i in ok)
    layers = {k: int(a.shape[1]) for k, a in activations.items()}
    return DiscoveryReport(n, layers, results, len(passing), config)
