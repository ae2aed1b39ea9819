"""rnnlens report: results.json, summary.md and report.html rebuilt from stage records alone (no training here)."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from rnnlens.cli import main
from rnnlens.fsutil import atomic_write_bytes, atomic_write_json, read_json
from rnnlens.reproduce.executor import prepare_out_dir
from rnnlens.reproduce.plan import PRESETS, Stage
from rnnlens.reproduce.report import collect, write_report

# a 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
ROW = {"run": "stages/train/warpeace/lstm-2l-50k-d0.25/run", "cell": "lstm", "layers": 2, "budget": "50k",
       "dropout": 0.25, "hidden": 61, "params": 51234, "best_val_loss": 1.4567, "test_loss_nats": 1.4321, "lr": 4e-3}


def _record(root: Path, stage: Stage, result: dict, wall: float = 2.5) -> None:
    now = time.time()
    atomic_write_json(root / "stages" / stage.id / "stage.json", {"id": stage.id, "kind": stage.kind,
                      "dataset": stage.dataset, "started": now - wall, "finished": now, "wall_s": wall,
                      "result": result})


def fake_reproduction(root: Path) -> None:
    """plan.json and records as a cpu-preset reproduction of War and Peace would leave them (one run failed)."""
    stages = [Stage("data/warpeace", "data", "warpeace"),
              Stage("train/warpeace/lstm-2l-50k-d0.25", "train", "warpeace", deps=("data/warpeace",)),
              Stage("train/warpeace/gru-1l-50k-d0", "train", "warpeace", deps=("data/warpeace",)),
              Stage("select/warpeace", "select", "warpeace", soft_deps=("train/warpeace/lstm-2l-50k-d0.25",
                                                                         "train/warpeace/gru-1l-50k-d0")),
              Stage("baselines/warpeace", "baselines", "warpeace", deps=("data/warpeace",)),
              Stage("modelmap/warpeace", "modelmap", "warpeace", deps=("select/warpeace",))]
    prepare_out_dir(root, PRESETS["cpu"], ("warpeace",), stages, force=False,
                    invocation={"date": "2026-01-02T03:04:05Z", "machine": "testbox", "device": "cpu", "workers": 2})
    _record(root, stages[0], {"dataset": "warpeace", "size": 3_258_250})
    _record(root, stages[1], ROW, wall=100.0)
    atomic_write_json(root / "stages" / stages[2].id / "failed.json", {"id": stages[2].id, "error": "boom: it broke\n"
                                                                        "traceback line"})
    _record(root, stages[3], {"rows": [ROW], "failed": [stages[2].id], "best": ROW})
    atomic_write_bytes(root / "stages/baselines/warpeace/table2.png", PNG)
    _record(root, stages[4], {"entries": {"ngram/20": {"family": "ngram", "n": 20, "test_loss": 1.6543},
                                          "nnn/3": {"family": "nnn", "n": 3, "test_loss": 2.1098}},
                              "figure": "stages/baselines/warpeace/table2.png"}, wall=30.0)


def test_report_from_records(tmp_path):
    root = tmp_path / "rep"
    fake_reproduction(root)
    results = write_report(root)
    assert results["provenance"]["machine"] == "testbox" and results["provenance"]["device"] == "cpu"
    assert results["provenance"]["wall_s_by_part"] == {"data": 2.5, "train": 100.0, "select": 2.5, "baselines": 30.0}
    assert results["stages"]["train/warpeace/gru-1l-50k-d0"] == {"status": "failed", "error": "boom: it broke"}
    assert results["stages"]["modelmap/warpeace"] == {"status": "not run"}
    assert results["results"]["warpeace"]["select"]["best"]["test_loss_nats"] == 1.4321
    assert read_json(root / "results.json")["results"] == results["results"]
    md = (root / "summary.md").read_text()
    # ours beside the paper's published numbers
    assert "| lstm | 2 | 50k | 51,234 | 61 | 0.25 | 0.004 | 1.457 | 1.432 |" in md  # lr: the pilot's choice
    assert "Learning rate: chosen per model on validation after a pilot run of one epoch per candidate among " \
           "0.008, 0.004, 0.002" in md
    assert "Paper, best recurrent net: 1.077" in md and "Paper, 20-gram: 1.195" in md and "(n=20) 1.654" in md
    assert "best test loss by type: lstm 1.432; by depth: 2 1.432" in md
    assert "| 20 | 1.654 | - |" in md and "| 3 | - | 2.110 |" in md
    assert f"Training: {PRESETS['cpu'].epochs:g} epoch(s)" in md and "boom: it broke" in md
    page = (root / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and base64.b64encode(PNG).decode() in page
    assert "1.077" in page and "1.432" in page and "http" not in page


def test_report_command_rebuilds_without_recomputing(tmp_path, capsys):
    root = tmp_path / "rep"
    fake_reproduction(root)
    records = {p: p.stat().st_mtime_ns for p in root.glob("stages/*/*/stage.json")}
    assert main(["report", str(root), "--json"]) == 0
    assert '"stages": 6, "done": 4' in capsys.readouterr().out  # one failed, one not run
    first = (root / "summary.md").read_text()
    (root / "summary.md").unlink()
    (root / "report.html").unlink()
    assert main(["report", str(root)]) == 0
    assert (root / "summary.md").read_text() == first and (root / "report.html").is_file()
    assert {p: p.stat().st_mtime_ns for p in root.glob("stages/*/*/stage.json")} == records
    assert collect(root)["stages"].keys() == read_json(root / "results.json")["stages"].keys()


def test_report_of_a_folder_without_reproduction(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no reproduction" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_table1_rows_in_the_papers_order():
    from rnnlens.reproduce.report import table1_rows

    rows = [dict(ROW, cell=c, layers=d, budget=b) for b in ("1.3m", "50k", "400k", "130k") for c in ("gru", "rnn")
            for d in (2, 1)]
    got = [(r[0], r[1], r[2]) for r in table1_rows({"select": {"rows": rows}})]
    assert got == [(c, str(d), b) for b in ("50k", "130k", "400k", "1.3m") for c in ("rnn", "gru") for d in (1, 2)]


# ----- training curves --------------------------------------------------------------------------------------
def _train_stage(cell: str, layers: int, dropout: float) -> Stage:
    return Stage(f"train/warpeace/{cell}-{layers}l-8k-d{dropout:g}", "train", "warpeace",
                 {"cell": cell, "layers": layers, "budget": "8k", "hidden": 12, "dropout": dropout},
                 deps=("data/warpeace",))


def _run_with_metrics(run_dir: Path, text: Path, cell: str, layers: int, dropout: float, points: list[tuple]) -> None:
    """A run folder as training leaves it: its config.json and one metrics.jsonl line per (epoch, val_loss)."""
    from rnnlens.newrun import new_run_config
    from rnnlens.train import init_run

    cfg, _ = new_run_config(text=text, batch_size=4, seq_len=8, model=cell, layers=layers, hidden=12, dropout=dropout)
    init_run(run_dir, cfg)
    lines = [json.dumps({"step": 10 * (i + 1), "epoch": e, "train_loss": v + 0.1, "val_loss": v, "lr": 2e-3,
                         "elapsed_s": float(i)}) for i, (e, v) in enumerate(points)]
    (run_dir / "metrics.jsonl").write_text("".join(x + "\n" for x in lines))


def reproduction_with_runs(root: Path, tmp_path: Path) -> dict[str, list[tuple]]:
    """A smoke-like reproduction of War and Peace: an LSTM finished (its record names its run), an LSTM and a GRU
    still training, a GRU started without a validation yet, an RNN not started; returns the points written."""
    text = tmp_path / "text.txt"
    text.write_text("abcd efgh, ijkl.\n" * 40)
    stages = [Stage("data/warpeace", "data", "warpeace"), _train_stage("lstm", 1, 0.0), _train_stage("lstm", 2, 0.25),
              _train_stage("gru", 2, 0.0), _train_stage("gru", 1, 0.0), _train_stage("rnn", 1, 0.0)]
    prepare_out_dir(root, PRESETS["smoke"], ("warpeace",), stages, force=False,
                    invocation={"date": "2026-01-02T03:04:05Z", "machine": "testbox", "device": "cpu", "workers": 1})
    _record(root, stages[0], {"dataset": "warpeace", "size": 40_000})
    points = {stages[1].id: [(0.5, 3.25), (1.0, 2.875), (1.5, 2.5)], stages[2].id: [(0.25, 3.5), (0.75, 3.0)],
              stages[3].id: [(1.0, 2.75)], stages[4].id: []}
    for s in stages[1:5]:
        run = root / "stages" / s.id / s.id.split("/")[-1]
        _run_with_metrics(run, text, s.params["cell"], s.params["layers"], s.params["dropout"], points[s.id])
    _record(root, stages[1], {"run": f"stages/{stages[1].id}/{stages[1].id.split('/')[-1]}", "cell": "lstm"})
    return {k: v for k, v in points.items() if v}


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every Figure the report draws (the real plot_curve_grid runs; its return value is kept here)."""
    from rnnlens.reproduce import report_curves

    figures, real = [], report_curves.plot_curve_grid
    monkeypatch.setattr(report_curves, "plot_curve_grid", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    return figures


def test_report_draws_the_training_curves_of_every_run(tmp_path, drawn):
    from rnnlens.analysis.curves import PAPER_LINE
    from rnnlens.reproduce.report import PAPER

    root = tmp_path / "rep"
    points = reproduction_with_runs(root, tmp_path)
    results = write_report(root)
    c = results["results"]["warpeace"]["curves"]
    assert c["figure"] == "figures/curves-warpeace.png" and c["paper_best"] == PAPER["warpeace"]["best_rnn"] == 1.077
    png = (root / c["figure"]).read_bytes()
    assert png[:4] == b"\x89PNG"
    assert c["skipped"] == [{"stage": "train/warpeace/gru-1l-8k-d0", "reason": "no validation yet"},
                            {"stage": "train/warpeace/rnn-1l-8k-d0", "reason": "not started"}]
    assert {r["stage"]: list(zip(r["epochs"], r["val_loss"])) for r in c["runs"]} == points
    # the figure: a panel per type that has a curve (paper order), a line per run with exactly its points
    (fig,) = drawn
    assert [ax.get_title() for ax in fig.axes] == ["LSTM", "GRU"]
    want = {"LSTM": [("1-layer 8k d0", "train/warpeace/lstm-1l-8k-d0"),
                     ("2-layer 8k d0.25", "train/warpeace/lstm-2l-8k-d0.25")],
            "GRU": [("2-layer 8k d0", "train/warpeace/gru-2l-8k-d0")]}
    for ax in fig.axes:
        *lines, paper = ax.get_lines()
        assert [(ln.get_label(), list(zip(ln.get_xdata(), ln.get_ydata()))) for ln in lines] == \
            [(label, points[sid]) for label, sid in want[ax.get_title()]]
        assert paper.get_label().startswith(PAPER_LINE) and list(paper.get_ydata()) == [1.077, 1.077]
    md = (root / "summary.md").read_text()
    assert "### Training curves (warpeace)" in md
    assert "![validation loss against epochs, warpeace](figures/curves-warpeace.png)" in md
    assert "3 training run(s) against epochs" in md and "train/warpeace/rnn-1l-8k-d0 (not started)" in md
    page = (root / "report.html").read_text()
    assert "<h3>Training curves (warpeace)</h3>" in page and base64.b64encode(png).decode() in page
    assert "http" not in page and "<script" not in page
    assert read_json(root / "results.json")["results"]["warpeace"]["curves"] == c


def test_report_without_training_notes_the_missing_curves(tmp_path):
    from rnnlens.reproduce.report_curves import curve_lines, write_curves

    root = tmp_path / "rep"
    fake_reproduction(root)  # one run finished but its folder is gone, one failed before starting
    results = write_report(root)
    c = results["results"]["warpeace"]["curves"]
    assert c["figure"] is None and c["runs"] == [] and not (root / "figures").exists()
    assert [s["reason"] for s in c["skipped"]] == ["not started", "not started"]
    md = (root / "summary.md").read_text()
    assert "### Training curves (warpeace)" in md and "No training run has a validation yet" in md
    assert "<h3>Training curves (warpeace)</h3>" in (root / "report.html").read_text()
    empty = write_curves(root, {"stages": []}, "linux", 0.84)
    assert empty == {"figure": None, "x": "epochs", "paper_best": 0.84, "runs": [], "skipped": []}
    assert curve_lines(empty) == ["No training run in the plan."]


def test_a_corpus_without_published_numbers_gets_no_paper_line(tmp_path, drawn):
    root = tmp_path / "rep"
    points = reproduction_with_runs(root, tmp_path)
    plan = read_json(root / "plan.json")
    atomic_write_json(root / "plan.json", dict(plan, datasets=["pystdlib"],
                                               stages=[dict(s, dataset="pystdlib") for s in plan["stages"]]))
    c = write_report(root)["results"]["pystdlib"]["curves"]
    assert c["figure"] == "figures/curves-pystdlib.png" and c["paper_best"] is None and len(c["runs"]) == len(points)
    assert [len(ax.get_lines()) for ax in drawn[0].axes] == [2, 1]  # the runs' lines only
    assert "No published number for this corpus, so no paper line." in (root / "summary.md").read_text()
