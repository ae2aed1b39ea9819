"""Adopting trained models: a reproduction that analyses model folders trained elsewhere instead of training.

A :class:`.plan.RunSpec` with ``model`` names a run folder (``config.json``, ``best.safetensors``,
``summary.json``; ``metrics.jsonl`` and ``snapshots/`` when it has them) under the models directory
(``rnnlens reproduce --models-dir``, default ``models`` in the current directory). Its stage, of kind
``adopt`` and id ``train/<dataset>/<name>`` like a trained run's, checks that the folder is the model the
spec describes (its corpus is the data stage's, by name and sha256; type, depth and dropout as listed; the
preset's split) and returns the record a ``train`` stage returns, read from the folder's ``summary.json``
and ``config.json``. Nothing is copied: the record's ``run`` is the folder's path relative to the output
root, so every later stage (select, the analyses, the census, the report's curves) reads the model where it
lies, and a reproduction folder committed next to ``models/`` stays valid when the repository moves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..exceptions import RnnlensError
from ..fsutil import read_json
from ..run import BEST, CONFIG, SUMMARY, load_config
from .plan import Preset, Stage, _grid

FIX = "run from the repository root or pass --models-dir DIR"


def adopted_specs(preset: Preset, datasets: tuple[str, ...]):
    """The runs of ``preset`` on ``datasets`` that adopt a model folder."""
    return [spec for ds in datasets for spec in _grid(preset, ds) if spec.model]


def model_folder(models_dir: str | os.PathLike, name: str, dataset: str) -> Path:
    """``models_dir/name`` when it holds a trained model (config, best weights, summary); else a one-line error."""
    root = Path(models_dir)
    if not root.is_dir():
        raise RnnlensError(f"the models folder {root.resolve()} does not exist; {FIX}")
    folder = root / name
    missing = [f for f in (CONFIG, BEST, SUMMARY) if not (folder / f).is_file()]
    if missing:
        what = "does not exist" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        raise RnnlensError(f"model {folder.resolve()} (for {dataset}) {what}; {FIX}, or leave {dataset} out "
                           "with --datasets")
    return folder


def check_model(folder: Path, p: dict[str, Any], dataset: str, preset: Preset, sha256: str | None = None):
    """The config of the model in ``folder`` when it is the one the stage parameters ``p`` describe, trained on
    ``dataset`` (and the text of checksum ``sha256``, when given) with the preset's split; else a one-line error."""
    cfg = load_config(folder)
    src, m, sp = cfg.source, cfg.model, cfg.split
    if src.dataset is not None and src.dataset != dataset:
        raise RnnlensError(f"model {folder} was trained on {src.dataset}, not {dataset}; list it under its dataset")
    if sha256 is not None and src.sha256 != sha256:
        raise RnnlensError(f"model {folder} was trained on another text than {dataset} here (sha256 {src.sha256[:12]}"
                           f" vs {sha256[:12]}); use the corpus it was trained on (--data-dir) or another model")
    got = (m.cell, m.layers, float(m.dropout))
    want = (p["cell"], p["layers"], float(p["dropout"]))
    if got != want:
        raise RnnlensError(f"model {folder} is a {m.cell} of {m.layers} layer(s) with dropout {m.dropout:g}, but the "
                           f"preset lists a {want[0]} of {want[1]} layer(s) with dropout {want[2]:g}; fix the preset's "
                           "RunSpec or point it at the right folder")
    split = (tuple(float(f) for f in sp.fractions), sp.batch_size, sp.seq_len)
    if split[1:] != (preset.batch_size, preset.seq_len):
        raise RnnlensError(f"model {folder} was trained at batch {sp.batch_size} x unroll {sp.seq_len}, the preset "
                           f"splits at {preset.batch_size} x {preset.seq_len} (Table 2 would be on another split); "
                           "adopt it with a preset of its batch and unroll")
    return cfg


def find_models(preset: Preset, datasets: tuple[str, ...], models_dir: str | os.PathLike) -> dict[str, int]:
    """Check, before anything runs, that every model the preset adopts on ``datasets`` is in ``models_dir`` and
    is what its spec says; returns each one's parameter count (from its summary.json)."""
    counts: dict[str, int] = {}
    for spec in adopted_specs(preset, datasets):
        folder = model_folder(models_dir, spec.model, spec.dataset)
        check_model(folder, {"cell": spec.cell, "layers": spec.layers, "dropout": spec.dropouts[0]}, spec.dataset,
                    preset)
        counts[spec.model] = int(read_json(folder / SUMMARY)["params"])
    return counts


def run_adopt(stage: Stage, ctx, out: Path) -> dict[str, Any]:
    """The record of a ``train`` stage for the trained model ``stage.params["model"]``, which stays where it is."""
    from .stages import read_result, train_record

    p = stage.params
    if not ctx.models_dir:
        raise RnnlensError(f"{stage.id} adopts {p['model']} but no models folder was given; {FIX}")
    folder = model_folder(ctx.models_dir, p["model"], stage.dataset)
    data = read_result(ctx.root, f"data/{stage.dataset}")
    if data is None:
        raise RnnlensError(f"the data stage of {stage.dataset} has not finished; run reproduce again")
    cfg = check_model(folder, p, stage.dataset, ctx.preset, data["sha256"])
    if tuple(float(f) for f in cfg.split.fractions) != tuple(float(f) for f in data["fractions"]):
        raise RnnlensError(f"model {folder} splits its text {list(cfg.split.fractions)}, the data stage "
                           f"{data['fractions']}; adopt it with a preset of the same split")
    record = train_record(ctx, folder.resolve(), p, read_json(folder / SUMMARY), cfg.train.lr)
    return {**record, "adopted": p["model"]}
