"""The hidden-state plot's data (``/api/states`` and the states ``/api/lines`` can carry, rnnlens.explorer.data
and .server) against the model run afresh; tests/test_explorer_plot_browser.py draws it in a real browser."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from rnnlens.capture.core import run_with_cache

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
