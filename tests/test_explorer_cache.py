"""rnnlens.explorer.cache: the explorer's cache is reused while fresh and rebuilt when stale."""

from __future__ import annotations

import numpy as np

from rnnlens.explorer.data import load_explorer
from rnnlens.run import load_splits


def test_cache_is_reused_and_rebuilt_when_stale(tiny):
    run, data, cache, (model, cfg, split, symbols) = tiny
    stamp = cache / "explorer.json"
    before = stamp.stat().st_mtime_ns
    again = load_explorer(model, cfg, split, symbols, "test", run, cache_dir=cache)
    assert stamp.stat().st_mtime_ns == before
    np.testing.assert_array_equal(again.values, data.values)
    other = load_splits(cfg)["val"]
    rebuilt = load_explorer(model, cfg, other, symbols, "val", run, cache_dir=cache)
    assert stamp.stat().st_mtime_ns != before and rebuilt.n == other.x.size
    load_explorer(model, cfg, split, symbols, "test", run, cache_dir=cache)  # back to the test split
