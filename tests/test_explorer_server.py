"""rnnlens.explorer.server: the endpoints answer, malformed requests get a JSON error, only GET, fifty
concurrent clients, and ``rnnlens serve`` (tests/test_explorer_browser.py drives the app in a real browser)."""

from __future__ import annotations

import threading

import pytest

from rnnlens.cli import main
from rnnlens.explorer.search import SearchConfig

from _explorer import get, serve_process  # tests/ is on sys.path (pytest rootdir-relative imports)


def test_endpoints_answer(tiny_server, tiny):
    data = tiny[1]
    status, body, ctype = get(tiny_server, "/")
    assert status == 200 and ctype.startswith("text/html") and b"/app.js" in body
    assert b"http" not in get(tiny_server, "/app.js")[1].replace(b"http://www.w3.org/2000/svg", b"")  # nothing remote
    assert get(tiny_server, "/api/info")[1]["chars"] == data.n
    assert len(get(tiny_server, "/api/cells")[1]["cells"]) == 32
    assert len(get(tiny_server, "/api/gates")[1]["gates"]) == 6
    lines = get(tiny_server, "/api/lines?first=1&count=5&cell=1:2&color=cell")[1]
    assert lines["first"] == 1 and len(lines["starts"]) == 5
    pred = get(tiny_server, "/api/predict?pos=7")[1]
    assert pred["pos"] == 7 and len(pred["top"]) == 5
    res = get(tiny_server, "/api/search?start=10&end=14&threshold=0.2&limit=3")[1]
    assert res["count"] >= len(res["matches"]) and len(res["matches"]) <= 3
    assert res == data.search(10, 14, SearchConfig(0.2, limit=3))


@pytest.mark.parametrize("path,status", [
    ("/api/lines?first=-1", 400), ("/api/lines?first=abc", 400), ("/api/lines?first=0&count=100000", 400),
    ("/api/lines?first=99999999", 400), ("/api/lines?first=0&cell=9:0", 400), ("/api/lines?first=0&cell=0:16", 400),
    ("/api/lines?first=0&cell=layers.0", 400), ("/api/lines?first=0&color=red", 400), ("/api/lines", 400),
    ("/api/lines?first=0&first=1", 400), ("/api/lines?first=0&evil=1", 400), ("/api/predict?pos=1e3", 400),
    ("/api/predict?pos=99999999999", 400), ("/api/search?start=5&end=4", 400), ("/api/search?start=0&end=2000", 400),
    ("/api/search?start=0&end=3&threshold=nan", 400), ("/api/search?start=0&end=3&threshold=2", 400),
    ("/api/info?x=1", 400), ("/../../etc/passwd", 404), ("/api/../config.json", 404), ("/config.json", 404),
    ("/best.safetensors", 404), ("/static/../../x", 404), ("/api/nope", 404)])
def test_malformed_requests_get_a_json_error(tiny_server, path, status):
    got, body, ctype = get(tiny_server, path)
    assert got == status and ctype.startswith("application/json") and isinstance(body["error"], str)


def test_only_get(tiny_server):
    assert get(tiny_server, "/api/info", "POST")[0] == 405
    assert get(tiny_server, "/", "DELETE")[0] == 405


def test_fifty_concurrent_clients(tiny_server, tiny):
    n_pos = tiny[1].n
    paths = ["/api/info", "/api/lines?first=0&count=40&cell=0:1", f"/api/predict?pos={n_pos - 1}",
             "/api/search?start=3&end=6", "/app.js"]
    results: list[int] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(5):
            try:
                code = get(tiny_server, paths[(k + i) % len(paths)])[0]
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


def test_serve_command_prints_its_address_and_answers(tiny):
    with serve_process(tiny[0], tiny[2]) as (m, _):
        status, body, _ = get(int(m.group(2)), "/api/info")
        assert status == 200 and body["chars"] == tiny[1].n
