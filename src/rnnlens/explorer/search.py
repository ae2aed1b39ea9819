"""Pattern search with LSTMVis' semantics (Strobelt et al., 2016), on a (C, N) matrix of cell values.

1. Select: given a span ``[start, end]`` (inclusive, text positions) and a threshold, the *selected* cells
   are those above the threshold at every position of the span and at or below it just before the span
   (``start - 1``) and just after it (``end + 1``). Where the span touches the edge of the text (or of a row
   stream, ``row_len``), that side has no condition.
2. Match: every maximal run of positions where *all* selected cells are above the threshold (within one row
   stream) is a candidate;
   it is a match when its length is within ``[ceil(L / slack), L * slack]`` (L = the span's length).
   Matches are ranked by length similarity ``min(len, L) / max(len, L)``, then by how sharp their ends are
   (the share of selected cells off just before and just after), then by position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import RnnlensError


@dataclass(frozen=True)
class SearchConfig:
    """Parameters of :func:`search`."""

    threshold: float = 0.3  # "on" means strictly above this value
    slack: float = 2.0      # matches may be up to this factor shorter or longer than the span
    limit: int = 50         # matches returned (all are counted)

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise RnnlensError(f"threshold must be in [-1, 1], got {self.threshold}; e.g. 0.3")
        if not 1.0 <= self.slack <= 100.0:
            raise RnnlensError(f"slack must be in [1, 100], got {self.slack}; e.g. 2")
        if not 1 <= self.limit <= 1000:
            raise RnnlensError(f"limit must be in 1..1000, got {self.limit}")


@dataclass
class Match:
    start: int      # first position of the run
    end: int        # last position (inclusive)
    score: float    # length similarity in (0, 1]
    sharp: float    # share of selected cells off just before and after (both sides averaged)


@dataclass
class SearchResult:
    cells: np.ndarray      # (S,) selected row indices of the value matrix
    count: int             # how many matches in all
    matches: list[Match]   # the best ``limit`` of them, ranked


def select_cells(values: np.ndarray, start: int, end: int, threshold: float, row_len: int = 0) -> np.ndarray:
    """Indices of the cells on throughout ``values[:, start:end + 1]`` and off just before and after.

    values: (C, N) cell values; row_len > 0: positions ``k * row_len`` start new row streams (no
    "before" condition there, and no "after" condition at a row's last position)."""
    C, N = values.shape
    if not 0 <= start <= end < N:
        raise RnnlensError(f"span {start}..{end} is outside the text 0..{N - 1}; select characters in the text")
    ok = np.all(values[:, start:end + 1] > threshold, axis=1)  # (C,)
    if start > 0 and not (row_len and start % row_len == 0):
        ok &= values[:, start - 1] <= threshold
    if end + 1 < N and not (row_len and (end + 1) % row_len == 0):
        ok &= values[:, end + 1] <= threshold
    return np.flatnonzero(ok)


def runs(mask: np.ndarray, row_len: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends exclusive) of the maximal runs of True in a 1-D boolean array; with ``row_len`` > 0 a run
    never crosses a multiple of ``row_len`` (the start of a new row stream)."""
    n = len(mask)
    width = row_len if row_len and n % row_len == 0 else n
    padded = np.pad(mask.reshape(-1, width), ((0, 0), (1, 1))).reshape(-1).astype(np.int8)  # False around each row
    edges = np.diff(padded)
    up, down = np.flatnonzero(edges == 1) + 1, np.flatnonzero(edges == -1) + 1  # padded coordinates

    def unpad(i: np.ndarray) -> np.ndarray:
        return (i // (width + 2)) * width + i % (width + 2) - 1

    return unpad(up), unpad(down - 1) + 1


def find_matches(values: np.ndarray, cells: np.ndarray, length: int, config: SearchConfig,
                 row_len: int = 0) -> tuple[int, list[Match]]:
    """(count, ranked best matches) of runs where all ``cells`` are on (see the module docstring)."""
    if len(cells) == 0:
        return 0, []
    sel = values[cells]  # (S, N)
    on = sel > config.threshold  # (S, N)
    starts, ends = runs(on.all(axis=0), row_len)
    lens = ends - starts
    keep = (lens >= math.ceil(length / config.slack)) & (lens <= length * config.slack)
    starts, ends, lens = starts[keep], ends[keep], lens[keep]
    if len(starts) == 0:
        return 0, []
    N = sel.shape[1]
    off = ~on
    first = (starts == 0) | ((starts % row_len == 0) if row_len else False)
    last = (ends == N) | ((ends % row_len == 0) if row_len else False)
    before = np.where(first, 1.0, off[:, np.maximum(starts - 1, 0)].mean(axis=0))
    after = np.where(last, 1.0, off[:, np.minimum(ends, N - 1)].mean(axis=0))
    sharp = (before + after) / 2
    score = np.minimum(lens, length) / np.maximum(lens, length)
    order = np.lexsort((starts, -sharp, -score))[: config.limit]
    return len(starts), [Match(int(starts[i]), int(ends[i]) - 1, float(score[i]), float(sharp[i])) for i in order]


def search(values: np.ndarray, start: int, end: int, config: SearchConfig = SearchConfig(), row_len: int = 0) -> SearchResult:
    """Select the cells of the span ``[start, end]`` and find where else they show the same pattern."""
    cells = select_cells(values, start, end, config.threshold, row_len)
    count, matches = find_matches(values, cells, end - start + 1, config, row_len)
    return SearchResult(cells, count, matches)
