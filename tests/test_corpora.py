"""Tests for rnnlens.data.corpora: data directory resolution, corpus lookup, the built-in pystdlib corpus."""
from __future__ import annotations

import hashlib
import random
import sysconfig
from pathlib import Path

import pytest

from rnnlens.data.corpora import (CORPORA, corpus_path, corpus_status, data_dir, load_corpus_bytes,
                             pystdlib_bytes, trim_to_utf8_boundary)
from rnnlens.exceptions import RnnlensError


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNLENS_DATA", str(tmp_path / "env"))
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("RNNLENS_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "rnnlens" / "data"


def test_corpus_specs():
    assert CORPORA["warpeace"].fractions == (0.8, 0.1, 0.1) and CORPORA["warpeace"].size == 3_258_250
    assert CORPORA["linux"].fractions == (0.9, 0.05, 0.05) and CORPORA["linux"].size == 6_206_996
    assert CORPORA["pystdlib"].filename is None
    for spec in CORPORA.values():
        assert abs(sum(spec.fractions) - 1) < 1e-9


def test_corpus_path_errors(tmp_path):
    with pytest.raises(RnnlensError, match="unknown corpus 'shakespeare'; use one of warpeace, linux, pystdlib"):
        corpus_path("shakespeare", tmp_path)
    with pytest.raises(RnnlensError, match=r"no warpeace_input.txt in .*rnnlens data warpeace.*RNNLENS_DATA"):
        corpus_path("warpeace", tmp_path)
    with pytest.raises(RnnlensError, match=r"rnnlens data linux --tarball PATH"):
        load_corpus_bytes("linux", tmp_path)
    (tmp_path / "linux_input.txt").write_bytes(b"int x;\n")
    assert load_corpus_bytes("linux", tmp_path) == b"int x;\n"
    status = corpus_status("linux", tmp_path)
    assert status.present and status.size == 7 and status.checksum_ok is False
    assert corpus_status("warpeace", tmp_path).present is False


def test_corpora_verify_in_shared_data(shared_data):
    for name in ("warpeace", "linux"):
        status = corpus_status(name, shared_data)
        assert status.checksum_ok is True and status.size == CORPORA[name].size
        assert hashlib.sha256(load_corpus_bytes(name, shared_data)).hexdigest() == CORPORA[name].sha256


def test_trim_to_utf8_boundary():
    data = "aé€b".encode("utf-8")  # a, C3 A9, E2 82 AC, b
    assert [trim_to_utf8_boundary(data, k) for k in range(8)] == [
        b"", b"a", b"a", "aé".encode(), "aé".encode(), "aé".encode(), "aé€".encode(), data]
    assert trim_to_utf8_boundary(data, 100) == data


def _pystdlib_reference(max_bytes: int) -> bytes:
    """Independent brute force of the documented recipe (Path.rglob instead of os.walk)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__"}
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                   if p.is_file() and not skip.intersection(p.relative_to(root).parts[:-1]))
    random.Random(2015).shuffle(names)
    out = b""
    for name in names:
        raw = (root / name).read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out += raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if len(out) >= max_bytes:
            break
    out = out[:max_bytes]
    while True:
        try:
            out.decode("utf-8")
            return out
        except UnicodeDecodeError:
            out = out[:-1]


def test_pystdlib_matches_recipe_and_is_deterministic():
    data = pystdlib_bytes(300_000)
    assert data == _pystdlib_reference(300_000)
    assert len(data) > 299_990 and b"\r" not in data
    data.decode("utf-8")
    assert pystdlib_bytes(300_000) == data
    assert load_corpus_bytes("pystdlib").startswith(data)
    with pytest.raises(RnnlensError, match="max_bytes"):
        pystdlib_bytes(0)
