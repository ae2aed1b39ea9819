"""Benchmark of the Kneser-Ney n-gram model on War and Peace (the paper's split, n = 20 by default).

Measures build time (train rows, 2.6M chars), score time (test split, 330K chars), peak RSS of the process
(resource.getrusage), model size on disk, load time and the test loss, plus a reference measured in the
same run (a pure-numpy 3-gram count of the train text: np.unique over packed keys), so that the ratio
build / reference stays comparable when absolute times drift on a shared machine. Writes
bench/results/ngram.json.

    .venv/bin/python bench/ngram.py [--data-dir ../shared/data] [--n 20]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnlens.data.corpora import load_corpus_bytes
from rnnlens.fsutil import atomic_write_json
from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams
from rnnlens.data.splits import SplitConfig, make_splits
from rnnlens.data.text import TextConfig, Vocab, read_symbols

PAPER_WP_20GRAM = 1.195


def reference_3gram_count(ids: np.ndarray) -> float:
    """Seconds to count the distinct 3-grams of ``ids`` with plain numpy (the yardstick)."""
    t0 = time.perf_counter()
    keys = (ids[:-2] << 16) | (ids[1:-1] << 8) | ids[2:]
    np.unique(keys, return_counts=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ngram.json"))
    args = ap.parse_args()

    symbols = read_symbols(load_corpus_bytes("warpeace", args.data_dir), TextConfig(unit="byte"))
    vocab = Vocab.build(symbols, "byte")
    splits = make_splits(vocab.encode(symbols), SplitConfig(layout="interleaved", fractions=(0.8, 0.1, 0.1)))
    train, test = splits["train"], splits["test"]
    streams = row_streams(train.x, train.y)
    ref_s = min(reference_3gram_count(np.concatenate(streams)) for _ in range(3))

    t0 = time.perf_counter()
    model = KneserNeyLM.fit_streams(streams, len(vocab), NGramConfig(args.n), unit="byte", symbols=vocab.symbols)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    logp, matched = model.score_rows(test.x, test.y)
    score_s = time.perf_counter() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wp.npz"
        t0 = time.perf_counter()
        model.save(path)
        save_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
        t0 = time.perf_counter()
        back = KneserNeyLM.load(path)
        load_s = time.perf_counter() - t0
        same = bool(np.array_equal(back.score_rows(test.x[:, :500], test.y[:, :500])[0], logp[:, :500]))

    loss = float(-logp.mean())
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}, numpy {np.__version__}",
        "corpus": "warpeace interleaved B=100 S=100 (0.8/0.1/0.1)",
        "n": args.n, "order": args.n + 1,
        "train_chars": int(train.num_chars + train.x.shape[0]), "test_chars": int(test.num_chars),
        "loss_nats": loss, "loss_bits": loss / np.log(2), "paper_loss_nats": PAPER_WP_20GRAM,
        "rel_diff_vs_paper": loss / PAPER_WP_20GRAM - 1,
        "mean_matched_context": float(matched.mean()),
        "table_rows": int(sum(len(t.fwd_keys) for t in model.tables)),
        "build_s": build_s, "score_s": score_s, "peak_rss_mb": peak_rss_mb,
        "model_mb": size_mb, "save_s": save_s, "load_s": load_s, "load_roundtrip_exact": same,
        "reference_3gram_count_s": ref_s, "build_over_reference": build_s / ref_s,
        "score_over_reference": score_s / ref_s,
    }
    atomic_write_json(args.out, result)
    for k, v in result.items():
        print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
