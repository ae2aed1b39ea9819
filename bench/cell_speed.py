"""Training speed of the three cell types at the same parameter budget, for the `reproduce` time estimates.

For each budget and depth it times the real :func:`rnnlens.train.train` loop of the LSTM, the GRU and the RNN
for the same steps, interleaved (lstm, gru, rnn, lstm, gru, rnn, ...) so that load from other processes hits
all three alike, and prints the median chars/s of each and the time ratios GRU/LSTM and RNN/LSTM. The ratios
calibrate ``rnnlens.reproduce.estimate.cell_factor`` (on a CPU, oneDNN runs PyTorch's fused LSTM as one
primitive while its GRU is a loop of separate operations per step and layer).

Run from the repository root::

    .venv/bin/python bench/cell_speed.py                       # 50k and 130k x 1-3 layers, bf16, ~5 min
    .venv/bin/python bench/cell_speed.py --precision fp32 --budgets 130k --layers 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import model_config, time_steps  # noqa: E402
from train_throughput import load_data, machine, timed_window  # noqa: E402

from rnnlens.fsutil import atomic_write_json  # noqa: E402
from rnnlens.model import param_count  # noqa: E402
from rnnlens.precision import native_bf16  # noqa: E402
from rnnlens.runtime import resolve_device  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "cell_speed.json"
CELLS = ("lstm", "gru", "rnn")


def bench_row(data, budget: str, layers: int, precision: str, repeats: int, warmup: int, steps: int,
              device: torch.device) -> dict:
    first, last = timed_window(warmup, steps, device)
    chars = (last - first) * data.split.batch_size * data.split.seq_len
    models = {c: model_config(c, budget, layers, len(data.vocab)) for c in CELLS}
    runs: dict[str, list[float]] = {c: [] for c in CELLS}
    for _ in range(repeats):
        for cell, model in models.items():
            runs[cell].append(round(chars / time_steps(data, model, precision, first, last, device), 1))
    speed = {c: statistics.median(v) for c, v in runs.items()}
    return {"budget": budget, "layers": layers, "precision": precision, "timed_steps": f"{first + 1}..{last}",
            "hidden": {c: m.hidden for c, m in models.items()},
            "params": {c: param_count(c, layers, m.hidden, m.vocab_size) for c, m in models.items()},
            "chars_per_s": speed, "runs": runs,
            "time_ratio_gru_lstm": round(speed["lstm"] / speed["gru"], 3),
            "time_ratio_rnn_lstm": round(speed["lstm"] / speed["rnn"], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", default="50k,130k", help="comma-separated budgets (default: 50k,130k)")
    p.add_argument("--layers", default="1,2,3", help="comma-separated depths (default: 1,2,3)")
    p.add_argument("--precision", default="auto", help="fp32, bf16 or auto (default: bf16 where native)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of each cell type")
    p.add_argument("--steps", type=int, default=20, help="timed updates per repetition (after 2 warm-up ones)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data-dir", default=None, help="folder holding the corpora (default: $RNNLENS_DATA)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON result file")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    native, why = native_bf16(device)
    precision = ("bf16" if native else "fp32") if args.precision == "auto" else args.precision
    print(f"device {device}: {precision} (native bf16 {native}: {why}); {torch.get_num_threads()} threads", flush=True)
    load_before = os.getloadavg()
    data = load_data(1_000_000, 100, 100, "warpeace", args.data_dir)
    rows = []
    for budget in [b.strip() for b in args.budgets.split(",") if b.strip()]:
        for layers in [int(x) for x in args.layers.split(",") if x.strip()]:
            row = bench_row(data, budget, layers, precision, args.repeats, 2, args.steps, device)
            rows.append(row)
            s = row["chars_per_s"]
            print(f"{budget:>5} x {layers} layers: lstm {s['lstm']:>9,.0f}  gru {s['gru']:>9,.0f}  rnn {s['rnn']:>9,.0f}"
                  f" chars/s; time gru/lstm {row['time_ratio_gru_lstm']:.2f}, rnn/lstm {row['time_ratio_rnn_lstm']:.2f}",
                  flush=True)
    report = {"benchmark": "cell_speed", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(["python", "bench/cell_speed.py", *(argv if argv is not None else sys.argv[1:])]),
              "machine": machine(device), "device": str(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "data": data.label, "rows": rows,
              "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
