"""Counting for the Kneser-Ney n-gram model: every statistic of every order from one suffix sort.

The training streams are laid out as one padded text ``P = [S] s0 [S] s1 [S] ... [S]*(order)`` where
``S = K`` is a separator symbol that never occurs in a stream. Every position of ``P`` is sorted by the
``order`` symbols that start there (packed into 64-bit words, one ``np.lexsort``); the longest common
prefix (LCP) of sorted neighbours then gives, for every length ``L = 1..order`` at once, the distinct
L-grams as runs of neighbours with ``LCP >= L``. Grams that contain ``S`` are not counted, so no n-gram
spans two streams. From the runs, with numpy only:

* raw counts ``c(g)`` (run lengths),
* continuation counts ``a(g)`` = the number of distinct symbols seen just left of ``g``, where "start of a
  stream" counts as one more such symbol (like KenLM's ``<s>``); every counted gram has ``a >= 1``,
* counts of counts and the three modified Kneser-Ney discounts per order (:func:`discounts`),
* per context the total, and the number of followers with adjusted count 1, 2, 3+ (the backoff weight).

Storage is compact because most long grams occur once. A gram that occurs once, at ``P[p:p+L]``, has one
follower (``P[p+L]``, if that is not ``S``), one left neighbour (``P[p-1]``), backoff weight ``D1`` of the
next order and a follower probability mass of ``1 - D1``: all of it follows from ``p`` and the text.
So only *explicit* grams are tabled: those seen at least twice, every unigram, and the "frontier" grams
seen once whose prefix or suffix was seen at least twice (the set is closed under prefix and suffix).
For WP train (2.6M chars, order 21) that is 7.3M table rows instead of about 30M.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Discounts used when the counts of counts cannot give valid ones (tiny texts): KenLM's fallback values.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


@dataclass
class OrderTable:
    """The explicit grams of one length L (order L), in lexicographic order; E rows.

    fwd_keys: (E,) int64, sorted, ``prefix_row * K + last symbol`` (prefix = the gram without its last
        symbol, a row of order L-1; 0 for L = 1): finds a follower of a context.
    rev_keys: (E,) int64, sorted, ``suffix_row * K + first symbol``; rev_rows: (E,) int64 the row of each
        rev key: extends a context one symbol to the left.
    alpha: (E,) float64, the discounted part ``max(adj - D(adj), 0) / total(prefix)`` of P(last | prefix).
    gamma: (E,) float64, the backoff weight of the gram used as a context (1.0 when nothing followed it).
    pos: (E,) int64, start of the gram in the padded text when it occurs once, else -1.
    """

    fwd_keys: np.ndarray
    rev_keys: np.ndarray
    rev_rows: np.ndarray
    alpha: np.ndarray
    gamma: np.ndarray
    pos: np.ndarray

    FIELDS = ("fwd_keys", "rev_keys", "rev_rows", "alpha", "gamma", "pos")


@dataclass
class CountResult:
    """Everything the model needs: per-order tables (index 0 = unigrams), discounts, the padded text."""

    tables: list[OrderTable]
    discounts: np.ndarray  # (order, 3) float64: D1, D2, D3+ of each order (row L-1 = order L)
    discount_fallback: np.ndarray  # (order,) bool: True where FALLBACK_DISCOUNTS were used
    root_gamma: float  # backoff weight of the empty context onto the uniform distribution
    text: np.ndarray  # padded training text P (see module docstring), dtype int64


def discounts(adjusted: np.ndarray) -> tuple[tuple[float, float, float], bool]:
    """Chen & Goodman's modified KN discounts (D1, D2, D3+) from one order's adjusted counts.

    ``Y = n1 / (n1 + 2 n2)``, ``D_k = k - (k+1) Y n_{k+1} / n_k``. When any of n1, n2, n3 is zero
    (the formula divides by zero) or a result falls outside ``(0, k]`` (a discount <= 0 could give a
    context a backoff weight of 0 and an unseen character probability 0), all three fall back to
    :data:`FALLBACK_DISCOUNTS`; the flag says so.
    """
    n = np.bincount(np.minimum(adjusted, 5), minlength=6)[1:5].astype(np.float64)  # n1..n4
    if n[0] == 0 or n[1] == 0 or n[2] == 0:
        return FALLBACK_DISCOUNTS, True
    y = n[0] / (n[0] + 2 * n[1])
    d = tuple(float(k - (k + 1) * y * n[k] / n[k - 1]) for k in (1, 2, 3))
    if not all(0 < d[k - 1] <= k for k in (1, 2, 3)):
        return FALLBACK_DISCOUNTS, True
    return d, False  # type: ignore[return-value]


def padded_text(streams: list[np.ndarray], vocab_size: int, order: int) -> np.ndarray:
    """``[S] s0 [S] s1 ... [S]`` followed by ``order`` more separators; S = vocab_size."""
    sep = np.array([vocab_size], dtype=np.int64)
    parts: list[np.ndarray] = [sep]
    for s in streams:
        parts += [np.asarray(s, dtype=np.int64), sep]
    parts.append(np.full(order, vocab_size, dtype=np.int64))
    return np.concatenate(parts)


def _sort_positions(text: np.ndarray, n_pos: int, order: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions 0..n_pos-1 sorted by their next ``order`` symbols, and the LCP (capped) of neighbours.

    Returns sa (n_pos,) int64 and lcp (n_pos,) int64 with lcp[0] = -1 and lcp[j] = common prefix length
    of the grams at sa[j-1] and sa[j], capped at ``order``.
    """
    bits = max(1, int(vocab_size).bit_length())  # symbols 0..K fit
    per = 64 // bits
    words = []
    for w0 in range(0, order, per):
        key = np.zeros(n_pos, dtype=np.uint64)
        for j in range(w0, w0 + per):  # symbols past `order` pack as 0: they never shorten a common prefix
            sym = text[j:j + n_pos] if j < order else np.zeros(n_pos, dtype=np.int64)
            key = (key << np.uint64(bits)) | sym.astype(np.uint64)
        words.append(key)
    sa = np.lexsort(words[::-1]).astype(np.int64)
    lcp = np.zeros(n_pos, dtype=np.int64)
    still = np.ones(n_pos - 1, dtype=bool)
    mask = np.uint64((1 << bits) - 1)
    for key in words:
        ks = key[sa]
        diff = ks[1:] ^ ks[:-1]
        seen = np.zeros(n_pos - 1, dtype=bool)
        for j in range(per):  # leading equal symbol fields, most significant first
            seen |= ((diff >> np.uint64(bits * (per - 1 - j))) & mask) != 0
            lcp[1:] += still & ~seen
        still &= diff == 0
    np.minimum(lcp, order, out=lcp)
    lcp[0] = -1
    return sa, lcp


def count(streams: list[np.ndarray], vocab_size: int, order: int) -> CountResult:
    """All tables of an interpolated modified Kneser-Ney model of ``order`` (= n + 1) over ``streams``.

    Orders below ``order`` use continuation counts, the top order raw counts. Streams must hold ids in
    0..vocab_size-1 and at least one symbol in total (the caller checks).
    """
    K = vocab_size
    text = padded_text(streams, K, order)
    n_pos = len(text) - order  # every start position whose window lies inside the text
    nxt = np.flatnonzero(text == K)  # separator positions; vlen = symbols before the next separator
    vlen = np.minimum(nxt[np.searchsorted(nxt, np.arange(len(text)))] - np.arange(len(text)), order)
    sa, lcp = _sort_positions(text, n_pos, order, K)
    isa = np.empty(n_pos + 1, dtype=np.int64)
    isa[sa] = np.arange(n_pos)
    isa[n_pos] = 0  # a separator: never the start of a counted gram
    nxt_rank = isa[sa + 1]  # (n_pos,) sorted index of the position right after each sorted position
    del isa
    vlen_sa = vlen[sa]  # (n_pos,) valid length of the gram at each sorted index
    vlen_next = vlen[sa + 1]  # valid length after the first symbol (for left-extension grams)

    tables: list[OrderTable] = []
    disc = np.zeros((order, 3))
    fallback = np.zeros(order, dtype=bool)
    root_gamma = 1.0
    prev_gid = np.zeros(n_pos, dtype=np.int64)  # gram id per sorted index at length L-1 (length 0: root)
    prev_count = np.array([n_pos], dtype=np.int64)  # raw counts of the length L-1 grams (root: "many")
    prev_eid = np.zeros(1, dtype=np.int64)  # explicit row of each length L-1 gram (-1 if not explicit)
    prev_tab: OrderTable | None = None
    for L in range(1, order + 1):
        new_run = lcp < L
        valid = vlen_sa >= L
        gid = np.cumsum(new_run & valid) - 1  # gram id at valid sorted indices (lexicographic)
        run_starts = np.flatnonzero(new_run)
        run_len = np.diff(np.append(run_starts, n_pos))
        keep = valid[run_starts]
        st = run_starts[keep]  # (G,) first sorted index of each distinct valid L-gram
        c = run_len[keep]  # raw counts
        pos = sa[st]
        G = len(st)
        prefix = prev_gid[st]
        suffix = prev_gid[nxt_rank[st]] if L > 1 else np.zeros(G, dtype=np.int64)
        if L < order:
            # a(g): distinct (L+1)-grams x+g, x any symbol or S (stream start), counted once per run.
            ext = np.flatnonzero((lcp < L + 1) & (vlen_next >= L))
            adj = np.bincount(gid[nxt_rank[ext]], minlength=G)
        else:
            adj = c
        d, fb = discounts(adj)
        disc[L - 1], fallback[L - 1] = d, fb
        dvec = np.array((0.0,) + d)
        disc_of = dvec[np.minimum(adj, 3)]
        # Context statistics of the prefixes (length L-1 grams): total and followers with adj 1, 2, 3+.
        n_prev = len(prev_count)
        total = np.bincount(prefix, weights=adj, minlength=n_prev)
        mass = np.bincount(prefix, weights=disc_of, minlength=n_prev)  # D1*N1 + D2*N2 + D3*N3+
        gamma_prev = np.divide(mass, total, out=np.ones(n_prev), where=total > 0)
        alpha = np.maximum(adj - disc_of, 0.0) / total[prefix]
        if L == 1:
            root_gamma = float(gamma_prev[0])
        else:
            prev_tab.gamma = gamma_prev[prev_eid >= 0]  # type: ignore[union-attr]
        explicit = (c >= 2) | (prev_count[prefix] >= 2) | (prev_count[suffix] >= 2)
        eid = np.cumsum(explicit) - 1
        eid[~explicit] = -1
        epos = pos[explicit]
        fwd = prev_eid[prefix[explicit]] * K + text[epos + L - 1]
        rev = prev_eid[suffix[explicit]] * K + text[epos]
        order_rev = np.argsort(rev, kind="stable")
        once_pos = np.where(c[explicit] == 1, epos, -1)
        tab = OrderTable(fwd, rev[order_rev], order_rev.astype(np.int64), alpha[explicit],
                         np.ones(int(explicit.sum())), once_pos)
        tables.append(tab)
        prev_gid, prev_count, prev_eid, prev_tab = gid, c, eid, tab
    return CountResult(tables, disc, fallback, root_gamma, text)
