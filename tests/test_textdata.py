"""Tests for rnnlens.data.text: reading text into symbols, newline modes, the vocabulary."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rnnlens.exceptions import RnnlensError
from rnnlens.data.text import TextConfig, Vocab, read_symbols, symbols_to_text, text_to_symbols

SAMPLE = "\ufeffCaf\u00e9 \u201cquote\u201d\r\nline two\rthree\nfour\r\n"


def _reference(text: str, cfg: TextConfig) -> list[int]:
    """Brute force: normalise line ends character by character, then encode."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\r" and i + 1 < len(text) and text[i + 1] == "\n":
            out.append("EOL")
            i += 2
        elif text[i] in "\r\n":
            out.append("EOL" if cfg.newline != "keep" else text[i])
            i += 1
        else:
            out.append(text[i])
            i += 1
    eol = {"lf": "\n", "crlf": "\r\n", "keep": "\r\n"}[cfg.newline]
    norm = "".join(eol if c == "EOL" else c for c in out)
    return list(norm.encode("utf-8")) if cfg.unit == "byte" else [ord(c) for c in norm]


@pytest.mark.parametrize("unit", ["byte", "char"])
@pytest.mark.parametrize("newline", ["keep", "lf", "crlf"])
def test_read_symbols_matches_brute_force(tmp_path, unit, newline):
    cfg = TextConfig(unit, newline)
    path = tmp_path / "t.txt"
    path.write_bytes(SAMPLE.encode("utf-8"))
    got = read_symbols(path, cfg)
    assert got.dtype == np.int64
    assert got.tolist() == _reference(SAMPLE, cfg)
    assert read_symbols(str(path), cfg).tolist() == got.tolist()
    assert read_symbols(SAMPLE.encode("utf-8"), cfg).tolist() == got.tolist()
    assert text_to_symbols(SAMPLE, cfg).tolist() == got.tolist()
    assert symbols_to_text(got, unit) == bytes(_reference(SAMPLE, TextConfig("byte", newline))).decode("utf-8")


def test_char_unit_keeps_bom_as_feff():
    got = read_symbols("\ufeffab".encode("utf-8"), TextConfig("char"))
    assert got.tolist() == [0xFEFF, ord("a"), ord("b")]


def test_symbols_to_text_replaces_cut_multibyte():
    data = "é".encode("utf-8")[:1] + b"a"
    assert symbols_to_text(np.frombuffer(data, np.uint8), "byte") == "\ufffda"


@pytest.mark.parametrize("data, unit, words", [
    (b"", "byte", "empty"),
    (b"ab\x00cd", "byte", "NUL byte at offset 2"),
    (bytes(range(1, 9)) * 10, "byte", "control bytes"),
    (b"abc\xc3(def", "char", "offset 3"),
])
def test_read_symbols_rejects_non_text(data, unit, words):
    with pytest.raises(RnnlensError, match=words):
        read_symbols(data, TextConfig(unit))


def test_read_symbols_accepts_text_controls():
    data = b"a\tb\x1b[0m\x0c\x0b\r\n" * 10
    assert read_symbols(data, TextConfig()).size == len(data)


def test_read_symbols_file_errors(tmp_path):
    with pytest.raises(RnnlensError, match="does not exist"):
        read_symbols(tmp_path / "nope.txt", TextConfig())
    with pytest.raises(RnnlensError, match="is a directory"):
        read_symbols(tmp_path, TextConfig())
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(RnnlensError, match="empty"):
        read_symbols(tmp_path / "empty.txt", TextConfig())
    locked = tmp_path / "locked.txt"
    locked.write_bytes(b"abc")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user that can read any file (root)")
        with pytest.raises(RnnlensError, match="cannot read"):
            read_symbols(locked, TextConfig())
    finally:
        locked.chmod(0o644)


def test_text_config_validation_and_round_trip():
    cfg = TextConfig("char", "crlf")
    assert TextConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TextConfig.from_dict({}) == TextConfig()
    with pytest.raises(RnnlensError, match="unit"):
        TextConfig("word")  # type: ignore[arg-type]
    with pytest.raises(RnnlensError, match="newline"):
        TextConfig(newline="cr")  # type: ignore[arg-type]
    with pytest.raises(RnnlensError, match="unknown text config keys"):
        TextConfig.from_dict({"unit": "byte", "colour": 1})


@pytest.mark.parametrize("unit", ["byte", "char"])
def test_vocab_encode_decode_brute_force(unit):
    cfg = TextConfig(unit)
    syms = text_to_symbols("hello, wörld — ok\r\n", cfg)
    vocab = Vocab.build(syms, unit)
    ordered = sorted(set(syms.tolist()))
    assert list(vocab.symbols) == ordered and len(vocab) == len(ordered)
    ids = vocab.encode(syms)
    assert ids.dtype == np.int64
    assert ids.tolist() == [ordered.index(s) for s in syms.tolist()]
    assert vocab.decode(ids) == "hello, wörld — ok\r\n"
    assert Vocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab


def test_vocab_encode_keeps_shape():
    vocab = Vocab.build(np.array([5, 1, 9]), "byte")
    assert vocab.encode(np.array([[9, 1], [5, 5]])).tolist() == [[2, 0], [1, 1]]


def test_vocab_unseen_symbols_are_named():
    byte_vocab = Vocab.build(text_to_symbols("abc", TextConfig()), "byte")
    with pytest.raises(RnnlensError, match=r"4 symbol\(s\) \(2 distinct\).*byte 0xC3.*byte 0xA9"):
        byte_vocab.encode(text_to_symbols("aébé", TextConfig()))
    char_vocab = Vocab.build(text_to_symbols("abc", TextConfig("char")), "char")
    with pytest.raises(RnnlensError, match=r"'é' \(U\+00E9\)"):
        char_vocab.encode(text_to_symbols("aé", TextConfig("char")))
    with pytest.raises(RnnlensError, match="ids must be in 0..2"):
        char_vocab.decode([0, 3])


@pytest.mark.parametrize("d, words", [
    ({"unit": "byte", "symbols": [3, 2]}, "sorted"),
    ({"unit": "byte", "symbols": [2, 2]}, "unique"),
    ({"unit": "byte", "symbols": [1, 256]}, "0..255"),
    ({"unit": "char", "symbols": [-1, 5]}, "0..1114111"),
    ({"unit": "char", "symbols": []}, "empty"),
    ({"unit": "char", "symbols": [1.5]}, "integers"),
    ({"unit": "word", "symbols": [1]}, "unit"),
    ({"symbols": [1]}, "'unit' and 'symbols'"),
    ({"unit": "byte", "symbols": "abc"}, "list"),
])
def test_vocab_from_dict_validates(d, words):
    with pytest.raises(RnnlensError, match=words):
        Vocab.from_dict(d)


def test_paper_vocabulary_size(shared_data):
    syms = read_symbols(shared_data / "warpeace_input.txt", TextConfig())
    assert syms.size == 3_258_250
    assert len(Vocab.build(syms, "byte")) == 87
    lk = read_symbols(shared_data / "linux_input.txt", TextConfig())
    assert len(Vocab.build(lk, "byte")) == 110


def test_a_device_or_an_absurdly_large_file_is_refused_at_once(tmp_path, monkeypatch, capsys):
    from rnnlens.cli import main
    from rnnlens.data import text as text_mod

    for device in ("/dev/zero", "/dev/urandom"):
        with pytest.raises(RnnlensError, match="not a regular file"):
            read_symbols(device, TextConfig())
    # the CLI: a one-line error before any work (it used to read /dev/zero forever)
    assert main(["train", "--text", "/dev/zero", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and "Traceback" not in err and not (tmp_path / "run").exists()
    big = tmp_path / "big.txt"
    big.write_bytes(b"abc\n" * 10)
    monkeypatch.setattr(text_mod, "MAX_TEXT_BYTES", 16)
    with pytest.raises(RnnlensError, match="train on a slice"):
        read_symbols(big, TextConfig())
