"""One writer per folder: an exclusive OS lock on a run or reproduction folder while a process writes it.

The lock is ``fcntl.flock`` on ``FOLDER/.rnnlens.lock``; the kernel drops it when the holder's file is closed,
so a holder that is SIGKILLed leaves no lock behind (at most a stale lock *file*, which means nothing). The
holder writes its pid into the file, so a refused writer and ``rnnlens runs`` can name it. Readers (eval,
serve, report, curves) never take the lock and are never blocked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from .exceptions import RnnlensError

LOCK_NAME = ".rnnlens.lock"
# A probe of holder() takes a shared lock for microseconds; a writer retries this long before refusing,
# so a `rnnlens runs --watch` looking at the folder never makes a writer fail.
_ACQUIRE_RETRY_S = 0.5


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _read_pid(path: Path) -> int:
    """The pid in a held lock file; 0 when it cannot be read (the holder is just writing it)."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return 0


def holder(folder: str | os.PathLike) -> int | None:
    """The pid of the live process holding ``folder``'s write lock (0 if it has not written its pid yet),
    or None when no process holds it. Read-only: never creates the lock file."""
    path = lock_path(folder)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read_pid(path)
    finally:
        os.close(fd)


def acquire(folder: str | os.PathLike, what: str = "folder", retry_s: float = _ACQUIRE_RETRY_S) -> int:
    """Take the write lock of the existing ``folder``; returns the open descriptor to pass to :func:`release`.
    Another holder: ``RnnlensError`` naming its pid, and nothing in the folder is touched."""
    folder = Path(folder)
    path = lock_path(folder)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RnnlensError(f"cannot lock {what} {folder} for writing ({exc.strerror}); check that the folder "
                               "exists and is writable") from None
        if _try_flock(fd, fcntl.LOCK_EX):
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else a releasing holder unlinked the file under us: lock the new one
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                return fd
            os.close(fd)
            continue
        os.close(fd)
        if time.monotonic() >= deadline:
            pid = _read_pid(path)
            who = f"pid {pid}" if pid else "a process that is starting"
            raise RnnlensError(f"{what} {folder} is being written by another process ({who}); wait for it to end "
                               f"or stop it (kill {pid or 'PID'}), then run this again")
        time.sleep(0.02)


def release(folder: str | os.PathLike, fd: int) -> None:
    """Drop the lock taken by :func:`acquire` and remove its file (a stale one would only hold a dead pid)."""
    try:
        os.unlink(lock_path(folder))
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(folder: str | os.PathLike, what: str = "folder") -> Iterator[None]:
    """``with hold(run_dir, "run"):`` the calling process is the folder's only writer."""
    fd = acquire(folder, what)
    try:
        yield
    finally:
        release(folder, fd)
