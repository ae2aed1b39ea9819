"""Tests for rnnlens.fsutil: a full disk or quota during an atomic write is a one-line DiskFullError."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from rnnlens import fsutil
from rnnlens.checkpoint import load_tensors, save_tensors
from rnnlens.exceptions import DiskFullError, RnnlensError
from rnnlens.fsutil import atomic_write, atomic_write_text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "no space left on device"),
                                          (errno.EDQUOT, "disk quota exceeded")])
def test_a_full_disk_at_the_rename_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch, code, reason):
    path = atomic_write_text(tmp_path / "a.txt", "old")

    def full(src, dst):
        raise OSError(code, os.strerror(code), src)

    monkeypatch.setattr(fsutil.os, "replace", full)
    with pytest.raises(DiskFullError) as info:
        atomic_write_text(path, "new")
    assert isinstance(info.value, RnnlensError) and info.value.path == str(path)
    assert str(info.value).startswith(f"{reason} while writing {path}; ")
    assert "\n" not in str(info.value)
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_a_partial_write_that_fills_the_disk_leaves_no_temp_file(tmp_path):
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        atomic_write(tmp_path / "b.bin", write)
    assert list(tmp_path.iterdir()) == []


def test_safetensors_wrapping_the_os_error_is_recognised(tmp_path, monkeypatch):
    """safetensors' Rust writer reports ENOSPC as a SafetensorError whose text carries the OS message."""
    path = tmp_path / "state.safetensors"
    save_tensors(path, {"w": torch.ones(3)}, {"step": 1})
    before = path.read_bytes()

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 10)
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    monkeypatch.setattr("rnnlens.checkpoint.save_file", full)
    with pytest.raises(DiskFullError, match=f"while writing {path}"):
        save_tensors(path, {"w": torch.zeros(3)}, {"step": 2})
    assert path.read_bytes() == before and load_tensors(path)[1] == {"step": 1}
    assert _leftovers(tmp_path) == []


def test_other_os_errors_pass_through_unchanged(tmp_path):
    def write(tmp: str) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "c.txt", write)
    assert not isinstance(info.value, RnnlensError) and info.value.errno == errno.EACCES
    assert list(tmp_path.iterdir()) == []


def test_is_disk_full_follows_the_chain_of_causes():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("writing failed") from inner
    except RuntimeError as outer:
        assert fsutil.is_disk_full(outer)
    assert not fsutil.is_disk_full(RuntimeError("writing failed"))
    assert not fsutil.is_disk_full(OSError(errno.EIO, "Input/output error"))


def test_disk_full_error_survives_pickling_with_its_hint():
    exc = DiskFullError("runs/x/state.safetensors", "no space left on device", "resume it")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is DiskFullError and str(back) == str(exc) and back.path == exc.path
    assert str(exc.with_hint("free space")) == "no space left on device while writing runs/x/state.safetensors; free space"


def test_record_path_is_relative_beneath_the_working_directory_and_absolute_elsewhere(tmp_path, monkeypatch):
    from rnnlens.fsutil import record_path

    (tmp_path / "repo" / "models" / "m").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert record_path(tmp_path / "repo" / "results" / "r" / ".." / ".." / "models" / "m") == os.path.join("models", "m")
    assert record_path("models/m") == os.path.join("models", "m")
    assert record_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")  # outside: absolute, normalised
    assert record_path(tmp_path / "repo") == "."
