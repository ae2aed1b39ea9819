"""Gate saturation equals brute-force counts on captured activations; files, figure and CLI errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlens.capture.core import gate_names
from rnnlens.capture.store import capture_split
from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.analysis.gates import SaturationConfig, gate_saturation, write_saturation
from rnnlens.model import CharRNN, ModelConfig
from rnnlens.data.splits import SplitConfig, make_splits

K = 6


def make_model(cell: str, layers: int = 2) -> CharRNN:
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(cell=cell, layers=layers, hidden=10, vocab_size=K))
    model.reset_parameters(1.5)  # wide weights: gates reach both saturated regimes
    return model.eval()


def small_split():
    ids = np.random.default_rng(0).integers(0, K, 5 * 7 * 20 + 1)
    return make_splits(ids, SplitConfig(batch_size=5, seq_len=7, fractions=(0.5, 0.2, 0.3)))["test"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("left,right", [(0.1, 0.9), (0.35, 0.5)])
def test_fractions_equal_brute_force_counts(cell: str, left: float, right: float) -> None:
    model, split = make_model(cell), small_split()
    result = gate_saturation(model, split, 7, SaturationConfig(left, right))
    cap = capture_split(model, split, 7, names=gate_names(model.config))
    assert result.steps == split.x.size == 5 * 42
    assert [g.name for g in result.gates] == gate_names(model.config)
    total_left = total_right = 0
    for g in result.gates:
        a = cap[g.name]  # (B, N, H) float32
        for u in range(a.shape[2]):
            values = a[:, :, u].ravel().tolist()
            n_left = sum(1 for v in values if v < left)
            n_right = sum(1 for v in values if v > right)
            assert g.left_count[u] == n_left and g.right_count[u] == n_right
            assert g.left[u] == n_left / len(values) and g.right[u] == n_right / len(values)
        total_left += int(g.left_count.sum())
        total_right += int(g.right_count.sum())
        row = g.summary(0.9)
        assert row["mean_left"] == pytest.approx(float(g.left.mean()))
        assert row["mostly_right"] == int((g.right > 0.9).sum())
    assert total_left > 0 and total_right > 0  # both regimes were exercised


def test_max_chars_counts_only_those_columns() -> None:
    model, split = make_model("lstm", 1), small_split()
    result = gate_saturation(model, split, 7, max_chars=12)  # 3 columns of 5 rows
    assert result.steps == 15


def test_bad_thresholds_and_vanilla_rnn() -> None:
    for kw in ({"left": float("nan")}, {"right": 1.5}, {"left": 0.8, "right": 0.2}, {"mostly": -1}):
        with pytest.raises(RnnlensError, match="--"):
            SaturationConfig(**kw)
    with pytest.raises(RnnlensError, match="no gates"):
        gate_saturation(make_model("rnn"), small_split(), 7)


def test_files_table_and_figure(tmp_path: Path) -> None:
    model = make_model("lstm", 3)
    result = gate_saturation(model, small_split(), 7)
    paths = write_saturation(result, tmp_path / "out")
    png = Path(paths["figure"]).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = json.loads(Path(paths["json"]).read_text())
    assert table["steps"] == result.steps and len(table["summary"]) == 9
    assert table["gates"]["layers.2.forget_gate"]["right"] == result.gates[6].right.tolist()
    rows = list(csv.DictReader(Path(paths["csv"]).open()))
    assert len(rows) == 3 * 3 * 10
    assert int(rows[-1]["right_count"]) == result.gates[-1].right_count[-1]
    assert not list((tmp_path / "out").glob(".*"))  # no temp files left


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gaterun")
    text = root / "t.txt"
    text.write_text("the cat sat on the mat. " * 150 + "(a [b] c) " * 60)
    for cell in ("lstm", "rnn"):
        rc = main(["train", "--text", str(text), "--model", cell, "--batch-size", "4", "--seq-len", "16",
                   "--hidden", "12", "--layers", "2", "--max-steps", "4", "--eval-every", "4",
                   "--out", str(root / cell), "--quiet", "--device", "cpu"])
        assert rc == 0
    return root


def test_cli_gates(runs: Path, capsys: pytest.CaptureFixture) -> None:
    out = runs / "g"
    assert main(["gates", str(runs / "lstm"), "--split", "val", "--left", "0.2", "--out", str(out), "--json",
                 "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["thresholds"]["left"] == 0.2
    assert [r["gate"] for r in report["summary"][:3]] == ["forget_gate", "input_gate", "output_gate"]
    assert Path(report["files"]["figure"]).stat().st_size > 0
    assert main(["gates", str(runs / "lstm"), "--split", "val", "--max-chars", "50", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "forget_gate" in err and (runs / "lstm" / "gates-val" / "saturation.png").is_file()


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnlens: error:") and "\n" not in err and needle in err, err


def test_cli_gates_errors(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    one_line_error(capsys, ["gates", str(runs / "rnn"), "--device", "cpu"], "no gates")
    probe = tmp_path / "p.txt"
    probe.write_text("the dog!")
    one_line_error(capsys, ["gates", str(runs / "lstm"), "--text", str(probe), "--device", "cpu"], "not in the model's vocabulary")
    one_line_error(capsys, ["gates", str(runs / "lstm"), "--right", "nan", "--device", "cpu"], "--right")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((runs / "lstm" / "config.json").read_text())
    one_line_error(capsys, ["gates", str(bare), "--device", "cpu"], "no best weights")
    one_line_error(capsys, ["gates", str(tmp_path / "missing")], "does not exist")
