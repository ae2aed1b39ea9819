"""Cutting an id stream into train/val/test batches of row streams, the way char-rnn did.

A :class:`Split` holds ``x`` and ``y`` of shape (B, N): row ``r`` of ``x`` is a contiguous stretch of
the text, and ``y[r, j]`` is the character that follows ``x[r, j]`` in the text. Training and
evaluation walk the columns in blocks of S (the unroll length) and carry the hidden state from one
block to the next, so each row is one long stream (truncated BPTT).

Targets come from the stream itself: for a stretch ``ids[a:a+n]`` the targets are ``ids[a+1:a+n+1]``.
Only when a stretch reaches the very end of the text (nothing was trimmed off behind it) does its last
target wrap around to ``ids[0]``, as char-rnn does; every other target is the true next character.

Layouts:

* ``interleaved`` (the paper's, char-rnn's): trim the text to a multiple of B*S, reshape it into B rows
  of L columns, cut the columns into L/S blocks; the first ``floor(f_train*blocks)`` blocks of every row
  are train, the next ``floor(f_val*blocks)`` val, the rest test. For War and Peace with B=S=100 this
  gives 2,600,000 / 320,000 / 330,000 targets. (A tiny epsilon guards ``floor`` against float error, so
  0.29*100 counts as 29. When the test fraction is 0 the leftover blocks go to train, keeping test empty.)
* ``contiguous``: cut the text into three consecutive parts by the fractions (in characters), and
  reshape each part into B rows (trimming each part to a multiple of B).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, get_args

import numpy as np

from rnnlens.exceptions import RnnlensError

Layout = Literal["interleaved", "contiguous"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
SPLIT_NAMES = ("train", "val", "test")
_EPS = 1e-9


@dataclass(frozen=True)
class SplitConfig:
    """How a text is split and batched: layout, train/val/test fractions, B rows, S unroll steps."""

    layout: Layout = "interleaved"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/val/test
    batch_size: int = 100  # B rows
    seq_len: int = 100  # S, unroll length

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise RnnlensError(f"unknown split layout {self.layout!r}; use one of {', '.join(LAYOUTS)}")
        try:
            fr = tuple(float(f) for f in self.fractions)
        except (TypeError, ValueError):
            raise RnnlensError("split fractions must be three numbers (train, val, test); e.g. 0.8 0.1 0.1") from None
        if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr):
            raise RnnlensError("split fractions must be three numbers >= 0 (train, val, test); e.g. 0.8 0.1 0.1")
        if abs(sum(fr) - 1.0) > 1e-6:
            raise RnnlensError(f"split fractions {fr} sum to {sum(fr):g}, not 1; make them add up to 1")
        if fr[0] <= 0:
            raise RnnlensError("the train fraction must be > 0; give train a share of the text")
        object.__setattr__(self, "fractions", fr)
        for name, v in (("batch_size", self.batch_size), ("seq_len", self.seq_len)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RnnlensError(f"{name} must be a positive integer, got {v!r}; pass e.g. 100")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for run configs."""
        return {"layout": self.layout, "fractions": list(self.fractions),
                "batch_size": self.batch_size, "seq_len": self.seq_len}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SplitConfig":
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        if not isinstance(d, dict):
            raise RnnlensError("split config must be a JSON object; check the run's config.json")
        unknown = sorted(set(d) - {"layout", "fractions", "batch_size", "seq_len"})
        if unknown:
            raise RnnlensError(f"unknown split config keys {unknown}; remove them from the run's config.json")
        d = dict(d)
        if "fractions" in d and isinstance(d["fractions"], (list, tuple)):
            d["fractions"] = tuple(d["fractions"])
        return cls(**d)


@dataclass
class Split:
    """One split as B row streams.

    x: (B, N) int64 input ids; each row is a contiguous stretch of the text.
    y: (B, N) int64 targets; ``y[r, j]`` is the character that follows ``x[r, j]`` in the text.
    row_starts: (B,) offset in the original id stream of each row's first character (``x[r, 0]``),
        or None when unknown; lets analyses map a prediction back to its place in the text.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    row_starts: np.ndarray | None = field(default=None)

    @property
    def num_chars(self) -> int:
        """Number of predictions in the split (= x.size)."""
        return int(self.x.size)

    def num_blocks(self, seq_len: int) -> int:
        """Number of column blocks of width ``seq_len`` (the last one may be narrower)."""
        _check_seq_len(seq_len)
        return -(-self.x.shape[1] // seq_len)

    def blocks(self, seq_len: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Column blocks ``(x[:, j:j+S], y[:, j:j+S])`` in order; each is (B, S) except maybe the last."""
        _check_seq_len(seq_len)
        for j in range(0, self.x.shape[1], seq_len):
            yield self.x[:, j:j + seq_len], self.y[:, j:j + seq_len]

    def positions(self) -> np.ndarray:
        """(B, N) offsets in the original id stream of every ``x[r, j]`` (its target is at offset + 1)."""
        if self.row_starts is None:
            raise RnnlensError(f"split {self.name!r} has no text positions; build it with make_splits or stream_split")
        return self.row_starts[:, None] + np.arange(self.x.shape[1], dtype=np.int64)[None, :]


def _check_seq_len(seq_len: int) -> None:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise RnnlensError(f"seq_len must be a positive integer, got {seq_len!r}; pass e.g. 100")


def _as_ids(ids: np.ndarray) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise RnnlensError(f"expected a 1-D id stream, got shape {arr.shape}; flatten the text first")
    return arr.astype(np.int64, copy=False)


def _targets(ids: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``ids[start:start+length]`` and their next characters; every target is a real next character
    (the callers leave the text's last character out of the inputs: nothing wraps around to the first)."""
    if start + length >= len(ids) and length > 0:
        raise ValueError(f"inputs {start}..{start + length - 1} leave no next character in a text of {len(ids)}")
    return ids[start:start + length], ids[start + 1:start + length + 1]


def _rows(name: str, ids: np.ndarray, start: int, rows: int, length: int) -> Split:
    """Split of ``rows`` rows, each ``length`` long, from the stretch ids[start : start + rows*length]."""
    x, y = _targets(ids, start, rows * length)
    starts = start + np.arange(rows, dtype=np.int64) * length
    return Split(name, x.reshape(rows, length).copy(), y.reshape(rows, length).copy(), starts)


def _interleaved_blocks(blocks: int, fr: tuple[float, float, float]) -> tuple[int, int, int]:
    """Blocks per split for the interleaved layout (train, val, test)."""
    n_train = math.floor(fr[0] * blocks + _EPS)
    n_val = math.floor(fr[1] * blocks + _EPS)
    if fr[2] == 0:
        return blocks - n_val, n_val, 0
    return n_train, n_val, blocks - n_train - n_val


def _interleaved_ok(blocks: int, fr: tuple[float, float, float]) -> bool:
    n = _interleaved_blocks(blocks, fr)
    return n[0] >= 1 and all(k >= 1 for k, f in zip(n[1:], fr[1:]) if f > 0)


def _too_short(n: int, need: int, cfg: SplitConfig) -> RnnlensError:
    other = "contiguous" if cfg.layout == "interleaved" else "interleaved"
    return RnnlensError(
        f"text of {n} characters is too short for the {cfg.layout} split {cfg.fractions} with batch size "
        f"{cfg.batch_size} and seq_len {cfg.seq_len}: it needs at least {need}; use a longer text, a smaller "
        f"--batch-size/--seq-len, or --layout {other}"
    )


def _make_interleaved(ids: np.ndarray, cfg: SplitConfig) -> dict[str, Split]:
    B, S, fr = cfg.batch_size, cfg.seq_len, cfg.fractions
    blocks = (len(ids) - 1) // (B * S)  # the last character is only a target: a text of k*B*S keeps k-1 blocks
    if not _interleaved_ok(blocks, fr):
        need = next(k for k in range(1, 10**7) if _interleaved_ok(k, fr))
        raise _too_short(len(ids), need * B * S + 1, cfg)
    L = blocks * S
    whole = _rows("all", ids, 0, B, L)
    counts = _interleaved_blocks(blocks, fr)
    out: dict[str, Split] = {}
    col = 0
    for name, k in zip(SPLIT_NAMES, counts):
        a, b = col, col + k * S
        out[name] = Split(name, whole.x[:, a:b].copy(), whole.y[:, a:b].copy(), whole.row_starts + a)
        col = b
    return out


def _contiguous_parts(n: int, fr: tuple[float, float, float]) -> tuple[int, int, int]:
    """Lengths in characters of the three consecutive parts of an n-character text."""
    a = math.floor(fr[0] * n + _EPS)
    b = math.floor(fr[1] * n + _EPS) if fr[2] > 0 else n - a
    return a, b, n - a - b


def _contiguous_ok(n: int, cfg: SplitConfig) -> bool:
    B, S = cfg.batch_size, cfg.seq_len
    parts = _contiguous_parts(n, cfg.fractions)
    return parts[0] >= B * S and all(p >= B for p, f in zip(parts[1:], cfg.fractions[1:]) if f > 0)


def _make_contiguous(ids: np.ndarray, cfg: SplitConfig) -> dict[str, Split]:
    B = cfg.batch_size
    n = len(ids)
    if not _contiguous_ok(n, cfg):
        # Parts grow monotonically with n (up to floor effects), so a doubling then bisection search works.
        hi = max(n, 1)
        while not _contiguous_ok(hi, cfg):
            hi *= 2
        lo = hi // 2
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _contiguous_ok(mid, cfg) else (mid, hi)
        raise _too_short(n, hi, cfg)
    out: dict[str, Split] = {}
    start = 0
    for name, part in zip(SPLIT_NAMES, _contiguous_parts(n, cfg.fractions)):
        length = min(part // B, (n - 1 - start) // B)  # the text's last character is only a target
        out[name] = _rows(name, ids, start, B, length)
        start += part
    return out


def make_splits(ids: np.ndarray, cfg: SplitConfig) -> dict[str, Split]:
    """Train/val/test splits (keys ``"train"``, ``"val"``, ``"test"``) of an id stream.

    A fraction of 0 gives an empty split of shape (B, 0). Raises RnnlensError when the text is too short
    for one full B x S train block, or for a non-empty val/test split whose fraction is > 0.
    """
    arr = _as_ids(ids)
    if cfg.layout == "interleaved":
        return _make_interleaved(arr, cfg)
    return _make_contiguous(arr, cfg)


def stream_split(ids: np.ndarray, batch_size: int, name: str = "text") -> Split:
    """A whole text as one evaluation stream, cut into ``min(batch_size, len(ids) - 1)`` rows.

    Every character except the first is predicted from what precedes it in its row, so there is no
    wrap-around target. What is dropped: the first character is never a target, and the last
    ``(len(ids) - 1) % rows`` predictions are cut so that all rows have equal length (fewer than
    ``rows`` characters). With ``batch_size=1`` nothing but the first character is dropped.
    """
    arr = _as_ids(ids)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RnnlensError(f"batch_size must be a positive integer, got {batch_size!r}; pass e.g. 100")
    m = len(arr) - 1
    if m < 1:
        raise RnnlensError(f"text of {len(arr)} character(s) has nothing to predict; pass at least 2 characters")
    rows = min(batch_size, m)
    return _rows(name, arr, 0, rows, m // rows)
