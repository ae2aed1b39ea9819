"""Latency of the explorer's interactions over HTTP, once the run is loaded (goal: each under 200 ms).

Loads (building on first use) the explorer cache of RUN over a split, starts the server on 127.0.0.1 in a
thread, then times, interleaved, every request the app makes per interaction: a window of display lines
coloured by a cell (scrolling / clicking a cell), the same by loss (and, with ``--oracles``, by oracle error
category), a prediction (hover), a pattern search
over a random 3-20 character span that selects at least one cell (selection), the hidden-state plot's window of
one layer's cells (``/api/states``, ``--window`` positions, and the largest window allowed), and the cell list and
gate scatter (page load). Prints each request's median as a ratio to the reference request measured in the same
run (the 120 display lines coloured by a cell, what every scroll asks for). Writes
bench/results/explorer_latency.json with the load times, per-request median, p95 and max, the ratios and the
load average (1-minute, sampled before and after each phase).

    OMP_NUM_THREADS=1 RNNLENS_DATA=/work/shared/data .venv/bin/python bench/explorer_latency.py RUN [--split test] \
        [--cache DIR] [--repeats 50] [--threads 1] [--window 400] [--oracles] [--browser 20 --screenshot
        docs/img/explorer.png --screenshot-errors docs/img/explorer-errors.png --screenshot-plot
        docs/img/explorer-hidden-plot.png]

``--browser R`` adds R rounds in headless Chromium: clicking a cell in the list (the text is recoloured),
scrolling to a random line (it is drawn), hovering a character (its predictions show), selecting 5
characters (the search results show), brushing 5 positions on the hidden-state plot (the same search results
show), and the plot following the scroll (redrawn for the new window). ``browser_app_*`` is what the page itself measures (``performance.now()``
from the DOM event to the first frame after the update, including the HTTP request; hover includes the app's
40 ms debounce); ``browser_driver_*`` is the same from Python through Playwright, which adds its own
round trips (actionability checks, polling) and is an upper bound.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from rnnlens.data.splits import stream_split
from rnnlens.data.text import read_symbols
from rnnlens.explorer.data import load_explorer
from rnnlens.explorer.search import SearchConfig
from rnnlens.explorer.server import make_server, serve_in_thread
from rnnlens.run import load_model, load_splits, load_symbols

RESULTS = Path(__file__).resolve().parent / "results" / "explorer_latency.json"


def timed_get(conn: http.client.HTTPConnection, path: str) -> float:
    t = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    if r.status != 200:
        raise SystemExit(f"{path} answered {r.status}: {body[:200]!r}")
    return dt * 1000


def brush(pg, first: int, last: int) -> None:
    """Drag over window positions first..last on the hidden-state plot (as tests/test_explorer_plot_browser.py)."""
    st = pg.evaluate("() => { const c = document.getElementById('plot-canvas'); return [+c.dataset.start, +c.dataset.len, c.width]; }")
    box = pg.locator("#plot-svg").bounding_box()
    x = lambda p: box["x"] + (p - st[0] + 0.5) * st[2] / st[1]  # noqa: E731
    y = box["y"] + box["height"] / 2
    pg.mouse.move(x(first), y)
    pg.mouse.down()
    pg.mouse.move(x(last), y, steps=3)
    pg.mouse.up()


def browser_latency(url: str, data, repeats: int, rng: np.random.Generator, screenshot: str | None,
                    screenshot_errors: str | None = None, screenshot_plot: str | None = None) -> dict[str, list[float]]:
    """Interaction -> visible answer in headless Chromium (clock in Python, polling the page without sleeps)."""
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    got: dict[str, list[float]] = {"page_load": [], "driver_click_cell": [], "driver_scroll": [], "driver_hover": [],
                                   "driver_select_search": [], "driver_scroll_plot": [], "driver_brush_search": []}

    def until(pg, check) -> float:
        t = time.perf_counter()
        while not check():
            if time.perf_counter() - t > 30:
                raise SystemExit("the page did not answer within 30 s")
        return time.perf_counter()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        pg = browser.new_page(viewport={"width": 1400, "height": 800})
        t = time.perf_counter()
        pg.goto(url)
        pg.wait_for_selector("body[data-ready='1']", timeout=120_000)
        got["page_load"].append((time.perf_counter() - t) * 1000)
        bg = "() => [...document.querySelectorAll('#win span[data-p]')].slice(0, 300).map(e => e.className).join()"
        for _ in range(repeats):
            layer, index = int(rng.integers(0, data.layers)), int(rng.integers(0, data.hidden))
            before = pg.evaluate(bg)
            li = pg.locator(f"#cell-list li[data-cell='{layer}:{index}']")
            li.scroll_into_view_if_needed()
            t = time.perf_counter()
            li.click()
            got["driver_click_cell"].append((until(pg, lambda: pg.evaluate(bg) != before) - t) * 1000)
            line = int(rng.integers(0, len(data.line_starts) - 60))
            t = time.perf_counter()
            pg.evaluate(f"() => {{ document.getElementById('text').scrollTop = {line * 18}; }}")
            want = str(data.line_starts[line])
            got["driver_scroll"].append((until(pg, lambda: pg.locator(f"#win span[data-p='{want}']").count() > 0) - t) * 1000)
            plot_start = "() => document.getElementById('plot-canvas').dataset.start"
            got["driver_scroll_plot"].append((until(pg, lambda: pg.evaluate(plot_start) == want) - t) * 1000)
            span = pg.locator(f"#win span[data-p='{int(data.line_starts[line + 2]) + 1}']")
            t = time.perf_counter()
            span.hover()
            p = span.get_attribute("data-p")
            got["driver_hover"].append((until(pg, lambda: pg.locator("#pred").get_attribute("data-pos") == p) - t) * 1000)
            pg.evaluate("() => { document.getElementById('match-count').textContent = ''; }")
            t = time.perf_counter()
            pg.evaluate("""(p) => {
                const a = document.querySelector(`#win span[data-p='${p}']`), b = document.querySelector(`#win span[data-p='${p + 4}']`);
                const r = document.createRange(); r.setStart(a.firstChild, 0); r.setEnd(b.firstChild, 1);
                const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
                document.getElementById('text').dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
            }""", int(p))
            got["driver_select_search"].append((until(pg, lambda: pg.locator("#match-count").inner_text() != "") - t) * 1000)
            pg.evaluate("() => { document.getElementById('match-count').textContent = ''; }")
            t = time.perf_counter()
            brush(pg, int(want) + 10, int(want) + 14)
            got["driver_brush_search"].append((until(pg, lambda: pg.locator("#match-count").inner_text() != "") - t) * 1000)
        for t in pg.evaluate("() => window.rnnlensTimings"):  # measured inside the page (see app.js: mark)
            got.setdefault(f"app_{t['kind']}", []).append(t["ms"])
        if screenshot:  # the best cell for a memory feature (not a character detector), over the top of the text
            memory = [c for c in data.cells if c["feature"] not in (None, "uppercase", "in_word", "after_space")]
            best = max(memory or data.cells, key=lambda c: c["score"])
            pg.locator("#cell-filter").fill(f"{best['layer']}:{best['index']} ")
            pg.locator(f"#cell-list li[data-cell='{best['layer']}:{best['index']}']").click()
            pg.evaluate("() => { document.getElementById('text').scrollTop = 0; }")
            pg.wait_for_timeout(500)
            pg.screenshot(path=screenshot)
        if screenshot_plot:  # the plot over the top of the text with a cell selected and a brushed search
            pg.select_option("#color", "cell")
            pg.evaluate("() => { document.getElementById('text').scrollTop = 0; }")
            pg.wait_for_timeout(300)
            plot_shot(pg, data, screenshot_plot)
        if screenshot_errors and data.categories is not None:  # the text coloured by oracle error category
            pg.select_option("#color", "error")
            pg.evaluate("() => { document.getElementById('text').scrollTop = 0; }")
            pos = int(data.line_starts[3]) + 5
            pg.locator(f"#win span[data-p='{pos}']").hover()
            pg.wait_for_timeout(700)
            pg.screenshot(path=screenshot_errors)
        browser.close()
    return got


def plot_shot(pg, data, path: str) -> None:
    """Brush the first span of 3..12 characters in the plot's window whose search selects a cell of the shown
    layer and finds other matches, select its first cell, screenshot the plot with the text under it."""
    st = pg.evaluate("() => { const c = document.getElementById('plot-canvas'); return [+c.dataset.start, +c.dataset.len, +c.dataset.layer]; }")
    pick = None
    for length in (6, 8, 5, 10, 4, 12, 3):
        for s in range(st[0] + 20, st[0] + st[1] - length):
            res = data.search(s, s + length - 1, SearchConfig())
            if res["count"] >= 3 and any(c["layer"] == st[2] for c in res["cells"]):
                pick = (s, s + length - 1, next(c for c in res["cells"] if c["layer"] == st[2]))
                break
        if pick:
            break
    if pick:
        brush(pg, pick[0], pick[1])
        pg.wait_for_timeout(500)
        pg.locator("#search-cells a", has_text=f"{pick[2]['layer']}:{pick[2]['index']}").first.click()
    pg.wait_for_timeout(700)
    box = pg.locator("#center").bounding_box()
    pg.screenshot(path=path, clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": min(box["height"], 420)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--text", metavar="FILE", help="serve this text instead of a split (as rnnlens serve --text)")
    ap.add_argument("--cache", help="cache folder (default: RUN/explorer-<split>)")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--browser", type=int, default=0, metavar="R",
                    help="also time R rounds of interactions in headless Chromium (/usr/bin/chromium, playwright)")
    ap.add_argument("--screenshot", metavar="PNG", help="with --browser: save the final page here")
    ap.add_argument("--oracles", action="store_true", help="load the oracle error categories (serve --oracles) "
                    "and time the lines coloured by them")
    ap.add_argument("--screenshot-plot", metavar="PNG", help="with --browser: a screenshot of the hidden-state plot "
                    "after brushing a span")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; 0: torch's default)")
    ap.add_argument("--window", type=int, default=400, help="positions per /api/states request (the plot's window "
                    "at a 1400 px wide page is about 400)")
    ap.add_argument("--screenshot-errors", metavar="PNG", help="with --browser and --oracles: a screenshot of the "
                    "text coloured by error category")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = {"start": os.getloadavg()[0]}

    t0 = time.perf_counter()
    model, cfg, _ = load_model(args.run, "best", "cpu")
    if args.text:  # as rnnlens serve --text: the file's symbols as one stream in the run's batch of rows
        symbols = read_symbols(args.text, cfg.text)
        split, label = stream_split(cfg.vocab.encode(symbols), cfg.split.batch_size, "text"), f"text-{Path(args.text).stem}"
    else:
        split, symbols, label = load_splits(cfg)[args.split], load_symbols(cfg), args.split
    t1 = time.perf_counter()
    data = load_explorer(model, cfg, split, symbols, label, args.run, cache_dir=args.cache, oracles=args.oracles)
    t2 = time.perf_counter()
    load["loaded"] = os.getloadavg()[0]
    srv = make_server(data, "127.0.0.1", 0)
    serve_in_thread(srv)
    port = srv.server_address[1]
    rng = np.random.default_rng(args.seed)
    lines = len(data.line_starts)
    win_max = min(data.config.max_window, data.n)  # the largest window /api/states answers
    kinds: dict[str, list[float]] = {k: [] for k in ("lines_cell", "lines_loss", "predict", "search", "states",
                                                     f"states_{win_max}", "cells", "gates")}
    searches = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(args.repeats):
            first = int(rng.integers(0, max(1, lines - 120)))
            layer, index = int(rng.integers(0, data.layers)), int(rng.integers(0, data.hidden))
            kinds["lines_cell"].append(timed_get(conn, f"/api/lines?first={first}&count=120&color=cell&cell={layer}:{index}"))
            kinds["lines_loss"].append(timed_get(conn, f"/api/lines?first={first}&count=120&color=loss"))
            if args.oracles:
                kinds.setdefault("lines_error", []).append(
                    timed_get(conn, f"/api/lines?first={first}&count=120&color=error"))
            kinds["predict"].append(timed_get(conn, f"/api/predict?pos={int(rng.integers(0, data.n))}"))
            for tries in range(1, 1001):  # a span that selects at least one cell (most random spans select none)
                start = int(rng.integers(1, data.n - 21))
                end = start + int(rng.integers(2, 20))
                res = data.search(start, end, SearchConfig())
                if res["cells"]:
                    break
            kinds["search"].append(timed_get(conn, f"/api/search?start={start}&end={end}&threshold=0.3"))
            searches.append((len(res["cells"]), res["count"], tries))
            at = int(rng.integers(0, data.n - win_max + 1))
            kinds["states"].append(timed_get(conn, f"/api/states?start={at}&len={min(args.window, win_max)}&layer={layer}"))
            kinds[f"states_{win_max}"].append(timed_get(conn, f"/api/states?start={at}&len={win_max}&layer={layer}"))
            kinds["cells"].append(timed_get(conn, "/api/cells"))
            kinds["gates"].append(timed_get(conn, "/api/gates"))
        conn.close()
        load["http_done"] = os.getloadavg()[0]
        if args.browser:
            kinds.update({f"browser_{k}": v for k, v in browser_latency(
                f"http://127.0.0.1:{port}/", data, args.browser, rng, args.screenshot,
                args.screenshot_errors, args.screenshot_plot).items()})
            load["browser_done"] = os.getloadavg()[0]
    finally:
        srv.shutdown()
        srv.server_close()

    ref = statistics.median(kinds["lines_cell"])

    def stats(v: list[float]) -> dict[str, float]:
        s = sorted(v)
        return {"median_ms": round(statistics.median(s), 2), "p95_ms": round(s[int(0.95 * (len(s) - 1))], 2),
                "max_ms": round(s[-1], 2)}

    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
           "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "command": " ".join([sys.executable, *sys.argv]), "run": str(args.run), "split": label,
           "chars": data.n, "cells": data.layers * data.hidden, "values_mb": round(data.values.nbytes / 1e6, 1),
           "load_model_and_text_s": round(t1 - t0, 2), "load_or_build_cache_s": round(t2 - t1, 2),
           "repeats": args.repeats, "window": args.window, "load_average_1min": load,
           "requests": {k: stats(v) for k, v in kinds.items()},
           "reference": "lines_cell", "ratio_to_reference": {k: round(statistics.median(v) / ref, 2)
                                                             for k, v in kinds.items() if k != "lines_cell"},
           "search_selected_cells_median": statistics.median(c for c, _, _ in searches),
           "search_matches_median": statistics.median(m for _, m, _ in searches),
           "search_spans_tried_per_hit": round(sum(t for _, _, t in searches) / len(searches), 1)}
    for k, v in out["requests"].items():
        print(f"{k:32s} median {v['median_ms']:8.2f} ms  p95 {v['p95_ms']:8.2f}  max {v['max_ms']:8.2f}"
              + (f"  {out['ratio_to_reference'][k]:.2f}x lines_cell" if k in out["ratio_to_reference"] else "  (reference)"))
    print(f"load average (1 min): {load}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
