"""Character classes and word spans of rnnlens.data.textclass (what the oracles call a word), by hand."""
from __future__ import annotations

import numpy as np

from rnnlens.analysis.oracles import train_word_counts
from rnnlens.data.text import Vocab
from rnnlens.data.textclass import CharClasses, WordSpans, ids_to_str


def encode(text: str, vocab_text: str | None = None) -> tuple[np.ndarray, Vocab]:
    sym = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)
    vocab = Vocab.build(np.frombuffer((vocab_text or text).encode(), dtype=np.uint8), "byte")
    return vocab.encode(sym), vocab


def test_character_classes():
    ids, vocab = encode("a1 ,\"'\r\n\xc3\xa9", vocab_text="a1 ,\"'\r\n\xc3\xa9")
    cls = CharClasses.for_vocab(vocab)
    by_sym = {s: (bool(cls.word[i]), bool(cls.punct[i]), bool(cls.opener[i])) for i, s in enumerate(vocab.symbols)}
    assert by_sym[ord("a")] == (True, False, False)
    assert by_sym[ord("1")] == (True, False, False)
    assert by_sym[ord(",")] == (False, True, False)
    assert by_sym[ord('"')] == (False, True, True)
    assert by_sym[ord("'")] == (False, True, True)
    assert by_sym[ord(" ")] == (False, False, True)
    assert by_sym[ord("\n")] == (False, False, True)
    assert by_sym[0xC3] == (True, False, False)
    cv = Vocab(unit="char", symbols=tuple(sorted(map(ord, "é—“a"))))
    cc = CharClasses.for_vocab(cv)
    d = {chr(s): (bool(cc.word[i]), bool(cc.punct[i]), bool(cc.opener[i])) for i, s in enumerate(cv.symbols)}
    assert d == {"a": (True, False, False), "é": (True, False, False), "—": (False, True, False),
                 "“": (False, True, True)}


def test_word_spans_and_train_counts():
    ids, vocab = encode("ab cd,e", vocab_text="ab cd,ef")
    spans = WordSpans.of(ids, CharClasses.for_vocab(vocab))
    assert spans.start.tolist() == [0, 0, -1, 3, 3, -1, 6]
    assert spans.end.tolist() == [2, 2, -1, 5, 5, -1, 7]
    cls = CharClasses.for_vocab(vocab)
    rows = [encode(r, vocab_text="ab cd,ef")[0] for r in ("ab ab cd", "ef,ab")]
    counts = train_word_counts(rows, cls)
    key = lambda w: ids_to_str(encode(w, vocab_text="ab cd,ef")[0])  # noqa: E731
    assert counts[key("ab")] == 3 and counts[key("cd")] == 1 and counts[key("ef")] == 1
    assert sum(counts.values()) == 5
