"""Training curves (rnnlens.analysis.curves, rnnlens curves): the points are the run's metrics.jsonl lines,
every x axis is derived from them, a run still writing is read as far as it got, and bad input is refused."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import rnnlens as rl
from rnnlens.analysis.curves import plot_curves, read_curve, run_label
from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError

TINY = dict(batch_size=4, seq_len=16, layers=2, hidden=12, max_steps=60, eval_every=20, seed=2)


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("curves") / "text.txt"
    path.write_text("\n".join(" ".join(rng.choice(["ab", "cd", "ef", "gh"]) for _ in range(9)) for _ in range(200)))
    root = tmp_path_factory.mktemp("runs")
    a = rl.train(root / "lstm", text=path, device="cpu", **TINY).path
    b = rl.train(root / "gru", text=path, device="cpu", model="gru", **TINY).path
    return [a, b]


def test_points_are_the_metrics_lines(runs) -> None:
    c = read_curve(runs[0])
    lines = [json.loads(x) for x in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert c.updates.tolist() == [r["step"] for r in lines]
    assert c.val_loss.tolist() == [r["val_loss"] for r in lines] and c.train_loss.tolist() == [r["train_loss"] for r in lines]
    assert c.epochs.tolist() == [r["epoch"] for r in lines] and c.seconds.tolist() == [r["elapsed_s"] for r in lines]
    assert c.chars.tolist() == [r["step"] * 4 * 16 for r in lines]
    assert c.val_loss[c.best] == min(r["val_loss"] for r in lines)
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert c.status == summary["status"] and c.test_loss == summary["test_loss_nats"]
    cfg = rl.load_config(runs[0])
    assert c.label == run_label(cfg) and c.label.startswith("text LSTM 2x12 ") and c.label.endswith(" d0 fp32")
    d = c.to_dict()
    assert d["best"]["val_loss"] == c.val_loss[c.best] and len(d["points"]) == len(lines)


def test_a_run_still_writing_is_read_as_far_as_it_got(runs, tmp_path) -> None:
    live = tmp_path / "live"
    shutil.copytree(runs[0], live)
    (live / "summary.json").unlink()
    text = (live / "metrics.jsonl").read_text().splitlines()
    (live / "metrics.jsonl").write_text("\n".join(text[:2]) + "\n" + text[2][:15])  # half a line being written
    c = read_curve(live)
    assert len(c.updates) == 2 and c.status == "running or interrupted" and c.test_loss is None


def test_bad_input_gets_one_line_errors(runs, tmp_path) -> None:
    with pytest.raises(RnnlensError, match="is not a run"):
        read_curve(tmp_path)
    fresh = tmp_path / "fresh"
    shutil.copytree(runs[0], fresh)
    (fresh / "metrics.jsonl").write_text("")
    with pytest.raises(RnnlensError, match="no validation yet"):
        read_curve(fresh)
    with pytest.raises(RnnlensError, match="must end in .png or .svg"):
        plot_curves([read_curve(runs[0])], tmp_path / "c.pdf")
    with pytest.raises(RnnlensError, match="x must be one of"):
        read_curve(runs[0]).x("minutes")
    rc, _, err = cli("curves", tmp_path)
    assert rc == 2 and "is not a run" in err and "Traceback" not in err


@pytest.mark.parametrize("x", ["updates", "epochs", "chars", "seconds"])
def test_cli_draws_every_axis_and_prints_json(runs, tmp_path, x) -> None:
    out = tmp_path / f"c-{x}.svg"
    rc, stdout, err = cli("curves", *runs, "--x", x, "--out", out, "--json")
    assert rc == 0, err
    d = json.loads(stdout)
    assert d["x"] == x and [r["run"] for r in d["runs"]] == [str(r) for r in runs]
    assert out.read_text().lstrip().startswith("<?xml") and "GRU" in out.read_text()
    one = tmp_path / "one.png"
    rc, _, err = cli("curves", runs[0], "--out", one)
    assert rc == 0 and one.read_bytes()[:4] == b"\x89PNG" and "best val" in err
    assert np.isfinite(read_curve(runs[1]).val_loss).all()


def test_grid_has_a_panel_per_type_and_exactly_each_runs_points(runs, tmp_path) -> None:
    from dataclasses import replace

    from rnnlens.analysis.curves import PAPER_LINE, plot_curve_grid

    lstm, gru = read_curve(runs[0]), read_curve(runs[1])
    lstm2 = replace(lstm, label="second", val_loss=lstm.val_loss + 0.5)
    fig = plot_curve_grid({"rnn": [], "lstm": [lstm, lstm2], "gru": [gru]}, tmp_path / "g.png", paper_best=1.077)
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert [ax.get_title() for ax in fig.axes] == ["LSTM", "GRU"]  # a type without curves gets no panel
    for ax, curves in zip(fig.axes, ([lstm, lstm2], [gru])):
        lines = ax.get_lines()
        assert len(lines) == len(curves) + 1
        for line, c in zip(lines, curves):
            assert line.get_label() == c.label
            assert np.array_equal(line.get_xdata(), c.epochs) and np.array_equal(line.get_ydata(), c.val_loss)
        paper = lines[-1]
        assert paper.get_label().startswith(PAPER_LINE) and paper.get_linestyle() == "--"
        assert list(paper.get_ydata()) == [1.077, 1.077]
    bare = plot_curve_grid({"gru": [gru]}, tmp_path / "h.png", x="updates")
    assert [line.get_label() for line in bare.axes[0].get_lines()] == [gru.label]  # no paper number: no line
    assert np.array_equal(bare.axes[0].get_lines()[0].get_xdata(), gru.updates)
    with pytest.raises(RnnlensError, match="no curves to plot"):
        plot_curve_grid({"lstm": []}, tmp_path / "i.png")
    assert not (tmp_path / "i.png").exists()
