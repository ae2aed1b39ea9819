"""Text features: per-character values computed from the text alone, to compare cells against.

Every feature is a function of the whole text that returns one float32 value per character, shape (N,).
**Alignment:** the value at position t describes the situation *after reading character t*, exactly like
a cell's activation at step t (the state after consuming character t). So an opening quote is already
"inside quotes" (1) and the closing quote is outside again (0); a newline is at line position 0 and the
first character of a line at 1. Constructs (quotes, comments, brackets) are found by looking at the whole
text, so the first ``/`` of a ``/*`` already counts as inside the comment. The one rule, for every
yes/no construct: ``value[t] = 1`` iff the construct opened at or before t and has not closed at or
before t (a line comment is closed by its line end).

Kinds: *graded* features (counts, depths) are compared with cells by Pearson correlation, *binary*
(yes/no, 0/1) features by ROC AUC. *Memory* features need context beyond the current character (a quote
opened long ago); the others (``in_word``, ``after_space``, ``uppercase``) describe the character just
read and mostly find character detectors.

Line ends are LF, CR and CRLF: both CR and LF reset the line position (so in CRLF text the CR is at
position 0 too). Tabs count 8 columns for the indentation (tabs are assumed to precede spaces, as in
kernel code). Symbols outside ASCII (byte values >= 0x80, or non-ASCII code points) count as letters.

Syntax (``syntax=``): ``"c"`` (C-like: ``"..."`` and ``'...'`` literals with backslash escapes, ending at
the line end if unterminated, ``/* */`` and ``//`` comments), ``"python"`` (``'...'``, ``"..."``,
``'''...'''``, ``\"\"\"...\"\"\"``, ``#`` comments), ``"prose"`` (a ``"`` toggles "inside double quotes",
spanning lines as dialogue does in War and Peace; apostrophes are not quotes; no comments) or ``"auto"``
(C when ``{ } ;`` make up >= 1% of the text, Python when >= 1% of the lines start with ``def``/``class``/
``import``/``from``, prose otherwise). In code, brackets and ``if`` inside strings and comments are ignored.

Everything is vectorised numpy plus one regular-expression scan for literals and comments: linear time,
about a second for the 6 MB Linux corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Literal, Sequence

import numpy as np

from ..exceptions import RnnlensError

Syntax = Literal["auto", "c", "python", "prose"]
SYNTAXES: tuple[str, ...] = ("auto", "c", "python", "prose")
TAB_WIDTH = 8
_NON_ASCII = 0xAA  # stands in for every non-ASCII symbol in the scanned string: a letter ("ª")

# Per syntax: (kind, pattern) alternatives, tried left to right at each position. Group ``c`` is the
# closing delimiter; a match without it is unterminated (it ran to a line end or to the end of the text).
_LITERALS = {
    "c": [("dq", r'"(?:[^"\\\r\n]|\\.)*(?P<c>")?'), ("sq", r"'(?:[^'\\\r\n]|\\.)*(?P<c>')?"),
          ("comment", r"/\*(?:.*?(?P<c>\*/)|.*)"), ("comment", r"//[^\r\n]*")],
    "python": [("dq", r'"""(?:(?:[^\\]|\\.)*?(?P<c>""")|.*)'), ("sq", r"'''(?:(?:[^\\]|\\.)*?(?P<c>''')|.*)"),
               ("dq", r'"(?:[^"\\\r\n]|\\.)*(?P<c>")?'), ("sq", r"'(?:[^'\\\r\n]|\\.)*(?P<c>')?"),
               ("comment", r"#[^\r\n]*")],
}


def _scanner(syntax: str) -> re.Pattern:
    """One regex of all alternatives: group ``k<i>`` is alternative i, group ``c<i>`` its closer."""
    alts = [f"(?P<k{i}>{pat.replace('(?P<c>', f'(?P<c{i}>')})" for i, (_, pat) in enumerate(_LITERALS[syntax])]
    return re.compile("|".join(alts), re.DOTALL)


@dataclass(frozen=True)
class Feature:
    """One feature: its name, kind (``graded`` or ``binary``), whether it needs memory, and what it is."""

    name: str
    kind: Literal["graded", "binary"]
    memory: bool
    description: str
    compute: Callable[["TextView"], np.ndarray]


class TextView:
    """A text prepared once for all features: an ASCII string of the symbols plus cached scans."""

    def __init__(self, symbols: np.ndarray, syntax: Syntax = "auto") -> None:
        sym = np.asarray(symbols, dtype=np.int64).reshape(-1)
        if syntax not in SYNTAXES:
            raise RnnlensError(f"unknown syntax {syntax!r}; use one of {', '.join(SYNTAXES)}")
        self.n = len(sym)
        self.codes = np.where((sym >= 0) & (sym < 128), sym, _NON_ASCII).astype(np.uint8)  # (N,)
        self.text = self.codes.tobytes().decode("latin-1")  # index i of the string is symbol i
        self.syntax: str = detect_syntax(self.text) if syntax == "auto" else syntax

    def is_any(self, chars: str) -> np.ndarray:
        return np.isin(self.codes, np.frombuffer(chars.encode("latin-1"), dtype=np.uint8))

    @cached_property
    def newline(self) -> np.ndarray:
        return self.is_any("\r\n")

    @cached_property
    def line_start(self) -> np.ndarray:
        """(N,) index just after the last line end at or before t (0 when there is none)."""
        idx = np.where(self.newline, np.arange(self.n), -1)
        last_nl = np.maximum.accumulate(idx) if self.n else idx  # last line end at or before t
        return last_nl + 1

    @cached_property
    def word(self) -> np.ndarray:
        c = self.codes
        alpha = ((c >= 65) & (c <= 90)) | ((c >= 97) & (c <= 122)) | (c >= 128)
        return alpha | ((c >= 48) & (c <= 57)) | (c == ord("_"))

    @cached_property
    def spans(self) -> dict[str, np.ndarray]:
        """Per kind (dq, sq, comment), (N,) bool: inside by the module's rule; plus ``token`` (N,) bool:
        the character belongs to a literal or comment, delimiters included."""
        out = {k: np.zeros(self.n, bool) for k in ("dq", "sq", "comment", "token")}
        if self.syntax == "prose":
            out["dq"] = self._prose_quotes()
            return out
        kinds = [k for k, _ in _LITERALS[self.syntax]]
        marks = {k: np.zeros(self.n + 1, np.int32) for k in ("dq", "sq", "comment", "token")}
        scanner = _scanner(self.syntax)
        closer = [scanner.groupindex.get(f"c{i}") for i in range(len(kinds))]
        for m in scanner.finditer(self.text):
            i = int(m.lastgroup[1:])  # the outer group k<i> closes last
            a, b = m.span()
            closed = closer[i] is not None and m.start(closer[i]) >= 0
            marks[kinds[i]][a] += 1
            marks[kinds[i]][b - 1 if closed else b] -= 1  # after reading the closer we are outside
            marks["token"][a] += 1
            marks["token"][b] -= 1
        for k, m in marks.items():
            out[k] = np.cumsum(m[:-1]) > 0
        return out

    def _prose_quotes(self) -> np.ndarray:
        """Each " toggles, and a blank line (paragraph break) closes any open quote: a quotation running
        over several paragraphs repeats its opening mark at each one without closing the previous."""
        q = (self.codes == ord('"')).astype(np.int32)
        blank_end = np.zeros(self.n, bool)  # a LF that ends a line holding nothing but whitespace
        lf = np.flatnonzero(self.codes == ord("\n"))
        if len(lf):
            ink = np.cumsum(~self.is_any(" \t\r\n"))
            prev = np.concatenate([[0], ink[lf[:-1]]])
            blank_end[lf[1:]] = (ink[lf] - prev)[1:] == 0
        count = np.cumsum(q)
        para = np.where(blank_end, count, 0)
        at_para_start = np.maximum.accumulate(para) if self.n else para  # count is non-decreasing
        return ((count - at_para_start) % 2).astype(bool)

    @cached_property
    def code(self) -> np.ndarray:
        """(N,) bool: characters that are code (not part of a literal or comment; all of prose)."""
        return ~self.spans["token"]

    def depth(self, open_ch: str, close_ch: str) -> np.ndarray:
        """(N,) bracket depth after reading each character, floored at 0 (a stray closer does not go below)."""
        step = ((self.codes == ord(open_ch)) & self.code).astype(np.int64) - (
            (self.codes == ord(close_ch)) & self.code).astype(np.int64)
        s = np.cumsum(step)
        return s - np.minimum(0, np.minimum.accumulate(s)) if self.n else s


def detect_syntax(text: str) -> str:
    """``c``, ``python`` or ``prose`` for a text (see the module docstring for the rule)."""
    n = max(len(text), 1)
    if (text.count("{") + text.count("}") + text.count(";")) / n >= 0.01:
        return "c"
    lines = max(text.count("\n"), 1)
    py = len(re.findall(r"^[ \t]*(?:def|class|import|from)\s", text, re.MULTILINE))
    return "python" if py / lines >= 0.01 else "prose"


# ---- the features, in report order -------------------------------------------------------------------

def _line_pos(v: TextView) -> np.ndarray:
    return np.arange(v.n) - v.line_start + 1  # a line end is position 0, the next character 1


def _line_remaining(v: TextView) -> np.ndarray:
    """Characters still to come before the line end (the line end itself: 0); looks ahead."""
    idx = np.where(v.newline, np.arange(v.n), v.n)
    next_nl = np.minimum.accumulate(idx[::-1])[::-1] if v.n else idx  # first line end at or after t
    return next_nl - np.arange(v.n)


def _indent(v: TextView) -> np.ndarray:
    """Columns of leading whitespace of the current line read so far (tab = 8); 0 at a line end."""
    c = v.codes
    ws = (c == ord(" ")) | (c == ord("\t"))
    other = ~ws & ~v.newline
    seen_other = np.cumsum(other)
    before_line = np.where(v.line_start > 0, seen_other[np.maximum(v.line_start - 1, 0)], 0)
    leading = ws & (seen_other - before_line == 0)  # no non-blank yet on this line
    width = np.where(leading, np.where(c == ord("\t"), TAB_WIDTH, 1), 0)
    cw = np.cumsum(width)
    at_start = np.where(v.line_start > 0, cw[np.maximum(v.line_start - 1, 0)], 0)
    return np.where(v.newline, 0, cw - at_start)


def _word_pos(v: TextView) -> np.ndarray:
    """Position in the current word (first character 1); 0 outside words."""
    idx = np.where(~v.word, np.arange(v.n), -1)
    last_break = np.maximum.accumulate(idx) if v.n else idx
    return np.where(v.word, np.arange(v.n) - last_break, 0)


def _in_if_condition(v: TextView) -> np.ndarray:
    """Inside the parentheses of ``if (...)``: from the ``(`` to just before its matching ``)``."""
    if v.syntax == "prose":
        return np.zeros(v.n, bool)
    depth = v.depth("(", ")")
    opens = np.array([m.end() - 1 for m in re.finditer(r"\bif\s*\(", v.text)], dtype=np.int64)
    opens = opens[v.code[opens]] if len(opens) else opens
    close = np.flatnonzero((v.codes == ord(")")) & v.code)
    # The ")" matching a "(" that leaves depth d is the first ")" after it that leaves depth d - 1: find it
    # by sorting closers on (depth, position) and searching for (d - 1, p).
    key_close = depth[close] * (v.n + 1) + close
    order = np.argsort(key_close, kind="stable")
    key_close, close = key_close[order], close[order]
    want = depth[opens] - 1
    k = np.searchsorted(key_close, want * (v.n + 1) + opens)
    found = k < len(close)
    found[found] = key_close[k[found]] // (v.n + 1) == want[found]
    ends = np.full(len(opens), v.n, dtype=np.int64)  # unmatched: to the end of the text
    ends[found] = close[k[found]]
    marks = np.zeros(v.n + 1, np.int64)
    np.add.at(marks, opens, 1)
    np.add.at(marks, ends, -1)
    return np.cumsum(marks[:-1]) > 0


FEATURES: dict[str, Feature] = {f.name: f for f in [
    Feature("line_pos", "graded", True, "characters read since the last line end (line end: 0)", _line_pos),
    Feature("line_remaining", "graded", True, "characters left before the line end (looks ahead)", _line_remaining),
    Feature("in_double_quotes", "binary", True, 'inside a "..." string (prose: between toggling " marks)',
            lambda v: v.spans["dq"]),
    Feature("in_single_quotes", "binary", True, "inside a '...' literal (code only)", lambda v: v.spans["sq"]),
    Feature("in_comment", "binary", True, "inside a comment: /* */ and // (C), # (Python)",
            lambda v: v.spans["comment"]),
    Feature("paren_depth", "graded", True, "nesting depth of ( ) brackets", lambda v: v.depth("(", ")")),
    Feature("square_depth", "graded", True, "nesting depth of [ ] brackets", lambda v: v.depth("[", "]")),
    Feature("brace_depth", "graded", True, "nesting depth of { } brackets", lambda v: v.depth("{", "}")),
    Feature("in_parens", "binary", True, "inside at least one ( ) pair", lambda v: v.depth("(", ")") > 0),
    Feature("indent", "graded", True, "indentation of the current line in columns (tab = 8)", _indent),
    Feature("in_if_condition", "binary", True, "inside the parentheses of an if (...) condition (code)",
            _in_if_condition),
    Feature("word_pos", "graded", True, "position in the current word (first letter 1, outside 0)", _word_pos),
    Feature("in_word", "binary", False, "the character is a letter, digit or _", lambda v: v.word),
    Feature("after_space", "binary", False, "the character is a space or tab", lambda v: v.is_any(" \t")),
    Feature("uppercase", "binary", False, "the character is an uppercase letter A-Z",
            lambda v: (v.codes >= 65) & (v.codes <= 90)),
]}


def _as_symbols(text: str | np.ndarray | Sequence[int]) -> np.ndarray:
    if isinstance(text, str):
        return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4").astype(np.int64)
    return np.asarray(text, dtype=np.int64).reshape(-1)


def feature_names() -> list[str]:
    return list(FEATURES)


def compute_features(text: str | np.ndarray | Sequence[int], names: Sequence[str] | None = None,
                     syntax: Syntax = "auto") -> dict[str, np.ndarray]:
    """Feature name -> (N,) float32 values for a text (a ``str``, or symbols: bytes or code points).

    ``names`` selects features (default: all, in ``FEATURES`` order); an unknown name raises RnnlensError.
    """
    chosen = list(FEATURES) if names is None else list(names)
    unknown = [n for n in chosen if n not in FEATURES]
    if unknown:
        raise RnnlensError(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(FEATURES)}")
    view = TextView(_as_symbols(text), syntax)
    return {n: np.asarray(FEATURES[n].compute(view), dtype=np.float32) for n in chosen}
