"""What counts as a word character, punctuation, or a word boundary, per vocabulary id (for the oracles).

The paper does not define these; the choices (documented in docs/errors.md):

* **word characters**: letters and digits. For the ``byte`` unit, ASCII letters and digits and every byte
  >= 0x80 (the bytes of a UTF-8 encoded non-ASCII letter such as ``é``); for the ``char`` unit, the code
  points with ``str.isalnum()``. The apostrophe is *not* a word character (``don't`` is ``don`` + ``t``).
* **punctuation**: ASCII ``string.punctuation`` (``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``); for the ``char``
  unit also every non-ASCII code point of Unicode category P* or S* (e.g. ``“`` ``—``).
* **word openers** (the word-model oracle: an error right after one of these starts a word): space, tab,
  ``\\n``, ``\\r``, the quotes ``"`` ``'`` `````; for the ``char`` unit also ``“ ” ‘ ’ «  »``.

Word spans are maximal runs of word characters in the text.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass

import numpy as np

from ..exceptions import RnnlensError
from .text import Vocab

_ASCII_PUNCT = frozenset(string.punctuation)
_OPENERS = frozenset(" \t\n\r\"'`")
_UNICODE_OPENERS = frozenset("“”‘’«»")


@dataclass(frozen=True)
class CharClasses:
    """Per vocabulary id (K,) booleans: ``word`` (letter/digit), ``punct`` and ``opener``."""

    word: np.ndarray
    punct: np.ndarray
    opener: np.ndarray

    @classmethod
    def for_vocab(cls, vocab: Vocab) -> "CharClasses":
        word, punct, opener = [], [], []
        for s in vocab.symbols:
            if vocab.unit == "byte" and s >= 0x80:
                word.append(True), punct.append(False), opener.append(False)
                continue
            ch = chr(s)
            word.append(ch.isalnum())
            ascii_ = s < 0x80
            punct.append(ch in _ASCII_PUNCT or (not ascii_ and unicodedata.category(ch)[0] in "PS"))
            opener.append(ch in _OPENERS or (vocab.unit == "char" and ch in _UNICODE_OPENERS))
        return cls(np.array(word, bool), np.array(punct, bool), np.array(opener, bool))


def ids_to_str(ids: np.ndarray) -> str:
    """A str with one character per id (chr(id)), for fast substring search and regex over id streams."""
    a = np.asarray(ids, dtype=np.int64).reshape(-1)
    if a.size and (a.min() < 0 or a.max() >= 0xD800):
        raise RnnlensError("ids must be in 0..55295 for word analysis; this vocabulary is too large")
    return a.astype("<u4").tobytes().decode("utf-32-le")


@dataclass
class WordSpans:
    """For each text offset i: ``start[i]``/``end[i]`` of the word containing it (end exclusive), -1 outside words."""

    start: np.ndarray
    end: np.ndarray

    @classmethod
    def of(cls, text: np.ndarray, classes: CharClasses) -> "WordSpans":
        is_word = classes.word[np.asarray(text, dtype=np.int64)]
        n = len(is_word)
        prev = np.concatenate([[False], is_word[:-1]])
        nxt = np.concatenate([is_word[1:], [False]])
        starts = np.flatnonzero(is_word & ~prev)
        ends = np.flatnonzero(is_word & ~nxt) + 1
        start = np.full(n, -1, dtype=np.int64)
        end = np.full(n, -1, dtype=np.int64)
        k = np.searchsorted(starts, np.arange(n), side="right") - 1
        inside = is_word & (k >= 0)
        start[inside] = starts[k[inside]]
        end[inside] = ends[k[inside]]
        return cls(start, end)
