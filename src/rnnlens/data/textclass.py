"""What counts as a word character, punctuation, or a word boundary, per vocabulary id (for the oracles).

The paper does not define these; the choices (documented in docs/errors.md):

* **word characters**: letters and digits. For the ``byte`` unit, ASCII letters and digits and every byte
  >= 0x80 (the bytes of a UTF-8 encoded non-ASCII letter such as ``é``); for the ``char`` unit, the code
  points with ``str.isalnum()``.
* **apostrophes** (``'``; for the ``char`` unit also ``’``): with ``apostrophe="word"`` (the default) an
  apostrophe with a letter on both sides (``don't``, ``Pierre's``) is part of the word: a word character, not
  punctuation and not a quote, so ``don't`` is one word. Every other apostrophe, and every apostrophe with
  ``apostrophe="quote"`` (the definition before issue 14: ``don't`` is ``don`` + ``t``), is a quote.
* **punctuation**: ASCII ``string.punctuation`` (``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``); for the ``char``
  unit also every non-ASCII code point of Unicode category P* or S* (e.g. ``“`` ``—``).
* **word openers** (the word-model oracle: an error right after one of these starts a word): space, tab,
  ``\\n``, ``\\r``, the quotes ``"`` ``'`` `````; for the ``char`` unit also ``“ ” ‘ ’ «  »``.

The classes of a *position* in a text (:meth:`CharClasses.at`) are those of its id, except for an apostrophe
inside a word. Word spans are maximal runs of word positions in the text.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, replace

import numpy as np

from ..exceptions import RnnlensError
from .text import Vocab

_ASCII_PUNCT = frozenset(string.punctuation)
_OPENERS = frozenset(" \t\n\r\"'`")
_UNICODE_OPENERS = frozenset("“”‘’«»")
_APOSTROPHES = {"byte": frozenset("'"), "char": frozenset("'’")}
APOSTROPHE_MODES = ("word", "quote")


@dataclass(frozen=True)
class CharClasses:
    """Per vocabulary id (K,) booleans: ``word`` (letter/digit), ``letter``, ``punct``, ``opener`` and ``apos``
    (an apostrophe), and how an apostrophe between two letters counts (``apostrophe``: word or quote)."""

    word: np.ndarray
    punct: np.ndarray
    opener: np.ndarray
    letter: np.ndarray
    apos: np.ndarray
    apostrophe: str = "word"

    def __post_init__(self) -> None:
        if self.apostrophe not in APOSTROPHE_MODES:
            raise RnnlensError(f"apostrophe must be 'word' or 'quote', got {self.apostrophe!r}")

    @classmethod
    def for_vocab(cls, vocab: Vocab, apostrophe: str = "word") -> "CharClasses":
        word, punct, opener, letter, apos = [], [], [], [], []
        for s in vocab.symbols:
            if vocab.unit == "byte" and s >= 0x80:
                for lst, v in ((word, True), (punct, False), (opener, False), (letter, True), (apos, False)):
                    lst.append(v)
                continue
            ch = chr(s)
            word.append(ch.isalnum())
            letter.append(ch.isalpha())
            ascii_ = s < 0x80
            punct.append(ch in _ASCII_PUNCT or (not ascii_ and unicodedata.category(ch)[0] in "PS"))
            opener.append(ch in _OPENERS or (vocab.unit == "char" and ch in _UNICODE_OPENERS))
            apos.append(ch in _APOSTROPHES[vocab.unit])
        return cls(*(np.array(v, bool) for v in (word, punct, opener, letter, apos)), apostrophe=apostrophe)

    def with_apostrophe(self, apostrophe: str) -> "CharClasses":
        return self if apostrophe == self.apostrophe else replace(self, apostrophe=apostrophe)

    def inword_apostrophes(self, text: np.ndarray) -> np.ndarray:
        """(T,) True at every apostrophe with a letter right before and right after it (never with ``quote``)."""
        t = np.asarray(text, dtype=np.int64).reshape(-1)
        out = np.zeros(len(t), dtype=bool)
        if self.apostrophe == "quote" or len(t) < 3:
            return out
        let = self.letter[t]
        out[1:-1] = self.apos[t[1:-1]] & let[:-2] & let[2:]
        return out

    def at(self, text: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T,) booleans ``(word, punct, opener)`` of every position of ``text`` (an in-word apostrophe is word)."""
        t = np.asarray(text, dtype=np.int64).reshape(-1)
        inside = self.inword_apostrophes(t)
        return self.word[t] | inside, self.punct[t] & ~inside, self.opener[t] & ~inside


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
        is_word = classes.at(text)[0]
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
