"""Text features against hand-computed values, and against a plain per-character reference."""

import time

import numpy as np
import pytest

from rnnlens.exceptions import RnnlensError
from rnnlens.cells.features import FEATURES, compute_features, detect_syntax


def digits(text: str, name: str, syntax: str = "c") -> str:
    """A feature's values as one digit per character (capped at 9), for readable expectations."""
    return "".join(str(min(int(v), 9)) for v in compute_features(text, [name], syntax)[name])


def test_line_position_and_remaining_with_crlf_and_cr():
    t = "ab\r\ncd\ne\rf"
    assert digits(t, "line_pos") == "1200120101"
    assert digits(t, "line_remaining") == "2100210101"  # \r and \n both end a line


def test_double_quotes_escapes_and_comment_markers_inside_strings():
    t = 'a "b\\"c" d "//x" /* "y */ e'
    assert digits(t, "in_double_quotes") == "001111100001111000000000000"
    assert digits(t, "in_comment") == "000000000000000001111111000"


def test_escaped_backslash_before_closing_quote_closes_the_string():
    assert digits('"a\\\\" b', "in_double_quotes") == "1111000"


def test_single_quotes_char_literal_holding_a_double_quote():
    t = "x = '\"'; y = \"'\";"
    assert digits(t, "in_single_quotes") == "00001100000000000"
    assert digits(t, "in_double_quotes") == "00000000000001100"


def test_unterminated_string_ends_at_line_end():
    assert digits('"ab\ncd', "in_double_quotes") == "111000"


def test_line_comment_ends_at_line_end_and_block_comment_spans_lines():
    t = "a // b\nc /*\nd*/ e"
    assert digits(t, "in_comment") == "00111100011111000"


def test_python_comments_and_triple_quotes():
    t = "x = '#' # it's\ns = \"\"\"a\nb\"\"\""
    assert digits(t, "in_comment", "python") == "0000000011111100000000000000"
    assert digits(t, "in_single_quotes", "python") == "0000110000000000000000000000"
    assert digits(t, "in_double_quotes", "python") == "0000000000000000000111111110"


def test_prose_quotes_toggle_and_reset_at_paragraph_breaks():
    t = '"a\r\nb" c "d\r\n\r\n"e"'
    assert digits(t, "in_double_quotes", "prose") == "111110000111110110"
    assert digits("it's 'x'", "in_single_quotes", "prose") == "00000000"


def test_nested_bracket_depths_ignore_strings_and_floor_at_zero():
    t = 'f(a[(1)], "(") {{}})'
    assert digits(t, "paren_depth") == "01112211111110000000"  # the last ")" is stray: stays 0
    assert digits(t, "square_depth") == "00011110000000000000"
    assert digits(t, "brace_depth") == "00000000000000012100"


def test_if_condition_with_nested_parens_and_if_in_comment():
    t = "if (a(b)) x; /* if (y) */ elif(z)"
    assert digits(t, "in_if_condition") == "000111110000000000000000000000000"
    assert digits("while(a) if(b", "in_if_condition") == "0000000000011"  # unmatched: to the end


def test_indentation_tabs_count_eight():
    t = "a\n\t  b c\n  d"
    assert digits(t, "indent") == "008999990122"
    assert compute_features(t, ["indent"])["indent"][6] == 10


def test_word_features_and_uppercase():
    t = "Hi you_2 .x"
    assert digits(t, "word_pos", "prose") == "12012345001"
    assert digits(t, "in_word", "prose") == "11011111001"
    assert digits(t, "after_space", "prose") == "00100000100"
    assert digits(t, "uppercase", "prose") == "10000000000"


def test_non_ascii_symbols_count_as_letters():
    sym = np.frombuffer("é a".encode(), np.uint8)  # two bytes for é
    assert compute_features(sym, ["word_pos"], "prose")["word_pos"].tolist() == [1, 2, 0, 1]


def test_against_per_character_reference_on_random_code():
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("ab ()[]{}\n\t;"), 3000))
    f = compute_features(text, ["line_pos", "paren_depth", "brace_depth", "indent"], "c")
    pos, paren, brace, ind, leading = 0, 0, 0, 0, True
    for t, ch in enumerate(text):
        if ch == "\n":
            pos, ind, leading = 0, 0, True
        else:
            pos += 1
            if leading and ch in " \t":
                ind += 8 if ch == "\t" else 1
            else:
                leading = False
        paren = max(0, paren + (ch == "(") - (ch == ")"))
        brace = max(0, brace + (ch == "{") - (ch == "}"))
        assert (f["line_pos"][t], f["paren_depth"][t], f["brace_depth"][t], f["indent"][t]) == (pos, paren, brace, ind)


def test_detect_syntax():
    assert detect_syntax("int x;\n{ y; }\n") == "c"
    assert detect_syntax("import os\ndef f():\n    return 1\n") == "python"
    assert detect_syntax('He said, "Hello." She left.\n') == "prose"


def test_every_feature_is_float32_per_character_and_kinds_are_valid():
    text = 'int f() { return "x"; } // c\n'
    out = compute_features(text)
    assert list(out) == list(FEATURES)
    for name, v in out.items():
        assert v.shape == (len(text),) and v.dtype == np.float32
        if FEATURES[name].kind == "binary":
            assert set(np.unique(v)) <= {0.0, 1.0}


def test_unknown_feature_and_syntax_raise():
    with pytest.raises(RnnlensError, match="unknown feature"):
        compute_features("abc", ["nope"])
    with pytest.raises(RnnlensError, match="unknown syntax"):
        compute_features("abc", syntax="cobol")


def test_linear_time_on_a_megabyte():
    rng = np.random.default_rng(1)
    sym = rng.choice(np.frombuffer(b'abc "\'()/*#\n\t {};', np.uint8), 1_000_000).astype(np.int64)
    start = time.perf_counter()
    compute_features(sym, syntax="c")
    assert time.perf_counter() - start < 10  # about 1 s on one free core
