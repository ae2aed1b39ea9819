"""bf16 against fp32 training in one run: speed (chars/s, interleaved) and quality (validation loss, same seed).

Speed: for each model (the 130K 2-layer and the 1.3M 2-layer model of each cell type asked for) it times
the real :func:`rnnlens.train.train` loop for the same steps in fp32 and in bf16, alternating fp32, bf16,
fp32, bf16, ... so that load from other processes hits both alike, and prints the median chars/s and the
ratio bf16/fp32. Goal (issue 11): >= 1.8x for the 1.3M LSTM. A precision the device cannot run (oneDNN has
no bf16 LSTM without AVX512-BF16 or AMX) is recorded as unsupported, with the backend's message.

Quality (``--quality-steps N``, at least 1500 for the goal): the 1.3M 2-layer War and Peace LSTM (or
``--quality-cell``) trained N updates from the same seed in fp32 and in bf16, validated on the whole
validation split at the end; goal: bf16 within 0.5% of fp32. On a device without native bf16 it is refused
unless ``--force`` (it would take hours at emulated speed).

Run from the repository root::

    .venv/bin/python bench/precision.py                                  # speed, LSTM and GRU, ~10 min on 2 cores
    .venv/bin/python bench/precision.py --cells lstm --quality-steps 1500 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import BenchData, StepClock, load_data, machine, timed_window  # noqa: E402

from rnnlens.exceptions import RnnlensError  # noqa: E402
from rnnlens.fsutil import atomic_write_json  # noqa: E402
from rnnlens.model import ModelConfig, hidden_for_budget, param_count, parse_budget  # noqa: E402
from rnnlens.precision import native_bf16  # noqa: E402
from rnnlens.recipe import TrainConfig  # noqa: E402
from rnnlens.run import RunConfig  # noqa: E402
from rnnlens.runtime import resolve_device  # noqa: E402
from rnnlens.data.splits import make_splits  # noqa: E402
from rnnlens.train import init_run, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "precision.json"
BUDGETS = {"130k": (2, 2, 20), "1.3m": (2, 1, 5)}  # budget -> (layers, warm-up steps, timed steps)


def model_config(cell: str, budget: str, layers: int, vocab_size: int, dropout: float = 0.0) -> ModelConfig:
    hidden = hidden_for_budget(cell, layers, parse_budget(budget, vocab_size), vocab_size)
    return ModelConfig(cell=cell, layers=layers, hidden=hidden, vocab_size=vocab_size, dropout=dropout)


def time_steps(data: BenchData, model: ModelConfig, precision: str, first: int, last: int,
               device: torch.device) -> float:
    """Wall seconds of steps ``first+1 .. last`` of the real training loop in ``precision``."""
    recipe = TrainConfig(max_steps=last, eval_every=0, eval_chars=data.split.batch_size * data.split.seq_len,
                         checkpoint_every=1e9, precision=precision, stall_after=0)
    cfg = RunConfig(source=data.source, text=data.text, split=data.split, model=model, train=recipe, vocab=data.vocab)
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="rnnlens-bench-") as tmp:
        train(init_run(Path(tmp) / "run", cfg), device, clock, splits=data.splits)
    return clock.times[last][0] - clock.times[first][0]


def bench_speed(data: BenchData, cell: str, budget: str, repeats: int, device: torch.device) -> dict:
    layers, warmup, steps = BUDGETS[budget]
    model = model_config(cell, budget, layers, len(data.vocab))
    first, last = timed_window(warmup, steps, device)
    chars = (last - first) * data.split.batch_size * data.split.seq_len
    row = {"model": f"{layers}-layer {cell}, budget {budget}", "hidden": model.hidden,
           "params": param_count(cell, layers, model.hidden, model.vocab_size), "timed_steps": f"{first + 1}..{last}"}
    runs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and "bf16_unsupported" in row:
                continue
            try:
                runs[precision].append(round(chars / time_steps(data, model, precision, first, last, device), 1))
            except RnnlensError as exc:
                row["bf16_unsupported"] = str(exc)
    row["fp32_chars_per_s"] = statistics.median(runs["fp32"])
    row["fp32_runs"] = runs["fp32"]
    if runs["bf16"]:
        row["bf16_chars_per_s"] = statistics.median(runs["bf16"])
        row["bf16_runs"] = runs["bf16"]
        row["ratio"] = round(row["bf16_chars_per_s"] / row["fp32_chars_per_s"], 3)
    return row


def bench_quality(data_dir: str | None, cell: str, steps: int, device: torch.device, seed: int) -> dict:
    """Final validation loss of the 1.3M 2-layer model after ``steps`` updates, fp32 and bf16, same seed."""
    from rnnlens.data.corpora import CORPORA, load_corpus_bytes
    from rnnlens.data.splits import SplitConfig
    from rnnlens.data.text import TextConfig, Vocab, read_symbols
    from rnnlens.run import DataSource, sha256_hex

    raw = load_corpus_bytes("warpeace", data_dir)
    text_cfg = TextConfig()
    symbols = read_symbols(raw, text_cfg)
    vocab = Vocab.build(symbols, text_cfg.unit)
    split_cfg = SplitConfig(fractions=tuple(CORPORA["warpeace"].fractions))
    splits = make_splits(vocab.encode(symbols), split_cfg)
    source = DataSource(dataset="warpeace", sha256=sha256_hex(raw), size=len(raw))
    model = model_config(cell, "1.3m", 2, len(vocab))
    out = {"model": f"2-layer {cell}, budget 1.3m", "hidden": model.hidden, "steps": steps, "seed": seed}
    for precision in ("fp32", "bf16"):
        recipe = TrainConfig(max_steps=steps, eval_every=0, checkpoint_every=1e9, precision=precision, seed=seed)
        cfg = RunConfig(source=source, text=text_cfg, split=split_cfg, model=model, train=recipe, vocab=vocab)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="rnnlens-bench-") as tmp:
            outcome = train(init_run(Path(tmp) / "run", cfg), device, splits=splits)
        out[f"{precision}_val_loss"] = outcome.summary["best_val_loss"]
        out[f"{precision}_wall_s"] = round(time.perf_counter() - start, 1)
    out["relative_difference"] = round(abs(out["bf16_val_loss"] - out["fp32_val_loss"]) / out["fp32_val_loss"], 5)
    out["goal"] = 0.005
    out["meets_goal"] = out["relative_difference"] <= 0.005
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="lstm,gru", help="comma-separated cell types to time (default: lstm,gru)")
    p.add_argument("--budgets", default="130k,1.3m", help="comma-separated: 130k, 1.3m (2 layers each)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of each precision")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $RNNLENS_DATA)")
    p.add_argument("--text-bytes", type=int, default=1_000_000, help="bytes of War and Peace for the speed runs")
    p.add_argument("--quality-steps", type=int, default=0, help="updates of the quality check (0: skip; >= 1500 "
                   "for the goal)")
    p.add_argument("--quality-cell", default="lstm", help="cell type of the quality check")
    p.add_argument("--force", action="store_true", help="run the quality check even without native bf16")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON result file")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    native, why = native_bf16(device)
    print(f"device {device}: native bf16 {native} ({why}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    load_before = os.getloadavg()
    data = load_data(args.text_bytes, 100, 100, "warpeace", args.data_dir)
    speed = []
    for budget in [b.strip() for b in args.budgets.split(",") if b.strip()]:
        for cell in [c.strip() for c in args.cells.split(",") if c.strip()]:
            row = bench_speed(data, cell, budget, args.repeats, device)
            speed.append(row)
            bf16 = f"{row['bf16_chars_per_s']:>8,.0f}" if "bf16_chars_per_s" in row else "     n/a"
            print(f"{row['model']:<28} fp32 {row['fp32_chars_per_s']:>8,.0f}  bf16 {bf16} chars/s  ratio "
                  f"{row.get('ratio', 'n/a')}" + (f"  (bf16 unsupported: {row['bf16_unsupported'][:90]})"
                                                  if "bf16_unsupported" in row else ""), flush=True)
    report = {"benchmark": "precision", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(["python", "bench/precision.py", *(argv if argv is not None else sys.argv[1:])]),
              "machine": machine(device), "device": str(device), "native_bf16": native, "native_bf16_why": why,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "data": data.label,
              "goal_ratio_1.3m_lstm": 1.8, "speed": speed}
    if args.quality_steps:
        if not native and not args.force:
            report["quality"] = {"skipped": f"no native bf16 on {device} ({why}); pass --force to run it anyway"}
            print(f"quality check skipped: {report['quality']['skipped']}")
        else:
            q = bench_quality(args.data_dir, args.quality_cell, args.quality_steps, device, seed=0)
            report["quality"] = q
            print(f"quality after {q['steps']} updates: fp32 {q['fp32_val_loss']:.4f}, bf16 {q['bf16_val_loss']:.4f}, "
                  f"difference {100 * q['relative_difference']:.2f}% (goal <= 0.5%)")
    report["loadavg_before"] = [round(x, 2) for x in load_before]
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
