"""What ``rnnlens reproduce`` runs: the presets, and the plan of stages in dependency order.

A *stage* is one unit of work with a stable id (``train/warpeace/lstm-2l-130k-d0.25``), a kind (which
function of :mod:`.stages` runs it), its parameters, the ids it depends on, and a size and time estimate
for ``--dry-run``. The plan is a topologically ordered list of stages; :mod:`.executor` runs it.

Stage kinds, in dependency order per corpus: ``data`` (the text, sliced for the smoke preset) -> ``train``
(one run of the Table 1 grid per type x depth x budget x dropout) -> ``select`` (per type x depth x budget
the dropout with the best validation loss: Table 1) -> analyses of the selected models (``gates``,
``cells``, ``modelmap``, ``compare``, ``errors``); ``baselines`` (Table 2) needs only the data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.corpora import CORPORA, load_corpus_bytes
from ..exceptions import RnnlensError
from ..model import CELL_TYPES, hidden_for_budget, param_count, parse_budget

# Rough effective training speed (6 x parameters x characters per second, per worker) used only for the
# --dry-run estimates. `rnnlens train` on War and Peace with one CPU thread at batch 100 x 100 measured about
# 3e10 (45K-parameter 1-layer LSTM: 121K chars/s; 123K-parameter 3-layer GRU: 42K chars/s); 2e10 allows for
# a busy machine. The GPU figure is a guess.
CPU_FLOPS = 2.0e10
GPU_FLOPS = 5.0e11


@dataclass(frozen=True)
class Preset:
    """Every setting of one reproduction; the fingerprint of a preset guards an output directory."""

    name: str
    about: str                          # one line: what this preset covers
    datasets: tuple[str, ...]           # default corpora
    slice_bytes: int                    # use the first N bytes of each corpus (0: all of it)
    cells: tuple[str, ...]
    depths: tuple[int, ...]
    budgets: tuple[str, ...]            # parameter budgets, the paper's names or numbers
    dropouts: tuple[float, ...]         # tuned on validation for models with >= 2 layers (1 layer: 0 only)
    batch_size: int = 100
    seq_len: int = 100
    epochs: float = 50.0
    max_steps: int = 0
    eval_every: int = 1000
    eval_chars: int = 0
    snapshot_every: int = 0             # weights kept for the training dynamics (compare stage)
    baseline: str = "paper"             # Table 2 preset of rnnlens.baselines.table, or "smoke" (defined here)
    analysis_chars: int = 100_000       # test characters used by the gates, cells and model-map stages
    analyses: tuple[str, ...] = ("gates", "cells", "modelmap", "compare", "errors")
    seed: int = 0

    def fingerprint(self) -> str:
        """A hash of every setting that changes results (the name and the description do not)."""
        d = asdict(self)
        for k in ("name", "about", "datasets"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick", "the README's quickstart: one 2-layer LSTM of ~130K parameters trained 4 epochs at batch 32 x "
        "unroll 64 on the built-in corpus (Python standard library source); Table 2 with n-grams n = 1..5 and "
        "n-NNs n = 1..3 (rnnlens.baselines.table' quick preset); cells, gates, the comparisons with the baselines and "
        "the oracle analysis of errors", ("pystdlib",), 0, ("lstm",), (2,), ("130k",), (0.0,), batch_size=32,
        seq_len=64, epochs=4, eval_every=300, eval_chars=100_000, snapshot_every=500, baseline="quick",
        analysis_chars=100_000, analyses=("gates", "cells", "compare", "errors")),
    "smoke": Preset(
        "smoke", "every stage on tiny settings (the first 40 KB of each corpus, models of ~8K parameters, 1 and 2 "
        "layers, 400 updates each); checks the pipeline, not the paper's numbers", ("pystdlib",), 40_000, CELL_TYPES,
        (1, 2), ("8k",), (0.0, 0.25), batch_size=8, seq_len=32, epochs=3, max_steps=400, eval_every=100,
        eval_chars=2000, snapshot_every=100, baseline="smoke", analysis_chars=4000),
    "cpu": Preset(
        "cpu", "the whole of each corpus, the two smallest budgets (50k, 130k) for every type and depth, dropout 0 "
        "or 0.25, 5 epochs at the paper's batch 100 x unroll 100; Table 2 with rnnlens.baselines.table' cpu preset",
        ("warpeace",), 0, CELL_TYPES, (1, 2, 3), ("50k", "130k"), (0.0, 0.25), epochs=5, eval_every=500,
        eval_chars=100_000, snapshot_every=250, baseline="cpu", analysis_chars=100_000),
    "paper": Preset(
        "paper", "the paper's full recipe: 3 types x 3 depths x 4 budgets, 50 epochs at batch 100 x unroll 100, "
        "dropout tuned over 0, 0.25, 0.5; the full Table 2; meant for GPUs", ("warpeace", "linux"), 0, CELL_TYPES,
        (1, 2, 3), ("50k", "130k", "400k", "1.3m"), (0.0, 0.25, 0.5), snapshot_every=1000, baseline="paper",
        analysis_chars=330_000),
}
DATASETS = ("warpeace", "linux", "pystdlib")


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise RnnlensError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def parse_datasets(text: str | None, preset: Preset) -> tuple[str, ...]:
    """``"warpeace,linux"`` -> ("warpeace", "linux"); None -> the preset's default corpora."""
    if not text:
        return preset.datasets
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [n for n in names if n not in DATASETS]
    if bad or not names:
        raise RnnlensError(f"unknown dataset {', '.join(bad) or repr(text)}; use a comma-separated list of "
                           f"{', '.join(DATASETS)}")
    return names


@dataclass(frozen=True)
class Stage:
    """One unit of work. ``soft_deps`` may have failed (the stage then uses what did finish)."""

    id: str
    kind: str
    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    soft_deps: tuple[str, ...] = ()
    est_seconds: float = 0.0
    size: str = ""
    param_count: int | None = None

    @property
    def all_deps(self) -> tuple[str, ...]:
        return self.deps + self.soft_deps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CorpusInfo:
    """What the plan needs to know of a corpus: its (sliced) size and vocabulary size K."""

    name: str
    size: int
    vocab_size: int
    fractions: tuple[float, float, float]


def corpus_info(name: str, preset: Preset, data_dir: str | None = None) -> CorpusInfo:
    raw = load_corpus_bytes(name, data_dir)
    if preset.slice_bytes:
        raw = raw[:preset.slice_bytes]
    return CorpusInfo(name, len(raw), len(set(raw)), tuple(CORPORA[name].fractions))


def run_name(cell: str, layers: int, budget: str, dropout: float) -> str:
    return f"{cell}-{layers}l-{budget}-d{dropout:g}"


def _train_chars(preset: Preset, info: CorpusInfo) -> int:
    """Characters one grid run trains on: epochs x train split, capped by max_steps."""
    block = preset.batch_size * preset.seq_len
    steps = int(preset.epochs * (info.size * info.fractions[0]) // block)
    if preset.max_steps:
        steps = min(steps, preset.max_steps)
    return max(steps, 1) * block


def _estimate(params: int, chars: int, flops: float) -> float:
    return 6.0 * params * chars / flops


def build_plan(preset: Preset, infos: list[CorpusInfo], gpu: bool = False) -> list[Stage]:
    """Every stage of the reproduction for these corpora, each after the stages it depends on."""
    flops = GPU_FLOPS if gpu else CPU_FLOPS
    stages: list[Stage] = []
    for info in infos:
        ds = info.name
        data_id = f"data/{ds}"
        stages.append(Stage(data_id, "data", ds, {"slice_bytes": preset.slice_bytes}, est_seconds=1.0,
                            size=f"{info.size:,} bytes, K={info.vocab_size}"))
        train_ids: list[str] = []
        chars = _train_chars(preset, info)
        for cell in preset.cells:
            for layers in preset.depths:
                for budget in preset.budgets:
                    hidden = hidden_for_budget(cell, layers, parse_budget(budget, info.vocab_size), info.vocab_size)
                    n = param_count(cell, layers, hidden, info.vocab_size)
                    for dropout in (preset.dropouts if layers > 1 else (0.0,)):
                        sid = f"train/{ds}/{run_name(cell, layers, budget, dropout)}"
                        train_ids.append(sid)
                        stages.append(Stage(sid, "train", ds, {"cell": cell, "layers": layers, "budget": budget,
                                            "hidden": hidden, "dropout": dropout}, deps=(data_id,),
                                            est_seconds=_estimate(n, chars, flops) + 2.0,
                                            size=f"hidden {hidden}, {chars:,} train chars", param_count=n))
        select_id = f"select/{ds}"
        stages.append(Stage(select_id, "select", ds, soft_deps=tuple(train_ids), est_seconds=0.5,
                            size=f"{len(train_ids)} runs"))
        stages.append(Stage(f"baselines/{ds}", "baselines", ds, {"preset": preset.baseline}, deps=(data_id,),
                            est_seconds=_baseline_estimate(preset, info), size=f"Table 2, preset {preset.baseline}"))
        for kind in preset.analyses:
            stages.append(Stage(f"{kind}/{ds}", kind, ds, {"chars": preset.analysis_chars}, deps=(select_id,),
                                est_seconds=_analysis_estimate(kind, preset, info), size=f"{preset.analysis_chars:,} chars"))
    return stages


def _baseline_estimate(preset: Preset, info: CorpusInfo) -> float:
    if preset.baseline == "smoke":
        return 5.0
    return {"quick": 120.0, "cpu": 1200.0, "paper": 4 * 3600.0}.get(preset.baseline, 600.0) * info.size / 3_258_250


def _analysis_estimate(kind: str, preset: Preset, info: CorpusInfo) -> float:
    """compare refits the baselines' n-grams and n-NNs on its own; errors fits the n-grams 1..9."""
    if kind == "compare":
        return 0.8 * _baseline_estimate(preset, info)
    if kind == "errors":
        return 5.0 if preset.baseline == "smoke" else 300.0 * info.size / 3_258_250
    per_char = {"gates": 2e-5, "cells": 1e-4, "modelmap": 5e-5}[kind]
    return 2.0 + per_char * preset.analysis_chars * (10 if kind == "modelmap" else 1)


def check_order(stages: list[Stage]) -> None:
    """Every dependency comes earlier in the list and ids are unique (a programming error otherwise)."""
    seen: set[str] = set()
    for s in stages:
        missing = [d for d in s.all_deps if d not in seen]
        if missing or s.id in seen:
            raise ValueError(f"stage {s.id} is out of order or repeated (missing before it: {missing})")
        seen.add(s.id)


def format_plan(preset: Preset, stages: list[Stage], workers: int) -> list[str]:
    """The --dry-run listing: one line per stage with its size, parameters and estimated time."""
    lines = [f"preset {preset.name}: {preset.about}", f"{len(stages)} stages, {workers} worker(s)"]
    for s in stages:
        params = f"{s.param_count:>9,} params" if s.param_count is not None else " " * 16
        lines.append(f"  {s.id:<42} {params}  ~{_fmt_seconds(s.est_seconds):>8}  {s.size}")
    total = sum(s.est_seconds for s in stages)
    lines.append(f"estimated compute {_fmt_seconds(total)}; wall about {_fmt_seconds(total / max(workers, 1))} "
                 f"with {workers} worker(s) (a rough estimate)")
    return lines


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
