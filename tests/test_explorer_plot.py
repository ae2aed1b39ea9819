"""The hidden-state plot's data (``/api/states`` and the states ``/api/lines`` can carry, rnnlens.explorer.data
and .server) against the model run afresh; tests/test_explorer_plot_browser.py draws it in a real browser."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from rnnlens.capture.core import run_with_cache
from rnnlens.exceptions import RnnlensError

from _explorer import get  # tests/ is on sys.path (pytest rootdir-relative imports)


def test_states_window_equals_run_with_cache(tiny_server, tiny):
    """/api/states (the hidden-state plot's window) against the model run afresh on each row stream."""
    _, data, _, (model, cfg, split, _) = tiny
    B, N = split.x.shape
    start, length = N - 7, 20  # the end of row 0 and the start of row 1
    for layer in range(2):
        st, d, _ = get(tiny_server, f"/api/states?start={start}&len={length}&layer={layer}")
        assert st == 200 and (d["start"], d["len"], d["layer"], d["cells"]) == (start, length, layer, 16)
        got = np.frombuffer(base64.b64decode(d["values"]), "<f2").reshape(16, length).astype(np.float32)  # (H, len)
        rows = [np.tanh(run_with_cache(model, torch.as_tensor(split.x[r:r + 1]), names=[f"layers.{layer}.c"])
                        [f"layers.{layer}.c"][0].numpy()) for r in range(2)]  # (N, H) each, from a zero state
        want = np.concatenate(rows)[start:start + length].T
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert np.array_equal(got, data.values[layer * 16:(layer + 1) * 16, start:start + length].astype(np.float32))
    assert get(tiny_server, f"/api/states?start={data.n - 1}&len=1")[1]["layer"] == 0  # the last position; layer 0 default


@pytest.mark.parametrize("query,says", [
    ("len=5", "missing parameter start"), ("start=0", "missing parameter len"), ("start=0&len=0", "len must be in 1.."),
    ("start=0&len=5001", "len must be in 1.."), ("start=-1&len=3", "start must be in"),
    ("start=99999999&len=3", "start must be in"), ("start=0&len=3&layer=2", "layer must be in 0..1"),
    ("start=0&len=x", "len must be an integer"), ("start=0&len=3&cell=0:1", "unknown parameter(s): cell")])
def test_states_bad_parameters_get_a_one_line_400(tiny_server, tiny, query, says):
    st, body, _ = get(tiny_server, f"/api/states?{query}")
    assert st == 400 and says in body["error"] and "\n" not in body["error"]
    n = tiny[1].n
    st, body, _ = get(tiny_server, f"/api/states?start={n - 3}&len=4")  # past the end of the text
    assert st == 400 and f"len must be in 1..3, got 4" in body["error"]


def test_lines_can_carry_the_plot_windows_states(tiny_server, tiny):
    """/api/lines with plot_*: the lines as without them, and the /api/states answer of the window the page
    computes (from the top line's start over plot_rows lines, clipped to the lines answered, <= plot_len)."""
    data = tiny[1]
    total = len(data.line_starts)
    ends = list(data.line_starts[1:]) + [data.n]  # ends[i]: where display line i ends
    for first, count, line, rows, most, layer in [(0, 10, 0, 3, 1000, 1), (2, 5, 4, 9, 1000, 0), (0, 3, 1, 1, 7, 1),
                                                  (total - 3, 5, total - 1, 4, 5000, 0), (3, 4, 3, 2, 1, 1)]:
        plain = f"/api/lines?first={first}&count={count}&color=loss"
        st, d, _ = get(tiny_server, f"{plain}&plot_layer={layer}&plot_line={line}&plot_rows={rows}&plot_len={most}")
        shown = range(line, min(line + rows, first + count, total))  # the plot's lines among those answered
        length = min(most, sum(ends[k] - data.line_starts[k] for k in shown))
        want = get(tiny_server, f"/api/states?start={data.line_starts[line]}&len={length}&layer={layer}")[1]
        assert st == 200 and d.pop("states") == want
        assert d == get(tiny_server, plain)[1]
    assert "states" not in get(tiny_server, "/api/lines?first=0&count=3")[1]
    assert data.plot_window(total - 1, 3, 9999, None) == (data.line_starts[-1], min(data.n - data.line_starts[-1],
                                                                                    data.config.max_window))
    with pytest.raises(RnnlensError, match="plot window needs a line in"):
        data.plot_window(total, 1, 10)


@pytest.mark.parametrize("query,says", [
    ("plot_layer=0", "missing parameter plot_line"), ("plot_line=0", "missing parameter plot_rows"),
    ("plot_layer=0&plot_line=0&plot_rows=2", "missing parameter plot_len"),
    ("plot_layer=2&plot_line=0&plot_rows=2&plot_len=9", "plot_layer must be in 0..1"),
    ("plot_layer=0&plot_line=3&plot_rows=2&plot_len=9", "plot_line must be in 0..2"),  # not among the lines answered
    ("plot_layer=0&plot_line=0&plot_rows=0&plot_len=9", "plot_rows must be in 1.."),
    ("plot_layer=0&plot_line=0&plot_rows=2&plot_len=5001", "plot_len must be in 1..5000")])
def test_lines_bad_plot_parameters_get_a_one_line_400(tiny_server, query, says):
    st, body, _ = get(tiny_server, f"/api/lines?first=0&count=3&{query}")
    assert st == 400 and says in body["error"] and "\n" not in body["error"]
