"""Training throughput of ``rnnlens train``'s inner loop against a bare PyTorch loop, measured in one run.

For each model (the paper's 130K 2-layer LSTM and 1.3M 3-layer LSTM, hidden sizes from
``rnnlens.model.hidden_for_budget``) it times, on the same text, batch B and unroll S:

* rnnlens: the real :func:`rnnlens.train.train` on a fresh run directory (paper recipe, ``max_steps``
  N, validation and checkpoints pushed outside the timed steps). A reporter records the clocks at every
  step's progress update; the time from the update after step ``warmup`` to the update after step N
  covers steps ``warmup+1 .. N`` exactly, bookkeeping included.
* bare: ``nn.LSTM(batch_first=True)`` + ``nn.Linear``, ``F.one_hot`` input, cross-entropy, RMSprop
  (lr 2e-3, alpha 0.95), ``clip_grad_value_(5)``, the state carried and detached, the batches made
  beforehand as tensors on the device; timed over the same steps ``warmup+1 .. N``.

Both clocks are kept: wall time (chars/s) and this process' CPU time (chars per CPU-second; less
disturbed when other processes share the cores). Repetitions are interleaved (bare, rnnlens, bare,
rnnlens, ...) so that load from other processes hits both sides alike; the medians and their ratios
rnnlens/bare are printed and written as JSON. One intra-op thread by default (see --threads).

Run from the repository root::

    .venv/bin/python bench/train_throughput.py                 # defaults, about 3-5 minutes on 2 cores
    .venv/bin/python bench/train_throughput.py --models 130k --repeats 7 --threads 0 --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnlens.data.corpora import load_corpus_bytes
from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import atomic_write_json
from rnnlens.model import ModelConfig, hidden_for_budget, param_count, parse_budget
from rnnlens.recipe import TrainConfig
from rnnlens.run import DataSource, RunConfig, sha256_hex
from rnnlens.runtime import resolve_device
from rnnlens.data.splits import Split, SplitConfig, make_splits
from rnnlens.data.text import TextConfig, Vocab, read_symbols
from rnnlens.train import init_run, train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "train_throughput.json"


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: the paper budget name, layers, untimed warm-up steps, timed steps."""

    name: str
    layers: int
    warmup: int
    steps: int


MODELS = {"130k": ModelSpec("130k", 2, 2, 30), "1.3m": ModelSpec("1.3m", 3, 1, 6)}


@dataclass(frozen=True)
class BenchData:
    """The text as rnnlens sees it: vocabulary, config pieces and the splits handed to ``train``."""

    label: str
    source: DataSource
    text: TextConfig
    split: SplitConfig
    vocab: Vocab
    splits: dict[str, Split]


def load_data(max_bytes: int, batch: int, seq_len: int, corpus: str = "warpeace", data_dir: str | None = None) -> BenchData:
    """The first ``max_bytes`` of a named corpus (vocabulary of the whole corpus: K=87 for War and Peace), read
    from the data directory as every rnnlens command does (``data_dir``, else $RNNLENS_DATA, else the cache).

    Validation and test are cut to one B x S block each, so the validation at the last step and the test
    run that ``train`` does at the end cost little (they are outside the timed steps anyway).
    """
    text_cfg = TextConfig(unit="byte", newline="keep")
    try:
        full = load_corpus_bytes(corpus, data_dir)
    except RnnlensError as exc:
        raise SystemExit(f"train_throughput: {exc}") from None
    raw, label = full[:max_bytes], f"{corpus}[:{max_bytes}]"
    vocab = Vocab.build(read_symbols(full, text_cfg), text_cfg.unit)
    split_cfg = SplitConfig(layout="interleaved", fractions=(0.96, 0.02, 0.02), batch_size=batch, seq_len=seq_len)
    splits = make_splits(vocab.encode(read_symbols(raw, text_cfg)), split_cfg)
    for name in ("val", "test"):
        s = splits[name]
        splits[name] = Split(name, s.x[:, :seq_len].copy(), s.y[:, :seq_len].copy(), s.row_starts)
    source = DataSource(text_path=label, sha256=sha256_hex(raw), size=len(raw))
    return BenchData(label, source, text_cfg, split_cfg, vocab, splits)


def model_config(spec: ModelSpec, vocab_size: int) -> ModelConfig:
    budget = parse_budget(spec.name, vocab_size)
    hidden = hidden_for_budget("lstm", spec.layers, budget, vocab_size)
    return ModelConfig(cell="lstm", layers=spec.layers, hidden=hidden, vocab_size=vocab_size)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clocks() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    return end[0] - start[0], end[1] - start[1]


class StepClock:
    """A ``rnnlens.train.Reporter`` that records the wall clock of every progress update by step."""

    def __init__(self) -> None:
        self.times: dict[int, tuple[float, float]] = {}

    def start(self, total_steps: int, done_steps: int, chars_per_step: int) -> None:
        pass

    def update(self, step: int, loss: float, chars_per_s: float, lr: float) -> None:
        self.times[step] = clocks()

    def note(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


def timed_window(warmup: int, steps: int, device: torch.device) -> tuple[int, int]:
    """Steps ``first+1 .. last`` are timed. ``train`` reports every step on CPU and every 20 on CUDA (its
    ``log_every``), so on CUDA the window runs between multiples of 20."""
    every = 1 if device.type == "cpu" else 20
    first = -(-warmup // every) * every
    last = (warmup + steps) // every * every
    if last <= first:
        raise SystemExit(f"train_throughput: no timed steps on {device}; raise --steps to at least {2 * every}")
    return first, last


def time_rnnlens(data: BenchData, model: ModelConfig, first: int, last: int, device: torch.device) -> tuple[float, float]:
    """Train a fresh run for ``last`` updates; (wall, CPU) seconds from the report after step ``first`` to the
    one after ``last``."""
    recipe = TrainConfig(max_steps=last, eval_every=0, eval_chars=data.split.batch_size * data.split.seq_len,
                         checkpoint_every=1e9)
    cfg = RunConfig(source=data.source, text=data.text, split=data.split, model=model, train=recipe, vocab=data.vocab)
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="rnnlens-bench-") as tmp:
        run_dir = init_run(Path(tmp) / "run", cfg)
        outcome = train(run_dir, device, clock, splits=data.splits)
    if outcome.status != "complete" or outcome.step != last or first not in clock.times or last not in clock.times:
        raise SystemExit(f"train_throughput: rnnlens run ended {outcome.status} at step {outcome.step} without "
                         f"reports at steps {first} and {last}")
    return elapsed(clock.times[first], clock.times[last])


def time_bare(data: BenchData, model: ModelConfig, first: int, last: int, device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds for steps ``first+1 .. last`` of a bare fused-LSTM training loop on the same batches."""
    B, S, K = data.split.batch_size, data.split.seq_len, model.vocab_size
    x_np, y_np = data.splits["train"].x[:, : last * S], data.splits["train"].y[:, : last * S]
    xs = torch.from_numpy(np.ascontiguousarray(x_np.reshape(B, last, S).transpose(1, 0, 2))).to(device)  # (N, B, S)
    ys = torch.from_numpy(np.ascontiguousarray(y_np.reshape(B, last, S).transpose(1, 0, 2))).to(device)  # (N, B, S)
    torch.manual_seed(0)
    lstm = nn.LSTM(K, model.hidden, num_layers=model.layers, batch_first=True).to(device)
    head = nn.Linear(model.hidden, K).to(device)
    params = list(lstm.parameters()) + list(head.parameters())
    with torch.no_grad():
        for p in params:
            p.uniform_(-0.08, 0.08)
    opt = torch.optim.RMSprop(params, lr=2e-3, alpha=0.95, eps=1e-8)
    h = torch.zeros(model.layers, B, model.hidden, device=device)  # (L, B, H)
    c = torch.zeros_like(h)
    start = clocks()
    for step in range(last):
        out, (h, c) = lstm(F.one_hot(xs[step], K).float(), (h, c))  # (B, S, H)
        loss = F.cross_entropy(head(out).reshape(-1, K), ys[step].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        h, c = h.detach(), c.detach()
        if step + 1 == first:
            sync(device)
            start = clocks()
    sync(device)
    return elapsed(start, clocks())


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine(device: torch.device) -> dict:
    info = {"cpu": cpu_model(), "cpu_count": torch.multiprocessing.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _rates(chars: int, runs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [round(chars / w, 1) for w, _ in runs], [round(chars / c, 1) for _, c in runs]


def bench_model(data: BenchData, spec: ModelSpec, steps: int, warmup: int, repeats: int, device: torch.device) -> dict:
    """Interleaved repetitions for one model: medians and ratio by wall clock and by process CPU time."""
    model = model_config(spec, len(data.vocab))
    first, last = timed_window(warmup, steps, device)
    chars = (last - first) * data.split.batch_size * data.split.seq_len
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(time_bare(data, model, first, last, device))
        ours.append(time_rnnlens(data, model, first, last, device))
    (bare_wall, bare_cpu), (ours_wall, ours_cpu) = _rates(chars, bare), _rates(chars, ours)
    med = statistics.median
    return {
        "model": f"{spec.layers}-layer lstm, budget {spec.name}",
        "hidden": model.hidden, "layers": model.layers, "vocab_size": model.vocab_size,
        "params": param_count("lstm", model.layers, model.hidden, model.vocab_size),
        "timed_steps": f"{first + 1}..{last}",
        "bare_chars_per_s": med(bare_wall), "rnnlens_chars_per_s": med(ours_wall),
        "ratio": round(med(ours_wall) / med(bare_wall), 4),
        "bare_chars_per_cpu_s": med(bare_cpu), "rnnlens_chars_per_cpu_s": med(ours_cpu),
        "ratio_cpu": round(med(ours_cpu) / med(bare_cpu), 4),
        "bare_runs": bare_wall, "rnnlens_runs": ours_wall, "bare_runs_cpu": bare_cpu, "rnnlens_runs_cpu": ours_cpu,
    }


def print_row(name: str, r: dict) -> None:
    print(f"{name:>5} h={r['hidden']:<4} steps {r['timed_steps']:<6} wall: bare {r['bare_chars_per_s']:>8,.0f}  "
          f"rnnlens {r['rnnlens_chars_per_s']:>8,.0f} chars/s  ratio {r['ratio']:.3f} | CPU time: bare "
          f"{r['bare_chars_per_cpu_s']:>8,.0f}  rnnlens {r['rnnlens_chars_per_cpu_s']:>8,.0f} chars/cpu-s  ratio "
          f"{r['ratio_cpu']:.3f}", flush=True)
    print(f"      wall runs: bare {r['bare_runs']}  rnnlens {r['rnnlens_runs']}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=0, help="timed steps per run (0: per model, 130k 30, 1.3m 6)")
    p.add_argument("--warmup", type=int, default=0, help="untimed steps at the start of every run (0: per model, "
                   "130k 2, 1.3m 1)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 0: torch's default (one per "
                   "core). 1 by default: on a shared machine, several intra-op threads wait on each other whenever "
                   "one is descheduled and the timings swing several-fold")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions of each side")
    p.add_argument("--models", default="130k,1.3m", help="comma-separated: 130k (2-layer), 1.3m (3-layer)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=int, default=100, help="B")
    p.add_argument("--seq-len", type=int, default=100, help="S")
    p.add_argument("--text-bytes", type=int, default=2_000_000, help="bytes of the corpus to train on")
    p.add_argument("--corpus", default="warpeace", help="named corpus: warpeace, linux or pystdlib (built in)")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $RNNLENS_DATA, else "
                   "~/.cache/rnnlens/data)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON result file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    names = [n.strip().lower() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names or args.repeats < 1 or args.warmup < 0 or args.steps < 0 or args.threads < 0:
        raise SystemExit(f"train_throughput: bad arguments (models {unknown or names}, repeats {args.repeats}, "
                         f"warmup {args.warmup}, steps {args.steps}, threads {args.threads}); use --models 130k,1.3m "
                         "--repeats >= 1 and --warmup, --steps, --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(args.text_bytes, args.batch_size, args.seq_len, args.corpus, args.data_dir)
    load_before = os.getloadavg()
    per_epoch = data.splits["train"].num_blocks(args.seq_len)
    results = {}
    print(f"{data.label}, K={len(data.vocab)}, B={args.batch_size}, S={args.seq_len}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for name in names:
        spec = MODELS[name]
        steps, warmup = args.steps or spec.steps, args.warmup or spec.warmup
        if warmup + steps >= per_epoch:
            raise SystemExit(f"train_throughput: {warmup + steps} steps do not fit in one epoch ({per_epoch} "
                             "steps); raise --text-bytes or lower --steps")
        results[name] = bench_model(data, spec, steps, warmup, args.repeats, device)
        print_row(name, results[name])
    report = {
        "benchmark": "train_throughput",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, "bench/train_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(device), "device": str(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "data": data.label, "batch_size": args.batch_size,
        "seq_len": args.seq_len, "repeats": args.repeats, "goal_ratio": 0.95, "models": results,
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
