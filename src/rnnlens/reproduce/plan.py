"""What ``rnnlens reproduce`` runs: the presets, and the plan of stages in dependency order.

A *stage* is one unit of work with a stable id (``train/warpeace/lstm-2l-130k-d0.25``), a kind (which
function of :mod:`.stages` runs it), its parameters, the ids it depends on, and a size and time estimate
for ``--dry-run`` (from :mod:`.estimate`). The plan is a topologically ordered list of stages; :mod:`.executor`
runs it.

Stage kinds, in dependency order per corpus: ``data`` (the text, sliced for the smoke preset) -> ``pilot``
(only in presets with ``lr_pilot``: per type x depth x budget, the learning rate chosen on validation after a
short pilot run of each candidate) -> ``train`` (one run of the Table 1 grid per type x depth x budget x
dropout, or the preset's explicit ``runs``; a run that names a trained ``model`` folder is *adopted* instead: its
stage, of kind ``adopt`` with the same ``train/...`` id, checks the folder and records it, see :mod:`.adopt`)
-> ``select`` (per type x depth x budget the dropout with the best
validation loss: Table 1) -> analyses of the selected models (``gates``, ``cells``, ``modelmap``, ``compare``,
``errors``) and the ``census`` of interpretable cells over every trained model; ``baselines`` (Table 2) needs
only the data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.corpora import CORPORA, load_corpus_bytes
from ..exceptions import RnnlensError
from ..model import CELL_TYPES, hidden_for_budget, param_count, parse_budget
from .estimate import CPU_FLOPS, GPU_FLOPS, analysis_estimate, baseline_estimate, cpu_speedup, train_estimate

@dataclass(frozen=True)
class RunSpec:
    """One model of a preset that lists its runs instead of a grid (the ``cpu-paper`` and ``shipped`` presets).

    ``model``: the name of a trained run folder in the models directory (``rnnlens reproduce --models-dir``) to
    adopt instead of training; its ``dropouts`` are then the model's own single value."""

    dataset: str
    cell: str
    layers: int
    budget: str
    dropouts: tuple[float, ...] = (0.0,)
    epochs: float = 0.0               # 0: the preset's
    pilot_from: str = ""              # take the learning rate of this dataset's pilot ("": its own)
    role: str = "headline"            # headline | scaling (the small model of the errors comparison)
    model: str = ""                   # a trained model folder to adopt, by name under the models directory


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
    runs: tuple[RunSpec, ...] = ()      # explicit models instead of the cells x depths x budgets grid
    lr: float = 2e-3                    # the paper's; replaced per model by the pilot's choice when lr_pilot is set
    lr_pilot: tuple[float, ...] = ()    # candidate learning rates, each trained pilot_steps updates
    pilot_steps: int = 0                # 0: one epoch
    pilot_eval_chars: int = 100_000     # validation characters that decide the pilot
    patience: int = 0                   # early stopping (validations without improvement; 0: never)
    precision: str = "fp32"
    census: bool = False                # the census of interpretable cells over every trained model

    def fingerprint(self) -> str:
        """A hash of every setting that changes results (the name and the description do not)."""
        d = asdict(self)
        for k in ("name", "about", "datasets"):
            d.pop(k)
        for k, default in _LATER_FIELDS.items():  # fields added later leave older presets' fingerprints as they were
            if d[k] == default:
                d.pop(k)
        for run in d.get("runs", ()):
            if not run["model"]:
                run.pop("model")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick", "the README's quickstart: one 2-layer LSTM of ~130K parameters trained 4 epochs at batch 32 x "
        "unroll 64 on the built-in corpus (Python standard library source); Table 2 with n-grams n = 1..5 and "
        "n-NNs n = 1..3 (the quick preset of rnnlens.baselines.table); cells, gates, the comparisons with the "
        "baselines and the oracle analysis of errors", ("pystdlib",), 0, ("lstm",), (2,), ("130k",), (0.0,), batch_size=32,
        seq_len=64, epochs=4, eval_every=300, eval_chars=100_000, snapshot_every=500, baseline="quick",
        analysis_chars=100_000, analyses=("gates", "cells", "compare", "errors")),
    "smoke": Preset(
        "smoke", "every stage on tiny settings (the first 40 KB of each corpus, models of ~8K parameters, 1 and 2 "
        "layers, 400 updates each); checks the pipeline, not the paper's numbers", ("pystdlib",), 40_000, CELL_TYPES,
        (1, 2), ("8k",), (0.0, 0.25), batch_size=8, seq_len=32, epochs=3, max_steps=400, eval_every=100,
        eval_chars=2000, snapshot_every=100, baseline="smoke", analysis_chars=4000, census=True),
    "cpu": Preset(
        "cpu", "the whole of each corpus, the two smallest budgets (50k, 130k) for every type and depth (18 runs), "
        "30 epochs at the paper's batch 100 x unroll 100 without dropout (in 30 epochs these small models do not "
        "overfit; at 15 the 3-layer nets were still falling and lost to 1 layer), the learning rate of each model "
        "chosen on validation after a one-epoch pilot among 8e-3, 4e-3 and the paper's 2e-3 (at 2e-3 the thin "
        "3-layer LSTMs learn too slowly), bf16 where the CPU has it natively; Table 2 with the cpu preset of "
        "rnnlens.baselines.table; every analysis and the census of cells",
        ("warpeace",), 0, CELL_TYPES, (1, 2, 3), ("50k", "130k"), (0.0,),
        epochs=30, eval_every=500, eval_chars=100_000, snapshot_every=500, baseline="cpu", analysis_chars=100_000,
        lr_pilot=(8e-3, 4e-3, 2e-3), precision="auto", census=True),
    "paper": Preset(
        "paper", "the paper's full recipe: 3 types x 3 depths x 4 budgets, 50 epochs at batch 100 x unroll 100, "
        "dropout tuned over 0, 0.25, 0.5; the full Table 2; meant for GPUs", ("warpeace", "linux"), 0, CELL_TYPES,
        (1, 2, 3), ("50k", "130k", "400k", "1.3m"), (0.0, 0.25, 0.5), snapshot_every=1000, baseline="paper",
        analysis_chars=330_000),
    "cpu-paper": Preset(
        "cpu-paper", "the paper's headline models at the 1.3M budget on these CPUs: War and Peace LSTM, GRU and RNN "
        "(2 layers, dropout 0 or 0.3 chosen on validation, up to 30 epochs with early stopping), a 50K LSTM for the "
        "scaling comparison, a Linux Kernel LSTM (dropout 0.25, up to 20 epochs); the learning rate of each type "
        "chosen on validation after a one-epoch pilot among 2e-3, 1e-3, 5e-4, 2.5e-4 (halved further while the "
        "smallest wins); Table 2 (cpu preset), every analysis on the full test splits and the census of cells; "
        "days of CPU time on 2 cores (hours on a GPU)", ("warpeace", "linux"), 0, ("lstm", "gru", "rnn"), (2,),
        ("1.3m",), (0.0, 0.3), epochs=30, eval_every=1000, snapshot_every=65, baseline="cpu", analysis_chars=330_000,
        runs=(RunSpec("warpeace", "lstm", 2, "1.3m", (0.0, 0.3)), RunSpec("warpeace", "gru", 2, "1.3m", (0.0, 0.3)),
              RunSpec("warpeace", "rnn", 2, "1.3m", (0.0, 0.3)),
              RunSpec("warpeace", "lstm", 2, "50k", (0.0,), role="scaling"),
              RunSpec("linux", "lstm", 2, "1.3m", (0.25,), epochs=20, pilot_from="warpeace")),
        lr_pilot=(2e-3, 1e-3, 5e-4, 2.5e-4), patience=4, precision="auto", census=True),
    "shipped": Preset(
        "shipped", "the analyses of the paper on the models shipped in models/, without training: War and Peace "
        "LSTM, GRU and RNN at 1.3M (2 layers), the 50K LSTM for the scaling comparison, the Linux Kernel LSTM "
        "(each with its own dropout and recipe, see its README.md); Table 2 (cpu preset), every analysis on the "
        "full test splits and the census of cells", ("warpeace", "linux"), 0, ("lstm", "gru", "rnn"), (2,),
        ("1.3m",), (0.0, 0.25, 0.3), epochs=30, baseline="cpu", analysis_chars=330_000,
        runs=(RunSpec("warpeace", "lstm", 2, "1.3m", (0.3,), model="wp-lstm-1.3m"),
              RunSpec("warpeace", "gru", 2, "1.3m", (0.3,), model="wp-gru-1.3m"),
              RunSpec("warpeace", "rnn", 2, "1.3m", (0.0,), model="wp-rnn-1.3m"),
              RunSpec("warpeace", "lstm", 2, "50k", (0.0,), role="scaling", model="wp-lstm-50k"),
              RunSpec("linux", "lstm", 2, "1.3m", (0.25,), model="lk-lstm-1.3m")),
        census=True),
}
DATASETS = ("warpeace", "linux", "pystdlib")
_LATER_FIELDS = {"runs": (), "lr": 2e-3, "lr_pilot": (), "pilot_steps": 0, "pilot_eval_chars": 100_000, "patience": 0,
                 "precision": "fp32", "census": False}


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


def _train_chars(preset: Preset, info: CorpusInfo, epochs: float | None = None) -> int:
    """Characters one grid run trains on: epochs x train split, capped by max_steps."""
    block = preset.batch_size * preset.seq_len
    steps = int((epochs or preset.epochs) * (info.size * info.fractions[0]) // block)
    if preset.max_steps:
        steps = min(steps, preset.max_steps)
    return max(steps, 1) * block


def _grid(preset: Preset, dataset: str) -> list[RunSpec]:
    """The models of ``preset`` on ``dataset``: its explicit runs there, or the whole grid."""
    if preset.runs:
        return [r for r in preset.runs if r.dataset == dataset]
    return [RunSpec(dataset, cell, layers, budget, preset.dropouts if layers > 1 else (0.0,))
            for cell in preset.cells for layers in preset.depths for budget in preset.budgets]


def pilot_id(dataset: str, cell: str, layers: int, budget: str) -> str:
    return f"pilot/{dataset}/{cell}-{layers}l-{budget}"


def build_plan(preset: Preset, infos: list[CorpusInfo], gpu: bool = False,
               adopted: dict[str, int] | None = None, cpu_scale: float = 1.0) -> list[Stage]:
    """Every stage of the reproduction for these corpora, each after the stages it depends on. ``adopted``: the
    parameter count of each model folder the preset adopts (for the listing; :func:`.adopt.find_models`).
    ``cpu_scale``: how much slower this CPU trains than the estimate line (:func:`.calibrate.calibrate_cpu`)."""
    flops = GPU_FLOPS if gpu else CPU_FLOPS
    speedup = 1.0 if gpu else cpu_speedup(preset) / cpu_scale
    stages: list[Stage] = []
    pilots: set[str] = set()
    for info in infos:
        ds = info.name
        data_id = f"data/{ds}"
        stages.append(Stage(data_id, "data", ds, {"slice_bytes": preset.slice_bytes}, est_seconds=1.0,
                            size=f"{info.size:,} bytes, K={info.vocab_size}"))
        train_ids: list[str] = []
        for spec in _grid(preset, ds):
            epochs = spec.epochs or preset.epochs
            chars = _train_chars(preset, info, epochs)
            hidden = hidden_for_budget(spec.cell, spec.layers, parse_budget(spec.budget, info.vocab_size), info.vocab_size)
            n = param_count(spec.cell, spec.layers, hidden, info.vocab_size)
            deps: tuple[str, ...] = (data_id,)
            if spec.model:
                train_ids.append(_adopt_stage(stages, spec, ds, hidden, (adopted or {}).get(spec.model, n)))
                continue
            if preset.lr_pilot:
                pid = pilot_id(spec.pilot_from or ds, spec.cell, spec.layers, spec.budget)
                if pid not in pilots:
                    if spec.pilot_from and spec.pilot_from != ds:
                        raise RnnlensError(f"{pid} must be planned before the runs that take its learning rate; "
                                           f"list {spec.pilot_from} first")
                    pilots.add(pid)
                    steps = _pilot_steps(preset, info)
                    stages.append(Stage(pid, "pilot", ds, {"cell": spec.cell, "layers": spec.layers,
                                        "budget": spec.budget, "hidden": hidden, "lrs": list(preset.lr_pilot),
                                        "steps": steps}, deps=(data_id,),
                                        est_seconds=len(preset.lr_pilot) * train_estimate(
                                            n, steps * preset.batch_size * preset.seq_len, flops, speedup,
                                            spec.cell, spec.layers),
                                        size=f"{len(preset.lr_pilot)} learning rates x {steps} updates", param_count=n))
                deps = deps + (pid,)
            for dropout in spec.dropouts:
                sid = f"train/{ds}/{run_name(spec.cell, spec.layers, spec.budget, dropout)}"
                train_ids.append(sid)
                stages.append(Stage(sid, "train", ds, {"cell": spec.cell, "layers": spec.layers, "budget": spec.budget,
                                    "hidden": hidden, "dropout": dropout, "epochs": epochs, "role": spec.role,
                                    **({"pilot": deps[-1]} if preset.lr_pilot else {})}, deps=deps,
                                    est_seconds=train_estimate(n, chars, flops, speedup, spec.cell, spec.layers) + 2.0,
                                    size=f"hidden {hidden}, {chars:,} train chars", param_count=n))
        select_id = f"select/{ds}"
        stages.append(Stage(select_id, "select", ds, soft_deps=tuple(train_ids), est_seconds=0.5,
                            size=f"{len(train_ids)} runs"))
        baselines_id = f"baselines/{ds}"
        stages.append(Stage(baselines_id, "baselines", ds, {"preset": preset.baseline}, deps=(data_id,),
                            est_seconds=baseline_estimate(preset, info), size=f"Table 2, preset {preset.baseline}"))
        for kind in preset.analyses:  # compare waits for the baselines stage above and reuses its tuned n-NNs
            stages.append(Stage(f"{kind}/{ds}", kind, ds, {"chars": preset.analysis_chars}, deps=(select_id,),
                                soft_deps=(baselines_id,) if kind == "compare" else (),
                                est_seconds=analysis_estimate(kind, preset, info, reuse_baselines=True),
                                size=f"{preset.analysis_chars:,} chars"))
        if preset.census:
            stages.append(Stage(f"census/{ds}", "census", ds, {"chars": preset.analysis_chars}, deps=(select_id,),
                                soft_deps=tuple(train_ids), est_seconds=len(train_ids) * analysis_estimate("cells", preset, info),
                                size=f"{len(train_ids)} models x {preset.analysis_chars:,} chars"))
    return stages


def _adopt_stage(stages: list[Stage], spec: RunSpec, ds: str, hidden: int, n: int) -> str:
    """The stage that adopts the trained model ``spec.model`` (one dropout: the model's own); returns its id."""
    if len(spec.dropouts) != 1:
        raise RnnlensError(f"the run adopting {spec.model} lists dropouts {spec.dropouts}; give it one: the model's own")
    dropout = spec.dropouts[0]
    sid = f"train/{ds}/{run_name(spec.cell, spec.layers, spec.budget, dropout)}"
    stages.append(Stage(sid, "adopt", ds, {"cell": spec.cell, "layers": spec.layers, "budget": spec.budget,
                        "hidden": hidden, "dropout": dropout, "role": spec.role, "model": spec.model},
                        deps=(f"data/{ds}",), est_seconds=1.0, size=f"adopts {spec.model} (no training)", param_count=n))
    return sid


def _pilot_steps(preset: Preset, info: CorpusInfo) -> int:
    if preset.pilot_steps:
        return preset.pilot_steps
    return max(1, int(info.size * info.fractions[0]) // (preset.batch_size * preset.seq_len))


# ----- the baselines' settings (rnnlens.baselines presets, plus a smoke one) ----------------------------------
SMOKE_BASELINE = dict(ngram_ns=(1, 2, 3), nnn_ns=(1, 2), hiddens=(16,), epochs=1, epoch_positions=20_000,
                      batch=256, patience=1)


def baseline_preset(name: str):
    """The rnnlens.baselines preset ``name`` (``smoke``: SMOKE_BASELINE)."""
    from ..baselines.table import Preset as TablePreset, get_preset

    return TablePreset("smoke", **SMOKE_BASELINE) if name == "smoke" else get_preset(name)


def compare_dynamics_ns(preset: Preset, bp: Any) -> tuple[int, ...]:
    """The n of the compare stage's training dynamics (1..4-NN; on a sliced corpus only the n it trains anyway)."""
    return tuple(n for n in (1, 2, 3, 4) if not preset.slice_bytes or n in bp.nnn_ns)


def check_order(stages: list[Stage]) -> None:
    """Every dependency comes earlier in the list and ids are unique (a programming error otherwise)."""
    seen: set[str] = set()
    for s in stages:
        missing = [d for d in s.all_deps if d not in seen]
        if missing or s.id in seen:
            raise ValueError(f"stage {s.id} is out of order or repeated (missing before it: {missing})")
        seen.add(s.id)


def format_plan(preset: Preset, stages: list[Stage], workers: int, device: str = "cpu") -> list[str]:
    """The --dry-run listing: one line per stage with its size, parameters and estimated time, the precision the
    trainings will use on ``device``, and the wall time of the executor's start order on ``workers`` workers."""
    from ..precision import native_bf16, resolve_precision
    from .schedule import simulate

    lines = [f"preset {preset.name}: {preset.about}", f"{len(stages)} stages, {workers} worker(s)"]
    for s in stages:
        params = f"{s.param_count:>9,} params" if s.param_count is not None else " " * 16
        lines.append(f"  {s.id:<42} {params}  ~{_fmt_seconds(s.est_seconds):>8}  {s.size}")
    if preset.precision == "auto":
        native, why = native_bf16(device)
        lines.append(f"precision auto: {resolve_precision('auto', device)} on {device} ({why}"
                     + ("" if native else "; the estimates count fp32 speed") + ")")
    total = sum(s.est_seconds for s in stages)
    wall = simulate(stages, workers).wall
    lines.append(f"estimated compute {_fmt_seconds(total)}; wall about {_fmt_seconds(wall)} with {workers} worker(s), "
                 f"longest stages first (a rough estimate)")
    return lines


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
