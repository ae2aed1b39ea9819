"""Text as numbers: reading a corpus into symbols, and the vocabulary that maps symbols to model ids.

A *symbol* is either a byte value (unit ``"byte"``, what the paper counts: K=87 for War and Peace) or a
Unicode code point (unit ``"char"``). Models never see symbols directly; they see *ids* ``0..K-1``, the
index of a symbol in the sorted vocabulary (:class:`Vocab`). Newline normalisation happens before
anything else, so ``"lf"`` makes CRLF files and LF files share one vocabulary.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence, get_args

import numpy as np

from rnnlens.exceptions import RnnlensError

Unit = Literal["byte", "char"]
Newline = Literal["keep", "lf", "crlf"]

UNITS: tuple[str, ...] = get_args(Unit)
NEWLINES: tuple[str, ...] = get_args(Newline)
MAX_CODE_POINT = 0x10FFFF

# Control bytes that ordinary text files do contain: \t \n \v \f \r and ESC (ANSI colour codes).
_TEXT_CONTROLS = frozenset({0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B})
_CONTROL_LIMIT = 0.30  # more than this share of other control bytes means "not text"


@dataclass(frozen=True)
class TextConfig:
    """How a file becomes symbols.

    unit: ``"byte"`` (the paper's unit) or ``"char"`` (Unicode code points; the file must be UTF-8,
        and a byte order mark is kept as the symbol U+FEFF, like the byte unit keeps its 3 bytes).
    newline: ``"keep"`` the bytes as they are; ``"lf"`` turns CRLF and lone CR into LF; ``"crlf"`` turns
        every line end (CRLF, lone CR, lone LF) into CRLF.
    """

    unit: Unit = "byte"
    newline: Newline = "keep"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise RnnlensError(f"unknown text unit {self.unit!r}; use one of {', '.join(UNITS)}")
        if self.newline not in NEWLINES:
            raise RnnlensError(f"unknown newline mode {self.newline!r}; use one of {', '.join(NEWLINES)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for run configs."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextConfig":
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        if not isinstance(d, dict):
            raise RnnlensError("text config must be a JSON object; check the run's config.json")
        unknown = sorted(set(d) - {"unit", "newline"})
        if unknown:
            raise RnnlensError(f"unknown text config keys {unknown}; remove them from the run's config.json")
        return cls(**d)


def normalize_newlines(data: bytes, newline: Newline) -> bytes:
    """Apply a newline mode to raw bytes (safe for UTF-8: CR and LF never occur inside a multibyte char)."""
    if newline == "keep":
        return data
    lf = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if newline == "lf":
        return lf
    if newline == "crlf":
        return lf.replace(b"\n", b"\r\n")
    raise RnnlensError(f"unknown newline mode {newline!r}; use one of {', '.join(NEWLINES)}")


MAX_TEXT_BYTES = 2**31  # a text's symbols take 8 bytes each in memory: 16 GiB for the largest accepted file


def _read_source(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    """Raw bytes of a file (or the bytes themselves) and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "the given bytes"
    return read_file_bytes(source), str(source)


def read_file_bytes(source: str | os.PathLike) -> bytes:
    """The bytes of a text file, with one-line errors for a missing path, a directory, a device or pipe (which
    would be read forever), a file too large to hold as symbols, and an unreadable file."""
    path = Path(source)
    if not path.exists():
        raise RnnlensError(f"text file {path} does not exist; check the path")
    if path.is_dir():
        raise RnnlensError(f"{path} is a directory, not a text file; pass a file")
    if not path.is_file():
        raise RnnlensError(f"{path} is not a regular file (a device, pipe or socket); save the text to a file and "
                           "pass that")
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise RnnlensError(f"{path} is {size / 2**30:.1f} GiB, more than rnnlens reads as one text "
                           f"({MAX_TEXT_BYTES / 2**30:.0f} GiB: 8 bytes of memory per symbol); train on a slice of it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RnnlensError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None
    return data


def _check_text_bytes(data: bytes, name: str) -> None:
    """Refuse binary data: NUL bytes, or too many control bytes that text does not use."""
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    if counts[0]:
        first = data.index(b"\x00")
        raise RnnlensError(f"{name} is not text (NUL byte at offset {first}); pass a plain text file")
    odd = int(counts[:32].sum() + counts[127]) - sum(int(counts[c]) for c in _TEXT_CONTROLS)
    if odd > _CONTROL_LIMIT * len(data):
        raise RnnlensError(
            f"{name} is not text ({odd} of {len(data)} bytes are control bytes); pass a plain text file"
        )


def _bytes_to_symbols(data: bytes, unit: Unit, name: str) -> np.ndarray:
    """Bytes (already newline-normalised) to int64 symbols of the given unit."""
    if unit == "byte":
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    try:
        text = data.decode("utf-8")  # plain utf-8 keeps a BOM as U+FEFF
    except UnicodeDecodeError as exc:
        raise RnnlensError(
            f"{name} is not valid UTF-8 (bad byte 0x{data[exc.start]:02X} at offset {exc.start}); "
            "use --unit byte, or convert the file to UTF-8"
        ) from None
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)


def read_symbols(source: str | os.PathLike | bytes, cfg: TextConfig) -> np.ndarray:
    """Read a text file (a path) or raw bytes into a 1-D int64 array of symbols.

    Newlines are normalised first (``cfg.newline``), then the bytes become byte values or code points.
    Raises RnnlensError (one line) for a missing file, a directory, an unreadable or empty file, and for
    data that is not text: NUL bytes or more than 30% control bytes other than tab, line ends, form feed,
    vertical tab and ESC; for the char unit also bytes that are not valid UTF-8 (the offset is named).
    """
    data, name = _read_source(source)
    if not data:
        raise RnnlensError(f"{name} is empty; pass a file with some text in it")
    _check_text_bytes(data, name)
    return _bytes_to_symbols(normalize_newlines(data, cfg.newline), cfg.unit, name)


def text_to_symbols(text: str, cfg: TextConfig) -> np.ndarray:
    """Symbols of a string typed by a user (e.g. prime text), with the same newline mode as the corpus.

    For the byte unit the text is UTF-8 encoded; lone surrogates (undecodable command-line bytes)
    turn back into their original bytes. An empty string gives an empty array.
    """
    if cfg.unit == "byte":
        try:
            data = text.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            raise RnnlensError("text contains lone surrogate characters; pass valid Unicode text") from None
        return np.frombuffer(normalize_newlines(data, cfg.newline), dtype=np.uint8).astype(np.int64)
    if cfg.newline != "keep":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if cfg.newline == "crlf":
            text = text.replace("\n", "\r\n")
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4").astype(np.int64)


def symbols_to_text(symbols: Sequence[int] | np.ndarray, unit: Unit) -> str:
    """Text of a symbol sequence.

    Byte symbols are decoded as UTF-8 with ``errors="replace"``: a multibyte character cut in half (as
    at the edge of a sample or a split) shows as U+FFFD instead of failing. Code points are joined.
    """
    arr = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if unit == "byte":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise RnnlensError("byte symbols must be in 0..255; check that the unit matches the model")
        return arr.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
    if unit == "char":
        if arr.size and (arr.min() < 0 or arr.max() > MAX_CODE_POINT):
            raise RnnlensError("code points must be in 0..0x10FFFF; check that the unit matches the model")
        return arr.astype("<u4").tobytes().decode("utf-32-le", errors="replace")
    raise RnnlensError(f"unknown text unit {unit!r}; use one of {', '.join(UNITS)}")


def describe_symbol(symbol: int, unit: Unit) -> str:
    """A printable name of one symbol for messages: ``'é' (U+00E9)``, ``'a' (byte 0x61)``, ``byte 0xC3``."""
    if unit == "byte":
        if 0x20 <= symbol < 0x7F:
            return f"{chr(symbol)!r} (byte 0x{symbol:02X})"
        return f"byte 0x{symbol:02X}"
    return f"{chr(symbol)!r} (U+{symbol:04X})"


@dataclass(frozen=True)
class Vocab:
    """The sorted unique symbols of a training text; a symbol's id is its index (0..K-1)."""

    unit: Unit
    symbols: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise RnnlensError(f"unknown vocabulary unit {self.unit!r}; use one of {', '.join(UNITS)}")
        top = 255 if self.unit == "byte" else MAX_CODE_POINT
        syms = self.symbols
        if not syms:
            raise RnnlensError("vocabulary is empty; build it from a non-empty text")
        if any(type(s) is not int for s in syms):
            raise RnnlensError("vocabulary symbols must be integers; check the run's config.json")
        if any(a >= b for a, b in zip(syms, syms[1:])):
            raise RnnlensError("vocabulary symbols must be sorted and unique; check the run's config.json")
        if syms[0] < 0 or syms[-1] > top:
            raise RnnlensError(
                f"vocabulary symbols must be in 0..{top} for unit {self.unit!r}; check the run's config.json"
            )
        object.__setattr__(self, "_table", np.asarray(syms, dtype=np.int64))

    @classmethod
    def build(cls, symbols: np.ndarray, unit: Unit) -> "Vocab":
        """Vocabulary of all symbols that occur in ``symbols``."""
        uniq = np.unique(np.asarray(symbols, dtype=np.int64))
        return cls(unit=unit, symbols=tuple(int(s) for s in uniq))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, symbols: np.ndarray) -> np.ndarray:
        """int64 ids of symbols; symbols not in the vocabulary raise RnnlensError naming them."""
        arr = np.asarray(symbols, dtype=np.int64)
        table: np.ndarray = self._table  # type: ignore[attr-defined]
        if self.unit == "byte" and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 255)):
            lookup = np.full(256, -1, dtype=np.int64)  # direct table: much faster than a search on 6 MB
            lookup[table] = np.arange(len(table))
            ids_c = lookup[arr]
            unseen = ids_c < 0
        else:
            ids_c = np.minimum(np.searchsorted(table, arr), len(table) - 1)
            unseen = table[ids_c] != arr
        if unseen.any():
            bad = arr[unseen]
            first: list[int] = []
            for s in bad.reshape(-1).tolist():  # distinct, in order of appearance, first few only
                if s not in first:
                    first.append(s)
                if len(first) == 5:
                    break
            distinct = len(np.unique(bad))
            shown = ", ".join(self._describe(s) for s in first)
            raise RnnlensError(
                f"{bad.size} symbol(s) ({distinct} distinct) are not in the model's vocabulary, e.g. {shown}; "
                "remove them from the text, or train on text that contains them"
            )
        return ids_c.astype(np.int64)

    def _describe(self, s: int) -> str:
        if self.unit == "byte" and not 0 <= s <= 255:
            return f"symbol {s}"
        if self.unit == "char" and not 0 <= s <= MAX_CODE_POINT:
            return f"symbol {s}"
        return describe_symbol(s, self.unit)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of a sequence of ids (see :func:`symbols_to_text` for how bytes are decoded)."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise RnnlensError(f"ids must be in 0..{len(self) - 1}; check that the model and vocabulary match")
        return symbols_to_text(self._table[arr], self.unit)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{"unit": ..., "symbols": [...]}``."""
        return {"unit": self.unit, "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Vocab":
        """Inverse of :meth:`to_dict`; validates (sorted, unique, in range) and raises RnnlensError if bad."""
        if not isinstance(d, dict) or "unit" not in d or "symbols" not in d:
            raise RnnlensError("vocabulary must be an object with 'unit' and 'symbols'; check the run's config.json")
        if not isinstance(d["symbols"], (list, tuple)):
            raise RnnlensError("vocabulary 'symbols' must be a list of integers; check the run's config.json")
        return cls(unit=d["unit"], symbols=tuple(d["symbols"]))
