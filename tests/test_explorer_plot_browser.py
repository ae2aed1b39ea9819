"""The explorer's hidden-state plot (rnnlens.explorer.plot_assets) in a real browser (headless Chromium driven
by Playwright): one faint line per cell as a reference rasteriser draws them, the selected cell strongly,
brushing searches as selecting the same text does, scrolling redraws the plot, and a scroll costs one
request. Skips when /usr/bin/chromium or the playwright package is absent (no browser is downloaded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlens.explorer.search import SearchConfig

from _browser import app, page, pick_span, serve_split, wait_until  # noqa: F401 (fixtures; tests/ is on sys.path)


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


@pytest.fixture(scope="module")
def long_app(tiny, tmp_path_factory):
    """(base URL, ExplorerData) over the tiny run's training split: enough lines that scrolling loads new ones."""
    srv, data = serve_split(tmp_path_factory.mktemp("explorer-long"), tiny[0], "train")
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", data
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_scroll_costs_one_request_for_the_text_and_the_plot(page, long_app):
    """A scroll that needs new text lines gets the plot's states with them, one that does not asks for the
    states alone: one request a scroll, either way."""
    base, data = long_app
    assert len(data.line_starts) > 200
    pg = page.context.browser.new_page(viewport={"width": 1400, "height": 500})
    asked: list[str] = []
    pg.on("request", lambda r: asked.append(r.url[len(base):]) if r.url.startswith(base + "/api/") else None)
    try:
        pg.goto(base + "/")
        pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
        wait_until(pg, lambda: plot_state(pg)["len"] > 0, "the plot to be drawn")
        for line, kind in [(150, "/api/lines?"), (152, "/api/states?"), (20, "/api/lines?"), (21, "/api/states?")]:
            asked.clear()
            st = scroll_to_line(pg, data, line)
            pg.wait_for_timeout(300)  # room for any further request the scroll would make
            assert len(asked) == 1 and asked[0].startswith(kind), (line, asked)
            if kind == "/api/lines?":
                assert f"plot_line={line}&" in asked[0]
            assert pg.locator(f"#win span[data-p='{st['start']}']").count() == 1  # the text is drawn there
            vals = data.values[st["layer"] * data.hidden:(st["layer"] + 1) * data.hidden, st["start"]:st["start"] + st["len"]]
            assert st["alpha"] == faint_reference(vals, st["W"], st["H"])  # and the plot drawn from the right states
            first = pg.locator("#win .line.plotted").first.locator("span[data-p]").first.get_attribute("data-p")
            assert int(first) == st["start"]
    finally:
        pg.close()
