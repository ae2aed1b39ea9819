"""rnnlens.explorer.categories: oracle error categories against ``rnnlens errors``, and colouring by them
only with --oracles."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlens.explorer.data import load_explorer

from _explorer import get  # tests/ is on sys.path (pytest rootdir-relative imports)


def test_family_index_maps_steps_to_families():
    from rnnlens.explorer.categories import FAMILIES, family_index
    from rnnlens.analysis.oracles import Step

    steps = [Step("ngram", 1, 0), Step("ngram", 2, 0), Step("memory", 100, 0), Step("word", None, 0),
             Step("boost", 0.1, 0)]
    got = family_index(np.array([-1, 0, 1, 2, 3, 4, 5, -1]), steps)
    want = [-1, 0, 0, 1, 3, 5, len(FAMILIES) - 1, -1]
    assert got.tolist() == want and got.dtype == np.int8


def test_oracle_categories_agree_with_rnnlens_errors(tiny, tmp_path):
    from rnnlens.analysis.breakdown import run_errors
    from rnnlens.explorer.categories import FAMILIES

    run, _, _, (model, cfg, split, symbols) = tiny
    data = load_explorer(model, cfg, split, symbols, "test", run, cache_dir=tmp_path / "cache", oracles=True)
    res = run_errors(run, tmp_path / "errors", split="test")["models"]["run"]
    summary = data.info()["oracles"]
    assert summary["errors"] == res["errors"] and summary["chars"] == data.n
    assert summary["counts"] == [res["families"][f]["removed"] for f in FAMILIES]
    cats = data.categories
    assert np.array_equal(cats >= 0, np.asarray(model_probs_of(model, cfg, split)) < 0.5)
    assert [int((cats == k).sum()) for k in range(len(FAMILIES))] == summary["counts"]
    # per character: the lines endpoint, the prediction's label and the cache agree; each character shows
    # the category of its own prediction (made after the previous character of its row)
    here = np.concatenate([[-1], cats[:-1]])
    here[::data.cols] = -1
    lines = data.lines(0, 20, "error", None)
    assert lines["values"] == here[:lines["end"]].astype(float).tolist()
    assert data.lines(data.line_of(data.cols), 1, "error", None)["values"][0] == -1  # a row's first column
    for pos in (1, 5, data.n - 1):
        c = int(cats[pos - 1])
        assert data.predict(pos)["here"]["category"] == ("correct" if c < 0 else FAMILIES[c])
    assert data.predict(0)["here"] is None and data.predict(data.cols)["here"] is None
    stamp = tmp_path / "cache" / "categories.json"
    before = stamp.stat().st_mtime_ns
    again = load_explorer(model, cfg, split, symbols, "test", run, cache_dir=tmp_path / "cache", oracles=True)
    assert stamp.stat().st_mtime_ns == before and np.array_equal(again.categories, cats)


def model_probs_of(model, cfg, split):
    from rnnlens.baselines.refscores import model_probs
    return model_probs(model, split, cfg.split.seq_len).reshape(-1)


def test_error_colouring_needs_oracles(tiny_server, tiny, tmp_path):
    from rnnlens.exceptions import RnnlensError

    status, body, _ = get(tiny_server, "/api/lines?first=0&color=error")
    assert status == 400 and "--oracles" in body["error"]
    assert get(tiny_server, "/api/info")[1]["oracles"] is None
    assert get(tiny_server, "/api/predict?pos=3")[1]["here"]["category"] is None
    run, _, _, (model, cfg, split, symbols) = tiny
    from rnnlens.data.splits import stream_split
    other = stream_split(cfg.vocab.encode(symbols[:500]), 2, "text")
    with pytest.raises(RnnlensError, match="split of the run's own corpus"):
        load_explorer(model, cfg, other, symbols[:500], "text-x", run, cache_dir=tmp_path / "c", oracles=True)
