"""Interpolated modified Kneser-Ney character n-gram model (the paper's n-gram baseline, issue 4).

As in the paper, an "n-gram" model with n conditions on the last n characters: its order is n + 1.

For a context h (the last k-1 characters) and next character w, with h' = h without its first character:

    P_k(w | h) = max(a(hw) - D_k(a(hw)), 0) / sum_v a(hv) + gamma(h) * P_{k-1}(w | h')
    gamma(h)   = (D_k1 N1(h) + D_k2 N2(h) + D_k3 N3+(h)) / sum_v a(hv)
    P_0(w)     = 1 / K    (uniform over the K vocabulary symbols)

``a`` is the raw count at the top order and the continuation count (distinct left neighbours, stream
start counting as one) below it; ``N1/N2/N3+(h)`` count the followers of h with ``a`` = 1, 2, >= 3;
``D_k1..3`` are the discounts of order k (:func:`rnnlens.ngram.counts.discounts`). A context never seen
followed by a character has ``gamma = 1`` (the model backs off to the shorter context at no cost), so
every distribution sums to 1 and every vocabulary symbol has probability > 0.

Scoring walks each position's context right to left one character at a time (a suffix trie held as
sorted key arrays searched with ``np.searchsorted``), vectorised over all positions at once. The tables
and their compaction are described in :mod:`rnnlens.ngram.counts`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import atomic_write
from rnnlens.ngram.counts import OrderTable, count

MAX_N = 64
FORMAT = "rnnlens-kn-ngram"
FORMAT_VERSION = 1
_CHUNK = 1 << 15  # contexts per block in next_distributions: bounds memory at 32K x K floats


@dataclass(frozen=True)
class NGramConfig:
    """n: context length in characters (the paper's "n-gram"); the model's order is n + 1."""

    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            raise RnnlensError(f"n-gram context length n must be an integer in 1..{MAX_N}, got {self.n!r}; "
                               "pass e.g. --n 20 (the paper's 20-gram)")

    @property
    def order(self) -> int:
        """Number of characters in the longest n-gram: context plus predicted character."""
        return self.n + 1


def row_streams(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The B contiguous text streams of a split: row r is ``x[r]`` then its last target ``y[r, -1]``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise RnnlensError(f"x and y must both be (B, N), got {x.shape} and {y.shape}; pass a Split's x and y")
    if x.shape[1] == 0:
        return []
    return [np.concatenate([x[r], y[r, -1:]]).astype(np.int64) for r in range(x.shape[0])]


def _lookup(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``query`` in the sorted ``keys`` and whether each was found."""
    if not len(keys):
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    j = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return j, keys[j] == query


def _check_ids(arr: np.ndarray, K: int, what: str, allow_pad: bool = False) -> np.ndarray:
    a = np.asarray(arr)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise RnnlensError(f"{what} must be integer ids, got dtype {a.dtype}; encode the text with the vocabulary")
    a = a.astype(np.int64, copy=False)
    lo = -1 if allow_pad else 0
    if a.size and (a.min() < lo or a.max() >= K):
        raise RnnlensError(f"{what} must be ids in {lo}..{K - 1}, found {int(a.min())}..{int(a.max())}; "
                           "encode the text with the model's vocabulary")
    return a


class KneserNeyLM:
    """A fitted model: per-order tables, discounts and the training text (see module docstring)."""

    def __init__(self, cfg: NGramConfig, vocab_size: int, tables: list[OrderTable], discounts: np.ndarray,
                 discount_fallback: np.ndarray, root_gamma: float, text: np.ndarray,
                 unit: str | None = None, symbols: Sequence[int] | None = None, newline: str = "keep") -> None:
        self.cfg = cfg
        self.vocab_size = int(vocab_size)
        self.tables = tables
        self.discounts = discounts  # (order, 3): row L-1 holds D1, D2, D3+ of order L
        self.discount_fallback = discount_fallback
        self.root_gamma = float(root_gamma)
        self.text = text
        self.unit = unit
        self.symbols = None if symbols is None else tuple(int(s) for s in symbols)
        self.newline = newline  # how a str is read by score/full_scores (with ``unit``)
        uni = np.zeros(self.vocab_size)
        uni[tables[0].fwd_keys] = tables[0].alpha
        self._unigram = uni + self.root_gamma / self.vocab_size  # (K,) P_1(w)

    @property
    def n(self) -> int:
        return self.cfg.n

    @property
    def order(self) -> int:
        """Characters in the longest n-gram: context plus predicted character (n + 1)."""
        return self.cfg.order

    # ----- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, ids: np.ndarray, vocab_size: int, cfg: NGramConfig, *, unit: str | None = None,
            symbols: Sequence[int] | None = None, newline: str = "keep") -> "KneserNeyLM":
        """Fit on one training stream of int64 ids 0..vocab_size-1."""
        return cls.fit_streams([np.asarray(ids).reshape(-1)], vocab_size, cfg, unit=unit, symbols=symbols,
                               newline=newline)

    @classmethod
    def fit_streams(cls, streams: Sequence[np.ndarray], vocab_size: int, cfg: NGramConfig, *,
                    unit: str | None = None, symbols: Sequence[int] | None = None,
                    newline: str = "keep") -> "KneserNeyLM":
        """Fit on several independent streams: no n-gram spans two of them (see ``row_streams``)."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
            raise RnnlensError(f"vocab_size must be a positive integer, got {vocab_size!r}; pass len(vocab)")
        if symbols is not None and len(symbols) != vocab_size:
            raise RnnlensError(f"{len(symbols)} vocabulary symbols given for vocab_size {vocab_size}; "
                               "pass the vocabulary the ids were encoded with")
        checked = [_check_ids(s, int(vocab_size), "training ids").reshape(-1) for s in streams]
        checked = [s for s in checked if s.size]
        if not checked:
            raise RnnlensError("the n-gram training text is empty; train on a non-empty split or file")
        res = count(checked, int(vocab_size), cfg.order)
        return cls(cfg, int(vocab_size), res.tables, res.discounts, res.discount_fallback, res.root_gamma,
                   res.text, unit, symbols, newline)

    # ----- the context walk ----------------------------------------------------------------------
    def _walk(self, ctx: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """For L = 1..n: the contexts whose last L characters were seen in training.

        ctx: (..., n) ids, -1 = no character; flattened to M contexts. Yields (L, idx, node, spos):
        idx (A,) the surviving contexts, node (A,) their table row of order L when seen at least twice
        (else -1), spos (A,) their start in the training text when seen once (else -1).
        """
        n, K = self.n, self.vocab_size
        M = int(np.prod(ctx.shape[:-1]))
        idx = np.arange(M)
        node = np.zeros(M, dtype=np.int64)  # the root
        spos = np.full(M, -1, dtype=np.int64)
        for L in range(1, n + 1):
            sym = ctx[..., n - L].reshape(-1)[idx]
            ok = sym >= 0
            once = spos >= 0
            new_node = np.full(len(idx), -1, dtype=np.int64)
            new_spos = np.full(len(idx), -1, dtype=np.int64)
            # Seen once: the only left neighbour is the text's.
            s = once & ok
            hit = s.copy()
            hit[s] = self.text[spos[s] - 1] == sym[s]
            new_spos[hit] = spos[hit] - 1
            # Seen at least twice: look up suffix row * K + symbol among the order-L rev keys.
            m = ~once & ok
            tab = self.tables[L - 1]
            j, found = _lookup(tab.rev_keys, node[m] * K + sym[m])
            rows = tab.rev_rows[j[found]]
            mi = np.flatnonzero(m)[found]
            p = tab.pos[rows]
            new_node[mi] = np.where(p < 0, rows, -1)
            new_spos[mi] = p
            hit[mi] = True
            idx, node, spos = idx[hit], new_node[hit], new_spos[hit]
            if not idx.size:
                return
            yield L, idx, node, spos

    def _gamma(self, L: int, node: np.ndarray, spos: np.ndarray) -> np.ndarray:
        """Backoff weights of contexts of length L (a context seen once: D1 of order L+1 if followed)."""
        g = np.empty(len(node))
        once = spos >= 0
        g[~once] = self.tables[L - 1].gamma[node[~once]]
        followed = self.text[spos[once] + L] != self.vocab_size
        g[once] = np.where(followed, self.discounts[L, 0], 1.0)
        return g

    def _child(self, L: int, node: np.ndarray, spos: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Discounted mass alpha of (context of length L) + w, and whether that (L+1)-gram was seen."""
        alpha = np.zeros(len(node))
        found = np.zeros(len(node), dtype=bool)
        once = spos >= 0
        found[once] = self.text[spos[once] + L] == w[once]
        alpha[found] = 1.0 - self.discounts[L, 0]
        m = np.flatnonzero(~once)
        tab = self.tables[L]
        j, f = _lookup(tab.fwd_keys, node[m] * self.vocab_size + w[m])
        alpha[m[f]] = tab.alpha[j[f]]
        found[m[f]] = True
        return alpha, found

    def _score(self, ctx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Natural-log P(w | ctx) and matched context length for (..., n) contexts and (...) targets."""
        shape = w.shape
        w = w.reshape(-1)
        p = self._unigram[w]
        matched = np.zeros(len(w), dtype=np.int64)
        for L, idx, node, spos in self._walk(ctx):
            alpha, found = self._child(L, node, spos, w[idx])
            p[idx] = alpha + self._gamma(L, node, spos) * p[idx]
            matched[idx[found]] = L
        return np.log(p).reshape(shape), matched.reshape(shape)

    # ----- public scoring ------------------------------------------------------------------------
    def _windows(self, x: np.ndarray) -> np.ndarray:
        """(..., N) ids -> (..., N, n) view: the last n ids up to and including each position, -1 padded."""
        pad = np.full(x.shape[:-1] + (self.n - 1,), -1, dtype=np.int64)
        return np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, x], axis=-1), self.n, axis=-1)

    def score_rows(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score y[r, j] given x[r, :j+1] (its last n ids); returns logprob (B, N) nats, matched (B, N)."""
        x = _check_ids(x, self.vocab_size, "inputs x")
        y = _check_ids(y, self.vocab_size, "targets y")
        if x.ndim != 2 or x.shape != y.shape:
            raise RnnlensError(f"x and y must both be (B, N), got {x.shape} and {y.shape}; pass a Split's x and y")
        return self._score(self._windows(x), y)

    def score_stream(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score each ids[i], i >= 1, given ids[:i]; arrays of length len(ids) - 1."""
        ids = _check_ids(ids, self.vocab_size, "ids").reshape(-1)
        if ids.size < 2:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return self._score(self._windows(ids[:-1]), ids[1:])

    def next_distributions(self, contexts: np.ndarray) -> np.ndarray:
        """(M, n) context ids (most recent last; -1 = no character, on the left) -> (M, K) probabilities.

        A context longer than n keeps its last n ids; a shorter one is padded on the left.
        """
        c = _check_ids(contexts, self.vocab_size, "contexts", allow_pad=True)
        if c.ndim != 2:
            raise RnnlensError(f"contexts must be (M, n), got shape {c.shape}; stack one row per context")
        if c.shape[1] >= self.n:
            c = c[:, c.shape[1] - self.n:]
        else:
            c = np.concatenate([np.full((len(c), self.n - c.shape[1]), -1, dtype=np.int64), c], axis=1)
        return np.concatenate([self._dists(c[i:i + _CHUNK]) for i in range(0, len(c), _CHUNK)]
                              or [np.zeros((0, self.vocab_size))])

    def _dists(self, ctx: np.ndarray) -> np.ndarray:
        K = self.vocab_size
        out = np.tile(self._unigram, (len(ctx), 1))  # (M, K)
        for L, idx, node, spos in self._walk(ctx):
            out[idx] *= self._gamma(L, node, spos)[:, None]
            once = spos >= 0
            nxt = self.text[spos[once] + L]
            f = nxt != K
            out[idx[once][f], nxt[f]] += 1.0 - self.discounts[L, 0]
            tab = self.tables[L]
            rows, nd = idx[~once], node[~once]
            lo = np.searchsorted(tab.fwd_keys, nd * K)
            hi = np.searchsorted(tab.fwd_keys, nd * K + K)
            cnt = hi - lo
            ent = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt - lo, cnt)
            out[np.repeat(rows, cnt), tab.fwd_keys[ent] % K] += tab.alpha[ent]
        return out

    def context_backoffs(self, contexts: np.ndarray) -> np.ndarray:
        """(M, n) contexts -> (M,) backoff weight gamma of each full context (1.0 if never followed).

        Used by the ARPA export; rows whose context (after dropping -1 padding) was never seen get 1.0.
        """
        c = _check_ids(contexts, self.vocab_size, "contexts", allow_pad=True)
        length = (c >= 0).sum(axis=1)
        g = np.ones(len(c))
        for L, idx, node, spos in self._walk(c):
            last = length[idx] == L
            g[idx[last]] = self._gamma(L, node[last], spos[last])
        return g

    # ----- text level (kenlm's Model.score / full_scores) ------------------------------------------
    @classmethod
    def from_text(cls, text: str, n: int = 20, unit: str = "byte", newline: str = "keep") -> "KneserNeyLM":
        """Fit on a string (one stream), its vocabulary built from it; ``n`` characters of context."""
        from rnnlens.data.text import TextConfig, Vocab, text_to_symbols
        symbols = text_to_symbols(text, TextConfig(unit=unit, newline=newline))  # type: ignore[arg-type]
        if not symbols.size:
            raise RnnlensError("text is empty; fit the n-gram model on some text", field="text")
        vocab = Vocab.build(symbols, unit)  # type: ignore[arg-type]
        return cls.fit(vocab.encode(symbols), len(vocab), NGramConfig(n), unit=unit, symbols=vocab.symbols,
                       newline=newline)

    @classmethod
    def from_run(cls, run, n: int = 20) -> "KneserNeyLM":
        """Fit on the train split of a run (an ``rl.Run`` or a run folder), with the run's vocabulary; each
        train row is a separate stream, as for the paper's Table 2."""
        if not hasattr(run, "splits"):
            from rnnlens.api import load
            run = load(run)
        train = run.splits()["train"]
        cfg = run.config
        return cls.fit_streams(row_streams(train.x, train.y), len(cfg.vocab), NGramConfig(n), unit=cfg.vocab.unit,
                               symbols=cfg.vocab.symbols, newline=cfg.text.newline)

    def full_scores(self, text: str) -> Iterator[tuple[float, int, bool]]:
        """For every character of ``text``: (natural-log probability, matched context length, oov).

        The log base is e (nats; kenlm's are base 10: divide by ln 10). The first character is scored with no
        context. The matched context length is the longest context ``h`` (0..n characters) for which ``h`` +
        the character was seen in training (kenlm reports that n-gram's length, one more). A character outside
        the vocabulary (oov) has log-probability -inf, and no context reaches back across it.
        """
        ids, oov = self._text_ids(text)
        if not ids.size:
            return
        prev = np.concatenate([[-1], ids[:-1]])  # the previous character of each; -1: none
        logp, matched = self._score(self._windows(prev), np.where(oov, 0, ids))
        logp[oov], matched[oov] = -np.inf, 0
        for lp, m, o in zip(logp.tolist(), matched.tolist(), oov.tolist()):
            yield lp, m, o

    def score(self, text: str) -> float:
        """Total natural-log probability (base e, nats) of every character of ``text``, the first with no
        context: the sum of :meth:`full_scores`; -inf if a character is outside the vocabulary."""
        return float(sum(lp for lp, _, _ in self.full_scores(text)))

    def _text_ids(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """ids of a string (-1 for characters outside the vocabulary) and the (N,) oov mask."""
        from rnnlens.data.text import TextConfig, text_to_symbols
        if self.symbols is None or self.unit is None:
            raise RnnlensError("this n-gram model has no vocabulary (fitted on ids); fit it with from_text or "
                               "from_run to score text")
        symbols = text_to_symbols(text, TextConfig(unit=self.unit, newline=self.newline))  # type: ignore[arg-type]
        table = np.asarray(self.symbols, dtype=np.int64)
        j = np.minimum(np.searchsorted(table, symbols), len(table) - 1)
        oov = table[j] != symbols
        return np.where(oov, -1, j).astype(np.int64), oov

    # ----- persistence ---------------------------------------------------------------------------
    def header(self) -> dict:
        """The JSON header stored with the arrays."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "n": self.n, "order": self.cfg.order,
                "vocab_size": self.vocab_size, "unit": self.unit,
                "symbols": None if self.symbols is None else list(self.symbols), "newline": self.newline}

    def save(self, path: str | os.PathLike) -> None:
        """Write one .npz (no pickles): the JSON header as bytes, the text and every table; atomic."""
        arrays: dict[str, np.ndarray] = {
            "header": np.frombuffer(json.dumps(self.header()).encode(), dtype=np.uint8),
            "text": self.text.astype(np.uint8 if self.vocab_size <= 255 else np.int32),
            "discounts": self.discounts, "discount_fallback": self.discount_fallback,
            "root_gamma": np.array([self.root_gamma]),
        }
        for L, tab in enumerate(self.tables, start=1):
            for name in OrderTable.FIELDS:
                a = getattr(tab, name)
                arrays[f"o{L}_{name}"] = a.astype(np.int32) if name in ("rev_rows", "pos") else a

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KneserNeyLM":
        """Read a model written by :meth:`save`; RnnlensError (one line) if missing, corrupt or foreign."""
        from rnnlens.ngram.files import load_arrays
        hdr, arrays = load_arrays(path)
        cfg = NGramConfig(int(hdr["n"]))
        tables = [OrderTable(**{f: arrays[f"o{L}_{f}"] for f in OrderTable.FIELDS})
                  for L in range(1, cfg.order + 1)]
        return cls(cfg, int(hdr["vocab_size"]), tables, arrays["discounts"], arrays["discount_fallback"],
                   float(arrays["root_gamma"][0]), arrays["text"], hdr["unit"], hdr["symbols"],
                   hdr.get("newline", "keep"))

    def to_arpa(self, path: str | os.PathLike, max_order: int = 6, force: bool = False) -> None:
        """Write the model as an ARPA back-off file (see :mod:`rnnlens.ngram.files` for the token names)."""
        from rnnlens.ngram.files import write_arpa
        if self.cfg.order > max_order and not force:
            raise RnnlensError(f"an ARPA file of order {self.cfg.order} lists every n-gram up to that length and "
                               f"can be huge; the limit is {max_order}: raise max_order or pass force=True")
        write_arpa(self, path)


__all__ = ["MAX_N", "NGramConfig", "KneserNeyLM", "row_streams"]
