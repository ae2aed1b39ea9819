"""Captured activations kept whole: in memory for short texts, or as memory-mapped ``.npy`` files on disk.

A :class:`Capture` holds, for every captured name, an array of shape (B, N, ...) in the split's row layout:
``capture[name][r, j]`` belongs to input character ``x[r, j]`` (at text offset ``row_starts[r] + j``) and
is the state after reading it, i.e. what predicts ``y[r, j]``. ``positions()`` and ``locate()`` map
(row, column) <-> offset in the text's id stream.

A capture directory holds one ``<name>.npy`` per name (e.g. ``layers.1.forget_gate.npy``; activations in
float16 or float32, ``next_prob`` and ``loss`` always float32), ``x.npy`` and ``y.npy`` (int64 ids) and
``index.json`` (format, names, shapes, dtypes, row starts, split and model description). The index is
written last and removed first, so a directory with an index is always complete.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .core import TARGET_NAMES, NamesFilter, capture_columns, iter_capture, resolve_names
from ..exceptions import DiskFullError, RnnlensError
from ..fsutil import atomic_write, atomic_write_json, disk_full_reason, is_disk_full, read_json
from ..model import CharRNN, ModelConfig
from ..data.splits import Split

INDEX = "index.json"
FORMAT = "rnnlens-capture-v1"
DTYPES = ("float16", "float32")


@dataclass
class Capture:
    """Activations of B row streams over N columns (see the module docstring for the layout).

    arrays: name -> (B, N, H) / (B, N, K) for logits / (B, N) for next_prob and loss (np.ndarray or np.memmap).
    x, y: (B, N) input ids and next-character targets.
    row_starts: (B,) text offset of ``x[r, 0]``, or None when unknown.
    info: split name, seq_len, model config and anything the caller added.
    """

    arrays: dict[str, np.ndarray]
    x: np.ndarray
    y: np.ndarray
    row_starts: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    @property
    def shape(self) -> tuple[int, int]:
        """(B, N): rows and columns."""
        return tuple(self.x.shape)  # type: ignore[return-value]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise RnnlensError(f"{name!r} was not captured; captured: {', '.join(self.arrays)}") from None

    def flat(self, name: str) -> np.ndarray:
        """``self[name]`` as (B*N, ...) in row-major order, i.e. ascending text offset (``flat_positions``)."""
        a = self[name]
        return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])

    def positions(self) -> np.ndarray:
        """(B, N) text offset of every input character ``x[r, j]``."""
        if self.row_starts is None:
            raise RnnlensError("this capture has no text positions (its split had no row starts); capture a split from make_splits or stream_split")
        return self.row_starts[:, None] + np.arange(self.x.shape[1], dtype=np.int64)[None, :]

    def flat_positions(self) -> np.ndarray:
        """(B*N,) text offsets matching ``flat(name)``."""
        return self.positions().reshape(-1)

    def locate(self, offsets: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of text offsets; ``RnnlensError`` for an offset the capture does not cover."""
        pos = np.asarray(offsets, dtype=np.int64)
        if self.row_starts is None:
            self.positions()  # raises
        starts = np.asarray(self.row_starts, dtype=np.int64)
        order = np.argsort(starts, kind="stable")
        k = np.searchsorted(starts[order], pos, side="right") - 1
        rows = order[np.clip(k, 0, None)]
        cols = pos - starts[rows]
        bad = (k < 0) | (cols < 0) | (cols >= self.x.shape[1])
        if np.any(bad):
            first = int(pos.reshape(-1)[np.argmax(bad.reshape(-1))])
            raise RnnlensError(f"text offset {first} is not in this capture; offsets come from positions()")
        return rows, cols


def _trailing(config: ModelConfig, name: str) -> tuple[int, ...]:
    if name in TARGET_NAMES:
        return ()
    return (config.vocab_size,) if name == "logits" else (config.hidden,)


def _dtype_for(name: str, dtype: str) -> np.dtype:
    return np.dtype(np.float32 if name in TARGET_NAMES else dtype)


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise RnnlensError(f"unknown capture dtype {dtype!r}; use float16 or float32")


def estimate_bytes(config: ModelConfig, names: list[str], rows: int, cols: int, dtype: str = "float16") -> int:
    """Bytes a capture of ``names`` over rows x cols takes (arrays + ids)."""
    _check_dtype(dtype)
    total = 2 * rows * cols * 8
    for n in names:
        total += rows * cols * int(np.prod(_trailing(config, n), dtype=np.int64)) * _dtype_for(n, dtype).itemsize
    return total


def _info(model: CharRNN, split: Split, seq_len: int, cols: int, extra: dict | None) -> dict[str, Any]:
    return {"split": split.name, "seq_len": seq_len, "rows": int(split.x.shape[0]), "cols": cols,
            "model": model.config.to_dict(), **(extra or {})}


def _fill(model: CharRNN, split: Split, seq_len: int, names: list[str], arrays: dict[str, np.ndarray],
          max_chars: int) -> None:
    for block in iter_capture(model, split, seq_len, names, max_chars):
        j, t = block.start, block.x.shape[1]
        for n, a in block.acts.items():
            arrays[n][:, j:j + t] = a.detach().to("cpu", a.dtype).numpy()


def capture_split(model: CharRNN, split: Split, seq_len: int, names: NamesFilter = None, max_chars: int = 0,
                  dtype: str = "float32", info: dict | None = None) -> Capture:
    """Capture a split in memory (for short texts: B*N*H values per name)."""
    _check_dtype(dtype)
    chosen = resolve_names(model.config, names)
    cols = capture_columns(split, max_chars)
    rows = split.x.shape[0]
    arrays = {n: np.empty((rows, cols, *_trailing(model.config, n)), _dtype_for(n, dtype)) for n in chosen}
    _fill(model, split, seq_len, chosen, arrays, max_chars)
    starts = None if split.row_starts is None else np.asarray(split.row_starts, dtype=np.int64)
    return Capture(arrays, split.x[:, :cols].copy(), split.y[:, :cols].copy(), starts,
                   _info(model, split, seq_len, cols, info))


def capture_to_dir(model: CharRNN, split: Split, seq_len: int, out_dir: str | os.PathLike,
                   names: NamesFilter = None, dtype: str = "float16", max_chars: int = 0,
                   info: dict | None = None) -> Capture:
    """Capture a split into memory-mapped ``.npy`` files in ``out_dir`` and return them opened read-only."""
    _check_dtype(dtype)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RnnlensError(f"{out} exists and is not a directory; choose another --out")
    chosen = resolve_names(model.config, names)
    cols = capture_columns(split, max_chars)
    rows = split.x.shape[0]
    out.mkdir(parents=True, exist_ok=True)
    need = estimate_bytes(model.config, chosen, rows, cols, dtype)
    free = shutil.disk_usage(out).free
    if need > free:
        raise RnnlensError(f"the capture needs {need / 1e9:.2f} GB but {out} has {free / 1e9:.2f} GB free; "
                           "select fewer --names, use --max-chars or --dtype float16")
    _remove_old(out)
    tmp = {n: out / f".{n}.npy.tmp" for n in chosen}
    writing = out
    try:
        arrays = {}
        for n in chosen:
            writing = out / f"{n}.npy"
            arrays[n] = np.lib.format.open_memmap(tmp[n], mode="w+", dtype=_dtype_for(n, dtype),
                                                  shape=(rows, cols, *_trailing(model.config, n)))
        _fill(model, split, seq_len, chosen, arrays, max_chars)
        for n, a in arrays.items():
            writing = out / f"{n}.npy"
            a.flush()
        del arrays
        for n, path in tmp.items():
            os.replace(path, out / f"{n}.npy")
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(str(writing), disk_full_reason(exc),
                                "the partial capture was removed; free space (or select fewer --names, use "
                                "--max-chars) and capture again") from exc
        raise
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    for name, a in (("x.npy", split.x), ("y.npy", split.y)):
        arr = np.ascontiguousarray(a[:, :cols])
        atomic_write(out / name, lambda t, arr=arr: _save_npy(t, arr))
    starts = None if split.row_starts is None else [int(s) for s in split.row_starts]
    index = {"format": FORMAT, "dtype": dtype, "row_starts": starts,
             "names": {n: {"file": f"{n}.npy", "shape": [rows, cols, *_trailing(model.config, n)],
                           "dtype": str(_dtype_for(n, dtype))} for n in chosen},
             "info": _info(model, split, seq_len, cols, info)}
    atomic_write_json(out / INDEX, index)
    return open_capture(out)


def _save_npy(path: str, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append .npy to the temp file's name
        np.save(fh, arr, allow_pickle=False)


def _remove_old(out: Path) -> None:
    """Drop a previous capture's index (first) and files, so no stale index points at new arrays."""
    index = out / INDEX
    if not index.is_file():
        return
    try:
        old = read_json(index)
        files = [v["file"] for v in old.get("names", {}).values()]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        files = []
    index.unlink()
    for f in files + ["x.npy", "y.npy"]:
        if "/" not in f and "\\" not in f:
            (out / f).unlink(missing_ok=True)


def open_capture(path: str | os.PathLike, mmap: bool = True) -> Capture:
    """Open a capture directory; arrays are read-only memory maps (``mmap=False`` loads them)."""
    out = Path(path)
    index_path = out / INDEX
    if not index_path.is_file():
        raise RnnlensError(f"{out} is not a capture directory (no {INDEX}); run rnnlens capture RUN --out {out}")
    try:
        index = read_json(index_path)
        if index.get("format") != FORMAT:
            raise RnnlensError(f"{index_path} is not an rnnlens capture index (format {index.get('format')!r})")
        mode = "r" if mmap else None
        arrays = {}
        for name, spec in index["names"].items():
            a = np.load(out / spec["file"], mmap_mode=mode, allow_pickle=False)
            if list(a.shape) != list(spec["shape"]):
                raise RnnlensError(f"{spec['file']} has shape {a.shape}, index says {spec['shape']}; capture again")
            arrays[name] = a
        x = np.load(out / "x.npy", mmap_mode=mode, allow_pickle=False)
        y = np.load(out / "y.npy", mmap_mode=mode, allow_pickle=False)
        starts = index.get("row_starts")
        return Capture(arrays, x, y, None if starts is None else np.asarray(starts, dtype=np.int64), index.get("info", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RnnlensError(f"capture directory {out} is damaged ({exc}); capture again") from None
