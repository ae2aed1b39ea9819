"""Named corpora: where their files live, their split presets and known checksums, and the built-in one.

* ``warpeace``: War and Peace as in the authors' char-rnn (``rnnlens data warpeace`` downloads it).
* ``linux``: the paper's Linux Kernel corpus (``rnnlens data linux --tarball PATH`` builds it).
* ``pystdlib``: built in, needs no file: the running Python's standard library sources (see
  :func:`pystdlib_bytes`). Handy for trying the tool offline; not part of the paper.

Corpus files live in a data directory: ``--data-dir`` if given, else ``$RNNLENS_DATA``, else
``~/.cache/rnnlens/data``.
"""
from __future__ import annotations

import hashlib
import os
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from rnnlens.exceptions import RnnlensError

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.9, 0.05, 0.05)  # for a user's own --text file
DATA_ENV = "RNNLENS_DATA"
PYSTDLIB_SEED = 2015
_PYSTDLIB_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3",
                                 "turtledemo", "__pycache__"})


@dataclass(frozen=True)
class CorpusSpec:
    """A named corpus: its file in the data directory (None if built in), split preset and checksum."""

    name: str
    filename: str | None
    fractions: tuple[float, float, float]
    sha256: str | None
    size: int | None
    description: str


WARPEACE_SHA256 = "52adf13b4aeeb5a84199b1ad2ef4781966839d4f9e707d552b42e3422cd17581"
WARPEACE_SIZE = 3_258_250
LINUX_SHA256 = "f8db262331a08d56c2fd4c7c8da9c06276a36efa414828bf721c3d2edde5b586"
LINUX_SIZE = 6_206_996

CORPORA: dict[str, CorpusSpec] = {
    "warpeace": CorpusSpec(
        "warpeace", "warpeace_input.txt", (0.8, 0.1, 0.1), WARPEACE_SHA256, WARPEACE_SIZE,
        "War and Peace, the authors' char-rnn copy (UTF-8 with BOM, CRLF); get it with `rnnlens data warpeace`",
    ),
    "linux": CorpusSpec(
        "linux", "linux_input.txt", (0.9, 0.05, 0.05), LINUX_SHA256, LINUX_SIZE,
        "Linux 6.1 .c/.h files shuffled and concatenated; build it with `rnnlens data linux --tarball PATH`",
    ),
    "pystdlib": CorpusSpec(
        "pystdlib", None, (0.9, 0.05, 0.05), None, None,
        "built in: the running Python's standard library sources (about 2 MB, differs between Python versions)",
    ),
}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$RNNLENS_DATA`` if set, else ``~/.cache/rnnlens/data``."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rnnlens" / "data"


def get_spec(name: str) -> CorpusSpec:
    """The spec of a named corpus; RnnlensError listing the known names if unknown."""
    try:
        return CORPORA[name]
    except KeyError:
        raise RnnlensError(
            f"unknown corpus {name!r}; use one of {', '.join(CORPORA)}, or pass your own file with --text"
        ) from None


def _fetch_hint(name: str) -> str:
    if name == "warpeace":
        return "run `rnnlens data warpeace`"
    if name == "linux":
        return "run `rnnlens data linux --tarball PATH` (PATH: a Linux 6.1 source tarball)"
    return f"put {CORPORA[name].filename} there"


def corpus_path(name: str, data_dir_: str | os.PathLike | None = None) -> Path:
    """Path of a named corpus file in the data directory; RnnlensError if unknown, built in, or missing."""
    spec = get_spec(name)
    if spec.filename is None:
        raise RnnlensError(f"corpus {name!r} is built in and has no file; load it with load_corpus_bytes")
    folder = data_dir(data_dir_)
    path = folder / spec.filename
    if not path.is_file():
        raise RnnlensError(
            f"corpus {name!r} not found: no {spec.filename} in {folder}; {_fetch_hint(name)}, "
            f"or point --data-dir / {DATA_ENV} at the folder that holds it"
        )
    return path


def load_corpus_bytes(name: str, data_dir_: str | os.PathLike | None = None) -> bytes:
    """Raw bytes of a named corpus (pystdlib is generated in memory, the others read from the data dir)."""
    spec = get_spec(name)
    if spec.filename is None:
        return pystdlib_bytes()
    path = corpus_path(name, data_dir_)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RnnlensError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CorpusStatus:
    """What ``rnnlens data list`` reports for one corpus. ``checksum_ok`` is None when not checkable."""

    name: str
    path: str | None
    present: bool
    size: int | None
    sha256: str | None
    checksum_ok: bool | None
    description: str


def corpus_status(name: str, data_dir_: str | os.PathLike | None = None) -> CorpusStatus:
    """Presence, size and checksum state of a named corpus in the data directory."""
    spec = get_spec(name)
    if spec.filename is None:
        return CorpusStatus(name, None, True, len(pystdlib_bytes()), None, None, spec.description)
    path = data_dir(data_dir_) / spec.filename
    if not path.is_file():
        return CorpusStatus(name, str(path), False, None, None, None, spec.description)
    sha = file_sha256(path)
    ok = None if spec.sha256 is None else sha == spec.sha256
    return CorpusStatus(name, str(path), True, path.stat().st_size, sha, ok, spec.description)


def trim_to_utf8_boundary(data: bytes, size: int) -> bytes:
    """``data[:size]``, moved back so that it does not end inside a multibyte UTF-8 character."""
    cut = min(size, len(data))
    while 0 < cut < len(data) and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def _pystdlib_files(root: Path) -> list[str]:
    """Relative posix paths of the stdlib's .py files, skipping tests, site-packages and demo folders."""
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _PYSTDLIB_SKIP_DIRS]
        rel = Path(dirpath).relative_to(root)
        names.extend((rel / f).as_posix() for f in filenames if f.endswith(".py"))
    return sorted(names)


def pystdlib_bytes(max_bytes: int = 2_000_000) -> bytes:
    """The built-in corpus: Python standard library sources, deterministic for one Python version.

    The ``.py`` files under the running Python's stdlib directory (``sysconfig``), without
    site-packages, test/tests folders, idlelib, lib2to3 and turtledemo, sorted by relative path,
    shuffled with ``random.Random(2015)``, files that are not valid UTF-8 skipped, line ends normalised
    to LF, concatenated until ``max_bytes`` and cut there (moved back to a whole UTF-8 character).
    Another Python version has other sources and so gives another corpus.
    """
    if max_bytes < 1:
        raise RnnlensError(f"max_bytes must be positive, got {max_bytes}; pass e.g. 2000000")
    root = Path(sysconfig.get_paths()["stdlib"])
    names = _pystdlib_files(root) if root.is_dir() else []
    random.Random(PYSTDLIB_SEED).shuffle(names)
    parts: list[bytes] = []
    total = 0
    for name in names:
        try:
            data = (root / name).read_bytes()
            data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    if total == 0:
        raise RnnlensError(
            f"no Python standard library sources found under {root}; use --corpus warpeace/linux or --text FILE"
        )
    return trim_to_utf8_boundary(b"".join(parts), max_bytes)
