"""Tensor files: safetensors with rnnlens' JSON metadata in the header, written atomically.

A checkpoint is one file, so saving it is one atomic rename: weights, optimizer moments, RNG states and
the carried hidden state of a resumable training state all land together or not at all. Nothing here
unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .exceptions import RnnlensError
from .fsutil import atomic_write

META_KEY = "rnnlens"


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` (moved to CPU, made contiguous) and JSON ``meta`` to ``path`` atomically."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta, sort_keys=True)}
    return atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=header))


def load_tensors(path: str | os.PathLike, kind: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_tensors`; one-line ``RnnlensError`` if missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise RnnlensError(f"{kind} {path} does not exist; train the run first (rnnlens train) or check the path")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
        meta = json.loads(header[META_KEY])
    except (SafetensorError, OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RnnlensError(
            f"{kind} {path} is corrupted or truncated ({reason}); restore it or retrain the run"
        ) from exc
    return tensors, meta


def check_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights whose names or shapes differ from ``module`` (e.g. another vocabulary)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    missing = sorted(set(expected) - set(got))
    if missing:
        raise RnnlensError(f"{path} lacks weights {', '.join(missing[:3])}; it was not written for this model")
    extra = sorted(set(got) - set(expected))
    if extra:
        raise RnnlensError(
            f"{path} holds weights this model does not have ({', '.join(extra[:3])}; another depth or cell type?); "
            "use the checkpoint that belongs to this run"
        )
    for name, shape in expected.items():
        if got[name] != shape:
            raise RnnlensError(
                f"{path} holds {name} of shape {list(got[name])} but the run's config needs {list(shape)} "
                "(another vocabulary or model size); use the checkpoint that belongs to this run"
            )
