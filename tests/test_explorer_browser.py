"""The explorer in a real browser (headless Chromium driven by Playwright): page loads, a cell click
recolours the text, a selected span returns matches, a scatter click selects its cell, hover shows
predictions. Skips when /usr/bin/chromium or the playwright package is absent (no browser is downloaded)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rnnlens.explorer.data import load_explorer
from rnnlens.explorer.search import SearchConfig
from rnnlens.explorer.server import make_server, serve_in_thread
from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams
from rnnlens.run import load_model, load_splits, load_symbols

from test_explorer import train_tiny  # tests/ is on sys.path (pytest rootdir-relative imports)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                               "(pip install playwright; the browser comes from apt: apt-get install chromium)")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(base URL, ExplorerData) of a server over a tiny run's test split."""
    tmp = tmp_path_factory.mktemp("explorer-browser")
    run = train_tiny(tmp)
    model, cfg, _ = load_model(run, "best", "cpu")
    train = load_splits(cfg)["train"]
    lm = KneserNeyLM.fit_streams(row_streams(train.x, train.y), cfg.model.vocab_size, NGramConfig(3),
                                 unit=cfg.vocab.unit, symbols=cfg.vocab.symbols)
    lm.save(tmp / "lm.safetensors")
    data = load_explorer(model, cfg, load_splits(cfg)["test"], load_symbols(cfg), "test", run, cache_dir=tmp / "cache",
                         ngram_path=tmp / "lm.safetensors", oracles=True)
    srv = make_server(data, "127.0.0.1", 0)
    serve_in_thread(srv)
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


def backgrounds(pg) -> list[str]:
    return pg.eval_on_selector_all("#win span[data-p]", "els => els.slice(0, 200).map(e => e.className)")


def test_page_loads_with_text_cells_and_gates(page, app, tmp_path):
    data = app[1]
    assert page.locator("#status").inner_text() == "ready"
    assert page.locator("#cell-list li").count() == data.layers * data.hidden
    assert page.locator("#win span[data-p]").count() > 100
    assert page.locator(".plot circle").count() == 6 * data.hidden
    page.screenshot(path=str(tmp_path / "loaded.png"))


def test_clicking_a_cell_recolours_the_text(page, app, tmp_path):
    before = backgrounds(page)
    page.locator("#cell-list li[data-cell='1:3']").click()
    wait_until(page, lambda: backgrounds(page) != before, "the text to change colour")
    after = backgrounds(page)
    assert len(set(after)) > 5  # a heatmap, not one colour
    assert page.locator("#selected").inner_text() == "cell 1:3"
    # every drawn character's colour class is its value's: c0 (-1, red) .. c20 (0, white) .. c40 (+1, blue)
    first = int(page.locator("#win span[data-p]").first.get_attribute("data-p"))
    sent = np.round(app[1].values[app[1].hidden + 3, first:first + 200].astype(np.float32), 3).tolist()  # as /api/lines
    want = [f"c{math.floor(max(-1.0, min(1.0, v)) * 20 + 0.5) + 20}" for v in sent]  # JavaScript's Math.round
    assert [c.split()[0] for c in after] == want[:len(after)]
    page.screenshot(path=str(tmp_path / "cell.png"))


def pick_span(page, data, positions: list[int]) -> tuple[int, int]:
    """Indices (i, k) into the drawn spans of a 3-character span on one line whose selected cells recur elsewhere."""
    spans = page.locator("#win span[data-p]")
    for i in range(len(positions) - 2):
        s, e = positions[i], positions[i + 2]
        if e == s + 2 and data.search(s, e, SearchConfig(threshold=0.1))["count"] >= 2:
            if spans.nth(i).bounding_box()["y"] == spans.nth(i + 2).bounding_box()["y"]:
                return i, i + 2
    raise AssertionError("no span with matches in the first drawn characters")


def test_selecting_a_span_returns_matches(page, app, tmp_path):
    data = app[1]
    positions = [int(p) for p in page.eval_on_selector_all("#win span[data-p]", "els => els.slice(0, 300).map(e => e.dataset.p)")]
    i, k = pick_span(page, data, positions)
    page.fill("#threshold", "0.1")
    a, b = page.locator("#win span[data-p]").nth(i).bounding_box(), page.locator("#win span[data-p]").nth(k).bounding_box()
    page.mouse.move(a["x"] + 1, a["y"] + a["height"] / 2)  # a real drag from the left edge of i to the right edge of k
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] - 1, b["y"] + b["height"] / 2, steps=5)
    page.mouse.up()
    wait_until(page, lambda: page.locator("#match-count").inner_text(), "search results")
    want = data.search(positions[i], positions[k], SearchConfig(threshold=0.1))
    assert want["count"] >= 2 and want["cells"]
    assert page.locator("#match-count").inner_text() == f"{want['count']} matches"
    assert page.locator("#search-results li").count() == len(want["matches"])
    assert page.locator("#search-cells a").count() == len(want["cells"])
    assert page.locator("#search-results li b").first.inner_text() == "".join(
        data.glyphs[want["matches"][0]["start"]:want["matches"][0]["end"] + 1])
    assert page.locator("#win span.match").count() >= 3  # the matches are marked in the text
    page.screenshot(path=str(tmp_path / "search.png"))
    last = want["matches"][-1]
    page.locator("#search-results li").last.click()  # jumps to the match: it is drawn and marked
    wait_until(page, lambda: page.locator(f"#win span[data-p='{last['start']}']").count() == 1, "the match to be drawn")
    assert "match" in page.locator(f"#win span[data-p='{last['start']}']").get_attribute("class")


def test_clicking_the_scatter_selects_the_cell(page):
    point = page.locator("#gates .plot").nth(1).locator("circle").last  # drawn last: on top of any overlap
    cell = point.get_attribute("data-cell")
    assert cell.startswith("0:")
    point.click()
    wait_until(page, lambda: page.locator("#selected").inner_text() == f"cell {cell}", f"cell {cell} to be selected")
    assert page.locator("#cell-list li.active").get_attribute("data-cell") == cell
    assert page.locator(".plot circle.active").count() == 3  # the same unit in the layer's three gate plots


def test_hover_shows_predictions(page, app):
    span = page.locator("#win span[data-p]").nth(7)
    pos = int(span.get_attribute("data-p"))
    span.hover()
    wait_until(page, lambda: page.locator("#pred").get_attribute("data-pos") == str(pos), "the prediction panel")
    text = page.locator("#pred").inner_text()
    want = app[1].predict(pos)
    assert f"{want['prob']:.3f}" in text and f"{want['top'][0]['prob']:.3f}" in text
    assert "3-gram" in text and f"{want['ngram']['prob']:.3f}" in text and f"{want['ngram']['top'][0]['prob']:.3f}" in text


def test_colouring_by_oracle_error_category(page, app):
    data = app[1]
    page.select_option("#color", "error")
    assert page.locator("#catlegend").is_visible()
    assert f"{data.cat_summary['errors']:,} errors" in page.locator("#catlegend").inner_text()

    def painted():
        spans = page.eval_on_selector_all("#win span[data-p]", "els => els.slice(0, 300).map(e => [+e.dataset.p, e.className])")
        spans = [(p, c.replace("match", "").strip()) for p, c in spans]
        return spans if spans and all(not c or c.startswith("e") for _, c in spans) else None

    spans = wait_until(page, painted, "error category colours")
    here = data.cat_here  # the category of each character's own prediction, -1 where none
    want = {p: ("" if here[p] < 0 else f"e{here[p]}") for p, _ in spans}
    assert dict(spans) == want
    assert len({c for _, c in spans}) >= 2  # correct and at least one category
    err = next(p for p, c in spans if c)
    page.locator(f"#win span[data-p='{err}']").hover()
    wait_until(page, lambda: page.locator("#pred").get_attribute("data-pos") == str(err), "the prediction panel")
    fam = data.cat_summary["families"][here[err]]
    assert fam in page.locator("#pred-category").inner_text()
    assert np.array_equal(here[1:data.cols], data.categories[:data.cols - 1])
    page.select_option("#color", "loss")
    assert not page.locator("#catlegend").is_visible()


def test_loss_colouring_and_screenshot(page, app, tmp_path):
    page.select_option("#color", "loss")
    cols = app[1].cols

    def loss_coloured():  # every character but a row's first (never predicted within the text) has a loss
        spans = page.eval_on_selector_all("#win span[data-p]", "els => els.slice(0, 300).map(e => [+e.dataset.p, e.className])")
        got = [(p, c.replace("match", "").strip()) for p, c in spans]
        return got and all(c.startswith("l") if p % cols else c == "" for p, c in got)

    wait_until(page, loss_coloured, "loss colours")
    page.select_option("#color", "cell")
    page.locator("#cell-list li[data-cell='1:3']").click()
    wait_until(page, lambda: all(c.startswith("c") for c in backgrounds(page)), "cell colours again")
    page.screenshot(path=str(tmp_path / "explorer.png"))  # the README's docs/img/explorer.png comes from a real run:
    # bench/explorer_latency.py RUN --browser N --screenshot docs/img/explorer.png (tests leave tracked files alone)


def test_ablation_toggle_colours_the_loss_change_and_shows_ablated_predictions(page, app):
    data = app[1]
    page.locator("#cell-list li[data-cell='1:3']").click()
    page.select_option("#color", "ablation")
    cols = data.cols

    def ablation_coloured():
        spans = page.eval_on_selector_all("#win span[data-p]", "els => els.slice(0, 300).map(e => [+e.dataset.p, e.className])")
        got = [(p, c.replace("match", "").strip()) for p, c in spans]
        return got if got and all(c.startswith("c") if p % cols else c == "" for p, c in got) else None

    spans = wait_until(page, ablation_coloured, "ablation colours")
    loss, _ = data.ablation(1, 3)
    sent = np.round(data._shift(loss - data.loss, np.nan), 3).tolist()  # on the predicted character, as /api/lines
    want = {p: (f"c{math.floor(max(-1.0, min(1.0, sent[p])) * 20 + 0.5) + 20}" if p % cols else "") for p, _ in spans}
    assert dict(spans) == want
    span = page.locator("#win span[data-p]").nth(9)
    pos = int(span.get_attribute("data-p"))
    span.hover()
    wait_until(page, lambda: page.locator("#pred").get_attribute("data-pos") == str(pos), "the prediction panel")
    text = page.locator("#pred").inner_text()
    ab = data.predict(pos, (1, 3))["ablated"]
    assert "1:3 ablated" in text and f"{ab['prob']:.3f}" in text and f"{ab['top'][0]['prob']:.3f}" in text
    page.locator("#cell-list li[data-cell='0:2']").click()  # another cell keeps the ablation view
    assert page.locator("#color").input_value() == "ablation"
    page.select_option("#color", "cell")


def test_the_token_url_opens_the_whole_app_and_the_bare_url_is_refused(page, app):
    """A server with the token required (as off loopback): the printed URL loads the app in a real browser,
    every request the page makes after the first carried by the HttpOnly cookie; without the token: 403."""
    srv = make_server(app[1], "127.0.0.1", 0, token_required=True)
    serve_in_thread(srv)
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    ctx = page.context.browser.new_context()  # fresh cookies, same browser (one sync Playwright per thread)
    try:
        pg = ctx.new_page()
        answers: list[tuple[str, int]] = []
        pg.on("response", lambda r: answers.append((r.url, r.status)))
        pg.goto(srv.url)
        pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
        assert pg.locator("#status").inner_text() == "ready"
        assert pg.locator("#cell-list li").count() == app[1].layers * app[1].hidden
        api = [u for u, _ in answers if "/api/" in u]
        assert api and all(s == 200 for _, s in answers), answers
        assert not any("token=" in u for u in api)  # the cookie, not the URL, carried the token
        [cookie] = ctx.cookies()
        assert cookie["value"] == srv.token and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        bare = page.context.browser.new_context()
        try:
            pb = bare.new_page()
            assert pb.goto(base + "/").status == 403
            assert "token" in pb.locator("body").inner_text()
        finally:
            bare.close()
    finally:
        ctx.close()
        srv.shutdown()
        srv.server_close()


# ---- the hidden-state plot ----

def plot_state(pg) -> dict:
    """The plot's window (from the canvas' data attributes) and the alpha channel of its faint lines."""
    return pg.evaluate("""() => { const cv = document.getElementById('plot-canvas');
        const a = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data, alpha = [];
        for (let i = 3; i < a.length; i += 4) alpha.push(a[i]);
        const d = cv.dataset;
        return {W: cv.width, H: cv.height, start: +d.start, len: +d.len, layer: +d.layer, lines: +d.lines, alpha}; }""")


def plot_x(p: int, st: dict) -> float:  # the centre of window position p, as the page computes it
    return ((p + 0.5) * st["W"]) / st["len"]


def plot_y(v: float, h: int) -> float:
    return 6 + ((1 - max(-1.0, min(1.0, v))) / 2) * (h - 12)


def faint_reference(vals: np.ndarray, w: int, h: int) -> list[int]:
    """The alpha image of one faint stroke (opacity a = min(0.16, 6 / C)) per row of ``vals`` (C, n) through
    (x(p), y(v)): a pixel a stroke crosses counts once for it, k strokes give 1 - (1 - a)^k."""
    n = vals.shape[1]
    faint = min(0.16, 6 / vals.shape[0])
    st = {"W": w, "len": n}
    count = np.zeros(w * h, dtype=np.int64)
    for row in vals.astype(np.float64):
        seen: set[int] = set()

        def hit(x: int, y0: float, y1: float) -> None:
            seen.update(y * w + x for y in range(max(0, math.floor(y0)), min(h - 1, math.floor(y1)) + 1))

        if n == 1:
            hit(math.floor(plot_x(0, st)), plot_y(row[0], h), plot_y(row[0], h))
        for p in range(n - 1):
            xa, xb, ya, yb = plot_x(p, st), plot_x(p + 1, st), plot_y(row[p], h), plot_y(row[p + 1], h)
            for x in range(math.floor(xa), min(w - 1, math.floor(xb)) + 1):
                ta, tb = max(0.0, (x - xa) / (xb - xa)), min(1.0, (x + 1 - xa) / (xb - xa))
                y0, y1 = ya + ta * (yb - ya), ya + tb * (yb - ya)
                hit(x, min(y0, y1), max(y0, y1))
        count[list(seen)] += 1
    return [0 if k == 0 else math.floor(255 * (1 - (1 - faint) ** k) + 0.5) for k in count.tolist()]


def scroll_to_line(page, data, line: int) -> dict:
    top = page.evaluate(f"() => {{ const t = document.getElementById('text'); t.scrollTop = {line * 18}; return t.scrollTop; }}")
    assert top == line * 18, f"the text cannot scroll to line {line}"
    want = int(data.line_starts[line])
    return wait_until(page, lambda: (lambda s: s if s["start"] == want else None)(plot_state(page)),
                      f"the plot to show the window from line {line}")


def test_the_plot_draws_one_faint_line_per_cell_and_the_selected_cell_strongly(page, app):
    data = app[1]
    H = data.hidden
    page.select_option("#color", "cell")
    scroll_to_line(page, data, 0)
    page.locator("#cell-list li[data-cell='1:3']").click()
    wait_until(page, lambda: page.locator("#plot-svg polyline.sel[data-cell='1:3']").count() == 1, "cell 1:3 drawn strongly")
    st = plot_state(page)
    assert (st["start"], st["layer"], st["lines"]) == (0, 1, H)
    assert 100 <= st["len"] <= st["W"] // 2  # at least 2 px per character
    vals = data.values[H:2 * H, st["start"]:st["start"] + st["len"]]  # (H, len) layer 1
    assert st["alpha"] == faint_reference(vals, st["W"], st["H"])  # every cell, each one faint stroke
    assert faint_reference(vals[:-1], st["W"], st["H"]) != st["alpha"]  # the last cell's stroke is in it too
    sel = page.locator("#plot-svg polyline.sel")
    pts = [tuple(map(float, xy.split(","))) for xy in sel.get_attribute("points").split()]
    want = [(plot_x(p, st), plot_y(float(vals[3, p]), st["H"])) for p in range(st["len"])]
    np.testing.assert_allclose(np.array(pts), np.array(want), atol=0.006)
    style = sel.evaluate("e => [getComputedStyle(e).stroke, getComputedStyle(e).strokeWidth]")
    assert style == ["rgb(230, 85, 13)", "2px"]  # orange and thick, over faint blue-grey
    th = page.locator("#plot-svg line.threshold")
    assert float(th.get_attribute("y1")) == pytest.approx(plot_y(float(page.input_value("#threshold")), st["H"]))
    page.locator("#cell-list li[data-cell='0:5']").click()  # another layer's cell: the plot switches layer
    wait_until(page, lambda: plot_state(page)["layer"] == 0, "the plot to show layer 0")
    wait_until(page, lambda: page.locator("#plot-svg polyline.sel[data-cell='0:5']").count() == 1, "cell 0:5 drawn strongly")
    assert page.input_value("#plot-layer") == "0"


def search_shown(page) -> tuple[str, list[str], list[str]]:
    return (page.locator("#match-count").inner_text(), page.locator("#search-results li").all_inner_texts(),
            page.locator("#search-cells a").all_inner_texts())


def test_brushing_the_plot_gives_the_search_of_selecting_the_same_text(page, app):
    data = app[1]
    scroll_to_line(page, data, 0)
    page.fill("#threshold", "0.1")
    positions = [int(p) for p in page.eval_on_selector_all("#win span[data-p]", "els => els.slice(0, 300).map(e => e.dataset.p)")]
    i, k = pick_span(page, data, positions)
    s, e = positions[i], positions[k]
    a, b = page.locator("#win span[data-p]").nth(i).bounding_box(), page.locator("#win span[data-p]").nth(k).bounding_box()
    page.mouse.move(a["x"] + 1, a["y"] + a["height"] / 2)  # select the text s..e
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] - 1, b["y"] + b["height"] / 2, steps=5)
    page.mouse.up()
    wait_until(page, lambda: page.locator("#match-count").inner_text(), "search results")
    by_text = search_shown(page)
    want = data.search(s, e, SearchConfig(threshold=0.1))
    assert by_text[0] == f"{want['count']} matches" and len(by_text[1]) == len(want["matches"]) >= 2
    page.evaluate("() => { for (const id of ['match-count', 'search-results', 'search-cells']) document.getElementById(id).replaceChildren(); }")
    page.mouse.click(5, 5)  # drop the text selection
    st = plot_state(page)
    assert st["start"] <= s and e < st["start"] + st["len"]
    box = page.locator("#plot-svg").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + plot_x(s - st["start"], st), y)  # brush s..e on the plot
    page.mouse.down()
    page.mouse.move(box["x"] + plot_x(e - st["start"], st), y, steps=5)
    page.mouse.up()
    wait_until(page, lambda: page.locator("#match-count").inner_text(), "search results from brushing")
    assert search_shown(page) == by_text  # the same count, matches and cells
    page.mouse.move(box["x"] + box["width"] - 2, y, steps=3)  # moving on after the release keeps the range
    rect = page.locator("#plot-svg rect.brush")
    assert float(rect.get_attribute("x")) == pytest.approx((s - st["start"]) * st["W"] / st["len"])
    assert float(rect.get_attribute("width")) == pytest.approx((e - s + 1) * st["W"] / st["len"])
    shown = sorted(int(p.split(":")[1]) for p in page.eval_on_selector_all(
        "#plot-svg polyline.search", "els => els.map(e => e.dataset.cell)"))
    assert shown == sorted(c["index"] for c in want["cells"] if c["layer"] == st["layer"])  # the result's cells, strong
    assert page.locator("#win span.match").count() >= 3  # and marked in the text as a selection's are


def test_scrolling_redraws_the_plot_for_the_new_window(page, app):
    data = app[1]
    page.set_viewport_size({"width": 1400, "height": 500})  # the tiny split's 28 lines then scroll
    try:
        before = scroll_to_line(page, data, 0)
        line = 10
        st = scroll_to_line(page, data, line)
        assert st["start"] == data.line_starts[line] != before["start"]
        vals = data.values[st["layer"] * data.hidden:(st["layer"] + 1) * data.hidden, st["start"]:st["start"] + st["len"]]
        assert st["alpha"] == faint_reference(vals, st["W"], st["H"]) != before["alpha"]
        first = page.locator("#win .line.plotted").first.locator("span[data-p]").first.get_attribute("data-p")
        assert int(first) == st["start"]  # the text lines the plot covers are marked
    finally:
        page.set_viewport_size({"width": 1400, "height": 800})
