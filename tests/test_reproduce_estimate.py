"""The --dry-run time estimates of rnnlens.reproduce.estimate, and how the plan uses them."""
from __future__ import annotations

from dataclasses import replace

import pytest

from rnnlens.reproduce.estimate import compare_estimate
from rnnlens.reproduce.plan import PRESETS, CorpusInfo, baseline_preset, build_plan


def test_the_compare_estimate_counts_the_whole_n_nn_grid():
    info = CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1))
    p = replace(PRESETS["cpu"], snapshot_every=0)  # no dynamics: only the baselines' n
    bp = replace(baseline_preset("cpu"), nnn_ns=(1, 2, 3), hiddens=(128,), epochs=2, epoch_positions=100_000)
    fixed = compare_estimate(p, info, replace(bp, nnn_ns=()))
    one = compare_estimate(p, info, bp) - fixed
    assert one > 0
    for grown in (replace(bp, hiddens=(128, 256)), replace(bp, nnn_ns=(1, 2, 3, 4, 5, 6)),
                  replace(bp, epochs=4), replace(bp, epoch_positions=200_000)):
        assert compare_estimate(p, info, grown) - fixed == pytest.approx(2 * one)  # each factor of the grid
    every = compare_estimate(p, info, replace(bp, epoch_positions=0))  # 0: every train position, 2,606,600
    assert every - fixed == pytest.approx(one * 2_606_600 / 100_000)
    # with snapshots the dynamics' 1..4-NN are trained too: the 4-NN adds a fourth n
    assert compare_estimate(replace(p, snapshot_every=100), info, bp) - fixed == pytest.approx(one * 4 / 3)
    # the plan's compare stage uses the preset's baselines
    plan = {s.id: s for s in build_plan(PRESETS["cpu"], [info])}
    assert plan["compare/warpeace"].est_seconds == compare_estimate(PRESETS["cpu"], info, baseline_preset("cpu"))
