"""The time estimates of ``rnnlens reproduce --dry-run``: seconds per stage of the plan, rough by design.

What is estimated: the training of a grid model or pilot (from its parameter count and the characters it
trains on), the baselines stage (Table 2, a fixed guess per baselines preset scaled by the corpus size), the
compare stage (its n-NN grid counted in positions, plus a fixed part) and the other analyses (per test
character guesses). How it was calibrated, each constant below says: the CPU training speed and the n-NN speed
were measured with ``rnnlens train`` and the baselines stage of the cpu-preset run of 2026-11-26 (then in
results/cpu-warpeace) on the project's 2-core AMD EPYC machine, with 30% added for a busy machine
(``CPU_SLACK``); the bf16 speedup comes from bench/precision.py; the GPU speed and the other stages' figures
are guesses. :mod:`.plan` puts these figures on its stages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plan import CorpusInfo, Preset

# Rough effective training speed (6 x parameters x characters per second, per worker) used only for the
# --dry-run estimates. `rnnlens train` on War and Peace with one CPU thread at batch 100 x 100 measured about
# 3e10 (45K-parameter 1-layer LSTM: 121K chars/s; 123K-parameter 3-layer GRU: 42K chars/s); 2e10 allows for
# a busy machine. The GPU figure is a guess.
CPU_FLOPS = 2.0e10
GPU_FLOPS = 5.0e11

# CPU training time per character, one thread at batch 100 x unroll 100, measured with `rnnlens train` on War and
# Peace (2-core AMD EPYC, 2026-12): 45K-parameter LSTM 121K chars/s, 1.28M-parameter 2-layer LSTM 6.5K chars/s;
# a straight line through both, plus 30% for a busy machine.
CPU_SECONDS_PER_CHAR = (2.94e-6, 1.183e-10)  # (fixed, per parameter)
CPU_SLACK = 1.3
# bf16 over fp32 on a CPU with AVX512-BF16, the smallest ratio of bench/precision.py (2026-12-03: 1.72-2.72 for the
# LSTM and RNN at 130K and 1.3M; the 130K GRU gains only 1.24x, so a grid with GRUs is a little slower than this says)
CPU_BF16_SPEEDUP = 1.7

# n-NN training time per position (one example: n characters in, the next out), one CPU thread, measured by the
# baselines stage of the cpu-preset run of 2026-11-26 (War and Peace, then in results/cpu-warpeace; 2-core CPU):
# 6 n x 2 hidden sizes (128, 256) x 5 epochs x 1M positions = 60M positions in 316 s of train_s (per-epoch
# validation included), 5.3e-6 s; times CPU_SLACK like the training estimate. Larger hidden sizes cost more
# (ignored: rough).
NNN_SECONDS_PER_POSITION = 5.3e-6
# compare besides the n-NNs (n-grams, scoring, braces, dynamics): the same run's compare stage took 212 s, of
# which its 30M n-NN positions (one hidden size then) account for about 160 s.
COMPARE_FIXED_SECONDS = 50.0

WAR_AND_PEACE_BYTES = 3_258_250  # the corpus the fixed guesses were made for; other corpora scale by size


def cpu_speedup(preset: Preset) -> float:
    """How much faster than the fp32 calibration this preset trains on this machine's CPU."""
    if preset.precision == "fp32":
        return 1.0
    from ..precision import native_bf16

    return CPU_BF16_SPEEDUP if native_bf16("cpu")[0] else 1.0


# The CPU line above is the LSTM's (oneDNN runs PyTorch's fused LSTM as one primitive). PyTorch's CPU GRU is a
# loop of separate operations per step and layer, so it is slower at the same parameter count and more so the
# deeper it is: bench/cell_speed.py (2026-12-04, one thread, bf16, batch 100 x unroll 100, beside one training)
# measured GRU/LSTM time ratios 1.54 / 3.30 / 2.48 at 50K and 1.46 / 1.75 / 1.94 at 130K for 1 / 2 / 3 layers, and
# the RNN within 12% of the LSTM but once (1.52, 50K x 2). A straight line per layer: 1 + 0.45 x layers for the GRU.
GRU_CPU_FACTOR_PER_LAYER = 0.45


def cell_factor(cell: str, layers: int) -> float:
    """How much longer than the LSTM line a ``cell`` of ``layers`` layers takes to train on a CPU."""
    return 1.0 + GRU_CPU_FACTOR_PER_LAYER * layers if cell == "gru" else 1.0


def cpu_line_seconds_per_char(params: int) -> float:
    """The measured CPU line (fp32, one thread, no slack): seconds per training character of a ``params`` LSTM."""
    fixed, per_param = CPU_SECONDS_PER_CHAR
    return fixed + per_param * params


def train_estimate(params: int, chars: int, flops: float, speedup: float = 1.0, cell: str = "lstm",
                   layers: int = 1) -> float:
    """Seconds to train a ``cell`` model of ``params`` parameters and ``layers`` layers on ``chars`` characters
    at ``flops`` (CPU_FLOPS: the measured CPU line instead, times :func:`cell_factor`)."""
    if flops == CPU_FLOPS:
        return CPU_SLACK * chars * cpu_line_seconds_per_char(params) * cell_factor(cell, layers) / speedup
    return 6.0 * params * chars / flops


def baseline_estimate(preset: Preset, info: CorpusInfo) -> float:
    """Seconds of the baselines stage (Table 2): a guess per baselines preset, scaled by the corpus size."""
    if preset.baseline == "smoke":
        return 5.0
    guess = {"quick": 120.0, "cpu": 1200.0, "paper": 4 * 3600.0}.get(preset.baseline, 600.0)
    return guess * info.size / WAR_AND_PEACE_BYTES


def compare_nnn_ns(preset: Preset, bp: Any, reuse_baselines: bool = False) -> set[int]:
    """The n of the n-NNs the compare stage trains with the baselines preset ``bp``: the baselines' n, and the
    dynamics' 1..4 when the preset keeps snapshots. With ``reuse_baselines`` (the baselines stage of the corpus
    finished first) compare loads the baselines' tuned n-NNs and trains only the dynamics' n they lack."""
    from .plan import compare_dynamics_ns

    ns = set(bp.nnn_ns) | (set(compare_dynamics_ns(preset, bp)) if preset.snapshot_every else set())
    return ns - set(bp.nnn_ns) if reuse_baselines else ns


def compare_estimate(preset: Preset, info: CorpusInfo, bp: Any, reuse_baselines: bool = False) -> float:
    """Seconds of the compare stage with the baselines preset ``bp``: every n-NN it trains (:func:`compare_nnn_ns`)
    over the whole grid: n values x hidden sizes x epochs x positions per epoch (all train positions when
    ``bp`` says 0), plus a fixed part for the rest."""
    ns = compare_nnn_ns(preset, bp, reuse_baselines)
    positions = bp.epoch_positions or int(info.size * info.fractions[0])
    nnn = CPU_SLACK * NNN_SECONDS_PER_POSITION * len(ns) * len(bp.hiddens) * bp.epochs * positions
    return 2.0 + COMPARE_FIXED_SECONDS * info.size / WAR_AND_PEACE_BYTES + nnn


def analysis_estimate(kind: str, preset: Preset, info: CorpusInfo, reuse_baselines: bool = False) -> float:
    """Seconds of an analysis stage: compare as :func:`compare_estimate` (``reuse_baselines``: a baselines stage
    of the corpus is in the plan); errors fits the n-grams 1..9; the others cost per test character."""
    if kind == "compare":
        from .plan import baseline_preset

        return compare_estimate(preset, info, baseline_preset(preset.baseline), reuse_baselines)
    if kind == "errors":
        return 5.0 if preset.baseline == "smoke" else 300.0 * info.size / WAR_AND_PEACE_BYTES
    per_char = {"gates": 2e-5, "cells": 1e-4, "modelmap": 5e-5}[kind]
    return 2.0 + per_char * preset.analysis_chars * (10 if kind == "modelmap" else 1)
