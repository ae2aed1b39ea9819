"""``rnnlens errors`` as a library call: the oracle breakdown of a run's errors (Fig. 6), optionally of two
runs of the same data and which kinds of error the better one avoids.

Writes under ``out``: ``errors.json``, ``errors.md`` (the table) and ``errors.png`` (the chart), and
``cache/`` (the n-gram scores of the n-gram oracle, shared with ``rnnlens compare`` when ``out`` is the same).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import plots
from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, atomic_write_text, record_path
from ..ngram.model import row_streams
from .oracles import Breakdown, OracleConfig, breakdown_markdown, compare_breakdowns, oracle_breakdown, train_word_counts
from ..baselines.refscores import data_fingerprint, model_probs, ngram_probs
from ..run import RunConfig, load_model, load_symbols
from ..data.splits import Split, make_splits
from ..data.textclass import CharClasses

Progress = Callable[[str], None]


def _label(run_dir: Path, taken: set[str]) -> str:
    name = run_dir.resolve().name or "run"
    while name in taken:
        name += "'"
    return name


def run_errors(run_dir: str | os.PathLike, out: str | os.PathLike, ocfg: OracleConfig = OracleConfig(),
               vs: str | os.PathLike | None = None, split: str = "test", data_dir: str | os.PathLike | None = None,
               device: Any = "cpu", say: Progress = lambda _m: None) -> dict:
    """Run the oracle cascade for ``run_dir`` (and ``vs``), write the outputs, return the JSON-able result."""
    out = Path(out)
    model, cfg, _ = load_model(run_dir, "best", device)
    symbols = load_symbols(cfg, data_dir)
    ids = cfg.vocab.encode(symbols)
    splits = make_splits(ids, cfg.split)
    if split not in splits or splits[split].num_chars == 0:
        raise RnnlensError(f"the {split} split of this run is empty; choose another --split")
    sp = splits[split]
    runs = [(Path(run_dir), model)]
    if vs is not None:
        model2, cfg2, _ = load_model(vs, "best", device)
        if data_fingerprint(cfg2) != data_fingerprint(cfg):
            raise RnnlensError(f"{vs} was trained on other data, splits or vocabulary than {run_dir}; "
                               "--vs needs two runs of the same text and split")
        runs.append((Path(vs), model2))
    targets, grams, counts, classes = oracle_inputs(cfg, splits, split, ids, ocfg, out / "cache", say)
    breakdowns: dict[str, Breakdown] = {}
    for path, m in runs:
        name = _label(path, set(breakdowns))
        say(f"scoring the {split} split with {name} and running the oracles")
        p = model_probs(m, sp, cfg.split.seq_len).reshape(-1)
        breakdowns[name] = oracle_breakdown(p, targets, ids, classes, grams, counts, ocfg)
    result: dict[str, Any] = {"split": split, "oracles": ocfg.to_dict(),
                              "models": {k: {"run": record_path(path), **b.to_dict()}
                                         for (path, _), (k, b) in zip(runs, breakdowns.items())}}
    if len(breakdowns) == 2:
        a, b = list(breakdowns)
        result["scaling"] = compare_breakdowns(breakdowns[a], breakdowns[b], (a, b))
    md = f"Errors (P(correct) < {ocfg.threshold}) on the {split} split and the share each oracle removes.\n\n"
    md += breakdown_markdown(breakdowns)
    if "scaling" in result:
        md += "\n" + scaling_markdown(result["scaling"])
    atomic_write_text(out / "errors.md", md)
    plots.save_figure(plots.oracle_figure(breakdowns, f"error breakdown by oracles ({split} split)"),
                      out / "errors.png")
    atomic_write_json(out / "errors.json", result)
    return result


def oracle_inputs(cfg: RunConfig, splits: dict[str, Split], split: str, ids: np.ndarray, ocfg: OracleConfig,
                  cache_dir: str | os.PathLike | None, say: Progress = lambda _m: None
                  ) -> tuple[np.ndarray, dict[int, np.ndarray], Counter, CharClasses]:
    """What :func:`oracle_breakdown` needs besides the model's probabilities, for one split of a run's text:
    (M,) targets (offsets in ``ids``), n -> (M,) n-gram probabilities (cached under ``cache_dir``), the
    train split's word counts and the vocabulary's character classes."""
    sp = splits[split]
    ng = ngram_probs(cfg, splits, list(ocfg.ngram_ns), [split], cache_dir, say)[split]
    classes = CharClasses.for_vocab(cfg.vocab, ocfg.apostrophe)
    tr = splits["train"]
    counts = train_word_counts(row_streams(tr.x, tr.y), classes)
    targets = sp.positions().reshape(-1) + 1
    return targets, {n: q.reshape(-1) for n, q in ng.items()}, counts, classes


def scaling_markdown(s: dict) -> str:
    """Which kinds of error the stronger model avoids (from oracles.compare_breakdowns)."""
    lines = [f"{s['stronger']} makes {s['error_difference']:,} fewer errors than {s['weaker']}.", "",
             "| oracle | difference in removed errors | share of the difference | weaker's errors fixed |",
             "|---|---|---|---|"]
    for fam, d in s["by_family"].items():
        share = "" if d["share"] is None else f"{d['share']:.1%}"
        lines.append(f"| {fam} | {d['difference']:+,} | {share} | {s['fixed']['by_family'][fam]:,} |")
    lines.append(f"\nErrors of {s['weaker']} that {s['stronger']} gets right: {s['fixed']['total']:,}; "
                 f"new errors of {s['stronger']}: {s['new']:,}.")
    return "\n".join(lines) + "\n"
