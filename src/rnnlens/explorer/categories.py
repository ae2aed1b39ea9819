"""Oracle error categories for the explorer: which oracle of the paper's Fig. 6 removes each error.

The same cascade as ``rnnlens errors`` (:func:`rnnlens.analysis.oracles.oracle_breakdown`, default settings), run once
over the explorer's split and kept per character as a family index in display order (row 0's columns, then
row 1's, ...): -1 for a correct prediction (probability >= the threshold), ``0..5`` for the oracle family that
removed the error (``ngram memory rare word punct boost``), 6 for an error no oracle removes.

Cached in the explorer's folder as ``categories.npy`` plus ``categories.json`` (written last: what they were
built from and the counts); a mismatch rebuilds them. The n-gram scores go to ``cache/`` in the same folder.
Only a split of the run's own corpus can be analysed: the oracles need its train split (rare words, n-grams).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..analysis.breakdown import oracle_inputs
from ..fsutil import atomic_write, atomic_write_json, read_json
from ..model import CharRNN
from ..analysis.oracles import ORACLES, OracleConfig, oracle_breakdown
from ..baselines.refscores import model_probs
from ..run import RunConfig
from ..data.splits import Split

FAMILIES = tuple(ORACLES) + ("remaining",)
STAMP = "categories.json"


def family_index(category: np.ndarray, steps: list) -> np.ndarray:
    """(M,) step index per prediction (oracles.Breakdown.category) -> (M,) int8 family index, -1 if correct."""
    lut = np.array([FAMILIES.index(s.oracle) for s in steps] + [len(FAMILIES) - 1], dtype=np.int8)
    out = np.full(len(category), -1, dtype=np.int8)
    err = category >= 0
    out[err] = lut[category[err]]
    return out


def build_or_open_categories(model: CharRNN, cfg: RunConfig, splits: dict[str, Split], split_name: str,
                             ids: np.ndarray, folder: str | os.PathLike, stamp: dict[str, Any],
                             ocfg: OracleConfig = OracleConfig(),
                             say: Callable[[str], None] = lambda _m: None) -> tuple[np.ndarray, dict[str, Any]]:
    """((N,) int8 family index per character of the split, a summary) from the cache, or computed and cached."""
    out = Path(folder)
    want = {"explorer": stamp, "oracles": ocfg.to_dict()}
    try:
        info = read_json(out / STAMP)
        if info.get("built_from") == want:
            cats = np.load(out / "categories.npy", allow_pickle=False)
            if cats.shape == (splits[split_name].num_chars,) and cats.dtype == np.int8:
                return cats, info["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    (out / STAMP).unlink(missing_ok=True)
    sp = splits[split_name]
    targets, grams, counts, classes = oracle_inputs(cfg, splits, split_name, ids, ocfg, out / "cache", say)
    say("scoring the split with the model and running the oracles")
    p = model_probs(model, sp, cfg.split.seq_len).reshape(-1)
    bd = oracle_breakdown(p, targets, ids, classes, grams, counts, ocfg)
    cats = family_index(bd.category, bd.steps)
    fam = bd.family_counts()
    summary = {"families": list(FAMILIES), "threshold": ocfg.threshold, "chars": bd.chars, "errors": bd.errors,
               "counts": [int(fam[f]) for f in FAMILIES]}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, cats, allow_pickle=False)

    atomic_write(out / "categories.npy", write)
    atomic_write_json(out / STAMP, {"built_from": want, "summary": summary})
    return cats, summary
