"""Helpers for the explorer's browser tests (tests/test_explorer_browser.py, test_explorer_plot_browser.py):
headless Chromium driven by Playwright, the module-scoped ``app`` and ``page`` fixtures (imported by the test
modules), and polling. Importing this skips the importing module when /usr/bin/chromium or the playwright
package is absent (no browser is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlens.explorer.data import load_explorer
from rnnlens.explorer.search import SearchConfig
from rnnlens.explorer.server import make_server, serve_in_thread
from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams
from rnnlens.run import load_model, load_splits, load_symbols

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                               "(pip install playwright; the browser comes from apt: apt-get install chromium)")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)", allow_module_level=True)


def serve_split(tmp: Path, run: Path, split: str = "test", **kwargs):
    """An open explorer server over ``split`` of ``run`` (cache in ``tmp``), serving in a thread."""
    model, cfg, _ = load_model(run, "best", "cpu")
    data = load_explorer(model, cfg, load_splits(cfg)[split], load_symbols(cfg), split, run, cache_dir=tmp / "cache",
                         **kwargs)
    srv = make_server(data, "127.0.0.1", 0)
    serve_in_thread(srv)
    return srv, data


@pytest.fixture(scope="module")
def app(tiny, tmp_path_factory):
    """(base URL, ExplorerData) of a server over the tiny run's test split, with a 3-gram and the oracles."""
    tmp = tmp_path_factory.mktemp("explorer-browser")
    run = tiny[0]
    cfg = tiny[3][1]
    train = load_splits(cfg)["train"]
    lm = KneserNeyLM.fit_streams(row_streams(train.x, train.y), cfg.model.vocab_size, NGramConfig(3),
                                 unit=cfg.vocab.unit, symbols=cfg.vocab.symbols)
    lm.save(tmp / "lm.safetensors")
    srv, data = serve_split(tmp, run, ngram_path=tmp / "lm.safetensors", oracles=True)
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", data
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def page(app):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 800})
            remote: list[str] = []
            pg.on("request", lambda r: remote.append(r.url) if not r.url.startswith(app[0]) else None)
            pg.goto(app[0] + "/")
            pg.wait_for_selector("body[data-ready='1']", timeout=15_000)  # a selector wait needs no eval
            yield pg
            assert remote == [], f"the app asked the network for {remote}"
        finally:
            browser.close()


def wait_until(pg, check, what: str, timeout_s: float = 10.0):
    """Poll ``check()`` from Python (the app's Content-Security-Policy forbids Playwright's string waits)."""
    for _ in range(int(timeout_s / 0.05)):
        value = check()
        if value:
            return value
        pg.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def pick_span(page, data, positions: list[int]) -> tuple[int, int]:
    """Indices (i, k) into the drawn spans of a 3-character span on one line whose selected cells recur elsewhere."""
    spans = page.locator("#win span[data-p]")
    for i in range(len(positions) - 2):
        s, e = positions[i], positions[i + 2]
        if e == s + 2 and data.search(s, e, SearchConfig(threshold=0.1))["count"] >= 2:
            if spans.nth(i).bounding_box()["y"] == spans.nth(i + 2).bounding_box()["y"]:
                return i, i + 2
    raise AssertionError("no span with matches in the first drawn characters")
