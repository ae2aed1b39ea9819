"""rnnlens.explorer.data: the cache's values and predictions against an independent capture, display lines
against a loop, cells and gates, the n-gram's predictions against its own scores, and ablation against a
hooked run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlens.capture.store import capture_split
from rnnlens.explorer.data import line_starts, load_explorer
from rnnlens.run import load_splits

from _explorer import get  # tests/ is on sys.path (pytest rootdir-relative imports)


def test_line_starts_match_a_loop():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=500)  # id 0 is the line feed
    got = line_starts(x, np.array([0]), row_len=130, width=7)
    want, col = [], 0
    for p in range(len(x)):
        if p == 0 or p % 130 == 0 or x[p - 1] == 0 or col == 7:
            want.append(p)
            col = 0
        col += 1
    assert got.tolist() == want


def test_values_and_predictions_match_a_fresh_capture(tiny):
    _, data, _, (model, cfg, split, _) = tiny
    ref = capture_split(model, split, cfg.split.seq_len, ["layers.0.c", "layers.1.c", "logits", "next_prob"])
    B, N = ref.shape
    assert data.n == B * N and data.rows == B and data.cols == N
    for layer in range(2):
        want = np.tanh(ref[f"layers.{layer}.c"]).transpose(2, 0, 1).reshape(16, -1)  # (H, B*N)
        got = data.values[layer * 16:(layer + 1) * 16].astype(np.float32)
        np.testing.assert_allclose(got, want, atol=2e-3)
    for pos in [0, 5, N - 1, N, B * N - 1]:
        r, j = divmod(pos, N)
        p = torch.softmax(torch.from_numpy(ref["logits"][r, j]).double(), 0).numpy()
        d = data.predict(pos)
        assert d["prob"] == pytest.approx(float(ref["next_prob"][r, j]), abs=1e-5)
        top = np.argsort(-p)[:5]
        assert [t["prob"] for t in d["top"]] == pytest.approx(p[top].tolist(), abs=2e-3)
        assert d["actual"] == data.vocab_glyphs[int(split.y[r, j])]


def test_lines_cover_the_text_in_order(tiny):
    data = tiny[1]
    info = data.info()
    got = []
    for first in range(0, info["lines"], 37):
        d = data.lines(first, 37, "cell", (1, 3))
        got.extend(d["glyphs"])
        assert len(d["values"]) == len(d["glyphs"])
    assert got == data.glyphs and len(got) == data.n
    d = data.lines(2, 3, "cell", (1, 3))
    a, b = d["starts"][0], d["end"]
    assert d["values"] == pytest.approx(data.values[16 + 3, a:b].astype(np.float32), abs=1e-3)
    got = data.lines(0, 1, "loss", None)["values"]  # on each character: the loss of predicting it
    assert got[0] is None and got[1:] == pytest.approx(data.loss[:data.line_starts[1] - 1], abs=1e-3)


def test_cells_and_gates_cover_every_unit(tiny):
    data = tiny[1]
    assert [(c["layer"], c["index"]) for c in data.cells] == [(k, i) for k in range(2) for i in range(16)]
    assert all(0 <= c["score"] <= 1 for c in data.cells)
    assert sorted((g["layer"], g["gate"]) for g in data.gates) == sorted(
        (k, g) for k in range(2) for g in ("input_gate", "forget_gate", "output_gate"))
    assert all(len(g["left"]) == 16 and all(0 <= a + b <= 1 + 1e-9 for a, b in zip(g["left"], g["right"]))
               for g in data.gates)


def test_ngram_predictions_match_its_own_scores(tiny, tmp_path):
    from rnnlens.exceptions import RnnlensError
    from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams

    run, _, _, (model, cfg, split, symbols) = tiny
    train = load_splits(cfg)["train"]
    lm = KneserNeyLM.fit_streams(row_streams(train.x, train.y), cfg.model.vocab_size, NGramConfig(3),
                                 unit=cfg.vocab.unit, symbols=cfg.vocab.symbols)
    lm.save(tmp_path / "lm.safetensors")
    data = load_explorer(model, cfg, split, symbols, "test", run, cache_dir=tmp_path / "cache",
                         ngram_path=tmp_path / "lm.safetensors")
    logp, _ = lm.score_rows(split.x, split.y)  # (B, N): y[r, j] given x[r, :j+1], an independent path
    for pos in [0, 1, 2, 3, 50, data.cols, data.cols + 1, data.n - 1]:
        r, j = divmod(pos, data.cols)
        got = data.predict(pos)["ngram"]
        assert got["prob"] == pytest.approx(float(np.exp(logp[r, j])), rel=1e-9)
        assert got["top"][0]["prob"] >= got["top"][-1]["prob"]
    other = KneserNeyLM.fit(np.array([0, 1, 0, 1]), 2, NGramConfig(2))
    other.save(tmp_path / "other.safetensors")
    with pytest.raises(RnnlensError, match="vocabulary"):
        load_explorer(model, cfg, split, symbols, "test", run, cache_dir=tmp_path / "cache",
                      ngram_path=tmp_path / "other.safetensors")


def test_ablation_colours_and_predictions_equal_a_hooked_run(tiny_server, tiny):
    from rnnlens.capture.hooks import iter_hooked, set_cell

    _, data, _, (model, cfg, split, _) = tiny
    blocks = list(iter_hooked(model, split, cfg.split.seq_len, {"layers.1.c": set_cell(3, 0.0)}, ["logits", "loss"]))
    loss = torch.cat([b["loss"] for b in blocks], 1).reshape(-1).numpy()
    logits = torch.cat([b["logits"] for b in blocks], 1)
    st, d, _ = get(tiny_server, "/api/lines?first=0&count=5&color=ablation&cell=1:3")
    assert st == 200
    delta = loss - data.loss
    want = [None] + np.round(delta[:len(d["values"]) - 1], 3).tolist()  # on the predicted character
    assert d["values"][0] is None
    np.testing.assert_allclose(np.array(d["values"][1:], float), np.array(want[1:], float), atol=2e-3)
    assert any(abs(v) > 0 for v in d["values"][1:])
    pos = data.cols + 4
    st, p, _ = get(tiny_server, f"/api/predict?pos={pos}&ablate=1:3")
    assert st == 200 and p["ablated"]["cell"] == "1:3"
    r, j = divmod(pos, data.cols)
    q = torch.softmax(logits[r, j].double(), -1)
    assert p["ablated"]["prob"] == pytest.approx(float(q[data.y[pos]]), abs=2e-3)
    assert p["ablated"]["loss"] == pytest.approx(float(loss[pos]), abs=1e-5)
    assert "ablated" not in get(tiny_server, f"/api/predict?pos={pos}")[1]
    st, e, _ = get(tiny_server, "/api/lines?first=0&count=5&color=ablation")
    assert st == 400 and "select one first" in e["error"]
    st, e, _ = get(tiny_server, "/api/predict?pos=1&ablate=9:0")
    assert st == 400 and "no cell 9:0" in e["error"]
