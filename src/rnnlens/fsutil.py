"""Atomic file writes: a reader never sees a half-written file, a crash never destroys the old one."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .exceptions import DiskFullError

# errno values that mean "the disk or the quota is full" (EDQUOT does not exist on every platform)
DISK_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from, e.g. inside safetensors) is a full disk or quota."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True  # libraries (safetensors' Rust writer) that re-raise the OS error as their own type
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def disk_full_reason(exc: BaseException) -> str:
    quota = getattr(errno, "EDQUOT", None)
    if (isinstance(exc, OSError) and quota is not None and exc.errno == quota) or "quota" in str(exc).lower():
        return "disk quota exceeded"
    return "no space left on device"


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` for a temp file beside ``path``, fsync it, then rename it over ``path``.

    A full disk or quota (ENOSPC, EDQUOT) anywhere on the way removes the temp file and raises
    :class:`~rnnlens.exceptions.DiskFullError` naming ``path``; the old ``path``, if any, is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, Exception) and not isinstance(exc, DiskFullError) and is_disk_full(exc):
            raise DiskFullError(str(path), disk_full_reason(exc)) from exc
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; raises OSError / json.JSONDecodeError for the caller to phrase."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def record_path(path: str | os.PathLike) -> str:
    """``path`` as a JSON record names it: normalised, and relative to the working directory when it lies
    beneath it (``models/wp-lstm-1.3m``, not ``/home/me/rnnlens/results/x/../../models/wp-lstm-1.3m``), so a
    committed result carries no machine's absolute paths; absolute when it lies elsewhere."""
    full = os.path.abspath(path)
    here = os.getcwd()
    inside = os.path.commonpath([full, here]) == here
    return os.path.relpath(full, here) if inside else full
