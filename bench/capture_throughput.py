"""Capture of every gate and state against a plain fused forward pass over the same text, in one run.

Model: the paper's 1.3M-parameter 3-layer LSTM (hidden from ``rnnlens.model.hidden_for_budget``), random
paper initialisation (timing does not depend on the weights). Text: the War and Peace test split (paper
layout, B=100 rows, S=100 steps: 330,000 characters), or its first ``--chars`` characters (whole columns).

Timed, interleaved ``--repeats`` times so that load from other processes hits every side alike:

* plain:   :func:`rnnlens.evaluate.evaluate`: fused ``nn.LSTM`` forward, logits and loss, state carried.
* capture: :func:`rnnlens.capture.core.iter_capture` with every name (each layer's h, c, i, f, o, g, plus logits,
  next_prob and loss), the blocks consumed and dropped (what a streaming statistic sees).
* gates:   :func:`rnnlens.analysis.gates.gate_saturation` (Figure 3's statistic, gates only, counts on the fly).
* store (only with ``--store DIR``): :func:`rnnlens.capture.store.capture_to_dir`, every name in float16
  on disk (about 2.9 GB for the whole split).

The medians and the ratio capture/plain (goal: at most 2) are printed and written as JSON.

Run from the repository root::

    .venv/bin/python bench/capture_throughput.py                    # whole test split, 3 repeats
    .venv/bin/python bench/capture_throughput.py --chars 30000 --threads 1   # on a busy shared CPU
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
from pathlib import Path

import torch

from rnnlens.capture.core import iter_capture
from rnnlens.capture.store import capture_to_dir
from rnnlens.evaluate import evaluate
from rnnlens.fsutil import atomic_write_json
from rnnlens.analysis.gates import gate_saturation
from rnnlens.model import CharRNN, ModelConfig, hidden_for_budget, parse_budget
from rnnlens.runtime import resolve_device
from rnnlens.data.splits import Split, SplitConfig, make_splits
from rnnlens.data.text import TextConfig, Vocab, read_symbols

WARPEACE = Path(os.environ.get("RNNLENS_DATA", "/work/shared/data")) / "warpeace_input.txt"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "capture_throughput.json"


def load_test_split(path: Path, batch: int, seq_len: int) -> tuple[Split, int]:
    """The paper-layout test split of War and Peace and the vocabulary size (87)."""
    if not path.is_file():
        raise SystemExit(f"capture_throughput: {path} not found; set RNNLENS_DATA to the folder holding warpeace_input.txt")
    text = TextConfig(unit="byte", newline="keep")
    symbols = read_symbols(path.read_bytes(), text)
    vocab = Vocab.build(symbols, text.unit)
    splits = make_splits(vocab.encode(symbols), SplitConfig("interleaved", (0.8, 0.1, 0.1), batch, seq_len))
    return splits["test"], len(vocab)


def build_model(vocab_size: int, device: torch.device) -> CharRNN:
    hidden = hidden_for_budget("lstm", 3, parse_budget("1.3m", vocab_size), vocab_size)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell="lstm", layers=3, hidden=hidden, vocab_size=vocab_size))
    model.reset_parameters()
    return model.to(device).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``."""
    sync(device)
    w, c = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - w, time.process_time() - c


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name:")), "unknown")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--chars", type=int, default=0, help="characters of the test split to use (0: all 330,000)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of each side")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=int, default=100, help="B rows")
    p.add_argument("--seq-len", type=int, default=100, help="S, the block width")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--store", metavar="DIR", help="also time capture_to_dir (float16, every name) into DIR")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON result file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeats < 1 or args.chars < 0:
        raise SystemExit("capture_throughput: --repeats must be >= 1 and --chars >= 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    split, k = load_test_split(WARPEACE, args.batch_size, args.seq_len)
    model = build_model(k, device)
    S, n = args.seq_len, args.chars
    chars = split.x.shape[0] * (min(split.x.shape[1], -(-n // split.x.shape[0])) if n else split.x.shape[1])

    def capture() -> None:
        for _ in iter_capture(model, split, S, None, n):
            pass

    sides = {"plain": lambda: evaluate(model, split, S, n), "capture": capture,
             "gates": lambda: gate_saturation(model, split, S, max_chars=n)}
    if args.store:
        sides["store"] = lambda: capture_to_dir(model, split, S, Path(tempfile.mkdtemp(dir=args.store)), None, "float16", n)
    print(f"WP test split, {chars:,} chars, B={args.batch_size}, S={S}, 3-layer LSTM h={model.config.hidden} "
          f"({model.num_parameters():,} params), device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    evaluate(model, split, S, S * split.x.shape[0])  # warm-up
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    load = [os.getloadavg()[0]]
    for r in range(args.repeats):
        for name, fn in sides.items():
            runs[name].append(timed(fn, device))
        load.append(os.getloadavg()[0])
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in runs.items()), flush=True)
    med = {name: statistics.median(w for w, _ in v) for name, v in runs.items()}
    med_cpu = {name: statistics.median(c for _, c in v) for name, v in runs.items()}
    ratios = {name: round(med[name] / med["plain"], 3) for name in sides if name != "plain"}
    print("median wall: " + ", ".join(f"{k} {v:.2f}s ({chars / v:,.0f} chars/s)" for k, v in med.items()))
    print("ratio to plain: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
          + f"  (goal: capture <= 2x: {'met' if ratios['capture'] <= 2 else 'NOT met'})")
    report = {
        "benchmark": "capture_throughput",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, "bench/capture_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {})},
        "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "load_average_1min": [round(v, 2) for v in load],
        "data": "warpeace test split (interleaved 0.8/0.1/0.1)", "chars": chars, "batch_size": args.batch_size,
        "seq_len": S, "model": {"cell": "lstm", "layers": 3, "hidden": model.config.hidden,
                                "params": model.num_parameters(), "init": "uniform(-0.08, 0.08), seed 0"},
        "repeats": args.repeats, "goal_ratio": 2.0,
        "median_wall_s": {k: round(v, 4) for k, v in med.items()},
        "median_cpu_s": {k: round(v, 4) for k, v in med_cpu.items()},
        "chars_per_s": {k: round(chars / v, 1) for k, v in med.items()},
        "ratio_to_plain": ratios, "goal_met": ratios["capture"] <= 2.0,
        "runs_wall_s": {k: [round(w, 4) for w, _ in v] for k, v in runs.items()},
    }
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
