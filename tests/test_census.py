"""The census of interpretable cells: rows from discovery reports, the table, the HTML table and the figure."""

from __future__ import annotations

import numpy as np

from rnnlens.cells.census import census_markdown, census_row, census_table, feature_order, write_census
from rnnlens.cells.discover import discover
from rnnlens.fsutil import read_json


def _report(seed: int, n_cells: int = 8) -> dict:
    """A real discovery report: cells 0 and 1 copy line position and an inside-quotes flag, the rest are noise."""
    rng = np.random.default_rng(seed)
    text = ('he said "yes" and left\nthen "no" came back\n' * 40)[:1200]
    from rnnlens.cells.features import compute_features

    feats = compute_features(text, syntax="prose")
    acts = rng.normal(size=(len(text), n_cells)).astype(np.float32)
    acts[:, 0] = feats["line_pos"] + 0.01 * rng.normal(size=len(text))
    acts[:, 1] = feats["in_double_quotes"] * 2 - 1 + 0.01 * rng.normal(size=len(text))
    return discover({"layers.0.c": acts}, text).to_dict()


def test_a_row_is_the_share_of_cells_over_the_threshold_per_feature():
    report = _report(0)
    row = census_row({"cell": "lstm", "layers": 1, "budget": "8k", "dropout": 0.0, "params": 123, "state": "c"}, report)
    assert row["n_cells"] == 8 and row["state"] == "c"
    assert row["shares"]["line_pos"] >= 1 / 8 and row["counts"]["in_double_quotes"] >= 1
    for f in report["features"]:
        if f["skipped"]:
            assert row["shares"][f["name"]] is None
        else:  # brute force: the cells whose score passes the threshold, over all cells
            assert row["shares"][f["name"]] == f["interpretable"] / 8 == f["fraction"]
    assert row["interpretable_any_memory"] == report["fraction_interpretable"]


def test_table_html_and_figure(tmp_path):
    rows = [census_row({"cell": c, "layers": d, "budget": "8k", "dropout": 0.25 if d > 1 else 0.0, "params": 1,
                        "state": "c" if c == "lstm" else "h"}, _report(i))
            for i, (c, d) in enumerate([("lstm", 2), ("gru", 1), ("lstm", 1)])]
    md = census_markdown(rows)
    lines = md.splitlines()
    assert lines[0].startswith("| model | cells | any memory feature |") and len(lines) == 2 + 3
    assert lines[2].startswith("| gru 1L 8k |") and lines[4].startswith("| lstm 2L 8k d0.25 |")  # sorted, dropout named
    names = feature_order(rows)
    assert "line_pos" in names and all(any(r["shares"][n] is not None for r in rows) for n in names)
    from rnnlens.reproduce.report import _html_table

    page = _html_table(*census_table(rows))
    assert page.count("<tr>") == 4 and "<script" not in page
    paths = write_census(rows, tmp_path, "tiny grid")
    assert read_json(paths["json"])["rows"] == rows
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
