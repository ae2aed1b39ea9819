"""rnnlens.explorer.search: cell selection and pattern search against a brute-force reference, and a selected
span among its own matches in the tiny run."""

from __future__ import annotations

import numpy as np

from rnnlens.explorer.search import SearchConfig, find_matches, select_cells


def brute_select(v, start, end, th, row_len):
    out = []
    for c in range(v.shape[0]):
        ok = all(v[c, t] > th for t in range(start, end + 1))
        if start > 0 and start % row_len:
            ok = ok and v[c, start - 1] <= th
        if end + 1 < v.shape[1] and (end + 1) % row_len:
            ok = ok and v[c, end + 1] <= th
        if ok:
            out.append(c)
    return out


def brute_matches(v, cells, length, cfg, row_len):
    N, found, t = v.shape[1], [], 0
    on = lambda t: all(v[c, t] > cfg.threshold for c in cells)  # noqa: E731
    while t < N:
        if on(t):
            s = t
            t += 1
            while t < N and t % row_len and on(t):
                t += 1
            n = t - s
            if -(-length // cfg.slack) <= n <= length * cfg.slack:
                b = np.mean([v[c, s - 1] <= cfg.threshold for c in cells]) if s % row_len else 1.0
                a = np.mean([v[c, t] <= cfg.threshold for c in cells]) if t < N and t % row_len else 1.0
                found.append((-min(n, length) / max(n, length), -(a + b) / 2, s, t - 1))
        else:
            t += 1
    return len(found), [(s, e) for _, _, s, e in sorted(found)][: cfg.limit]


def test_search_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(20):
        v = np.where(rng.random((6, 300)) < 0.6, rng.uniform(0.31, 1, (6, 300)), rng.uniform(-1, 0.3, (6, 300)))
        v[:, 40:45] = 0.9  # a span most cells are on throughout
        v[:, 97:103] = 0.8  # a run that crosses a row boundary counts as two
        v[rng.random(6) < 0.5, 39] = 0.0
        v[:, 45] = 0.0
        cfg = SearchConfig(threshold=0.3, limit=7, slack=2.0)
        start, end = (40, 44) if trial % 2 == 0 else (int(rng.integers(0, 290)), 0)
        end = end or start + int(rng.integers(0, 5))
        cells = select_cells(v.astype(np.float16), start, end, 0.3, row_len=100)
        assert cells.tolist() == brute_select(v.astype(np.float16), start, end, 0.3, 100)
        count, matches = find_matches(v.astype(np.float16), cells, end - start + 1, cfg, row_len=100)
        want_count, want = brute_matches(v.astype(np.float16), cells.tolist(), end - start + 1, cfg, 100)
        assert count == want_count
        assert [(m.start, m.end) for m in matches] == want
    assert select_cells(np.full((2, 10), 0.9, np.float16), 0, 9, 0.3).tolist() == [0, 1]  # no edges: no off condition


def test_a_selected_span_is_among_its_own_matches(tiny):
    data = tiny[1]
    found = 0
    for s in range(0, 200, 3):
        res = data.search(s, s + 2, SearchConfig(0.3, limit=1000))
        if res["cells"]:
            found += 1
            assert [m for m in res["matches"] if m["query"]] == [m for m in res["matches"] if (m["start"], m["end"]) == (s, s + 2)]
            assert any(m["query"] for m in res["matches"])
    assert found >= 5  # the trained tiny model has cells that switch on and off
