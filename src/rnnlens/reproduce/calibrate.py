"""Timing this machine's CPU for the ``--dry-run`` estimates (``rnnlens reproduce --dry-run --calibrate``).

The training estimates of :mod:`.estimate` are a line measured on one machine (a 2-core AMD EPYC with
AVX512-BF16). CPUs differ by more than the estimates' slack: without AVX512, PyTorch's fused LSTM trains a 50K
model about 3x slower in fp32 than there. :func:`calibrate_cpu` times a few real training updates (the paper's
batch 100 x unroll 100, RMSProp, the element-wise clip, the preset's precision) of two LSTMs from the line's
range and returns how much longer they took than the line says: the factor the plan's training stages are
scaled by (:func:`.plan.build_plan`'s ``cpu_scale``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..model import CharRNN, ModelConfig, hidden_for_budget, param_count
from ..precision import autocast, resolve_precision
from ..recipe import TrainConfig, clip_gradients, make_optimizer
from .estimate import CPU_BF16_SPEEDUP, cpu_line_seconds_per_char

VOCAB = 87  # War and Peace's, the corpus of the line
PROBES = ((1, 45_000), (2, 130_000))  # (layers, parameter budget): both ends of the cpu preset's sizes


@dataclass(frozen=True)
class Calibration:
    """``scale``: measured / line-predicted seconds per character (the geometric mean over the probes);
    ``probes``: per probe its parameters, measured and predicted characters per second."""

    scale: float
    precision: str
    threads: int
    probes: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        parts = ", ".join(f"{p['layers']}-layer LSTM of {p['params']:,}: {p['chars_per_s']:,.0f} chars/s "
                          f"(line {p['line_chars_per_s']:,.0f})" for p in self.probes)
        return (f"calibrated on this CPU ({self.precision}, {self.threads} thread(s)): training takes "
                f"{self.scale:.2f}x the estimate line; {parts}")


def _time_updates(layers: int, budget: int, precision: str, steps: int, batch: int, seq: int) -> tuple[int, float]:
    hidden = hidden_for_budget("lstm", layers, budget, VOCAB)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell="lstm", layers=layers, hidden=hidden, vocab_size=VOCAB))
    rc = TrainConfig()
    opt = make_optimizer(model.parameters(), rc)
    ids = torch.randint(0, VOCAB, (batch, seq + 1))
    x, y = ids[:, :-1], ids[:, 1:]  # (B, T)
    state = None
    times = []
    for step in range(steps + 2):  # two warm-up updates
        t0 = time.perf_counter()
        with autocast(precision, "cpu"):
            logits, state = model(x, state)  # (B, T, K)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model.parameters(), rc.clip)
        opt.step()
        state = tuple(s.detach().float() for s in state)
        if step >= 2:
            times.append(time.perf_counter() - t0)
    # the median update: robust to another job taking the core for a moment
    return param_count("lstm", layers, hidden, VOCAB), batch * seq / statistics.median(times)


def calibrate_cpu(precision: str = "auto", threads: int = 1, steps: int = 6, batch: int = 100,
                  seq: int = 100) -> Calibration:
    """Time ``steps`` training updates of each probe LSTM (their median) on the CPU with ``threads`` torch threads
    (restored afterwards) in ``precision`` (``auto``: as the presets resolve it); compare with the estimate line."""
    precision = resolve_precision(precision, "cpu")
    speedup = CPU_BF16_SPEEDUP if precision == "bf16" else 1.0
    before = torch.get_num_threads()
    torch.set_num_threads(max(int(threads), 1))
    probes = []
    try:
        for layers, budget in PROBES:
            n, rate = _time_updates(layers, budget, precision, steps, batch, seq)
            line_rate = speedup / cpu_line_seconds_per_char(n)  # the line without the slack for a busy machine
            probes.append({"layers": layers, "params": n, "chars_per_s": rate, "line_chars_per_s": line_rate})
    finally:
        torch.set_num_threads(before)
    scale = statistics.geometric_mean(p["line_chars_per_s"] / p["chars_per_s"] for p in probes)
    return Calibration(scale, precision, max(int(threads), 1), probes)
