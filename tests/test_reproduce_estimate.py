"""The --dry-run time estimates of rnnlens.reproduce.estimate, and how the plan uses them."""
from __future__ import annotations

from dataclasses import replace

import pytest

from rnnlens.reproduce.estimate import compare_estimate, compare_nnn_ns
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


def test_the_plan_charges_compare_only_for_the_n_nns_the_baselines_stage_does_not_train():
    info = CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1))
    p = replace(PRESETS["cpu"], snapshot_every=100)  # the dynamics want the 1..4-NN
    bp = replace(baseline_preset("cpu"), nnn_ns=(1, 2, 3), hiddens=(128,), epochs=2, epoch_positions=100_000)
    no_snapshots = replace(p, snapshot_every=0)
    fixed = compare_estimate(no_snapshots, info, replace(bp, nnn_ns=()))  # no n-NN at all
    one_n = compare_estimate(no_snapshots, info, replace(bp, nnn_ns=(1,))) - fixed
    assert one_n > 0
    # without the baselines stage compare trains 1..4; with it only the 4-NN the baselines lack
    assert compare_nnn_ns(p, bp) == {1, 2, 3, 4} and compare_nnn_ns(p, bp, reuse_baselines=True) == {4}
    alone, reusing = compare_estimate(p, info, bp), compare_estimate(p, info, bp, reuse_baselines=True)
    assert alone - fixed == pytest.approx(4 * one_n) and reusing - fixed == pytest.approx(one_n)
    assert alone - reusing == pytest.approx(3 * one_n)  # exactly the baselines' three n-NNs
    # without snapshots, or when the baselines train every n of the dynamics, compare trains no n-NN
    assert compare_estimate(no_snapshots, info, bp, reuse_baselines=True) == pytest.approx(fixed)
    assert compare_nnn_ns(p, baseline_preset("cpu"), reuse_baselines=True) == set()  # cpu baselines: 1,2,3,4,6,9
    # the plan has a baselines stage per corpus, so its compare stages are charged with the reuse
    for name, corpus in (("cpu", info), ("quick", CorpusInfo("pystdlib", 2_000_000, 100, (0.9, 0.05, 0.05)))):
        preset, bp_of = PRESETS[name], baseline_preset(PRESETS[name].baseline)
        compare = {s.id: s for s in build_plan(preset, [corpus])}[f"compare/{corpus.name}"]
        assert f"baselines/{corpus.name}" in compare.soft_deps
        assert compare.est_seconds == compare_estimate(preset, corpus, bp_of, reuse_baselines=True)
        assert compare.est_seconds < compare_estimate(preset, corpus, bp_of)
    # quick: baselines n-NN 1..3, dynamics 1..4 over snapshots: compare trains the 4-NN alone
    assert compare_nnn_ns(PRESETS["quick"], baseline_preset("quick"), reuse_baselines=True) == {4}


def test_a_gru_is_estimated_slower_than_an_lstm_of_its_size_and_more_so_the_deeper_it_is():
    """bench/cell_speed.py: PyTorch's CPU GRU is a loop of operations per step and layer, its LSTM one oneDNN
    primitive; the plan charges the GRU's trainings and pilots for it (and nothing on a GPU)."""
    from rnnlens.reproduce.estimate import CPU_FLOPS, GPU_FLOPS, cell_factor, train_estimate

    assert cell_factor("lstm", 3) == cell_factor("rnn", 3) == 1.0
    assert 1.0 < cell_factor("gru", 1) < cell_factor("gru", 2) < cell_factor("gru", 3)
    lstm = train_estimate(120_000, 10**6, CPU_FLOPS, 1.7, "lstm", 2)
    assert train_estimate(120_000, 10**6, CPU_FLOPS, 1.7, "gru", 2) == pytest.approx(lstm * cell_factor("gru", 2))
    assert train_estimate(120_000, 10**6, GPU_FLOPS, 1.0, "gru", 3) == train_estimate(120_000, 10**6, GPU_FLOPS)
    info = CorpusInfo("warpeace", 3_258_250, 87, (0.8, 0.1, 0.1))
    stages = {s.id: s for s in build_plan(PRESETS["cpu"], [info])}
    for kind in ("train/warpeace/{}-{}l-130k-d0", "pilot/warpeace/{}-{}l-130k"):
        for layers in (1, 2, 3):
            gru, lstm = stages[kind.format("gru", layers)], stages[kind.format("lstm", layers)]
            per_param = (gru.est_seconds / gru.param_count) / (lstm.est_seconds / lstm.param_count)
            assert per_param > 1.0 + 0.3 * layers
