"""The explorer's browser app (HTML, CSS, JavaScript) as strings: served from this fixed table, nothing from
the network (no CDN, no web fonts) and nothing read from disk per request."""

from __future__ import annotations

from .plot_assets import PLOT_CSS, PLOT_HTML, PLOT_JS

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlens explorer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/app.css"></head>
<body>
<header>
  <b>rnnlens explorer</b> <span id="info">loading...</span>
  <label>colour by <select id="color"><option value="cell">selected cell</option><option value="loss">loss</option><option value="error" disabled>oracle error category</option><option value="ablation">loss change with the selected cell ablated (set to 0)</option></select></label>
  <label>threshold <input id="threshold" type="number" min="-1" max="1" step="0.05" value="0.3"></label>
  <span id="selected">no cell selected</span> <span id="status"></span>
</header>
<main>
  <aside id="left">
    <input id="cell-filter" type="search" placeholder="filter cells: 1:12, quote, line_pos">
    <ul id="cell-list"></ul>
  </aside>
  <section id="center">
    @PLOT@<div id="text" tabindex="0"><div id="spacer"></div><div id="win"></div></div>
    <div id="catlegend" hidden></div>
    <div id="legend">select text to search for cells that are on throughout it and off around it; hover a character for predictions; a dashed line starts another row stream of the split</div>
  </section>
  <aside id="right">
    <h3>Prediction</h3><div id="pred">hover a character</div>
    <h3>Pattern search <span id="match-count"></span></h3><div id="search-cells"></div><ol id="search-results"></ol>
    <h3>Gate saturation</h3><div id="gates"></div>
  </aside>
</main>
<script src="/app.js"></script>
</body></html>
""".replace("@PLOT@", PLOT_HTML)

APP_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.3 system-ui, sans-serif; color: #222; height: 100vh; display: flex; flex-direction: column; }
header { padding: 6px 10px; background: #f3f3f3; border-bottom: 1px solid #ccc; display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }
header input { width: 5em; }
main { flex: 1; display: flex; min-height: 0; }
#left { width: 250px; display: flex; flex-direction: column; border-right: 1px solid #ccc; }
#cell-filter { margin: 6px; }
#cell-list { list-style: none; margin: 0; padding: 0; overflow-y: auto; flex: 1; font-family: monospace; }
#cell-list li { padding: 2px 6px; cursor: pointer; white-space: nowrap; }
#cell-list li:hover { background: #eef; }
#cell-list li.active { background: #cde; font-weight: bold; }
#center { flex: 1; display: flex; flex-direction: column; min-width: 0; }
#text { flex: 1; overflow-y: auto; position: relative; font: 14px/18px monospace; outline: none; }
#spacer { width: 1px; }
#win { position: absolute; left: 0; right: 0; top: 0; padding-left: 8px; }
.line { height: 18px; white-space: pre; }
.line span { cursor: default; }
.line span.match { box-shadow: inset 0 -3px 0 #f90; }
.line.rowstart { border-top: 1px dashed #999; }
#legend { padding: 4px 8px; color: #666; border-top: 1px solid #ccc; }
#catlegend { padding: 4px 8px; border-top: 1px solid #ccc; }
.swatch { padding: 0 4px; margin-right: 4px; }
#pred-category { margin-top: 4px; font-weight: bold; }
#right { width: 340px; border-left: 1px solid #ccc; overflow-y: auto; padding: 0 8px; }
#right h3 { margin: 10px 0 4px; font-size: 13px; }
#pred table { border-collapse: collapse; font-family: monospace; }
#pred td { padding: 0 6px; }
#search-results { padding-left: 22px; font-family: monospace; max-height: 320px; overflow-y: auto; margin: 4px 0; }
#search-results li { cursor: pointer; margin: 2px 0; white-space: pre; overflow: hidden; text-overflow: ellipsis; }
#search-results li b { background: #fd8; font-weight: normal; }
#search-cells { font-family: monospace; }
#search-cells a { cursor: pointer; color: #24a; margin-right: 6px; }
#gates { display: flex; flex-wrap: wrap; gap: 6px; }
.plot { font-size: 11px; text-align: center; }
.plot svg { border: 1px solid #bbb; background: #fff; }
.plot circle { fill: #36c; fill-opacity: 0.6; cursor: pointer; }
.plot circle.active { fill: #e30; fill-opacity: 1; }
.error { color: #b00; }
""" + PLOT_CSS

APP_JS = r"""
'use strict';
const LH = 18, MARGIN = 25;
const S = { info: null, cell: null, color: 'cell', first: -1, count: 0, seq: 0, matches: [], hoverTimer: null, predSeq: 0 };
const $ = (id) => document.getElementById(id);
window.rnnlensTimings = [];  // {kind, ms}: event to the next frame after the DOM update (read by bench/explorer_latency.py)
function mark(kind, t0) { requestAnimationFrame(() => window.rnnlensTimings.push({ kind, ms: performance.now() - t0 })); }

async function api(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.status);
  return body;
}
function status(msg, bad) { const s = $('status'); s.textContent = msg; s.className = bad ? 'error' : ''; }

const esc = (g) => g.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
// colour classes (defined in app.css, so no inline style is needed): c0..c40 for -1..+1, l0..l20 for 0..5 nats
const cellClass = (v) => 'c' + (Math.round(Math.max(-1, Math.min(1, v)) * 20) + 20);
// loss and error values sit on the predicted character; null: not predicted (first column of a row)
const lossClass = (v) => (v === null ? '' : 'l' + Math.round(Math.max(0, Math.min(1, v / 5)) * 20));
// ablation: the loss change (nats) on each predicted character, blue where the ablation hurts, full colour at 1 nat
const ablClass = (v) => (v === null ? '' : cellClass(v));
const errClass = (v) => (v !== null && v >= 0 ? 'e' + v : '');  // oracle family 0..6 (/api/info oracles.families); -1 correct

function visibleWindow() {
  const box = $('text');
  const top = Math.floor(box.scrollTop / LH);
  const rows = Math.ceil(box.clientHeight / LH) + 1;
  const first = Math.max(0, top - MARGIN);
  const count = Math.min(S.info.max_lines, rows + 2 * MARGIN, S.info.lines - first);
  return [first, count, top, rows];
}

// withPlot (scrolling): the request also carries the hidden-state plot's window and its
// answer the states, so the text and the plot cost one round trip (plotQuery, plotShow in the plot's code)
async function render(force, withPlot, t0) {
  if (!S.info) return;
  const [first, count, top, rows] = visibleWindow();
  const loadedEnd = S.first + S.count;
  if (!force && S.first >= 0 && top >= S.first && Math.min(top + rows, S.info.lines) <= loadedEnd) return false;
  const seq = ++S.seq;
  let q = `/api/lines?first=${first}&count=${count}&color=${S.color}`;
  if (S.cell) q += `&cell=${S.cell[0]}:${S.cell[1]}`;
  const plotSeq = withPlot && top < first + count ? ++PLOT.seq : 0;
  if (plotSeq) q += plotQuery();
  try {
    const d = await api(q);
    if (seq !== S.seq) return false;
    draw(d);
    if (d.states && plotSeq === PLOT.seq) plotShow(d.states, t0);
    return true;
  } catch (e) { status(e.message, true); return false; }
}

function draw(d) {
  const win = $('win');
  const paint = S.color === 'loss' ? lossClass : S.color === 'error' ? errClass : S.color === 'ablation' ? ablClass : S.cell ? cellClass : null;
  const html = [];
  for (let i = 0; i < d.starts.length; i++) {
    const a = d.starts[i], b = i + 1 < d.starts.length ? d.starts[i + 1] : d.end;
    html.push(a % S.info.cols === 0 && a > 0 ? '<div class="line rowstart">' : '<div class="line">');
    for (let p = a; p < b; p++) {
      const k = p - d.starts[0];
      const cls = (paint ? paint(d.values[k]) : '') + (inMatch(p) ? ' match' : '');
      html.push(`<span data-p="${p}" class="${cls}">${esc(d.glyphs[k])}</span>`);
    }
    html.push('</div>');
  }
  win.innerHTML = html.join('');
  win.style.top = (d.first * LH) + 'px';
  S.first = d.first; S.count = d.starts.length; S.lines = { first: d.first, starts: d.starts, end: d.end };
  win.dataset.first = d.first;
  markPlotted();
}
function inMatch(p) { return S.matches.some((m) => p >= m.start && p <= m.end); }

async function selectCell(layer, index) {
  const t0 = performance.now();
  S.cell = [layer, index];
  if (S.color !== 'ablation') { S.color = 'cell'; $('color').value = 'cell'; }
  $('catlegend').hidden = true;
  $('selected').textContent = `cell ${layer}:${index}`;
  for (const li of document.querySelectorAll('#cell-list li')) li.classList.toggle('active', li.dataset.cell === `${layer}:${index}`);
  for (const c of document.querySelectorAll('.plot circle')) c.classList.toggle('active', c.dataset.cell === `${layer}:${index}`);
  plotCell(layer);
  if (await render(true)) mark('cell', t0);
}

async function loadCells() {
  const d = await api('/api/cells');
  const cells = d.cells.slice().sort((a, b) => b.score - a.score);
  const ul = $('cell-list');
  for (const c of cells) {
    const li = document.createElement('li');
    li.dataset.cell = `${c.layer}:${c.index}`;
    const feat = c.feature ? `${c.feature} ${c.score.toFixed(2)}${c.sign > 0 ? '+' : '-'}` : '-';
    li.textContent = `${c.layer}:${c.index}  ${feat}`;
    li.title = c.feature ? `${c.metric === 'auc' ? 'ROC AUC' : '|Pearson r|'} with ${c.feature}` : 'no feature scored';
    li.addEventListener('click', () => selectCell(c.layer, c.index));
    ul.appendChild(li);
  }
  $('cell-filter').addEventListener('input', (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const li of ul.children) li.style.display = !q || li.textContent.toLowerCase().includes(q) ? '' : 'none';
  });
}

async function loadGates() {
  const d = await api('/api/gates');
  const box = $('gates'), W = 150, NS = 'http://www.w3.org/2000/svg';
  if (!d.gates.length) { box.textContent = 'this model has no gates'; return; }
  for (const g of d.gates) {
    const div = document.createElement('div');
    div.className = 'plot';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('width', W); svg.setAttribute('height', W);
    const diag = document.createElementNS(NS, 'line');
    for (const [k, v] of [['x1', 0], ['y1', 0], ['x2', W], ['y2', W], ['stroke', '#aaa'], ['stroke-dasharray', '3,3']]) diag.setAttribute(k, v);
    svg.appendChild(diag);
    g.left.forEach((x, i) => {
      const c = document.createElementNS(NS, 'circle');
      c.setAttribute('cx', 4 + x * (W - 8)); c.setAttribute('cy', W - 4 - g.right[i] * (W - 8)); c.setAttribute('r', 3.5);
      c.classList.add('point');
      c.dataset.cell = `${g.layer}:${i}`;
      const t = document.createElementNS(NS, 'title');
      t.textContent = `${g.layer}:${i} left ${x.toFixed(3)} right ${g.right[i].toFixed(3)}`;
      c.appendChild(t);
      c.addEventListener('click', () => selectCell(g.layer, i));
      svg.appendChild(c);
    });
    const cap = document.createElement('div');
    cap.textContent = `layer ${g.layer} ${g.gate.replace('_', ' ')}`;
    div.appendChild(svg); div.appendChild(cap); box.appendChild(div);
  }
  const axes = document.createElement('div');
  axes.className = 'plot';
  axes.textContent = 'x: fraction left-saturated (<0.1), y: right-saturated (>0.9)';
  box.appendChild(axes);
}

function showPred(d) {
  const pred = $('pred');
  const ab = d.ablated;
  const cand = (t) => (t ? `${JSON.stringify(t.char)} ${t.prob.toFixed(3)}` : '');
  const rows = [['', 'model', d.ngram ? `${S.info.ngram}-gram` : '', ab ? `${ab.cell} ablated` : '']];
  for (let i = 0; i < d.top.length; i++) {
    rows.push([String(i + 1), cand(d.top[i]), d.ngram ? cand(d.ngram.top[i]) : '', ab ? cand(ab.top[i]) : '']);
  }
  rows.push(['next', `${JSON.stringify(d.actual)} ${d.prob.toFixed(3)}`, d.ngram ? d.ngram.prob.toFixed(3) : '', ab ? ab.prob.toFixed(3) : '']);
  const table = document.createElement('table');
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const c of r) { const td = document.createElement('td'); td.textContent = c; tr.appendChild(td); }
    table.appendChild(tr);
  }
  const head = document.createElement('div');
  head.textContent = `after position ${d.pos} (${JSON.stringify(d.char)}): loss ${d.loss.toFixed(3)} nats`;
  const parts = [head, table];
  if (d.here) {
    const here = document.createElement('div');
    here.id = 'pred-category';
    const c = d.here.category;
    const what = !c ? '' : c === 'correct' ? ', correct' : c === 'remaining' ? ', an error no oracle removes' : `, an error the ${c} oracle removes`;
    here.textContent = `${JSON.stringify(d.char)} itself: P = ${d.here.prob.toFixed(3)}${what}`;
    parts.push(here);
  }
  pred.replaceChildren(...parts);
  pred.dataset.pos = d.pos;
}

function onHover(e) {
  const sp = e.target.closest('span[data-p]');
  if (!sp) return;
  const t0 = performance.now();
  clearTimeout(S.hoverTimer);
  S.hoverTimer = setTimeout(async () => {
    const seq = ++S.predSeq;
    const abl = S.color === 'ablation' && S.cell ? `&ablate=${S.cell[0]}:${S.cell[1]}` : '';
    try { const d = await api(`/api/predict?pos=${sp.dataset.p}${abl}`); if (seq === S.predSeq) { showPred(d); mark('hover', t0); } }
    catch (err) { status(err.message, true); }
  }, 40);
}

async function onSelect(t0) {
  const sel = window.getSelection();
  if (!sel || sel.isCollapsed || !sel.anchorNode || !sel.focusNode) return;
  const a = sel.anchorNode.parentElement && sel.anchorNode.parentElement.closest('span[data-p]');
  const b = sel.focusNode.parentElement && sel.focusNode.parentElement.closest('span[data-p]');
  if (!a || !b) return;
  let start = +a.dataset.p, end = +b.dataset.p;
  if (start > end) [start, end] = [end, start];
  if (sel.focusOffset === 0 && end > start && +b.dataset.p === end) end -= 1;
  PLOT.brush = null;
  await runSearch(start, end, t0, 'search');
}

// the pattern search of positions start..end (inclusive): selecting text and brushing the plot both come here
async function runSearch(start, end, t0, kind) {
  if (end - start > 999) { status('select at most 1000 characters', true); return; }
  const th = parseFloat($('threshold').value);
  try {
    const d = await api(`/api/search?start=${start}&end=${end}&threshold=${isFinite(th) ? th : 0.3}`);
    await showSearch(d);
    mark(kind, t0);
  } catch (err) { status(err.message, true); }
}

async function showSearch(d) {
  $('match-count').textContent = `${d.count} match${d.count === 1 ? '' : 'es'}`;
  const cells = $('search-cells');
  cells.replaceChildren();
  if (!d.cells.length) cells.textContent = 'no cell is on throughout the selection and off around it; lower the threshold or select another span';
  for (const c of d.cells) {
    const a = document.createElement('a');
    a.textContent = `${c.layer}:${c.index}`;
    a.addEventListener('click', () => selectCell(c.layer, c.index));
    cells.appendChild(a);
  }
  const ol = $('search-results');
  ol.replaceChildren();
  for (const m of d.matches) {
    const li = document.createElement('li');
    const len = m.end - m.start + 1;
    li.append(m.text.slice(0, m.offset));
    const b = document.createElement('b'); b.textContent = m.text.slice(m.offset, m.offset + len); li.append(b);
    li.append(m.text.slice(m.offset + len));
    li.title = `position ${m.start}..${m.end}, length similarity ${m.score}, sharp ends ${m.sharp}${m.query ? ' (the selection)' : ''}`;
    li.addEventListener('click', () => { $('text').scrollTop = Math.max(0, (m.line - 3) * LH); render(true); });
    ol.appendChild(li);
  }
  S.matches = d.matches;
  plotShowSearch(d);
  await render(true);
}

function setupCategories(o) {
  const opt = document.querySelector('#color option[value="error"]');
  opt.disabled = false;
  const box = $('catlegend');
  const head = document.createElement('span');
  head.textContent = `${o.errors.toLocaleString()} errors (P < ${o.threshold}) in ${o.chars.toLocaleString()} characters, removed by: `;
  box.appendChild(head);
  o.families.forEach((f, k) => {
    const sw = document.createElement('span');
    sw.className = 'e' + k + ' swatch';
    sw.textContent = `${f} ${o.counts[k].toLocaleString()} (${(100 * o.counts[k] / Math.max(o.errors, 1)).toFixed(1)}%)`;
    box.appendChild(sw);
  });
}

async function init() {
  try {
    S.info = await api('/api/info');
    const i = S.info;
    $('info').textContent = `${i.layers}-layer ${i.cell.toUpperCase()}, ${i.hidden} cells/layer, ${i.state}; ${i.label}: ${i.chars.toLocaleString()} characters, mean loss ${i.mean_loss.toFixed(3)} nats`;
    $('threshold').value = i.threshold;
    $('spacer').style.height = (i.lines * LH + 8) + 'px';
    if (i.oracles) setupCategories(i.oracles);
    $('color').addEventListener('change', (e) => { S.color = e.target.value; $('catlegend').hidden = S.color !== 'error'; render(true); });
    const box = $('text');
    box.addEventListener('scroll', () => {
      const t0 = performance.now();
      requestAnimationFrame(async () => { if (await render(false, true, t0)) mark('scroll', t0); plotFollow(t0); });
    });
    box.addEventListener('mouseover', onHover);
    box.addEventListener('mouseup', () => { const t0 = performance.now(); setTimeout(() => onSelect(t0), 0); });
    plotInit();
    await Promise.all([loadCells(), loadGates(), render(true)]);
    await plotFollow();
    status('ready');
    document.body.dataset.ready = '1';
  } catch (e) { status(e.message, true); }
}
""" + PLOT_JS + "init();\n"



def _colour_classes() -> str:
    """CSS classes for the heatmap: ``c0..c40`` for values -1..+1 (RdBu-like: red, white, blue) and ``l0..l20``
    for a loss of 0..5 nats (white to dark red); dark boxes get white text."""
    def mix(to: tuple[int, int, int], t: float) -> str:
        return "rgb({},{},{})".format(*(round(255 + (c - 255) * t) for c in to))

    rules = []
    for k in range(41):
        v = (k - 20) / 20
        fg = " color: #fff;" if abs(v) > 0.6 else ""
        rules.append(f".c{k} {{ background: {mix((178, 24, 43) if v < 0 else (33, 102, 172), abs(v))};{fg} }}")
    for k in range(21):
        fg = " color: #fff;" if k / 20 > 0.6 else ""
        rules.append(f".l{k} {{ background: {mix((165, 0, 38), k / 20)};{fg} }}")
    # oracle families (ngram memory rare word punct boost remaining): qualitative colours, light enough for text
    for k, col in enumerate(("#fdb462", "#80b1d3", "#b3de69", "#fccde5", "#bebada", "#ffffb3", "#fb8072")):
        rules.append(f".e{k} {{ background: {col}; }}")
    return "\n".join(rules) + "\n"


APP_CSS += _colour_classes()

ASSETS: dict[str, tuple[str, bytes]] = {
    "/": ("text/html; charset=utf-8", INDEX_HTML.encode("utf-8")),
    "/index.html": ("text/html; charset=utf-8", INDEX_HTML.encode("utf-8")),
    "/app.js": ("text/javascript; charset=utf-8", APP_JS.encode("utf-8")),
    "/app.css": ("text/css; charset=utf-8", APP_CSS.encode("utf-8")),
}
