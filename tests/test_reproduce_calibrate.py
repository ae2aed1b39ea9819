"""rnnlens.reproduce.calibrate: timing this CPU against the estimate line, and the plan scaled by it."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlens.cli import main
from rnnlens.reproduce.calibrate import PROBES, calibrate_cpu
from rnnlens.reproduce.estimate import CPU_SECONDS_PER_CHAR
from rnnlens.reproduce.plan import PRESETS, CorpusInfo, build_plan


def test_the_scale_is_the_geometric_mean_of_the_probes_line_over_measured_time():
    threads = torch.get_num_threads()
    cal = calibrate_cpu("fp32", threads=1, steps=1, batch=4, seq=8)
    assert torch.get_num_threads() == threads  # restored
    assert cal.precision == "fp32" and cal.threads == 1 and len(cal.probes) == len(PROBES)
    fixed, per_param = CPU_SECONDS_PER_CHAR
    for p, (layers, _) in zip(cal.probes, PROBES):
        assert p["layers"] == layers and p["chars_per_s"] > 0
        assert p["line_chars_per_s"] == pytest.approx(1.0 / (fixed + per_param * p["params"]))
    ratios = [p["line_chars_per_s"] / p["chars_per_s"] for p in cal.probes]
    assert cal.scale == pytest.approx(math.exp(sum(map(math.log, ratios)) / len(ratios)), rel=1e-5)
    assert "training takes" in cal.describe() and f"{cal.scale:.2f}x" in cal.describe()


def test_a_scale_multiplies_the_trainings_and_pilots_and_nothing_else():
    info = CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1))
    base = build_plan(PRESETS["cpu"], [info])
    slow = {s.id: s for s in build_plan(PRESETS["cpu"], [info], cpu_scale=2.5)}
    for s in base:
        if s.kind == "train":  # est = line time + a fixed 2 s
            assert slow[s.id].est_seconds - 2.0 == pytest.approx(2.5 * (s.est_seconds - 2.0))
        elif s.kind == "pilot":
            assert slow[s.id].est_seconds == pytest.approx(2.5 * s.est_seconds)
        else:
            assert slow[s.id].est_seconds == s.est_seconds
    assert any(s.kind == "pilot" for s in base)


def test_calibrate_is_refused_outside_a_cpu_dry_run(capsys):
    assert main(["reproduce", "--preset", "smoke", "--calibrate", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "--calibrate only scales the estimates of --dry-run" in err and err.count("\n") == 1


def test_the_calibrated_dry_run_says_how_it_was_scaled(capsys):
    import json

    assert main(["reproduce", "--preset", "smoke", "--dry-run", "--calibrate", "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calibration"]["scale"] > 0 and len(out["calibration"]["probes"]) == 2
    assert main(["reproduce", "--preset", "smoke", "--dry-run", "--device", "cpu"]) == 0
    assert "--calibrate times this one" in capsys.readouterr().out
