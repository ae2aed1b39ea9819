"""Tests for rnnlens.checkpoint: safetensors round trip with metadata, atomic saves, no unpickling, damage."""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import rnnlens.checkpoint as checkpoint
from rnnlens.checkpoint import META_KEY, check_state_dict, load_tensors, save_tensors
from rnnlens.exceptions import RnnlensError
from rnnlens.model import CharRNN, ModelConfig

META = {"kind": "best", "step": 120, "val_loss": 1.2345678901234567, "nested": {"list": [1, 2.5, None], "s": "é\n"}}


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "model.w": torch.randn(3, 4, generator=g),
        "model.t": torch.randn(4, 3, generator=g).t(),  # not contiguous
        "optim.0.step": torch.tensor(7.0),  # 0-d
        "rng.cpu": torch.randint(0, 255, (16,), generator=g, dtype=torch.uint8),
        "hidden.0": torch.randn(2, 3, 5, dtype=torch.float64, generator=g),
        "ids": torch.arange(6, dtype=torch.int64),
    }


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


def test_round_trip_keeps_tensors_dtypes_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.safetensors"
    original = tensors()
    assert save_tensors(path, original, META) == path
    loaded, meta = load_tensors(path)
    assert_same(loaded, original)
    assert meta == META
    assert os.listdir(path.parent) == ["x.safetensors"]  # no temp files left behind


def test_the_file_is_safetensors_with_the_metadata_in_its_header(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_tensors(path, tensors(), META)
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert json.loads(header["__metadata__"][META_KEY]) == META
    assert header["model.w"]["dtype"] == "F32" and header["model.w"]["shape"] == [3, 4]
    assert not raw.startswith(b"\x80")  # not a pickle stream (protocol 2+ starts with 0x80)
    assert not raw.startswith(b"PK")  # not torch.save's zip archive


def test_saving_replaces_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.zeros(2)}, {"v": 1})
    save_tensors(path, {"b": torch.ones(3)}, {"v": 2})
    loaded, meta = load_tensors(path)
    assert list(loaded) == ["b"] and meta == {"v": 2}


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failing_write_leaves_the_old_file_intact(tmp_path: Path, monkeypatch, error: BaseException) -> None:
    path = tmp_path / "x.safetensors"
    save_tensors(path, tensors(), META)
    before = path.read_bytes()
    calls = []

    def half_then_fail(data, filename, metadata=None):
        save_file(data, filename, metadata=metadata)  # the real write ...
        with open(filename, "r+b") as fh:  # ... cut short, as a crash or a full disk would
            fh.truncate(os.path.getsize(filename) // 2)
        calls.append(filename)
        raise error

    monkeypatch.setattr(checkpoint, "save_file", half_then_fail)
    with pytest.raises(type(error)):
        save_tensors(path, {"other": torch.ones(100)}, {"kind": "new"})
    assert calls and Path(calls[0]).parent == path.parent and Path(calls[0]) != path  # it wrote elsewhere
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.safetensors"]  # the partial temp file was removed
    loaded, meta = load_tensors(path)
    assert meta == META and set(loaded) == set(tensors())


def test_a_first_save_that_fails_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    def fail(data, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", fail)
    with pytest.raises(OSError):
        save_tensors(tmp_path / "x.safetensors", tensors(), META)
    assert os.listdir(tmp_path) == []


class _Trap:
    """Unpickling this object runs code: it leaves a marker file. A safe loader never does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


def test_loading_never_unpickles(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    for name, write in (("pickle.safetensors", lambda p: p.write_bytes(pickle.dumps(_Trap(marker)))),
                        ("torch.safetensors", lambda p: torch.save({"x": _Trap(marker)}, p))):
        path = tmp_path / name
        write(path)
        assert not marker.exists()
        with pytest.raises(RnnlensError, match="corrupted or truncated"):
            load_tensors(path)
        assert not marker.exists(), f"{name} was unpickled"
    # A normal load calls none of the unpickling entry points.

    def forbidden(*args, **kwargs):
        raise AssertionError("an unpickling function was called")

    save_tensors(tmp_path / "ok.safetensors", tensors(), META)
    for module, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, attr, forbidden)
    loaded, meta = load_tensors(tmp_path / "ok.safetensors")
    assert meta == META and set(loaded) == set(tensors())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RnnlensError, match="does not exist"):
        load_tensors(tmp_path / "nope.safetensors", kind="weights")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(RnnlensError, match="does not exist"):
        load_tensors(tmp_path / "dir.safetensors")


@pytest.mark.parametrize("damage", ["half", "header_only", "random", "empty", "flipped_header_byte"])
def test_damaged_files_raise_one_line_errors(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "x.safetensors"
    save_tensors(path, tensors(), META)
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    damaged = {
        "half": raw[: len(raw) // 2],
        "header_only": raw[: 8 + header_len],
        "random": os.urandom(len(raw)),
        "empty": b"",
        "flipped_header_byte": raw[:12] + bytes([raw[12] ^ 0xFF]) + raw[13:],
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(RnnlensError) as info:
        load_tensors(path, kind="weights")
    message = str(info.value)
    assert message.startswith(f"weights {path} is corrupted or truncated") and "\n" not in message
    assert path.read_bytes() == damaged  # loading never rewrites


@pytest.mark.parametrize("metadata", [None, {"other": "x"}, {META_KEY: "{not json"}])
def test_safetensors_without_rnnlens_metadata_is_refused(tmp_path: Path, metadata) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"a": torch.zeros(2)}, str(path), metadata=metadata)
    with pytest.raises(RnnlensError, match="corrupted or truncated"):
        load_tensors(path)


def test_check_state_dict_accepts_the_right_weights_and_refuses_others(tmp_path: Path) -> None:
    model = CharRNN(ModelConfig(cell="lstm", layers=1, hidden=8, vocab_size=10))
    path = tmp_path / "best.safetensors"
    good = model.state_dict()
    check_state_dict(model, good, path)
    other_k = CharRNN(ModelConfig(cell="lstm", layers=1, hidden=8, vocab_size=12)).state_dict()
    with pytest.raises(RnnlensError, match="another vocabulary") as info:
        check_state_dict(model, other_k, path)
    assert "\n" not in str(info.value)
    with pytest.raises(RnnlensError, match="lacks weights"):
        check_state_dict(model, {k: v for k, v in good.items() if k != "head.bias"}, path)
    gru = CharRNN(ModelConfig(cell="gru", layers=1, hidden=8, vocab_size=10)).state_dict()
    with pytest.raises(RnnlensError):
        check_state_dict(model, gru, path)


def test_check_state_dict_refuses_extra_weights(tmp_path: Path) -> None:
    """Weights of a deeper model have every key of a shallower one plus more: they must be refused too,
    or ``load_state_dict`` raises a RuntimeError (a traceback) instead of a one-line error."""
    model = CharRNN(ModelConfig(cell="lstm", layers=1, hidden=8, vocab_size=10))
    deeper = CharRNN(ModelConfig(cell="lstm", layers=2, hidden=8, vocab_size=10)).state_dict()
    with pytest.raises(RnnlensError):
        check_state_dict(model, deeper, tmp_path / "best.safetensors")


def test_atomic_writes_get_ordinary_permissions(tmp_path: Path) -> None:
    """mkstemp creates 0600 files; results must be readable like any other file the user writes."""
    import os

    from rnnlens.fsutil import atomic_write_text

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
