"""The explorer at the API level: cache contents against an independent capture, pattern search against a
brute-force reference, display lines, request validation, concurrency (tests/test_explorer_browser.py drives
the app in a real browser)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlens.capture.core import run_with_cache
from rnnlens.capture.store import capture_split
from rnnlens.cli import main
from rnnlens.explorer.data import load_explorer, line_starts
from rnnlens.explorer.search import SearchConfig, find_matches, select_cells
from rnnlens.explorer.server import make_server, serve_in_thread
from rnnlens.run import load_model, load_splits


def tiny_text(n_lines: int = 400, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "said", "hello", "world"]
    lines = []
    for _ in range(n_lines):
        ws = [rng.choice(words) for _ in range(rng.randint(2, 9))]
        if rng.random() < 0.4:
            k = rng.randint(0, len(ws) - 1)
            ws[k] = f'"{ws[k]} {rng.choice(words)}"'
        lines.append(" ".join(ws).capitalize() + ".")
    return "\n".join(lines) + "\n"


def train_tiny(tmp: Path) -> Path:
    text = tmp / "tiny.txt"
    text.write_text(tiny_text())
    run = tmp / "run"
    rc = main(["train", "--text", str(text), "--model", "lstm", "--layers", "2", "--batch-size", "4",
               "--seq-len", "16", "--hidden", "16", "--max-steps", "200", "--lr", "0.02", "--eval-every", "100",
               "--out", str(run),
               "--quiet", "--device", "cpu"])
    assert rc == 0
    return run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(run dir, ExplorerData over its test split, cache dir)."""
    tmp = tmp_path_factory.mktemp("explorer")
    run = train_tiny(tmp)
    model, cfg, _ = load_model(run, "best", "cpu")
    from rnnlens.run import load_symbols
    symbols = load_symbols(cfg)
    split = load_splits(cfg)["test"]
    data = load_explorer(model, cfg, split, symbols, "test", run, cache_dir=tmp / "cache")
    return run, data, tmp / "cache", (model, cfg, split, symbols)


@pytest.fixture(scope="module")
def server(tiny):
    srv = make_server(tiny[1], "127.0.0.1", 0)
    serve_in_thread(srv)
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict | bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read()
        ctype = r.getheader("Content-Type", "")
        return r.status, (json.loads(body) if ctype.startswith("application/json") and body else body), ctype
    finally:
        conn.close()


# ---- pure pieces against references ----

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


# ---- the cache against an independent capture ----

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


# ---- the server ----

def test_endpoints_answer(server, tiny):
    data = tiny[1]
    status, body, ctype = get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and b"/app.js" in body
    assert b"http" not in get(server, "/app.js")[1].replace(b"http://www.w3.org/2000/svg", b"")  # nothing remote
    assert get(server, "/api/info")[1]["chars"] == data.n
    assert len(get(server, "/api/cells")[1]["cells"]) == 32
    assert len(get(server, "/api/gates")[1]["gates"]) == 6
    lines = get(server, "/api/lines?first=1&count=5&cell=1:2&color=cell")[1]
    assert lines["first"] == 1 and len(lines["starts"]) == 5
    pred = get(server, "/api/predict?pos=7")[1]
    assert pred["pos"] == 7 and len(pred["top"]) == 5
    res = get(server, "/api/search?start=10&end=14&threshold=0.2&limit=3")[1]
    assert res["count"] >= len(res["matches"]) and len(res["matches"]) <= 3
    assert res == data.search(10, 14, SearchConfig(0.2, limit=3))


def test_states_window_equals_run_with_cache(server, tiny):
    """/api/states (the hidden-state plot's window) against the model run afresh on each row stream."""
    _, data, _, (model, cfg, split, _) = tiny
    B, N = split.x.shape
    start, length = N - 7, 20  # the end of row 0 and the start of row 1
    for layer in range(2):
        st, d, _ = get(server, f"/api/states?start={start}&len={length}&layer={layer}")
        assert st == 200 and (d["start"], d["len"], d["layer"], d["cells"]) == (start, length, layer, 16)
        got = np.frombuffer(base64.b64decode(d["values"]), "<f2").reshape(16, length).astype(np.float32)  # (H, len)
        rows = [np.tanh(run_with_cache(model, torch.as_tensor(split.x[r:r + 1]), names=[f"layers.{layer}.c"])
                        [f"layers.{layer}.c"][0].numpy()) for r in range(2)]  # (N, H) each, from a zero state
        want = np.concatenate(rows)[start:start + length].T
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert np.array_equal(got, data.values[layer * 16:(layer + 1) * 16, start:start + length].astype(np.float32))
    assert get(server, f"/api/states?start={data.n - 1}&len=1")[1]["layer"] == 0  # the last position; layer 0 default


@pytest.mark.parametrize("query,says", [
    ("len=5", "missing parameter start"), ("start=0", "missing parameter len"), ("start=0&len=0", "len must be in 1.."),
    ("start=0&len=5001", "len must be in 1.."), ("start=-1&len=3", "start must be in"),
    ("start=99999999&len=3", "start must be in"), ("start=0&len=3&layer=2", "layer must be in 0..1"),
    ("start=0&len=x", "len must be an integer"), ("start=0&len=3&cell=0:1", "unknown parameter(s): cell")])
def test_states_bad_parameters_get_a_one_line_400(server, tiny, query, says):
    st, body, _ = get(server, f"/api/states?{query}")
    assert st == 400 and says in body["error"] and "\n" not in body["error"]
    n = tiny[1].n
    st, body, _ = get(server, f"/api/states?start={n - 3}&len=4")  # past the end of the text
    assert st == 400 and f"len must be in 1..3, got 4" in body["error"]


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

@pytest.mark.parametrize("path,status", [
    ("/api/lines?first=-1", 400), ("/api/lines?first=abc", 400), ("/api/lines?first=0&count=100000", 400),
    ("/api/lines?first=99999999", 400), ("/api/lines?first=0&cell=9:0", 400), ("/api/lines?first=0&cell=0:16", 400),
    ("/api/lines?first=0&cell=layers.0", 400), ("/api/lines?first=0&color=red", 400), ("/api/lines", 400),
    ("/api/lines?first=0&first=1", 400), ("/api/lines?first=0&evil=1", 400), ("/api/predict?pos=1e3", 400),
    ("/api/predict?pos=99999999999", 400), ("/api/search?start=5&end=4", 400), ("/api/search?start=0&end=2000", 400),
    ("/api/search?start=0&end=3&threshold=nan", 400), ("/api/search?start=0&end=3&threshold=2", 400),
    ("/api/info?x=1", 400), ("/../../etc/passwd", 404), ("/api/../config.json", 404), ("/config.json", 404),
    ("/best.safetensors", 404), ("/static/../../x", 404), ("/api/nope", 404)])
def test_malformed_requests_get_a_json_error(server, path, status):
    got, body, ctype = get(server, path)
    assert got == status and ctype.startswith("application/json") and isinstance(body["error"], str)


def test_only_get(server):
    assert get(server, "/api/info", "POST")[0] == 405
    assert get(server, "/", "DELETE")[0] == 405


def test_fifty_concurrent_clients(server, tiny):
    n_pos = tiny[1].n
    paths = ["/api/info", "/api/lines?first=0&count=40&cell=0:1", f"/api/predict?pos={n_pos - 1}",
             "/api/search?start=3&end=6", "/app.js"]
    results: list[int] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(5):
            try:
                code = get(server, paths[(k + i) % len(paths)])[0]
            except OSError:
                code = -1
            with lock:
                results.append(code)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count(200) == 250


def test_serve_command_checks_its_flags(tiny, capsys, tmp_path):
    assert main(["serve", str(tiny[0]), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    (tmp_path / "t.txt").write_text("hello")
    assert main(["serve", str(tiny[0]), "--text", str(tmp_path / "t.txt"), "--oracles"]) == 2
    err = capsys.readouterr().err
    assert "--oracles" in err and "Traceback" not in err and not list(tmp_path.glob("*/explorer.json"))


def test_serve_command_prints_its_address_and_answers(tiny, tmp_path):
    import re
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "rnnlens", "serve", str(tiny[0]), "--port", "0", "--cache", str(tiny[2]),
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for line in proc.stderr:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                break
        else:
            pytest.fail(f"no address printed; exit {proc.wait()}")
        status, body, _ = get(int(m.group(1)), "/api/info")
        assert status == 200 and body["chars"] == tiny[1].n
    finally:
        proc.terminate()
        proc.wait(10)


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


# ---- oracle error categories ----

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


def test_error_colouring_needs_oracles(server, tiny, tmp_path):
    from rnnlens.exceptions import RnnlensError

    status, body, _ = get(server, "/api/lines?first=0&color=error")
    assert status == 400 and "--oracles" in body["error"]
    assert get(server, "/api/info")[1]["oracles"] is None
    assert get(server, "/api/predict?pos=3")[1]["here"]["category"] is None
    run, _, _, (model, cfg, split, symbols) = tiny
    from rnnlens.data.splits import stream_split
    other = stream_split(cfg.vocab.encode(symbols[:500]), 2, "text")
    with pytest.raises(RnnlensError, match="split of the run's own corpus"):
        load_explorer(model, cfg, other, symbols[:500], "text-x", run, cache_dir=tmp_path / "c", oracles=True)


def test_ablation_colours_and_predictions_equal_a_hooked_run(server, tiny):
    from rnnlens.capture.hooks import iter_hooked, set_cell

    _, data, _, (model, cfg, split, _) = tiny
    blocks = list(iter_hooked(model, split, cfg.split.seq_len, {"layers.1.c": set_cell(3, 0.0)}, ["logits", "loss"]))
    loss = torch.cat([b["loss"] for b in blocks], 1).reshape(-1).numpy()
    logits = torch.cat([b["logits"] for b in blocks], 1)
    st, d, _ = get(server, "/api/lines?first=0&count=5&color=ablation&cell=1:3")
    assert st == 200
    delta = loss - data.loss
    want = [None] + np.round(delta[:len(d["values"]) - 1], 3).tolist()  # on the predicted character
    assert d["values"][0] is None
    np.testing.assert_allclose(np.array(d["values"][1:], float), np.array(want[1:], float), atol=2e-3)
    assert any(abs(v) > 0 for v in d["values"][1:])
    pos = data.cols + 4
    st, p, _ = get(server, f"/api/predict?pos={pos}&ablate=1:3")
    assert st == 200 and p["ablated"]["cell"] == "1:3"
    r, j = divmod(pos, data.cols)
    q = torch.softmax(logits[r, j].double(), -1)
    assert p["ablated"]["prob"] == pytest.approx(float(q[data.y[pos]]), abs=2e-3)
    assert p["ablated"]["loss"] == pytest.approx(float(loss[pos]), abs=1e-5)
    assert "ablated" not in get(server, f"/api/predict?pos={pos}")[1]
    st, e, _ = get(server, "/api/lines?first=0&count=5&color=ablation")
    assert st == 400 and "select one first" in e["error"]
    st, e, _ = get(server, "/api/predict?pos=1&ablate=9:0")
    assert st == 400 and "no cell 9:0" in e["error"]
