"""Matching curly braces in C-like code, and how well a model predicts a ``}`` by its distance to the ``{``.

The paper (Figure 5) plots, for Linux kernel code, the mean probability a model gives each closing
brace against the distance to its opening brace: the LSTM's lead over the n-gram grows up to about 60
characters, then stays flat.

Matching is a small C lexer run over the whole text (ids or symbols: only ASCII characters matter):

* braces count only in code: not inside ``"..."`` string literals, ``'...'`` character literals,
  ``/* ... */`` block comments or ``// ...`` line comments;
* a backslash inside a string or character literal escapes the next character (``"\\""``, ``'\\''``);
* a backslash right before a newline continues a ``//`` comment onto the next line (C's line splicing);
* an unterminated string or character literal ends at the end of its line (C forbids raw newlines in
  literals; this keeps one stray quote from swallowing the rest of the file);
* a ``}`` with no open ``{`` is *unmatched* (it has no distance), and so is every ``{`` still open at the end.

Preprocessor branches (``#if 0 ... #endif``) are not interpreted: braces in them count like any others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import RnnlensError

_DQ, _SQ, _SLASH, _STAR, _BSL, _NL, _LB, _RB = (ord(c) for c in "\"'/*\\\n{}")
_SPECIAL = np.array([_DQ, _SQ, _SLASH, _STAR, _BSL, _NL, _LB, _RB], dtype=np.int64)
_CODE, _STRING, _CHAR, _LINE, _BLOCK = range(5)

# Default distance buckets (characters from '{' to '}'): fine up to 100, coarser beyond.
DEFAULT_EDGES: tuple[int, ...] = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 150, 200, 300, 500, 1000)


@dataclass
class BraceMatch:
    """Result of :func:`match_braces` over a text of T symbols.

    close_pos: (M,) offset of every ``}`` in code, in text order.
    open_pos: (M,) offset of its matching ``{``, or -1 when the ``}`` is unmatched.
    unmatched_open: offsets of the ``{`` never closed.
    """

    close_pos: np.ndarray
    open_pos: np.ndarray
    unmatched_open: np.ndarray

    def distances(self, length: int) -> np.ndarray:
        """(length,) int64: at each matched ``}`` its distance to the ``{`` (close - open, >= 1), else -1."""
        out = np.full(length, -1, dtype=np.int64)
        ok = self.open_pos >= 0
        out[self.close_pos[ok]] = self.close_pos[ok] - self.open_pos[ok]
        return out


def match_braces(symbols: np.ndarray) -> BraceMatch:
    """Match the ``{``/``}`` of C code in ``symbols`` (byte values or code points), skipping literals and comments."""
    s = np.asarray(symbols, dtype=np.int64).reshape(-1)
    n = len(s)
    cand = np.flatnonzero(np.isin(s, _SPECIAL))  # only these characters can change the lexer's state
    sym = s[cand]
    state, skip_to = _CODE, -1
    stack: list[int] = []
    closes: list[int] = []
    opens: list[int] = []
    for i, c in zip(cand.tolist(), sym.tolist()):
        if i < skip_to:
            continue
        nxt = int(s[i + 1]) if i + 1 < n else -1
        if state == _CODE:
            if c == _LB:
                stack.append(i)
            elif c == _RB:
                closes.append(i)
                opens.append(stack.pop() if stack else -1)
            elif c == _DQ:
                state = _STRING
            elif c == _SQ:
                state = _CHAR
            elif c == _SLASH and nxt == _SLASH:
                state, skip_to = _LINE, i + 2
            elif c == _SLASH and nxt == _STAR:
                state, skip_to = _BLOCK, i + 2  # "/*/" does not close the comment
        elif state in (_STRING, _CHAR):
            if c == _BSL:
                skip_to = i + 2
            elif c == _NL or (c == _DQ and state == _STRING) or (c == _SQ and state == _CHAR):
                state = _CODE
        elif state == _LINE:
            if c == _BSL:
                if nxt == _NL:
                    skip_to = i + 2
                elif nxt == ord("\r") and i + 2 < n and int(s[i + 2]) == _NL:
                    skip_to = i + 3
            elif c == _NL:
                state = _CODE
        elif c == _STAR and nxt == _SLASH:  # _BLOCK
            state, skip_to = _CODE, i + 2
    return BraceMatch(np.asarray(closes, dtype=np.int64), np.asarray(opens, dtype=np.int64),
                      np.asarray(stack, dtype=np.int64))


def check_edges(edges: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Validated bucket edges: increasing integers >= 1."""
    e = tuple(int(v) for v in edges)
    if not e or e[0] < 1 or any(a >= b for a, b in zip(e, e[1:])):
        raise RnnlensError(f"brace distance buckets must be increasing integers >= 1, got {list(edges)}; "
                           "pass e.g. --brace-buckets 1,10,20,40,60,100,200")
    return e


def bucket_means(distance: np.ndarray, probs: dict[str, np.ndarray],
                 edges: tuple[int, ...] = DEFAULT_EDGES) -> list[dict]:
    """Mean probability per distance bucket ``[edges[i], edges[i+1])`` (the last bucket is open-ended).

    distance: (M,) distance of each ``}`` (entries < 1 are ignored); probs: model name -> (M,) probability
    each model gave that ``}``. Empty buckets are kept with count 0 and means None.
    """
    edges = check_edges(edges)
    d = np.asarray(distance, dtype=np.int64)
    idx = np.searchsorted(np.asarray(edges), d, side="right") - 1  # bucket index, -1 below the first edge
    out = []
    for b, lo in enumerate(edges):
        hi = edges[b + 1] if b + 1 < len(edges) else None
        sel = (idx == b) & (d >= 1)
        row: dict = {"lo": lo, "hi": hi, "count": int(sel.sum())}
        for name, p in probs.items():
            row[name] = float(np.mean(np.asarray(p)[sel])) if sel.any() else None
        out.append(row)
    return out
