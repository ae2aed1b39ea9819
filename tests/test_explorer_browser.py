"""The explorer in a real browser (headless Chromium driven by Playwright; rnnlens.explorer.assets): page
loads, a cell click recolours the text, a selected span returns matches, a scatter click selects its cell,
hover shows predictions (the hidden-state plot: tests/test_explorer_plot_browser.py). Skips when
/usr/bin/chromium or the playwright package is absent (no browser is downloaded)."""

from __future__ import annotations

import math

import numpy as np

from rnnlens.explorer.search import SearchConfig
from rnnlens.explorer.server import make_server, serve_in_thread

from _browser import app, page, pick_span, wait_until  # noqa: F401 (fixtures; tests/ is on sys.path)


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

