"""rnnlens reproduce adopting trained models (reproduce/adopt.py, the shipped preset): no training, the same records
as training in place, every analysis on the adopted folders, one-line errors for a wrong or missing model."""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import read_json
from rnnlens.reproduce.executor import InlineBackend
from rnnlens.reproduce.plan import PRESETS, CorpusInfo, RunSpec, build_plan, check_order, format_plan
from rnnlens.reproduce.runner import make_plan, reproduce
from rnnlens.reproduce.stages import read_result

RUNS = (("lstm", 2, "8k", "headline"), ("gru", 1, "8k", "headline"), ("lstm", 1, "3k", "scaling"))
NAMES = [f"{c}-{l}l-{b}-d0" for c, l, b, _ in RUNS]
TRAIN = replace(PRESETS["smoke"], name="tiny-train", max_steps=60, eval_every=30, snapshot_every=20,
                analysis_chars=1500, runs=tuple(RunSpec("pystdlib", c, l, b, (0.0,), role=r) for c, l, b, r in RUNS))
ADOPT = replace(TRAIN, name="tiny-adopt", runs=tuple(replace(s, model=f"m-{n}") for s, n in zip(TRAIN.runs, NAMES)))


def _files(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def adopted(tmp_path_factory):
    """Tiny models trained in place by a reproduction, copied into a models folder, then adopted by another."""
    base = tmp_path_factory.mktemp("adopt")
    planned = make_plan(TRAIN, None, None, "cpu", workers=1)
    planned.stages[:] = [s for s in planned.stages if s.kind in ("data", "train", "select")]
    outcome = reproduce(base / "trained", planned, "cpu", backend=InlineBackend())
    assert outcome.count("done") == len(planned.stages), outcome.errors
    models = base / "models"
    for name in NAMES:
        shutil.copytree(base / "trained/stages/train/pystdlib" / name / name, models / f"m-{name}")
    before = _files(models)
    planned = make_plan(ADOPT, None, None, "cpu", workers=1, models_dir=models)
    outcome = reproduce(base / "adopted", planned, "cpu", backend=InlineBackend())
    assert outcome.count("failed") == outcome.count("blocked") == 0, outcome.errors
    return base, models, before, planned


def test_adopting_trains_nothing_and_leaves_the_models_as_they_were(adopted):
    base, models, before, planned = adopted
    assert _files(models) == before  # not a byte, not an mtime changed
    assert [s.kind for s in planned.stages if s.id.startswith("train/")] == ["adopt"] * 3
    train_dir = base / "adopted/stages/train/pystdlib"
    assert sorted(p.name for p in train_dir.iterdir()) == sorted(NAMES)
    for name in NAMES:  # only the stage record: no run folder, no weights
        assert [p.name for p in (train_dir / name).iterdir()] == ["stage.json"]
    assert not list((base / "adopted").rglob("best.safetensors")) and not list((base / "adopted").rglob("snapshots"))


def test_adopted_records_equal_the_trained_in_place_ones(adopted):
    base, models, _, _ = adopted
    for name in NAMES:
        trained = read_result(base / "trained", f"train/pystdlib/{name}")
        got = read_result(base / "adopted", f"train/pystdlib/{name}")
        assert got.pop("adopted") == f"m-{name}"
        assert (base / "adopted" / got.pop("run")).resolve() == (models / f"m-{name}").resolve()
        assert got == {k: v for k, v in trained.items() if k != "run"}  # losses, params, steps, lr, role, ...
        assert got["params"] == read_json(models / f"m-{name}" / "summary.json")["params"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("run", "adopted")} for r in rows]  # noqa: E731
    assert strip(read_result(base / "adopted", "select/pystdlib")["rows"]) == \
        strip(read_result(base / "trained", "select/pystdlib")["rows"])


def test_every_analysis_runs_on_the_adopted_folders(adopted):
    base, models, _, planned = adopted
    root = base / "adopted"
    results = read_json(root / "results.json")
    assert all(s["status"] == "done" for s in results["stages"].values()), results["stages"]
    assert {s.kind for s in planned.stages} == {"data", "adopt", "select", "baselines", "gates", "cells", "modelmap",
                                                "compare", "errors", "census"}
    res = results["results"]["pystdlib"]
    assert [m["cell"] for m in res["gates"]["models"]] == ["lstm", "gru"]
    assert res["cells"]["model"] == {"cell": "lstm", "layers": 2, "budget": "8k"}
    snaps = list((models / "m-lstm-2l-8k-d0" / "snapshots").glob("step-*.safetensors"))
    assert len(res["compare"]["dynamics"]["points"]) == len(snaps) == 3  # the training dynamics from the folder
    assert res["errors"]["scaling"] and [r["budget"] for r in res["errors"]["runs"]] == ["8k", "3k"]
    assert len(res["modelmap"]["models"]) == 3 and len(res["census"]["rows"]) == 3
    curves = res["curves"]
    assert len(curves["runs"]) == 3 and curves["skipped"] == []
    for r in curves["runs"]:  # read from the adopted folder's metrics.jsonl
        name = "m-" + r["stage"].split("/")[-1]
        assert len(r["val_loss"]) == len((models / name / "metrics.jsonl").read_text().splitlines())
    assert read_json(root / "plan.json")["invocations"][-1]["models_dir"] == "../models"
    md = (root / "summary.md").read_text()
    assert "adopts models trained beforehand, from ../models (relative to this folder): m-lstm-2l-8k-d0, " in md
    assert "Figure 6" in (root / "report.html").read_text()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_a_missing_models_folder_or_model_is_a_one_line_error(adopted, tmp_path, capsys):
    _, models, _, _ = adopted
    with pytest.raises(RnnlensError) as info:
        make_plan(ADOPT, None, None, "cpu", models_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in _one_line(info) and "--models-dir" in str(info.value)
    lacking = replace(ADOPT, runs=ADOPT.runs[:1] + (replace(ADOPT.runs[1], model="m-absent"),))
    with pytest.raises(RnnlensError) as info:
        make_plan(lacking, None, None, "cpu", models_dir=models)
    assert "m-absent" in _one_line(info) and "does not exist" in str(info.value)
    # the CLI: one line on stderr, before any corpus is read
    assert main(["reproduce", "--preset", "shipped", "--datasets", "warpeace", "--models-dir", str(tmp_path / "no"),
                 "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the models folder" in err[0] and "--models-dir" in err[0]


def test_a_model_of_another_type_or_text_is_refused_in_one_line(adopted, tmp_path):
    _, models, _, _ = adopted
    wrong = replace(ADOPT, runs=(replace(ADOPT.runs[0], cell="gru"),) + ADOPT.runs[1:])
    with pytest.raises(RnnlensError) as info:
        make_plan(wrong, None, None, "cpu", models_dir=models)
    assert "is a lstm of 2 layer(s)" in _one_line(info) and "lists a gru" in str(info.value)
    other_text = replace(ADOPT, slice_bytes=30_000)  # a text the models were not trained on
    planned = make_plan(other_text, None, None, "cpu", workers=1, models_dir=models)
    planned.stages[:] = [s for s in planned.stages if s.id in ("data/pystdlib", "train/pystdlib/gru-1l-8k-d0")]
    outcome = reproduce(tmp_path / "r", planned, "cpu", backend=InlineBackend())
    err = outcome.errors["train/pystdlib/gru-1l-8k-d0"]
    assert "\n" not in err and "trained on another text" in err and "sha256" in err


def test_the_shipped_preset_adopts_the_five_models_and_keeps_older_fingerprints():
    p = PRESETS["shipped"]
    stages = build_plan(p, [CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1)),
                            CorpusInfo("linux", 6_206_996, 110, (0.9, 0.05, 0.05))], adopted={"wp-lstm-50k": 44_682})
    check_order(stages)
    adopt = {s.id: s for s in stages if s.kind == "adopt"}
    assert {s.params["model"] for s in adopt.values()} == {"wp-lstm-1.3m", "wp-gru-1.3m", "wp-rnn-1.3m", "wp-lstm-50k",
                                                           "lk-lstm-1.3m"}
    assert set(adopt) == {"train/warpeace/lstm-2l-1.3m-d0.3", "train/warpeace/gru-2l-1.3m-d0.3",
                          "train/warpeace/rnn-2l-1.3m-d0", "train/warpeace/lstm-2l-50k-d0",
                          "train/linux/lstm-2l-1.3m-d0.25"}
    assert not [s for s in stages if s.kind in ("train", "pilot")]
    assert all(s.est_seconds == 1.0 and s.deps == (f"data/{s.dataset}",) for s in adopt.values())
    assert adopt["train/warpeace/lstm-2l-50k-d0"].params["role"] == "scaling"
    assert adopt["train/warpeace/lstm-2l-50k-d0"].param_count == 44_682  # the model's own count when known
    census = next(s for s in stages if s.id == "census/warpeace")
    assert len(census.soft_deps) == 4 and p.analysis_chars == 330_000 and p.baseline == "cpu"
    assert "adopts wp-rnn-1.3m (no training)" in "\n".join(format_plan(p, stages, 2))
    # the new RunSpec field leaves the presets that train with their fingerprints
    assert PRESETS["cpu-paper"].fingerprint() == "381652db2d64bc0c" and PRESETS["quick"].fingerprint() == "9015b7f5ff813eb4"
    with pytest.raises(RnnlensError, match="give it one"):
        build_plan(replace(p, runs=(replace(p.runs[0], dropouts=(0.0, 0.3)),)), [CorpusInfo("warpeace", 10, 5, (0.8, 0.1, 0.1))])
