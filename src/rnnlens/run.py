"""A run directory: its self-describing config, its files, and loading a trained model back from it.

Layout of ``RUN/``::

    config.json          RunConfig: data source, text units, split, model, training recipe, vocabulary
    best.safetensors     best-on-validation weights (+ step, epoch, val loss in the header)
    state.safetensors    resumable training state (weights, optimizer, RNG, carried hidden state)
    metrics.jsonl        one line per validation
    snapshots/           weights every --snapshot-every updates (optional, for training dynamics)
    tensorboard/         TensorBoard event file with --tensorboard (optional; rnnlens.tblog)
    summary.json         written when training ends
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import check_state_dict, load_tensors
from .data.corpora import DATA_ENV, load_corpus_bytes
from .exceptions import RnnlensError
from .fsutil import read_json
from .model import CharRNN, ModelConfig
from .recipe import TrainConfig
from .data.splits import Split, SplitConfig, make_splits
from .data.text import TextConfig, Vocab, read_file_bytes, read_symbols

CONFIG = "config.json"
BEST = "best.safetensors"
STATE = "state.safetensors"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SNAPSHOTS = "snapshots"
FORMAT = "rnnlens-run-v1"


@dataclass(frozen=True)
class DataSource:
    """Where the training text came from, with its checksum so a changed file is noticed."""

    dataset: str | None = None     # a named corpus (warpeace, linux, pystdlib) ...
    text_path: str | None = None   # ... or a user's file (absolute path)
    sha256: str = ""
    size: int = 0
    data_dir: str | None = None    # the --data-dir a named corpus was trained from: the fallback of later commands

    def corpus_dir(self, data_dir: str | os.PathLike | None = None) -> str | os.PathLike | None:
        """Where to read the named corpus: ``data_dir`` (--data-dir) or $RNNLENS_DATA when given, else the folder
        the run was trained from when it still exists, else the default (``rnnlens.data.corpora.data_dir``)."""
        if data_dir or os.environ.get(DATA_ENV) or not self.data_dir or not Path(self.data_dir).is_dir():
            return data_dir
        return self.data_dir

    @property
    def label(self) -> str:
        return self.dataset or Path(self.text_path or "text").name

    def read_bytes(self, data_dir: str | os.PathLike | None = None) -> bytes:
        """The source's bytes; ``RnnlensError`` if missing or (when a checksum is stored) changed."""
        if self.dataset is not None:
            raw = load_corpus_bytes(self.dataset, self.corpus_dir(data_dir))
        else:
            raw = read_file_bytes(self.text_path or "")
        if self.sha256 and sha256_hex(raw) != self.sha256:
            raise RnnlensError(
                f"the training text {self.label} has changed since the run was made (checksum differs); "
                "restore it, or evaluate on a file with --text"
            )
        return raw

    def to_dict(self) -> dict:
        d = {"dataset": self.dataset, "text_path": self.text_path, "sha256": self.sha256, "size": self.size}
        return {**d, "data_dir": self.data_dir} if self.data_dir else d

    @classmethod
    def from_dict(cls, d: dict) -> "DataSource":
        return cls(d.get("dataset"), d.get("text_path"), d.get("sha256", ""), int(d.get("size", 0)), d.get("data_dir"))


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class RunConfig:
    source: DataSource
    text: TextConfig
    split: SplitConfig
    model: ModelConfig
    train: TrainConfig
    vocab: Vocab
    budget: int | None = None  # the --params budget the hidden size was chosen for, if any

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "rnnlens_version": __version__,
            "source": self.source.to_dict(),
            "text": self.text.to_dict(),
            "split": self.split.to_dict(),
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
            "budget": self.budget,
            "vocab": self.vocab.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        fmt = d.get("format")
        if isinstance(fmt, str) and fmt.startswith("rnnlens-run-v") and fmt != FORMAT:
            raise RnnlensError(f"config.json has format {fmt!r}, made by rnnlens {d.get('rnnlens_version', '(newer)')}; "
                               f"this rnnlens {__version__} reads {FORMAT!r}: upgrade rnnlens to use this run")
        if fmt != FORMAT:
            raise RnnlensError(f"config.json is not an rnnlens run config (format {fmt!r})")
        try:
            return cls(
                source=DataSource.from_dict(d["source"]),
                text=TextConfig.from_dict(d["text"]),
                split=SplitConfig.from_dict(d["split"]),
                model=ModelConfig.from_dict(d["model"]),
                train=TrainConfig.from_dict(d["train"]),
                vocab=Vocab.from_dict(d["vocab"]),
                budget=d.get("budget"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RnnlensError(f"config.json is incomplete or malformed ({exc}); the run directory is damaged") from exc


def load_config(run_dir: str | os.PathLike) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise RnnlensError(f"run directory {run_dir} does not exist; pass the --out folder of a training run")
    if not path.is_file():
        raise RnnlensError(f"{run_dir} is not an rnnlens run (no {CONFIG}); pass the --out folder of a training run")
    try:
        return RunConfig.from_dict(read_json(path))
    except (OSError, json.JSONDecodeError) as exc:
        raise RnnlensError(f"{path} cannot be read ({exc}); the run directory is damaged") from exc


def load_symbols(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """The training text's symbols, verified against the stored checksum."""
    return read_symbols(cfg.source.read_bytes(data_dir), cfg.text)


def load_splits(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> dict[str, Split]:
    return make_splits(cfg.vocab.encode(load_symbols(cfg, data_dir)), cfg.split)


def load_model(run_dir: str | os.PathLike, which: str = "best", device: torch.device | str = "cpu") -> tuple[CharRNN, RunConfig, dict]:
    """Model with the run's ``best`` (or ``state``: latest) weights, in eval mode, and the file's metadata."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    path = run_dir / (BEST if which == "best" else STATE)
    if not path.is_file():
        raise RnnlensError(
            f"run {run_dir} has no {'best' if which == 'best' else 'saved'} weights yet ({path.name} missing); "
            "train it (rnnlens train --resume --out RUN) until a validation has run"
        )
    model, meta = load_weights(path, cfg, device)
    return model, cfg, meta


def load_weights(path: str | os.PathLike, cfg: RunConfig, device: torch.device | str = "cpu") -> tuple[CharRNN, dict]:
    """A model of ``cfg`` with the weights in ``path`` (best, state or a snapshot), in eval mode, and the
    file's metadata."""
    path = Path(path)
    tensors, meta = load_tensors(path, kind="weights")
    if "vocab" in meta and meta["vocab"] != cfg.vocab.to_dict():
        raise RnnlensError(f"{path} was trained with another vocabulary than this run's; use the weights that belong to it")
    model = CharRNN(cfg.model)
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(model, weights, path)
    model.load_state_dict(weights)
    return model.to(device).eval(), meta
