"""Brace matching on tricky C snippets, and the per-distance means."""
from __future__ import annotations

import numpy as np
import pytest

from rnnlens.analysis.braces import DEFAULT_EDGES, bucket_means, check_edges, match_braces
from rnnlens.exceptions import RnnlensError


def pairs(code: str) -> list[tuple[int, int]]:
    """(open, close) offsets of every matched pair, and (-1, close) for an unmatched '}'."""
    m = match_braces(np.frombuffer(code.encode(), dtype=np.uint8))
    return list(zip(m.open_pos.tolist(), m.close_pos.tolist()))


def test_nested_blocks():
    code = "int f(){if(x){y();}}"
    #       0123456789012345678901
    assert pairs(code) == [(13, 18), (7, 19)]


def test_braces_in_strings_with_escapes_are_ignored():
    code = 'a{ s = "}\\"{"; }'
    assert pairs(code) == [(1, len(code) - 1)]
    # an escaped backslash ends the escape: the quote after it closes the string
    code = 'x{ s = "\\\\"; }'
    assert pairs(code) == [(1, len(code) - 1)]


def test_char_literals():
    code = "f(){ c = '{'; d = '\\''; e = '}'; }"
    assert pairs(code) == [(3, len(code) - 1)]


def test_comments():
    code = "g(){ /* } { */ // } {\n x; }"
    assert pairs(code) == [(3, len(code) - 1)]
    # '/*/' does not close the comment it opens
    code = "{ /*/ } */ }"
    assert pairs(code) == [(0, len(code) - 1)]
    # a quote inside a comment starts no string
    code = "{ // don't\n}"
    assert pairs(code) == [(0, len(code) - 1)]


def test_line_comment_continued_by_backslash_newline():
    code = "{ // note \\\n } still comment\n}"
    assert pairs(code) == [(0, len(code) - 1)]
    crlf = "{ // note \\\r\n } still comment\r\n}"
    assert pairs(crlf) == [(0, len(crlf) - 1)]


def test_unterminated_string_ends_at_newline():
    code = '{ s = "oops\n}'
    assert pairs(code) == [(0, len(code) - 1)]


def test_unmatched_braces_are_graceful():
    m = match_braces(np.frombuffer(b"}} { {x}", dtype=np.uint8))
    assert m.close_pos.tolist() == [0, 1, 7]
    assert m.open_pos.tolist() == [-1, -1, 5]
    assert m.unmatched_open.tolist() == [3]
    d = m.distances(8)
    assert d.tolist() == [-1, -1, -1, -1, -1, -1, -1, 2]


def test_empty_and_braceless_text():
    assert pairs("") == []
    assert pairs("int x = 1;") == []


def test_code_points_work_like_bytes():
    code = "{ s = \"é}\"; }"
    m = match_braces(np.array([ord(c) for c in code]))
    assert list(zip(m.open_pos.tolist(), m.close_pos.tolist())) == [(0, len(code) - 1)]


def test_matching_agrees_with_a_stack_on_plain_code():
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("{}ab;\n"), size=2000))
    expect, stack = [], []
    for i, c in enumerate(text):
        if c == "{":
            stack.append(i)
        elif c == "}":
            expect.append((stack.pop() if stack else -1, i))
    assert pairs(text) == expect


def test_bucket_means_by_hand():
    dist = np.array([1, 5, 12, 12, 250, -1, 0])
    probs = {"a": np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.0])}
    rows = bucket_means(dist, probs, (1, 10, 20))
    assert [(r["lo"], r["hi"], r["count"]) for r in rows] == [(1, 10, 2), (10, 20, 2), (20, None, 1)]
    assert rows[0]["a"] == pytest.approx(0.2)
    assert rows[1]["a"] == pytest.approx(0.6)
    assert rows[2]["a"] == pytest.approx(0.9)
    empty = bucket_means(np.array([3]), {"a": np.array([0.4])}, (1, 2, 10))
    assert [r["count"] for r in empty] == [0, 1, 0]
    assert empty[0]["a"] is None and empty[2]["a"] is None and empty[1]["a"] == pytest.approx(0.4)


def test_edges_validated():
    assert check_edges(DEFAULT_EDGES) == DEFAULT_EDGES
    for bad in ([], [0, 5], [5, 5], [10, 2]):
        with pytest.raises(RnnlensError):
            check_edges(bad)


def test_a_brace_pair_has_the_distance_of_its_offsets():
    """One pair in a tiny text: the '}' at offset 6 closes the '{' at 1, so its distance is 6 - 1 = 5, the
    number the '}'-distance figure (the paper's Figure 5) buckets; every other offset has none."""
    text = np.frombuffer(b"x{a;b;}y", dtype=np.uint8)
    m = match_braces(text)
    d = m.distances(len(text))
    assert d.tolist() == [-1, -1, -1, -1, -1, -1, 5, -1]
    rows = bucket_means(d, {"m": np.linspace(0, 0.7, 8)}, (1, 5, 6))
    assert [r["count"] for r in rows] == [0, 1, 0] and rows[1]["m"] == pytest.approx(0.6)
