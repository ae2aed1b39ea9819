"""The run browser (rnnlens.runlist, rnnlens runs): each status from the run's own files and its lock."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
from pathlib import Path

import pytest

import rnnlens as rl
from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.lock import acquire, release
from rnnlens.runlist import find_runs, format_table, run_row

TINY = dict(batch_size=4, seq_len=16, layers=1, hidden=10, max_steps=30, eval_every=10, seed=4)


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    rng = random.Random(0)
    text = tmp_path_factory.mktemp("t") / "text.txt"
    text.write_text("\n".join(" ".join(rng.choice(["ab", "cd", "ef"]) for _ in range(9)) for _ in range(150)))
    root = tmp_path_factory.mktemp("runs")
    done = rl.train(root / "done", text=text, device="cpu", **TINY).path
    shutil.copytree(done, root / "grid" / "stage" / "interrupted")
    (root / "grid" / "stage" / "interrupted" / "summary.json").unlink()
    (root / "new").mkdir()
    shutil.copy(done / "config.json", root / "new" / "config.json")
    (root / "other").mkdir()
    (root / "other" / "config.json").write_text('{"format": "something-else"}')  # not a run: left out
    return root


def test_statuses_and_numbers_come_from_the_runs_files(tree: Path) -> None:
    rows = {Path(r.path).name: r for r in find_runs(tree)}
    assert sorted(rows) == ["done", "interrupted", "new"]
    summary = json.loads((tree / "done" / "summary.json").read_text())
    d = rows["done"]
    assert d.status == summary["status"] and d.updates == summary["steps"] == 30
    assert d.test == summary["test_loss_nats"] and d.best_val == summary["best_val_loss"] and d.params == summary["params"]
    assert (d.cell, d.layers, d.hidden, d.precision) == ("lstm", 1, 10, "fp32")
    last = json.loads((tree / "done" / "metrics.jsonl").read_text().splitlines()[-1])
    i = rows["interrupted"]
    assert i.status == "interrupted" and i.updates == last["step"] and i.best_val == last["best_val_loss"] and i.test is None
    assert rows["new"].status == "new" and rows["new"].updates == 0 and rows["new"].updated is None


def test_a_held_lock_means_running_with_the_holders_pid(tree: Path) -> None:
    fd = acquire(tree / "grid" / "stage" / "interrupted", "run")
    try:
        row = run_row(tree / "grid" / "stage" / "interrupted")
        assert row.status == "running" and row.pid == os.getpid()
    finally:
        release(tree / "grid" / "stage" / "interrupted", fd)
    assert run_row(tree / "grid" / "stage" / "interrupted").status == "interrupted"


def test_table_json_and_errors(tree: Path, tmp_path: Path) -> None:
    lines = format_table(find_runs(tree), tree, now=0.0)
    assert lines[0].split()[:3] == ["run", "status", "type"] and len(lines) == 4
    assert any(line.startswith(os.path.join("grid", "stage", "interrupted")) for line in lines)
    rc, out, err = cli("runs", tree, "--json")
    assert rc == 0, err
    assert [Path(r["path"]).name for r in json.loads(out)["runs"]] == ["done", "interrupted", "new"]
    rc, out, _ = cli("runs", tree)
    assert rc == 0 and "interrupted" in out and "done" in out
    rc, out, _ = cli("runs", tmp_path)
    assert rc == 0 and "no runs under" in out
    with pytest.raises(RnnlensError, match="is not a folder"):
        find_runs(tmp_path / "missing")
    rc, _, err = cli("runs", tmp_path / "missing")
    assert rc == 2 and "is not a folder" in err
