"""A new run's config from named settings: the one place where settings become a :class:`RunConfig`.

``new_run_config(**settings)`` is what ``rl.train``, ``rnnlens train`` and the reproduction's stages call.
Every setting's name is also the name of its ``rnnlens train`` flag (``max_steps`` <-> ``--max-steps``),
and the defaults live here (and in the config dataclasses) only: the CLI passes the flags a user gave and
nothing else. Bad values raise ``RnnlensError`` naming the setting (``epochs must be > 0``), which the CLI
shows as the flag.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

import torch

from .data.corpora import CORPORA, DEFAULT_FRACTIONS, load_corpus_bytes
from .data.splits import Split, SplitConfig, make_splits
from .data.text import TextConfig, Vocab, read_symbols
from .exceptions import RnnlensError
from .model import ModelConfig, hidden_for_budget, parse_budget
from .precision import resolve_precision
from .recipe import TrainConfig
from .run import DataSource, RunConfig, sha256_hex

DEFAULT_DATASET = "pystdlib"
DEFAULT_PARAMS = "130k"
DATA_SETTINGS = ("dataset", "text", "data_dir", "unit", "newline", "layout", "fractions", "batch_size", "seq_len")
MODEL_SETTINGS = ("model", "layers", "params", "hidden", "dropout")
# the training recipe: every field of TrainConfig (eps has no flag; the others are rnnlens train's flags)
RECIPE_SETTINGS = tuple(f.name for f in fields(TrainConfig))
SETTINGS = DATA_SETTINGS + MODEL_SETTINGS + RECIPE_SETTINGS


def parse_fractions(value: str | Sequence[float] | None, dataset: str | None = None) -> tuple[float, float, float]:
    """Train/val/test fractions from ``"0.8,0.1,0.1"`` or three numbers; None: the corpus preset."""
    if value is None:
        return tuple(CORPORA[dataset].fractions) if dataset in CORPORA else DEFAULT_FRACTIONS
    try:
        parts = tuple(float(x) for x in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        parts = ()
    if len(parts) != 3:
        raise RnnlensError(f"fractions must be three numbers like 0.8,0.1,0.1, got {value!r}", field="fractions")
    return parts  # type: ignore[return-value]


def read_source(dataset: str | None, text: str | os.PathLike | None,
                data_dir: str | os.PathLike | None) -> tuple[DataSource, bytes]:
    """The training text's :class:`DataSource` (with checksum) and its bytes: a named corpus or a file."""
    if dataset is not None and text is not None:
        raise RnnlensError("dataset and text are alternatives; pass one of them", field="dataset")
    if text is not None:
        path = Path(text).expanduser().resolve()
        raw = DataSource(text_path=str(path)).read_bytes()
        return DataSource(text_path=str(path), sha256=sha256_hex(raw), size=len(raw)), raw
    name = dataset or DEFAULT_DATASET
    raw = load_corpus_bytes(name, data_dir)
    remembered = str(Path(data_dir).expanduser().resolve()) if data_dir else None  # later commands fall back on it
    return DataSource(dataset=name, sha256=sha256_hex(raw), size=len(raw), data_dir=remembered), raw


def new_run_config(
    *,
    dataset: str | None = None,
    text: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    unit: str = "byte",
    newline: str = "keep",
    layout: str = "interleaved",
    fractions: str | Sequence[float] | None = None,
    batch_size: int = 100,
    seq_len: int = 100,
    model: str = "lstm",
    layers: int = 2,
    params: str | int | None = None,
    hidden: int | None = None,
    dropout: float = 0.0,
    device: torch.device | str = "cpu",
    **recipe: Any,
) -> tuple[RunConfig, dict[str, Split]]:
    """The config of a new run and its splits (read once here, to hand to the trainer).

    dataset: a named corpus (``pystdlib``, built in, is the default; ``warpeace``, ``linux`` from
        ``data_dir``); text: the path of a text file instead. params: a parameter budget (``"130k"``, the
        default, or a number) that picks the hidden size; hidden: the hidden size instead. recipe: fields of
        :class:`rnnlens.recipe.TrainConfig` (``epochs``, ``max_steps``, ``lr``, ...); ``precision="auto"``
        is resolved for ``device``.
    """
    unknown = sorted(set(recipe) - set(RECIPE_SETTINGS))
    if unknown:
        raise RnnlensError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}",
                           field=unknown[0])
    if params is not None and hidden is not None:
        raise RnnlensError("params and hidden are alternatives (a budget picks the hidden size); pass one",
                           field="params")
    recipe = {k: v for k, v in recipe.items() if v is not None}
    if "tensorboard" in recipe:
        recipe["tensorboard"] = tensorboard_setting(recipe["tensorboard"])
    if "precision" in recipe:
        recipe["precision"] = resolve_precision(recipe["precision"], device)
    train_cfg = TrainConfig(**recipe)  # checked before the text is read
    source, raw = read_source(dataset, text, data_dir)
    text_cfg = TextConfig(unit=unit, newline=newline)  # type: ignore[arg-type]
    symbols = read_symbols(raw, text_cfg)
    vocab = Vocab.build(symbols, text_cfg.unit)
    split_cfg = SplitConfig(layout=layout, fractions=parse_fractions(fractions, source.dataset),
                            batch_size=batch_size, seq_len=seq_len)
    splits = make_splits(vocab.encode(symbols), split_cfg)
    budget = None
    if hidden is None:
        budget = parse_budget(str(params if params is not None else DEFAULT_PARAMS), len(vocab))
        hidden = hidden_for_budget(model, layers, budget, len(vocab))
    model_cfg = ModelConfig(cell=model, layers=layers, hidden=hidden, vocab_size=len(vocab), dropout=dropout)
    cfg = RunConfig(source=source, text=text_cfg, split=split_cfg, model=model_cfg, train=train_cfg,
                    vocab=vocab, budget=budget)
    return cfg, splits


def tensorboard_setting(value: bool | str | os.PathLike) -> str | None:
    """``tensorboard=True`` (``--tensorboard``): ``RUN/tensorboard``, stored relative to the run folder; a folder:
    stored as an absolute path; False: off. Refused when the tensorboard package is missing."""
    from .tblog import DEFAULT_DIR, require

    if value is False:
        return None
    if not isinstance(value, (bool, str, os.PathLike)) or value == "":
        raise RnnlensError(f"tensorboard must be True or a folder, got {value!r}", field="tensorboard")
    require()
    return DEFAULT_DIR if value is True else str(Path(value).expanduser().resolve())


def default_out(cfg: RunConfig, params: str | int | None = None, hidden: int | None = None) -> Path:
    """``runs/<dataset>-<model>-<layers>l-<size>``: where a run goes when no folder is given."""
    size = params or (f"h{hidden}" if hidden else DEFAULT_PARAMS)
    return Path("runs") / f"{cfg.source.label}-{cfg.model.cell}-{cfg.model.layers}l-{size}"
