"""Getting the paper's corpora: War and Peace from Project Gutenberg, Linux Kernel from a source tarball.

Both write their file atomically (temp file in the destination folder, then ``os.replace``), check the
result against the paper's known sha256, and never replace an existing verified file unless forced.
"""
from __future__ import annotations

import hashlib
import random
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from rnnlens.data.corpora import (CORPORA, LINUX_SHA256, LINUX_SIZE, WARPEACE_SHA256, file_sha256,
                             trim_to_utf8_boundary)
from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import atomic_write_bytes

GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/2600/pg2600.txt"
BOM = b"\xef\xbb\xbf"
_START = re.compile(rb"^\*\*\* ?START OF[^\n]*\n", re.MULTILINE)
_END = re.compile(rb"^\*\*\* ?END OF", re.MULTILINE)
# Extra bytes read beyond the target in one pass over the tarball, in case some files are not UTF-8.
READ_SLACK_FRACTION = 0.1
READ_SLACK_BYTES = 65536


@dataclass(frozen=True)
class CorpusFile:
    """The outcome of fetching or building a corpus file.

    verified: the file's sha256 equals the paper's known checksum. note: one line for the user (why it
    is not verified, or that an existing file was kept). files_used: for the Linux corpus, how many
    source files went into it.
    """

    path: Path
    size: int
    sha256: str
    verified: bool
    note: str
    files_used: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _save(dest: Path, data: bytes) -> None:
    """Atomic write; a failure (read-only or missing folder) becomes a one-line RnnlensError."""
    try:
        atomic_write_bytes(dest, data)
    except OSError as exc:
        raise RnnlensError(f"cannot write {dest}: {exc.strerror or exc}; pass a writable --data-dir") from None


def _existing_verified(path: Path, sha: str) -> CorpusFile | None:
    """The existing file's result if it is there and matches the known checksum."""
    if path.is_file() and file_sha256(path) == sha:
        return CorpusFile(path, path.stat().st_size, sha, True,
                          "already present and verified; pass --force to fetch it again")
    return None


def _fetch(url: str, timeout: float) -> bytes:
    """The body of a URL; any failure becomes a one-line RnnlensError."""
    req = urllib.request.Request(url, headers={"User-Agent": "rnnlens (+https://github.com/)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = str(exc.reason)
    except (OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
    raise RnnlensError(
        f"could not download {url}: {reason}; check the network, or pass --url of a mirror of Gutenberg ebook 2600"
    )


def gutenberg_body(raw: bytes) -> bytes:
    """The book text of a Gutenberg plain-text file, as the authors' copy is laid out.

    Drops everything up to and including the ``*** START OF ...`` line and everything from the
    ``*** END OF ...`` line on, and blank lines at both ends; line ends become CRLF and the text gets a
    UTF-8 byte order mark (the authors' copy has one). A BOM inside the downloaded file is dropped.
    """
    start = _START.search(raw)
    end = _END.search(raw, start.end() if start else 0)
    if start is None or end is None:
        raise RnnlensError(
            "the downloaded file has no '*** START OF' / '*** END OF' Gutenberg markers; "
            "check that --url points to the plain text of ebook 2600"
        )
    body = raw[start.end():end.start()].replace(BOM, b"")
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").strip(b"\n")
    if not body.strip():
        raise RnnlensError("the downloaded file has no text between its Gutenberg markers; check --url")
    return BOM + (body + b"\n").replace(b"\n", b"\r\n")


def download_warpeace(dest_dir: Path, url: str = GUTENBERG_URL, timeout: float = 60,
                      force: bool = False) -> CorpusFile:
    """Download War and Peace (Gutenberg ebook 2600) into ``dest_dir/warpeace_input.txt``.

    The result is verified only if its sha256 equals the authors' copy; Gutenberg has revised the text
    since, so an unverified file is kept and the note says why. ``file://`` URLs work too.
    """
    dest = Path(dest_dir) / (CORPORA["warpeace"].filename or "warpeace_input.txt")
    if not force and (kept := _existing_verified(dest, WARPEACE_SHA256)):
        return kept
    data = gutenberg_body(_fetch(url, timeout))
    _save(dest, data)
    sha = hashlib.sha256(data).hexdigest()
    verified = sha == WARPEACE_SHA256
    note = ("verified: identical to the authors' copy" if verified else
            f"not verified: sha256 {sha[:12]}... differs from the authors' copy ({WARPEACE_SHA256[:12]}...), "
            "because Gutenberg revised the text since; results will differ slightly from the paper's")
    return CorpusFile(dest, len(data), sha, verified, note)


def _source_name(member_name: str) -> str:
    """A member's path inside the source tree: without a leading './' and without the top folder."""
    name = member_name
    while name.startswith("./"):
        name = name[2:]
    return name.split("/", 1)[1] if "/" in name else name


def _open_stream(tarball: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(tarball, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RnnlensError(f"cannot read {tarball} as a tar archive ({exc}); pass a .tar, .tar.gz or .tar.xz") from None


def _sources(tarball: Path, desc: str = "", progress: bool = False
             ) -> Iterator[tuple[int, tarfile.TarFile, tarfile.TarInfo, str]]:
    """Stream (ordinal, archive, member, source name) for every regular .c/.h member, in archive order.

    With ``progress`` a tqdm counter of archive members goes to stderr.
    """
    with _open_stream(tarball) as tar, tqdm(desc=desc, unit=" members", disable=not progress) as bar:
        try:
            for i, member in enumerate(tar):
                bar.update()
                name = _source_name(member.name)
                if member.isreg() and name.endswith((".c", ".h")):
                    yield i, tar, member, name
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RnnlensError(f"{tarball} is damaged or truncated ({exc}); download the tarball again") from None


def _read_members(tarball: Path, wanted: dict[int, str], progress: bool = False) -> dict[str, bytes]:
    """One streaming pass that reads the bytes of the members at the given ordinals (and stops early)."""
    out: dict[str, bytes] = {}
    stream = _sources(tarball, f"reading {len(wanted)} files", progress)
    try:
        for i, tar, member, name in stream:
            if i in wanted:
                f = tar.extractfile(member)
                out[name] = f.read() if f is not None else b""
                if len(out) == len(wanted):
                    break
    finally:
        stream.close()
    return out


def linux_corpus_bytes(tarball: Path, target_size: int = LINUX_SIZE, seed: int = 2015,
                       progress: bool = False) -> tuple[bytes, int]:
    """The LK recipe of PAPER.md: the corpus bytes and the number of files used.

    Regular ``.c``/``.h`` members (no symlinks), named without the top folder, sorted, shuffled with
    ``random.Random(seed)``; files that are not UTF-8 are skipped; concatenated until ``target_size``
    bytes and cut there (moved back to a whole UTF-8 character). Memory stays near ``target_size``: a
    first pass over the archive collects names and sizes, later passes read only the files needed.
    """
    tarball = Path(tarball)
    if not tarball.is_file():
        raise RnnlensError(f"tarball {tarball} not found; pass the path of a Linux source .tar.xz with --tarball")
    if target_size < 1:
        raise RnnlensError(f"target size must be positive, got {target_size}; pass e.g. {LINUX_SIZE}")
    index: dict[str, tuple[int, int]] = {}  # name -> (ordinal, size); a later duplicate wins, as on extraction
    for i, _tar, member, name in _sources(tarball, "listing the tarball", progress):
        index[name] = (i, member.size)
    order = sorted(index)
    random.Random(seed).shuffle(order)
    parts: list[bytes] = []
    total = used = pos = 0
    while total < target_size and pos < len(order):
        batch: list[str] = []  # next files that would reach the target (plus slack for skipped ones)
        planned = total
        while pos < len(order) and planned < target_size * (1 + READ_SLACK_FRACTION) + READ_SLACK_BYTES:
            batch.append(order[pos])
            planned += index[order[pos]][1]
            pos += 1
        contents = _read_members(tarball, {index[n][0]: n for n in batch}, progress)
        for name in batch:
            data = contents.get(name, b"")
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            parts.append(data)
            total += len(data)
            used += 1
            if total >= target_size:
                break
    if total < target_size:
        raise RnnlensError(
            f"{tarball} has only {total} bytes of UTF-8 .c/.h files, fewer than the {target_size} needed; "
            "pass a full Linux source tarball"
        )
    return trim_to_utf8_boundary(b"".join(parts), target_size), used


def build_linux(tarball: Path, dest_dir: Path, target_size: int = LINUX_SIZE, seed: int = 2015,
                force: bool = False, progress: bool = False) -> CorpusFile:
    """Build ``dest_dir/linux_input.txt`` from a Linux source tarball with the paper's recipe.

    Verified when the size and seed are the defaults and the sha256 equals the known one (Linux 6.1.192,
    Debian's ``linux-source-6.1``: 424 files); other tarballs give another, unverified corpus.
    """
    dest = Path(dest_dir) / (CORPORA["linux"].filename or "linux_input.txt")
    default = target_size == LINUX_SIZE and seed == 2015
    if not force and default and (kept := _existing_verified(dest, LINUX_SHA256)):
        return kept
    data, used = linux_corpus_bytes(Path(tarball), target_size, seed, progress)
    _save(dest, data)
    sha = hashlib.sha256(data).hexdigest()
    verified = default and sha == LINUX_SHA256
    if verified:
        note = "verified: identical to the paper's LK corpus"
    elif default:
        note = (f"not verified: sha256 {sha[:12]}... differs from the known corpus ({LINUX_SHA256[:12]}...); "
                "the known one comes from Linux 6.1.192 (Debian linux-source-6.1)")
    else:
        note = "not verified: no checksum is known for a custom size or seed"
    return CorpusFile(dest, len(data), sha, verified, note, used)
