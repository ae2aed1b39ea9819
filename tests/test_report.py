"""rnnlens report: results.json, summary.md and report.html rebuilt from stage records alone (no training here)."""
from __future__ import annotations

import base64
import time
from pathlib import Path

from rnnlens.cli import main
from rnnlens.fsutil import atomic_write_bytes, atomic_write_json, read_json
from rnnlens.reproduce.executor import prepare_out_dir
from rnnlens.reproduce.plan import PRESETS, Stage
from rnnlens.reproduce.report import collect, write_report

# a 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
ROW = {"run": "stages/train/warpeace/lstm-2l-50k-d0.25/run", "cell": "lstm", "layers": 2, "budget": "50k",
       "dropout": 0.25, "hidden": 61, "params": 51234, "best_val_loss": 1.4567, "test_loss_nats": 1.4321}


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
    assert "| lstm | 2 | 50k | 51,234 | 61 | 0.25 | 1.457 | 1.432 |" in md
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
