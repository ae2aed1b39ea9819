"""rnnlens reproduce: plan and presets, the smoke preset end to end, resume after a kill, failure isolation."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import atomic_write_json, read_json
from rnnlens.model import CharRNN, ModelConfig, param_count
from rnnlens.reproduce import stages as stages_mod
from rnnlens.reproduce.executor import InlineBackend
from rnnlens.reproduce.modelmap import agreement_matrix, argmax_predictions, classical_mds
from rnnlens.reproduce.plan import PRESETS, CorpusInfo, build_plan, check_order, corpus_info, get_preset, parse_datasets
from rnnlens.reproduce.runner import make_plan, reproduce
from rnnlens.data.splits import SplitConfig, make_splits


# ----- plan, presets, dry run -------------------------------------------------------------------------------
def test_smoke_plan_is_the_grid_in_dependency_order():
    planned = make_plan("smoke", None, None, "cpu", workers=2)
    ids = [s.id for s in planned.stages]
    check_order(planned.stages)
    p = PRESETS["smoke"]
    train = [s for s in planned.stages if s.kind == "train"]
    # 1-layer models only with dropout 0 (nothing to drop between layers), deeper ones with every value
    expected = sum(len(p.dropouts) if d > 1 else 1 for d in p.depths) * len(p.cells) * len(p.budgets)
    assert len(train) == expected == 9
    k = corpus_info("pystdlib", p).vocab_size
    for s in train:
        assert s.param_count == param_count(s.params["cell"], s.params["layers"], s.params["hidden"], k)
        assert abs(s.param_count - 8000) < 0.1 * 8000  # the hidden size closest to the 8k budget
    select = ids.index("select/pystdlib")
    assert all(ids.index(s.id) < select for s in train)
    assert {"gates/pystdlib", "cells/pystdlib", "modelmap/pystdlib", "baselines/pystdlib"} <= set(ids)
    for kind in ("gates", "cells", "modelmap"):
        assert ids.index(f"{kind}/pystdlib") > select


def test_paper_plan_covers_table1(tmp_path, monkeypatch):
    """The paper preset: 3 types x 3 depths x 4 budgets per corpus, dropout tried only with >= 2 layers."""
    from rnnlens.reproduce.plan import CorpusInfo

    stages = build_plan(PRESETS["paper"], [CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1)),
                                           CorpusInfo("linux", 6_206_996, 110, (0.9, 0.05, 0.05))])
    check_order(stages)
    train = [s for s in stages if s.kind == "train"]
    assert len({(s.dataset, s.params["cell"], s.params["layers"], s.params["budget"]) for s in train}) == 72
    assert len(train) == 2 * 3 * 4 * (1 + 2 * 3)
    lstm1 = next(s for s in train if s.id == "train/warpeace/lstm-1l-130k-d0")
    assert lstm1.params["hidden"] == 128  # the budget is named after a 1-layer LSTM with 128 cells


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(RnnlensError, match="unknown preset"):
        get_preset("huge")
    with pytest.raises(RnnlensError, match="unknown dataset"):
        parse_datasets("warpeace,shakespeare", PRESETS["smoke"])
    out = tmp_path / "out"
    assert main(["reproduce", "--datasets", "nope", "--out", str(out), "--device", "cpu"]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlens: error: unknown dataset nope")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    assert main(["reproduce", "--out", str(tmp_path / "busy"), "--device", "cpu", "--quiet"]) == 2
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["mine.txt"]


def test_dry_run_lists_every_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reproduce", "--dry-run", "--out", str(out), "--device", "cpu", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    for s in make_plan("smoke", None, None, "cpu").stages:
        assert s.id in text
    assert "8,240 params" in text and "estimated compute" in text


# ----- the smoke preset end to end ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The smoke preset, run once through the CLI with a pool of 2 worker processes."""
    out = tmp_path_factory.mktemp("reproduce") / "smoke"
    code = main(["reproduce", "--preset", "smoke", "--out", str(out), "--device", "cpu", "--workers", "2", "--quiet"])
    assert code == 0
    return out


def test_smoke_end_to_end(smoke):
    results = read_json(smoke / "results.json")
    assert all(s["status"] == "done" for s in results["stages"].values()), results["stages"]
    pv = results["provenance"]
    for key in ("rnnlens_version", "git_commit", "machine", "device", "started", "wall_s_by_part"):
        assert pv[key], key
    assert set(pv["wall_s_by_part"]) == {"data", "train", "select", "baselines", "gates", "cells", "modelmap",
                                         "compare", "errors", "census"}
    res = results["results"]["pystdlib"]
    # Table 1 = per type x depth x budget the dropout with the lowest validation loss (brute force from the runs)
    runs = [read_json(p) for p in smoke.glob("stages/train/pystdlib/*/*/summary.json")]
    assert len(runs) == 9
    for row in res["select"]["rows"]:
        mine = [r for r in runs if r["model"]["cell"] == row["cell"] and r["model"]["layers"] == row["layers"]]
        best = min(mine, key=lambda r: r["best_val_loss"])
        assert row["best_val_loss"] == best["best_val_loss"] and row["test_loss_nats"] == best["test_loss_nats"]
        assert row["dropout"] == best["model"]["dropout"]
    assert len(res["select"]["rows"]) == 6
    assert {"ngram/1", "ngram/2", "ngram/3", "nnn/1", "nnn/2"} == set(res["baselines"]["entries"])
    assert [m["cell"] for m in res["gates"]["models"]] == ["lstm", "gru"]
    assert res["cells"]["model"]["cell"] == "lstm" and res["cells"]["features"]
    scored = [f for f in res["cells"]["features"] if not f["skipped"]]  # Figure 2's heatmaps, drawn for the report
    assert scored and all(f["figure"] and (smoke / f["figure"]).is_file() for f in scored)
    assert res["compare"]["model_run"]["cell"] == "lstm" and set(res["compare"]["loss"]) == {"LSTM", "3-gram", "2-NN"}
    assert len(res["compare"]["dynamics"]["points"]) == 4  # a snapshot every 100 of the 400 updates
    assert len(res["errors"]["models"]) == 2 and res["errors"]["scaling"]  # best LSTM against the other one
    agree = np.array(res["modelmap"]["agreement"])
    assert agree.shape == (6, 6) and np.allclose(agree, agree.T) and np.allclose(np.diag(agree), 1)
    # the census counts every trained model (each dropout), LSTM on tanh(c), GRU and RNN on h
    census = res["census"]["rows"]
    assert len(census) == 9 and {r["state"] for r in census if r["cell"] == "lstm"} == {"c"}
    assert {r["state"] for r in census if r["cell"] != "lstm"} == {"h"}
    for row in census:
        name = f"{row['cell']}-{row['layers']}l-{row['budget']}-d{row['dropout']:g}"
        report = read_json(smoke / "stages/census/pystdlib" / name / "report.json")
        page = (smoke / "stages/census/pystdlib" / name / "report.html").read_text(encoding="utf-8")
        scored = [f["name"] for f in report["features"] if not f["skipped"]]
        assert scored and all(f"<h3 id='{n}'>" in page for n in scored)  # each feature's heatmap is on the page ...
        assert not list((smoke / "stages/census/pystdlib" / name).glob("*.png"))  # ... not drawn again as PNGs
        assert row["n_cells"] == row["layers"] * read_json(smoke / "stages/train/pystdlib" / name / name /
                                                           "config.json")["model"]["hidden"]
        for f in report["features"]:
            if not f["skipped"]:
                assert row["shares"][f["name"]] == f["interpretable"] / report["n_cells"]
    assert (smoke / "stages/census/pystdlib/census.png").is_file()
    # the training curves: every run's validations, exactly as its metrics.jsonl has them (no paper number here)
    curves = res["curves"]
    assert curves["figure"] == "figures/curves-pystdlib.png" and (smoke / curves["figure"]).is_file()
    assert len(curves["runs"]) == 9 and curves["skipped"] == [] and curves["paper_best"] is None
    for r in curves["runs"]:
        lines = [json.loads(x) for x in (smoke / "stages" / r["stage"] / r["stage"].split("/")[-1] /
                                          "metrics.jsonl").read_text().splitlines()]
        assert r["epochs"] == [x["epoch"] for x in lines] and r["val_loss"] == [x["val_loss"] for x in lines]
    page = (smoke / "report.html").read_text()
    assert "Census of interpretable cells" in page
    assert page.count("data:image/png;base64,") >= 10  # cells, gates, table 2, compare, errors, model map
    assert "http://" not in page and "https://" not in page and "<script" not in page
    order = [page.index("<h3>" + h) for h in ("Table 1", "Training curves (pystdlib)", "Figure 2", "Figure 3",
                                              "Table 2", "Figures 4, 5", "Figure 6", "Supplementary: map")]
    assert order == sorted(order)
    md = (smoke / "summary.md").read_text()
    assert "## What differs" in md and "first 40,000 bytes" in md and "classical MDS" in md


def test_rerun_skips_everything_and_other_config_is_refused(smoke, capsys):
    before = {p: p.stat().st_mtime_ns for p in smoke.glob("stages/*/*/stage.json")}
    planned = make_plan("smoke", None, None, "cpu", workers=1)
    outcome = reproduce(smoke, planned, "cpu")
    assert outcome.count("skipped") == len(planned.stages) and outcome.count("done") == 0
    assert {p: p.stat().st_mtime_ns for p in smoke.glob("stages/*/*/stage.json")} == before
    # another preset in the same folder: refused, nothing changed
    assert main(["reproduce", "--preset", "cpu", "--datasets", "pystdlib", "--out", str(smoke), "--device", "cpu",
                 "--quiet"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert read_json(smoke / "plan.json")["preset"] == "smoke"


def test_failed_stage_is_isolated_then_retried(tmp_path, monkeypatch):
    """A run that raises is reported; the others finish; the next invocation retries only what is missing."""
    planned = make_plan("smoke", None, None, "cpu", workers=1)
    keep = ("data/", "train/pystdlib/lstm-", "train/pystdlib/gru-1l", "select/", "gates/")
    planned.stages[:] = [s for s in planned.stages if s.id.startswith(keep)]
    planned.stages[planned.stages.index(next(s for s in planned.stages if s.kind == "select"))] = \
        replace(next(s for s in planned.stages if s.kind == "select"),
                soft_deps=tuple(s.id for s in planned.stages if s.kind == "train"))
    real = stages_mod.STAGE_FUNCTIONS["train"]

    def flaky(stage, ctx, out):
        if stage.id == "train/pystdlib/lstm-1l-8k-d0":
            raise RuntimeError("boom")
        return real(stage, ctx, out)

    monkeypatch.setitem(stages_mod.STAGE_FUNCTIONS, "train", flaky)
    out = tmp_path / "r"
    outcome = reproduce(out, planned, "cpu", backend=InlineBackend())
    assert outcome.status["train/pystdlib/lstm-1l-8k-d0"] == "failed" and "boom" in outcome.errors[
        "train/pystdlib/lstm-1l-8k-d0"]
    assert outcome.count("done") == len(planned.stages) - 1
    select = stages_mod.read_result(out, "select/pystdlib")
    assert select["failed"] == ["train/pystdlib/lstm-1l-8k-d0"]
    assert [(r["cell"], r["layers"]) for r in select["rows"]] == [("lstm", 2), ("gru", 1)]  # no 1-layer LSTM
    assert read_json(out / "results.json")["stages"]["train/pystdlib/lstm-1l-8k-d0"]["status"] == "failed"
    monkeypatch.setitem(stages_mod.STAGE_FUNCTIONS, "train", real)
    again = reproduce(out, planned, "cpu", backend=InlineBackend())
    ran = {k for k, v in again.status.items() if v == "done"}
    assert ran == {"train/pystdlib/lstm-1l-8k-d0", "select/pystdlib", "gates/pystdlib"}  # the rest is up to date
    assert stages_mod.read_result(out, "select/pystdlib")["failed"] == []
    assert not (out / "stages/train/pystdlib/lstm-1l-8k-d0/failed.json").exists()


def test_killed_reproduce_resumes(tmp_path):
    """SIGKILL the whole reproduce (pool included) mid-way; the same command finishes, skipping finished stages."""
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "rnnlens", "reproduce", "--out", str(out), "--device", "cpu", "--workers", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("stages/train/*/*/stage.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("stages/train/*/*/stage.json")}
    assert 3 <= len(finished) < 9, "kill too late to test resuming"
    res = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["failed"] == 0 and summary["skipped"] >= len(finished) + 1  # + the data stage
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("stages/train/*/*/stage.json")}
    assert len(after) == 9 and all(after[k] == v for k, v in finished.items())


def test_a_signal_to_the_main_process_alone_stops_the_workers_too(tmp_path):
    """SIGTERM (or SIGINT) sent to the reproduce process only, not its process group: it passes the interrupt
    on to its workers (training runs save their state), exits 130, and the next run resumes."""
    out = tmp_path / "t"
    cmd = [sys.executable, "-m", "rnnlens", "reproduce", "--out", str(out), "--device", "cpu", "--workers", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("stages/train/*/*/*/config.json")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        err = proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("reproduce did not stop within 30 s of SIGTERM")
    assert proc.returncode == 130 and "interrupted" in err
    left = b"?"
    for _ in range(100):  # the workers (and multiprocessing's resource tracker) are gone soon after
        left = subprocess.run(["pgrep", "-a", "-s", str(proc.pid)], capture_output=True).stdout
        if not left:
            break
        time.sleep(0.1)
    assert left == b"", left
    res = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr


# ----- the map of models ------------------------------------------------------------------------------------
def test_classical_mds_recovers_planar_distances():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(7, 2))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    coords = classical_mds(dist)
    assert np.allclose(np.linalg.norm(coords[:, None] - coords[None], axis=-1), dist, atol=1e-9)


def test_agreement_and_blockwise_argmax_match_brute_force():
    preds = [np.array([[1, 2, 3, 4]]), np.array([[1, 0, 3, 0]]), np.array([[0, 0, 0, 0]])]
    agree = agreement_matrix(preds)
    for i in range(3):
        for j in range(3):
            assert agree[i, j] == np.mean([a == b for a, b in zip(preds[i].ravel(), preds[j].ravel())])
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell="lstm", layers=2, hidden=8, vocab_size=5)).eval()
    ids = np.random.default_rng(1).integers(0, 5, 4 * 60 + 1)
    split = make_splits(ids, SplitConfig(layout="contiguous", fractions=(1.0, 0.0, 0.0), batch_size=4, seq_len=7))["train"]
    got = argmax_predictions(model, split, seq_len=7)
    with torch.no_grad():
        whole = model(torch.from_numpy(split.x), None)[0].argmax(-1).numpy()  # one pass, no blocks
    assert np.array_equal(got, whole)
    assert argmax_predictions(model, split, 7, max_chars=4 * 10).shape == (4, 10)


def test_dead_worker_fails_its_stage_and_the_pool_is_restarted(tmp_path):
    """A worker killed under a stage (BrokenProcessPool): that stage fails, the rest runs on a fresh pool."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from rnnlens.reproduce.executor import run_plan
    from rnnlens.reproduce.plan import Stage
    from rnnlens.reproduce.stages import Context

    class Backend:
        workers = 2

        def __init__(self):
            self.restarts, self.ran = 0, []

        def submit(self, stage, ctx):
            fut = Future()
            if stage.id == "b":
                fut.set_exception(BrokenProcessPool("gone"))
            else:
                self.ran.append(stage.id)
                now = time.time()
                fut.set_result({"id": stage.id, "kind": stage.kind, "dataset": "x", "started": now, "finished": now,
                                "wall_s": 0.0, "result": {}})
            return fut

        def restart(self):
            self.restarts += 1

        def close(self):
            pass

    plan = [Stage("a", "data", "x"), Stage("b", "train", "x", deps=("a",)), Stage("c", "train", "x", deps=("a",)),
            Stage("d", "select", "x", soft_deps=("b", "c")), Stage("e", "gates", "x", deps=("b",))]
    backend = Backend()
    outcome = run_plan(plan, Context(str(tmp_path), PRESETS["smoke"]), backend)
    assert outcome.status == {"a": "done", "b": "failed", "c": "done", "d": "done", "e": "blocked"}
    assert "worker process died" in outcome.errors["b"] and backend.restarts == 1
    assert read_json(tmp_path / "stages/b/failed.json")["id"] == "b"


def test_force_replaces_only_the_results_of_another_preset(tmp_path):
    from rnnlens.reproduce.executor import prepare_out_dir

    root = tmp_path / "out"
    prepare_out_dir(root, PRESETS["cpu"], ("warpeace",), [], force=False)
    (root / "stages" / "train").mkdir(parents=True)
    (root / "report.html").write_text("old")
    (root / "figures").mkdir()
    (root / "figures" / "curves-warpeace.png").write_bytes(b"old")
    (root / "notes.txt").write_text("mine")
    with pytest.raises(RnnlensError, match="another configuration"):
        prepare_out_dir(root, PRESETS["smoke"], ("pystdlib",), [], force=False)
    assert read_json(root / "plan.json")["preset"] == "cpu" and (root / "stages" / "train").is_dir()
    prepare_out_dir(root, PRESETS["smoke"], ("pystdlib",), [], force=True)
    assert read_json(root / "plan.json")["preset"] == "smoke" and read_json(root / "plan.json")["datasets"] == ["pystdlib"]
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "plan.json"]
    # the same preset again with another corpus: kept, and the corpus is added (incremental)
    prepare_out_dir(root, PRESETS["smoke"], ("linux",), [], force=False)
    assert read_json(root / "plan.json")["datasets"] == ["pystdlib", "linux"]


def test_run_killed_before_its_config_was_written_starts_afresh(tmp_path):
    """A SIGKILL during init_run leaves only a temp file in the run folder; the next attempt must not refuse it."""
    planned = make_plan("smoke", None, None, "cpu", workers=1)
    planned.stages[:] = [s for s in planned.stages if s.id in ("data/pystdlib", "train/pystdlib/lstm-1l-8k-d0")]
    run_dir = tmp_path / "r" / "stages/train/pystdlib/lstm-1l-8k-d0/lstm-1l-8k-d0"
    run_dir.mkdir(parents=True)
    (run_dir / ".config.json.abc123.tmp").write_text("{")
    outcome = reproduce(tmp_path / "r", planned, "cpu", force=True, backend=InlineBackend())
    assert outcome.count("done") == 2, outcome.errors
    assert (run_dir / "summary.json").is_file() and not (run_dir / ".config.json.abc123.tmp").exists()


def test_analyses_pick_the_paper_s_models(tmp_path):
    """errors --vs: the best LSTM of the smallest budget; gates: the best LSTM among the deepest models."""
    from rnnlens.reproduce.stages import RECORD, Context, _lstm_rows

    def row(cell, layers, budget, params, val):
        return {"cell": cell, "layers": layers, "budget": budget, "params": params, "best_val_loss": val,
                "run": f"{cell}-{layers}-{budget}"}

    rows = [row("lstm", 1, "130k", 122_000, 1.50), row("lstm", 3, "50k", 44_000, 2.10),
            row("lstm", 1, "50k", 45_000, 1.80), row("lstm", 3, "130k", 123_000, 1.90), row("gru", 1, "50k", 45_000, 1.0)]
    atomic_write_json(tmp_path / "stages/select/x" / RECORD, {"id": "select/x", "finished": 1.0,
                                                                "result": {"rows": rows, "failed": [], "best": rows[0]}})
    ctx = Context(str(tmp_path), PRESETS["cpu"])
    best, others = _lstm_rows(ctx, "x")
    assert best["run"] == "lstm-1-130k" and [r["run"] for r in others] == ["lstm-1-50k", "lstm-3-50k", "lstm-3-130k"]


# ----- the cpu-paper preset: explicit runs, learning-rate pilots ----------------------------------------------
QUICK_FINGERPRINT = "9015b7f5ff813eb4"


def test_older_presets_keep_their_fingerprints():
    """Fields added to Preset later must not invalidate existing reproduction folders (the cpu preset itself was
    redesigned in issue 11: its old folders, fingerprint 0e513cc9931acabe, are refused with the usual message)."""
    assert PRESETS["quick"].fingerprint() == QUICK_FINGERPRINT
    assert PRESETS["cpu"].fingerprint() != "0e513cc9931acabe"


def test_the_cpu_preset_trains_every_type_and_depth_without_dropout_and_counts_cells():
    p = PRESETS["cpu"]
    stages = build_plan(p, [CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1))])
    train = [s for s in stages if s.kind == "train"]
    assert len(train) == 18 and {s.params["dropout"] for s in train} == {0.0}
    assert {(s.params["cell"], s.params["layers"], s.params["budget"]) for s in train} == {
        (c, d, b) for c in ("rnn", "lstm", "gru") for d in (1, 2, 3) for b in ("50k", "130k")}
    census = [s for s in stages if s.kind == "census"]
    assert len(census) == 1 and set(census[0].soft_deps) == {s.id for s in train}
    assert p.epochs == 30 and p.precision == "auto"
    # every model gets its own learning-rate pilot (one epoch per candidate), and trains after it
    pilots = {s.id: s for s in stages if s.kind == "pilot"}
    assert len(pilots) == 18 and all(s.params["lrs"] == [8e-3, 4e-3, 2e-3] for s in pilots.values())
    assert all(s.params["steps"] == 3_258_250 * 8 // 10 // 10_000 for s in pilots.values())
    for s in train:
        pid = f"pilot/warpeace/{s.params['cell']}-{s.params['layers']}l-{s.params['budget']}"
        assert s.deps[-1] == pid and s.params["pilot"] == pid


def test_cpu_paper_plan_pilots_each_type_once_and_trains_the_listed_runs():
    from rnnlens.reproduce.plan import CorpusInfo

    p = PRESETS["cpu-paper"]
    stages = build_plan(p, [CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1)),
                            CorpusInfo("linux", 6_206_996, 110, (0.9, 0.05, 0.05))])
    check_order(stages)
    pilots = [s for s in stages if s.kind == "pilot"]
    assert [s.id for s in pilots] == ["pilot/warpeace/lstm-2l-1.3m", "pilot/warpeace/gru-2l-1.3m",
                                      "pilot/warpeace/rnn-2l-1.3m", "pilot/warpeace/lstm-2l-50k"]
    assert all(s.params["steps"] == 260 and s.params["lrs"] == [2e-3, 1e-3, 5e-4, 2.5e-4] for s in pilots)
    train = {s.id: s for s in stages if s.kind == "train"}
    assert set(train) == {f"train/warpeace/{c}-2l-1.3m-d{d}" for c in ("lstm", "gru", "rnn") for d in ("0", "0.3")} | {
        "train/warpeace/lstm-2l-50k-d0", "train/linux/lstm-2l-1.3m-d0.25"}
    lk = train["train/linux/lstm-2l-1.3m-d0.25"]
    assert lk.params["pilot"] == "pilot/warpeace/lstm-2l-1.3m" and lk.params["epochs"] == 20
    assert lk.deps == ("data/linux", "pilot/warpeace/lstm-2l-1.3m")
    assert train["train/warpeace/lstm-2l-50k-d0"].params["role"] == "scaling"
    assert {"census/warpeace", "census/linux"} <= {s.id for s in stages}


def test_the_pilot_picks_the_lowest_healthy_validation_loss():
    from rnnlens.reproduce.pilot import choose

    trials = [{"lr": 2e-3, "status": "diverged", "val_loss": None}, {"lr": 1e-3, "status": "complete", "val_loss": 3.19},
              {"lr": 5e-4, "status": "complete", "val_loss": 2.58}, {"lr": 2.5e-4, "status": "complete", "val_loss": 2.48},
              {"lr": 1.25e-4, "status": "stalled", "val_loss": 1.0}]
    assert choose(trials)["lr"] == 2.5e-4  # a stalled run never wins, however low its number
    assert choose([{"lr": 1e-3, "status": "stalled", "val_loss": 3.0}]) is None


def test_the_pilot_stage_extends_downwards_while_the_smallest_wins(tmp_path, monkeypatch):
    """Real (tiny) pilot runs; the chosen rate feeds the train stage."""
    from rnnlens.reproduce import pilot as pilot_mod
    from rnnlens.reproduce.plan import Stage

    preset = replace(PRESETS["smoke"], lr_pilot=(5.0, 1e-2), pilot_steps=30, pilot_eval_chars=500)
    root = tmp_path / "repro"
    ctx = stages_mod.Context(str(root), preset, "cpu", None, 1)
    data = Stage("data/pystdlib", "data", "pystdlib")
    stages_mod.stage_dir(root, data.id).mkdir(parents=True, exist_ok=True)
    rec = stages_mod.run_data(data, ctx, stages_mod.stage_dir(root, data.id))
    atomic_write_json(stages_mod.stage_dir(root, data.id) / "stage.json", {"result": rec})
    stage = Stage("pilot/pystdlib/lstm-1l-8k", "pilot", "pystdlib", {"cell": "lstm", "layers": 1, "budget": "8k",
                  "hidden": 0, "lrs": [5.0, 1e-2], "steps": 30})
    result = pilot_mod.run_pilot(stage, ctx, stages_mod.stage_dir(root, stage.id))
    trials = {t["lr"]: t for t in result["trials"]}
    assert list(trials)[:3] == [5.0, 1e-2, 5e-3]  # the smallest (1e-2) beat the diverging 5.0: its half was tried
    assert trials[5.0]["status"] == "diverged"
    assert result["lr"] == pilot_mod.choose(result["trials"])["lr"] != 5.0
    assert all((root / t["run"] / "metrics.jsonl").is_file() for t in result["trials"])


# ----- the compare stage takes the baselines stage's tuned n-NNs (issue 14) ----------------------------------------
def test_compare_stage_reuses_the_baselines_stage_models(tmp_path):
    from rnnlens.baselines.table import run_table2
    from rnnlens.reproduce.plan import CorpusInfo, Stage
    from rnnlens.run import load_config

    plan = build_plan(PRESETS["cpu"], [CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1))])
    check_order(plan)
    cmp = next(s for s in plan if s.kind == "compare")
    assert cmp.soft_deps == ("baselines/warpeace",) and cmp.deps == ("select/warpeace",)
    assert all(s.soft_deps == () for s in plan if s.kind in ("gates", "errors"))

    root = tmp_path / "root"
    rng = np.random.default_rng(5)
    text = tmp_path / "t.txt"
    text.write_text(" ".join(rng.choice(["int", "x", "{", "}", ";", "f(y)", "\n"], size=2500)))
    run = root / "runs" / "lstm"
    assert main(["train", "--text", str(text), "--model", "lstm", "--batch-size", "4", "--seq-len", "16", "--hidden",
                 "8", "--layers", "1", "--max-steps", "10", "--eval-every", "10", "--out", str(run), "--quiet",
                 "--device", "cpu"]) == 0
    row = {"run": "runs/lstm", "cell": "lstm", "layers": 1, "budget": "8k", "best_val_loss": 1.0}
    atomic_write_json(root / "stages" / "select" / "tiny" / "stage.json", {"result": {"rows": [row]}})
    bdir = root / "stages" / "baselines" / "tiny"
    run_table2(None, None, bdir, stages_mod.baseline_preset("smoke"), text_path=text,
               split_cfg=load_config(run).split)
    ctx = stages_mod.Context(str(root), replace(PRESETS["smoke"], snapshot_every=0))
    stage = Stage("compare/tiny", "compare", "tiny", {"chars": 200})

    def compare() -> dict:
        out = stages_mod.stage_dir(root, stage.id)
        out.mkdir(parents=True, exist_ok=True)
        return stages_mod.run_compare_stage(stage, ctx, out)

    # the baselines stage has not finished (no stage.json): the n-NNs are trained here, on the baselines' grid
    res = compare()
    assert res["nnn"]["source"] == {1: "trained", 2: "trained"} and res["nnn"]["hiddens"] == [16]
    assert res["reference_ngram"]["n"] == 3  # the smoke baselines fit no 20-gram: their largest n
    atomic_write_json(bdir / "stage.json", {"result": {}})
    res = compare()
    assert res["nnn"]["source"] == {1: "baselines", 2: "baselines"} and res["nnn"]["from"] == "stages/baselines/tiny"


def test_a_full_disk_fails_the_stage_with_one_line_that_says_how_to_resume(tmp_path, monkeypatch):
    import errno

    from rnnlens.exceptions import DiskFullError
    from rnnlens.reproduce import executor
    from rnnlens.reproduce.stages import Context

    planned = make_plan("smoke", None, None, "cpu", workers=1)
    stage = next(s for s in planned.stages if s.kind == "train")
    ctx = Context(str(tmp_path), planned.preset, "cpu", None, 1)

    def typed(stage, ctx):
        raise DiskFullError(f"{tmp_path}/run/state.safetensors", hint="resume the run")

    def raw(stage, ctx):
        raise OSError(errno.ENOSPC, "No space left on device", f"{tmp_path}/run/x.npy")

    for fake, path in ((typed, f"{tmp_path}/run/state.safetensors"), (raw, f"{tmp_path}/run/x.npy")):
        monkeypatch.setattr(executor, "execute", fake)
        with pytest.raises(DiskFullError) as info:
            executor._run_timed(stage, ctx)
        assert str(info.value) == (f"no space left on device while writing {path}; " + executor.RESUME_HINT)
        assert "\n" not in str(info.value)
