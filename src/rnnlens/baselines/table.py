"""The paper's Table 2: test loss of the n-gram and n-NN baselines against the context length n.

``run_table2`` fits, for every n of a preset, the Kneser-Ney n-gram (:mod:`rnnlens.ngram.model`) and the n-NN
(:mod:`rnnlens.baselines.nnn`) on the train split, and scores the test split. Data, units and splits are those of
the neural models: the vocabulary of the whole text (``Vocab.build``), the corpus' split fractions, the
paper's interleaved layout with B = S = 100. Every finished entry is written at once to ``results.json``
(with ``table.md`` and ``table2.png``), atomically, so an interrupted run resumes where it stopped:
entries already in ``results.json`` are skipped. A ``results.json`` of another text, unit, split or
preset is refused rather than mixed in.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from rnnlens.data.corpora import CORPORA, DEFAULT_FRACTIONS, load_corpus_bytes
from rnnlens.exceptions import RnnlensError
from rnnlens.fsutil import atomic_write, atomic_write_json, atomic_write_text, read_json
from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams
from rnnlens.baselines.nnn import NNNConfig, save_nnn, train_nnn_grid
from rnnlens.data.splits import Split, SplitConfig, make_splits
from rnnlens.data.text import TextConfig, Vocab, read_file_bytes, read_symbols

FORMAT = "rnnlens-table2"
FORMAT_VERSION = 1
TABLE_NS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 20)  # the paper's Table 2 columns
FAMILIES = ("ngram", "nnn")
RESULTS, TABLE, PLOT = "results.json", "table.md", "table2.png"
# The paper's published numbers (PAPER.md): best recurrent net and best 20-gram, nats/char on test.
PAPER_REFERENCE: dict[str, dict[str, float]] = {
    "warpeace": {"best_rnn": 1.077, "ngram20": 1.195},
    "linux": {"best_rnn": 0.84, "ngram20": 0.889},
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Preset:
    """Which n values run for each family, and how the n-NN is trained (hidden size picked on val)."""

    name: str
    ngram_ns: tuple[int, ...]
    nnn_ns: tuple[int, ...]
    hiddens: tuple[int, ...]      # the n-NN hidden-size grid
    epochs: int
    epoch_positions: int          # train positions per epoch (0: all)
    batch: int
    patience: int

    def nnn_config(self, n: int, seed: int = 0) -> NNNConfig:
        return NNNConfig(n=n, hidden=self.hiddens[0], epochs=self.epochs, epoch_positions=self.epoch_positions,
                         batch=self.batch, patience=self.patience, seed=seed)


PRESETS: dict[str, Preset] = {
    # A smoke test: minutes on a laptop for the real corpora, seconds on a tiny text.
    "quick": Preset("quick", (1, 2, 3, 4, 5), (1, 2, 3), (32,), 2, 100_000, 1024, 1),
    # About 15-20 minutes for War and Peace on a shared 2-core CPU: every n-gram, six n-NNs, two sizes.
    "cpu": Preset("cpu", TABLE_NS, (1, 2, 3, 4, 6, 9), (128, 256), 5, 1_000_000, 1024, 2),
    # The full table; hours on a CPU, meant for a GPU.
    "paper": Preset("paper", TABLE_NS, TABLE_NS, (128, 256, 512, 1024), 30, 0, 1024, 3),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise RnnlensError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}") from None


@dataclass
class TableData:
    """A text read and split the way the neural models see it."""

    label: str
    sha256: str
    vocab: Vocab
    splits: dict[str, Split]
    text_cfg: TextConfig
    split_cfg: SplitConfig

    def setup(self) -> dict[str, Any]:
        """What identifies the data of a table (compared on resume)."""
        return {"data": self.label, "sha256": self.sha256, "text": self.text_cfg.to_dict(),
                "split": self.split_cfg.to_dict(), "vocab_size": len(self.vocab)}


def load_data(dataset: str | None = None, data_dir: str | os.PathLike | None = None,
              text_path: str | os.PathLike | None = None, text_cfg: TextConfig | None = None,
              split_cfg: SplitConfig | None = None, vocab: Vocab | None = None) -> TableData:
    """Read a named corpus or a text file, build the whole-text vocabulary and the splits.

    ``split_cfg`` defaults to the paper's interleaved layout (B = S = 100) with the corpus' fractions.
    With ``vocab`` (a saved model's), the text is encoded with it instead: its unit must match and a
    symbol outside it is an error.
    """
    if (dataset is None) == (text_path is None):
        raise RnnlensError("give either a dataset name or a text file; e.g. --dataset warpeace or --text FILE")
    if text_path is not None:
        raw = read_file_bytes(text_path)
        label, fractions = Path(text_path).name, DEFAULT_FRACTIONS
    else:
        raw, label, fractions = load_corpus_bytes(dataset, data_dir), str(dataset), CORPORA[str(dataset)].fractions
    text_cfg = text_cfg or TextConfig()
    split_cfg = split_cfg or SplitConfig(fractions=fractions)
    symbols = read_symbols(raw, text_cfg)
    if vocab is not None and vocab.unit != text_cfg.unit:
        raise RnnlensError(f"the model reads unit {vocab.unit!r}, not {text_cfg.unit!r}; pass --unit {vocab.unit}")
    vocab = vocab or Vocab.build(symbols, text_cfg.unit)
    splits = make_splits(vocab.encode(symbols), split_cfg)
    for name in ("train", "val", "test"):
        if splits[name].num_chars == 0:
            raise RnnlensError(f"the {name} split is empty; the baselines need train, val and test: use other "
                               "--fractions")
    return TableData(label, hashlib.sha256(raw).hexdigest(), vocab, splits, text_cfg, split_cfg)


def _peak_rss_mb() -> float:
    """The process' peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ngram(data: TableData, n: int) -> dict[str, Any]:
    """Fit the n-gram on the train rows, score test; loss, timings and peak memory."""
    t0 = time.perf_counter()
    train, test = data.splits["train"], data.splits["test"]
    model = KneserNeyLM.fit_streams(row_streams(train.x, train.y), len(data.vocab), NGramConfig(n),
                                    unit=data.vocab.unit, symbols=data.vocab.symbols)
    t1 = time.perf_counter()
    logp, _ = model.score_rows(test.x, test.y)
    t2 = time.perf_counter()
    return {"family": "ngram", "n": n, "test_loss": float(-logp.mean()), "build_s": t1 - t0, "score_s": t2 - t1,
            "seconds": t2 - t0, "peak_rss_mb": _peak_rss_mb()}


def run_nnn(data: TableData, n: int, preset: Preset, device: torch.device, model_path: Path | None = None,
            progress: Progress | None = None, seed: int = 0) -> dict[str, Any]:
    """Train the n-NN for each hidden size of the preset, keep the best on val, score test."""
    t0 = time.perf_counter()
    model, info = train_nnn_grid(data.splits, len(data.vocab), preset.nnn_config(n, seed), preset.hiddens,
                                 device, progress)
    t1 = time.perf_counter()
    test = data.splits["test"]
    loss = model.loss_rows(test.x, test.y)
    t2 = time.perf_counter()
    if model_path is not None:
        save_nnn(model_path, model, data.vocab, {"val_loss": info["best_val"], "test_loss": loss})
    return {"family": "nnn", "n": n, "test_loss": loss, "val_loss": info["best_val"], "hidden": info["hidden"],
            "grid": info["grid"], "best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"],
            "stopped": info["stopped"], "params": info["params"], "train_s": t1 - t0, "score_s": t2 - t1,
            "seconds": t2 - t0, "device": str(device), "peak_rss_mb": _peak_rss_mb()}


def _fresh(data: TableData, preset: Preset, dataset: str | None, seed: int) -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION,
            "setup": {**data.setup(), "preset": asdict(preset), "seed": seed},
            "paper": PAPER_REFERENCE.get(dataset or "", {}), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}", "entries": {}}


def _open_results(path: Path, data: TableData, preset: Preset, dataset: str | None, seed: int) -> dict[str, Any]:
    """The results so far: the existing file when it matches this setup, else a fresh record."""
    fresh = json.loads(json.dumps(_fresh(data, preset, dataset, seed)))  # tuples -> lists, as read back
    if not path.is_file():
        return fresh
    try:
        old = read_json(path)
    except (OSError, ValueError):
        raise RnnlensError(f"{path} is unreadable or not JSON; delete it to start the table again") from None
    if not isinstance(old, dict) or old.get("format") != FORMAT or not isinstance(old.get("entries"), dict):
        raise RnnlensError(f"{path} is not a Table 2 results file; use another --out")
    if old.get("setup") != fresh["setup"]:
        raise RnnlensError(f"{path} holds results for another text, unit, split, preset or seed; use another --out "
                           "(or delete it to start over)")
    return old


def entry_key(family: str, n: int) -> str:
    return f"{family}/{n}"


def _save_all(out: Path, results: dict[str, Any]) -> None:
    atomic_write_json(out / RESULTS, results)
    atomic_write_text(out / TABLE, render_table(results))
    plot_table(results, out / PLOT)


def run_table2(dataset: str | None, data_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
               preset: str | Preset, device: torch.device | str = "cpu", progress: Progress | None = None, *,
               text_path: str | os.PathLike | None = None, text_cfg: TextConfig | None = None,
               split_cfg: SplitConfig | None = None, seed: int = 0) -> dict[str, Any]:
    """Compute (or finish) Table 2 under ``out_dir``; returns the results dict written to results.json."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    device = torch.device(device)
    data = load_data(dataset, data_dir, text_path, text_cfg, split_cfg)
    out = Path(out_dir)
    results = _open_results(out / RESULTS, data, preset, dataset, seed)
    entries: dict[str, Any] = results["entries"]
    jobs = [("ngram", n) for n in preset.ngram_ns] + [("nnn", n) for n in preset.nnn_ns]
    for family, n in jobs:
        key = entry_key(family, n)
        if key in entries:
            if progress:
                progress(f"{key}: done before ({entries[key]['test_loss']:.4f} nats/char), skipped")
            continue
        if progress:
            progress(f"{key}: running ...")
        if family == "ngram":
            entry = run_ngram(data, n)
        else:
            entry = run_nnn(data, n, preset, device, out / "models" / f"nnn-{n}.safetensors", progress, seed)
        entry["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entries[key] = entry
        if progress:
            progress(f"{key}: test {entry['test_loss']:.4f} nats/char in {entry['seconds']:.1f} s")
        _save_all(out, results)
    if not (out / RESULTS).is_file() or not (out / PLOT).is_file():
        _save_all(out, results)
    return results


# ----- the table and the plot ---------------------------------------------------------------------------
def _fmt(entry: dict[str, Any] | None) -> tuple[str, str]:
    if entry is None:
        return "-", "-"
    return f"{entry['test_loss']:.4f}", f"{entry['seconds']:.0f}"


def render_table(results: dict[str, Any]) -> str:
    """Markdown: one row per n, the test loss and seconds of each family (``-`` where not run)."""
    entries, setup = results["entries"], results["setup"]
    ns = sorted({int(e["n"]) for e in entries.values()} | set(setup["preset"]["ngram_ns"])
                | set(setup["preset"]["nnn_ns"]))
    lines = [f"Table 2, {setup['data']} ({setup['text']['unit']} units, K={setup['vocab_size']}, "
             f"{setup['split']['layout']} split {setup['split']['fractions']}), preset {setup['preset']['name']}: "
             "test loss in nats/char.", "",
             "| n | n-gram | n-gram s | n-NN | n-NN hidden | n-NN s |", "|---|---|---|---|---|---|"]
    for n in ns:
        g, nn_ = entries.get(entry_key("ngram", n)), entries.get(entry_key("nnn", n))
        (gl, gs), (nl, ns_) = _fmt(g), _fmt(nn_)
        hidden = str(nn_["hidden"]) if nn_ else "-"
        lines.append(f"| {n} | {gl} | {gs} | {nl} | {hidden} | {ns_} |")
    total = sum(e["seconds"] for e in entries.values())
    lines += ["", f"Total compute: {total:.0f} s ({len(entries)} entries)."]
    paper = results.get("paper") or {}
    if paper:
        lines.append(f"Paper: best recurrent net {paper['best_rnn']}, 20-gram {paper['ngram20']} nats/char.")
    return "\n".join(lines) + "\n"


def plot_table(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Test loss against n for both families, with the paper's reference values where known (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    entries = results["entries"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for family, label, marker in (("ngram", "n-gram (Kneser-Ney)", "o"), ("nnn", "n-NN", "s")):
        pts = sorted((int(e["n"]), e["test_loss"]) for e in entries.values() if e["family"] == family)
        if pts:
            ax.plot(*zip(*pts), marker=marker, label=label)
    paper = results.get("paper") or {}
    if "best_rnn" in paper:
        ax.axhline(paper["best_rnn"], color="grey", linestyle="--", label=f"paper best RNN ({paper['best_rnn']})")
    if "ngram20" in paper:
        ax.plot([20], [paper["ngram20"]], marker="*", markersize=12, linestyle="none", color="black",
                label=f"paper 20-gram ({paper['ngram20']})")
    ax.set_xticks(list(TABLE_NS))
    ax.set_xlabel("n (characters of context)")
    ax.set_ylabel("test loss (nats/char)")
    ax.set_title(f"Table 2: {results['setup']['data']}, preset {results['setup']['preset']['name']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


__all__ = ["PRESETS", "Preset", "TableData", "load_data", "run_table2", "run_ngram", "run_nnn", "render_table",
           "plot_table", "PAPER_REFERENCE", "TABLE_NS", "get_preset"]
