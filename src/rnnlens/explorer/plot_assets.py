"""The explorer's hidden-state plot (LSTMVis' line plot) as strings that :mod:`.assets` puts into the page:
its HTML above the text view, its CSS, and its JavaScript (no library, no network).

What it draws, for the plot's window of the text (the visible lines from the top one, at most
``plot width / MIN_PX`` positions, so every character keeps at least MIN_PX pixels to brush on):

- every cell of the chosen layer as a faint line (opacity min(0.16, 6 / cells)) over the window's positions, rasterised into a canvas by
  the page itself (one stroke per cell: a pixel a cell passes through several times counts once, and
  overlapping cells darken it as alpha blending would), so a few hundred cells over hundreds of positions
  draw in milliseconds;
- the selected cell (orange) and the cells of the current pattern-search result (green) as SVG polylines;
- the search threshold as a dashed horizontal line, and a tick where each display line starts.

Dragging over the plot (brushing) selects that range of positions and runs the same search as selecting
that text (``runSearch`` in :mod:`.assets`). A scroll costs one request: when it needs new text lines, their
``/api/lines`` request carries the plot's window (``plotQuery``: ``plot_layer``, ``plot_line``, ``plot_rows``,
``plot_len``) and its answer the states; otherwise (the lines are loaded already, or on resizing, choosing a
layer or selecting a cell of another layer) the plot fetches ``/api/states`` for its window alone.
"""

from __future__ import annotations

PLOT_HTML = """<div id="hplot">
  <div id="hplot-head"><label>hidden-state plot, layer <select id="plot-layer"></select></label>
    <span id="plot-caption"></span>
    <span class="plot-key"><i class="k-sel"></i>selected cell <i class="k-search"></i>search result cells <i class="k-th"></i>threshold</span></div>
  <div id="hplot-box"><canvas id="plot-canvas" height="150"></canvas><svg id="plot-svg" height="150"></svg></div>
</div>
"""

PLOT_CSS = """
#hplot { border-bottom: 1px solid #ccc; padding: 2px 8px 4px; }
#hplot-head { display: flex; gap: 12px; align-items: center; color: #555; font-size: 12px; flex-wrap: wrap; }
#hplot-box { position: relative; height: 150px; }
#plot-canvas, #plot-svg { position: absolute; left: 0; top: 0; }
#plot-canvas { background: #fff; }
#plot-svg { cursor: crosshair; user-select: none; }
#plot-svg polyline { fill: none; pointer-events: none; }
#plot-svg polyline.sel { stroke: #e6550d; stroke-width: 2; }
#plot-svg polyline.search { stroke: #2ca02c; stroke-width: 1.5; }
#plot-svg line.threshold { stroke: #333; stroke-dasharray: 5,4; stroke-width: 1; }
#plot-svg line.zero { stroke: #ccc; stroke-width: 1; }
#plot-svg line.tick { stroke: #ddd; stroke-width: 1; }
#plot-svg text.axis { font-size: 9px; fill: #888; pointer-events: none; }
#plot-svg rect.brush { fill: #fc0; fill-opacity: 0.3; stroke: #c90; }
.plot-key i { display: inline-block; width: 16px; height: 0; vertical-align: middle; margin: 0 3px 0 6px; }
.plot-key .k-sel { border-top: 2px solid #e6550d; }
.plot-key .k-search { border-top: 2px solid #2ca02c; }
.plot-key .k-th { border-top: 1px dashed #333; }
.line.plotted { box-shadow: inset 3px 0 0 #8a8; }
"""

PLOT_JS = r"""
// ---- hidden-state plot (see rnnlens/explorer/plot_assets.py) ----
const MIN_PX = 2, PLOT_PAD = 6, SVGNS = 'http://www.w3.org/2000/svg';
const PLOT = { layer: 0, start: -1, len: 0, cells: 0, vals: null, seq: 0, searchCells: [], brush: null, lines: [0, 0] };
const F16 = (() => {  // float16 bits -> value, one table for all decoding
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
    t[h] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return t;
})();

function plotSize() { return [Math.max(50, $('hplot-box').clientWidth), 150]; }
const plotX = (p, W) => ((p + 0.5) * W) / PLOT.len;  // centre of window position p (0-based)
const plotY = (v, H) => PLOT_PAD + ((1 - Math.max(-1, Math.min(1, v))) / 2) * (H - 2 * PLOT_PAD);

function plotSpan() {  // [top line, visible rows, most positions] of the plot's window (/api/lines' plot_*)
  const box = $('text');
  return [Math.floor(box.scrollTop / LH), Math.max(1, Math.ceil(box.clientHeight / LH)),
          Math.min(Math.floor(plotSize()[0] / MIN_PX), S.info.max_window)];
}
// the plot's window asked for with the lines (server: ExplorerData.plot_window computes it as plotWindow does)
function plotQuery() { const [top, rows, most] = plotSpan(); return `&plot_layer=${PLOT.layer}&plot_line=${top}&plot_rows=${rows}&plot_len=${most}`; }

function plotWindow() {  // [start, len, first line, last line] of the visible text, or null when not loaded
  const L = S.lines;
  if (!L) return null;
  const [top, rows, most] = plotSpan();
  const i0 = top - L.first;
  if (i0 < 0 || i0 >= L.starts.length) return null;
  const a = L.starts[i0], iEnd = i0 + rows;
  const b = iEnd < L.starts.length ? L.starts[iEnd] : L.end;
  const len = Math.max(1, Math.min(b - a, most));
  return [a, len, top, plotLastLine(i0, a + len)];
}
function plotLastLine(i, end) {  // the last loaded display line from index i that starts before position end
  const L = S.lines;
  while (i + 1 < L.starts.length && L.starts[i + 1] < end) i++;
  return L.first + i;
}

function markPlotted() {  // a bar left of the text lines the plot covers
  const kids = $('win').children, [a, b] = PLOT.lines;
  for (let i = 0; i < kids.length; i++) kids[i].classList.toggle('plotted', S.first + i >= a && S.first + i <= b);
}

async function plotFollow(t0, force) {
  const w = plotWindow();
  if (!w) return;
  const [start, len, l0, l1] = w;
  PLOT.lines = [l0, l1];
  markPlotted();
  if (!force && start === PLOT.start && len === PLOT.len && PLOT.layer === PLOT.shownLayer) return;
  const seq = ++PLOT.seq, layer = PLOT.layer;
  try {
    const d = await api(`/api/states?start=${start}&len=${len}&layer=${layer}`);
    if (seq === PLOT.seq) plotShow(d, t0);
  } catch (e) { status(e.message, true); }
}

function plotShow(d, t0) {  // draw an /api/states answer (or the states of an /api/lines answer)
  const bin = atob(d.values), u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  const u16 = new Uint16Array(u8.buffer), vals = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) vals[i] = F16[u16[i]];
  Object.assign(PLOT, { start: d.start, len: d.len, cells: d.cells, vals, shownLayer: d.layer });
  const L = S.lines, i0 = L.starts.findIndex((s, i) => s <= d.start && (i + 1 === L.starts.length || L.starts[i + 1] > d.start));
  const lines = i0 < 0 ? '' : ` (lines ${L.first + i0}..${plotLastLine(i0, d.start + d.len)})`;
  $('plot-caption').textContent = `${d.state}, ${d.cells} cells; positions ${d.start}..${d.start + d.len - 1}${lines}; drag to search a range`;
  drawFaint();
  drawStrong();
  if (t0 !== undefined) mark('plot', t0);
}

function drawFaint() {  // every cell of the layer: one faint stroke each, rasterised here
  const cv = $('plot-canvas'), [W, H] = plotSize(), n = PLOT.len, C = PLOT.cells, v = PLOT.vals;
  if (cv.width !== W) cv.width = W;
  const ctx = cv.getContext('2d'), img = ctx.createImageData(W, H);
  const faint = Math.min(0.16, 6 / C);  // one cell's opacity: a few hundred overlapping cells still leave shades
  const count = new Uint16Array(W * H), stamp = new Int32Array(W * H).fill(-1);
  const hit = (x, y0, y1, c) => {
    for (let y = Math.max(0, Math.floor(y0)); y <= Math.min(H - 1, Math.floor(y1)); y++) {
      const k = y * W + x;
      if (stamp[k] !== c) { stamp[k] = c; count[k]++; }
    }
  };
  for (let c = 0; c < C; c++) {
    const row = c * n;
    if (n === 1) { const y = plotY(v[row], H); hit(Math.floor(plotX(0, W)), y, y, c); continue; }
    for (let p = 0; p + 1 < n; p++) {
      const xa = plotX(p, W), xb = plotX(p + 1, W), ya = plotY(v[row + p], H), yb = plotY(v[row + p + 1], H);
      for (let x = Math.floor(xa); x <= Math.min(W - 1, Math.floor(xb)); x++) {
        const ta = Math.max(0, (x - xa) / (xb - xa)), tb = Math.min(1, (x + 1 - xa) / (xb - xa));
        const y0 = ya + ta * (yb - ya), y1 = ya + tb * (yb - ya);
        hit(x, Math.min(y0, y1), Math.max(y0, y1), c);
      }
    }
  }
  for (let k = 0; k < count.length; k++) {
    if (!count[k]) continue;
    img.data[4 * k] = 40; img.data[4 * k + 1] = 60; img.data[4 * k + 2] = 110;
    img.data[4 * k + 3] = Math.round(255 * (1 - (1 - faint) ** count[k]));
  }
  ctx.putImageData(img, 0, 0);
  cv.dataset.lines = C; cv.dataset.faint = faint;
  cv.dataset.start = PLOT.start; cv.dataset.len = n; cv.dataset.layer = PLOT.shownLayer;
}

function svgEl(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  parent.appendChild(e);
  return e;
}

function drawStrong() {  // ticks, zero and threshold lines, the search result's cells, the selected cell, the brush
  const svg = $('plot-svg'), [W, H] = plotSize(), n = PLOT.len;
  svg.setAttribute('width', W);
  svg.replaceChildren();
  if (!PLOT.vals) return;
  const L = S.lines;
  for (let i = 0; L && i < L.starts.length; i++) {
    const p = L.starts[i] - PLOT.start;
    if (p > 0 && p < n) { const x = (p * W) / n; svgEl('line', { x1: x, x2: x, y1: 0, y2: H, class: 'tick' }, svg); }
  }
  svgEl('line', { x1: 0, x2: W, y1: plotY(0, H), y2: plotY(0, H), class: 'zero' }, svg);
  for (const v of [1, 0, -1]) svgEl('text', { x: 2, y: plotY(v, H) + (v > 0 ? 8 : v < 0 ? -1 : 3), class: 'axis' }, svg).textContent = v > 0 ? '+1' : String(v);
  const th = parseFloat($('threshold').value), y = plotY(isFinite(th) ? th : 0.3, H);
  svgEl('line', { x1: 0, x2: W, y1: y, y2: y, class: 'threshold' }, svg);
  const line = (i, cls) => {
    const pts = [];
    for (let p = 0; p < n; p++) pts.push(`${plotX(p, W).toFixed(2)},${plotY(PLOT.vals[i * n + p], H).toFixed(2)}`);
    const pl = svgEl('polyline', { points: pts.join(' '), class: cls, 'data-cell': `${PLOT.shownLayer}:${i}` }, svg);
    svgEl('title', {}, pl).textContent = `cell ${PLOT.shownLayer}:${i}`;
  };
  for (const c of PLOT.searchCells) if (c.layer === PLOT.shownLayer) line(c.index, 'strong search');
  if (S.cell && S.cell[0] === PLOT.shownLayer) line(S.cell[1], 'strong sel');
  if (PLOT.brush) {
    const [a, b] = [Math.min(PLOT.brush.p0, PLOT.brush.p1), Math.max(PLOT.brush.p0, PLOT.brush.p1)];
    svgEl('rect', { x: ((a - PLOT.start) * W) / n, y: 0, width: ((b - a + 1) * W) / n, height: H, class: 'brush' }, svg);
  }
  svg.dataset.strong = svg.querySelectorAll('polyline.strong').length;
}

function plotPos(e) {  // the window position under the mouse
  const r = $('plot-svg').getBoundingClientRect();
  return PLOT.start + Math.max(0, Math.min(PLOT.len - 1, Math.floor(((e.clientX - r.left) * PLOT.len) / r.width)));
}

function plotShowSearch(d) { PLOT.searchCells = d.cells; drawStrong(); }
function plotCell(layer) {  // a cell was selected: show its layer
  if (layer !== PLOT.layer) { PLOT.layer = layer; $('plot-layer').value = layer; plotFollow(undefined, true); } else drawStrong();
}

function plotInit() {
  const sel = $('plot-layer');
  for (let k = 0; k < S.info.layers; k++) { const o = document.createElement('option'); o.value = k; o.textContent = k; sel.appendChild(o); }
  sel.addEventListener('change', () => { PLOT.layer = +sel.value; plotFollow(performance.now(), true); });
  $('threshold').addEventListener('input', drawStrong);
  window.addEventListener('resize', () => plotFollow(undefined, true));
  const svg = $('plot-svg');
  svg.addEventListener('mousedown', (e) => {
    if (!PLOT.vals || e.button !== 0) return;
    e.preventDefault();
    const p = plotPos(e);
    PLOT.brush = { p0: p, p1: p, x0: e.clientX, moved: false };
    drawStrong();
  });
  window.addEventListener('mousemove', (e) => {
    if (!PLOT.brush || PLOT.brush.done) return;
    PLOT.brush.p1 = plotPos(e);
    PLOT.brush.moved = PLOT.brush.moved || Math.abs(e.clientX - PLOT.brush.x0) > 2;
    drawStrong();
  });
  window.addEventListener('mouseup', () => {
    const b = PLOT.brush;
    if (!b || b.done) return;
    b.done = true;
    const t0 = performance.now();
    if (!b.moved) { PLOT.brush = null; drawStrong(); return; }  // a click is not a range
    runSearch(Math.min(b.p0, b.p1), Math.max(b.p0, b.p1), t0, 'brush');
  });
}
"""
