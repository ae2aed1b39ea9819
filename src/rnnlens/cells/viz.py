"""Drawing cells over text (the paper's Figure 2) and the tanh(c) histogram (its supplementary figure).

Colours: a value in [-1, 1] (tanh(c), or h) maps through matplotlib's ``RdBu`` colormap, -1 red, 0 white,
+1 blue; values outside are clipped. Each character gets one box. How characters are shown:

* a line end: LF as ``↵`` then a new line; CR as ``←`` (so CRLF shows ``←↵``);
* a tab as ``→`` in a box that reaches the next tab stop (every 8 columns);
* other control characters as ``·``; with byte units a multibyte UTF-8 character shows on its first byte
  and its other bytes as ``·`` (every byte has its own state);
* lines longer than ``width`` columns wrap.

Outputs: a self-contained HTML page (inline CSS, no scripts or network; each character's value in its
tooltip) and a PNG (matplotlib, monospace text on coloured boxes).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..exceptions import RnnlensError
from ..fsutil import atomic_write, atomic_write_text

TAB_STOP = 8
LF, CR, TAB, HIDDEN = "\u21b5", "\u2190", "\u2192", "\u00b7"


def glyphs(symbols: Sequence[int] | np.ndarray, unit: str) -> list[str]:
    """One display string per symbol (see the module docstring)."""
    out: list[str] = []
    syms = [int(s) for s in np.asarray(symbols).reshape(-1)]
    i = 0
    while i < len(syms):
        s = syms[i]
        if s == 10:
            out.append(LF)
        elif s == 13:
            out.append(CR)
        elif s == 9:
            out.append(TAB)
        elif s < 32 or s == 127 or (unit == "char" and (0x80 <= s < 0xA0 or 0xD800 <= s < 0xE000)):
            out.append(HIDDEN)
        elif unit == "byte" and s >= 0x80:
            size = 2 if 0xC0 <= s < 0xE0 else 3 if 0xE0 <= s < 0xF0 else 4 if 0xF0 <= s < 0xF8 else 1
            chunk = bytes(syms[i:i + size]) if all(0 <= b < 256 for b in syms[i:i + size]) else b""
            try:
                ch = chunk.decode("utf-8") if size > 1 and len(chunk) == size else HIDDEN
            except UnicodeDecodeError:
                ch = HIDDEN
            out.append(ch if ch != "\ufeff" else HIDDEN)  # a byte order mark is invisible
            if ch != HIDDEN:
                out.extend([HIDDEN] * (size - 1))
                i += size
                continue
        else:
            out.append(chr(s))
        i += 1
    return out


@dataclass(frozen=True)
class Box:
    """Where one character is drawn: text row and column, width in columns, and its glyph."""

    row: int
    col: int
    width: int
    glyph: str


def layout(glyph_list: Sequence[str], width: int = 100) -> list[Box]:
    """Place glyphs on rows of at most ``width`` columns, breaking after every LF and at tab stops."""
    if width < TAB_STOP:
        raise RnnlensError(f"line width must be at least {TAB_STOP} columns, got {width}")
    boxes: list[Box] = []
    row = col = 0
    for g in glyph_list:
        w = TAB_STOP - col % TAB_STOP if g == TAB else 1
        if col + w > width:
            row, col = row + 1, 0
            w = TAB_STOP if g == TAB else 1
        boxes.append(Box(row, col, w, g))
        col += w
        if g == LF:
            row, col = row + 1, 0
    return boxes


def colors(values: np.ndarray) -> np.ndarray:
    """(N,) values -> (N, 3) RGB in [0, 1]: -1 red, 0 white, +1 blue (``RdBu``), clipped to [-1, 1]."""
    from matplotlib import colormaps

    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), -1.0, 1.0)
    return colormaps["RdBu"]((v + 1.0) / 2.0)[:, :3]


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(round(255 * x)) for x in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _dark(rgb: np.ndarray) -> bool:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) < 0.5


def _check(symbols: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    symbols = np.asarray(symbols).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(symbols) != len(values):
        raise RnnlensError(f"{len(values)} values for {len(symbols)} characters; pass one value per character")
    if len(symbols) == 0:
        raise RnnlensError("nothing to draw: the text is empty; pass at least one character")
    return symbols, values


HTML_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
.cells{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:13px;line-height:1.55;white-space:pre;
 background:#fff;padding:.6em;border:1px solid #ccc;overflow-x:auto}
.cells span{padding:1px 0}
.dark{color:#fff}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;font-size:13px}
.scale{display:inline-block;width:240px;height:12px;vertical-align:middle;
 background:linear-gradient(to right,#67001f,#f7f7f7,#053061)}"""


def cells_html(symbols: np.ndarray, values: np.ndarray, unit: str, width: int = 100) -> str:
    """The coloured text as an HTML fragment (a ``div.cells``); tooltips show position and value."""
    symbols, values = _check(symbols, values)
    rgb = colors(values)
    parts = ['<div class="cells">']
    last_row = 0
    for t, box in enumerate(layout(glyphs(symbols, unit), width)):
        if box.row != last_row:
            parts.append("\n" * (box.row - last_row))
            last_row = box.row
        text = box.glyph + " " * (box.width - 1)
        cls = ' class="dark"' if _dark(rgb[t]) else ""
        parts.append(f'<span{cls} style="background:{_hex(rgb[t])}" title="{t}: {values[t]:+.3f}">'
                     f"{html.escape(text)}</span>")
    parts.append("</div>")
    return "".join(parts)


def html_page(title: str, body: str) -> str:
    """A complete self-contained page around a body fragment."""
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{HTML_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def scale_legend() -> str:
    return '<p>-1 <span class="scale"></span> +1 &nbsp;(red: -1, white: 0, blue: +1)</p>'


def render_html(symbols: np.ndarray, values: np.ndarray, unit: str, title: str,
                path: str | os.PathLike | None = None, width: int = 100) -> str:
    """A whole page for one cell over one text; written atomically to ``path`` when given."""
    page = html_page(title, f"<h2>{html.escape(title)}</h2>{scale_legend()}{cells_html(symbols, values, unit, width)}")
    if path is not None:
        atomic_write_text(path, page)
    return page


def render_png(symbols: np.ndarray, values: np.ndarray, unit: str, path: str | os.PathLike, title: str = "",
               width: int = 100, dpi: int = 110) -> None:
    """The coloured text as a PNG: one box per character, monospace glyphs, lines wrapped at ``width``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    symbols, values = _check(symbols, values)
    boxes = layout(glyphs(symbols, unit), width)
    rgb = colors(values)
    rows = boxes[-1].row + 1
    cw, rh = 0.105, 0.2  # inches per column and per row
    fig = plt.figure(figsize=(max(width * cw, 3.0), rows * rh + (0.35 if title else 0.1)), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, rows * rh / fig.get_figheight()))
    ax.set_xlim(0, width)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    ax.add_collection(PatchCollection([Rectangle((b.col, b.row + 0.05), b.width, 0.9) for b in boxes],
                                      facecolors=rgb, edgecolors="none"))
    for t, b in enumerate(boxes):
        if b.glyph.strip():
            ax.text(b.col + 0.5, b.row + 0.52, b.glyph, ha="center", va="center", family="DejaVu Sans Mono",
                    fontsize=8.5, color="white" if _dark(rgb[t]) else "black")
    if title:
        fig.text(0.005, 1 - 0.05 / fig.get_figheight(), title, ha="left", va="top", fontsize=9)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


# ---- the histogram of tanh(c) --------------------------------------------------------------------------

@dataclass
class Histogram:
    """Counts of values in ``bins`` equal bins over [-1, 1], per activation name."""

    edges: np.ndarray              # (bins + 1,)
    counts: dict[str, np.ndarray]  # name -> (bins,) int64

    def peaks(self) -> dict[str, list[float]]:
        """Per name, the centre of the fullest bin in [-1, 0) and in (0, 1]."""
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        neg, pos = centres < 0, centres > 0
        return {k: [float(centres[neg][np.argmax(c[neg])]), float(centres[pos][np.argmax(c[pos])])]
                for k, c in self.counts.items()}

    def interior_peaks(self, margin: float = 0.1) -> dict[str, list[float | None]]:
        """Per name, on each side of 0, the centre of the fullest bin that is a local maximum (at least its
        neighbours) away from the saturated ends (|x| < 1 - ``margin``): the paper's peaks at +-0.76 sit
        under the mass at +-1, which ``peaks`` finds first. None where a side has no such bin."""
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        out: dict[str, list[float | None]] = {}
        for k, c in self.counts.items():
            padded = np.concatenate([[-1], c, [-1]])
            local = (c >= padded[:-2]) & (c >= padded[2:]) & (c > 0) & (np.abs(centres) < 1 - margin)
            sides = []
            for side in (centres < 0, centres > 0):
                m = local & side
                sides.append(float(centres[m][np.argmax(c[m])]) if m.any() else None)
            out[k] = sides
        return out

    def to_dict(self) -> dict:
        return {"edges": self.edges.tolist(), "counts": {k: c.tolist() for k, c in self.counts.items()},
                "peaks": self.peaks(), "interior_peaks": self.interior_peaks(),
                "total": {k: int(c.sum()) for k, c in self.counts.items()}}


def histogram(chunks: Iterable[dict[str, np.ndarray]], bins: int = 100) -> Histogram:
    """Accumulate a histogram over a stream of ``{name: values}`` chunks (any shape; values already in
    [-1, 1], e.g. tanh(c); the ends are clipped into the outer bins)."""
    if bins < 2:
        raise RnnlensError(f"the histogram needs at least 2 bins, got {bins}")
    edges = np.linspace(-1.0, 1.0, bins + 1)
    counts: dict[str, np.ndarray] = {}
    for chunk in chunks:
        for name, v in chunk.items():
            idx = np.clip(((np.asarray(v, np.float64).reshape(-1) + 1.0) * (bins / 2.0)).astype(np.int64), 0, bins - 1)
            counts[name] = counts.get(name, np.zeros(bins, np.int64)) + np.bincount(idx, minlength=bins)
    return Histogram(edges, counts)


def plot_histogram(hist: Histogram, path: str | os.PathLike, title: str = "tanh(c)") -> None:
    """One step curve per activation name (density), with tanh(+-1) = +-0.76 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=110)
    width = np.diff(hist.edges)
    for name, c in hist.counts.items():
        ax.stairs(c / max(c.sum(), 1) / width, hist.edges, label=name)
    for x in (-np.tanh(1.0), np.tanh(1.0)):
        ax.axvline(x, color="gray", lw=0.8, ls=":")
    ax.set_xlabel(f"{title}  (dotted: tanh(\u00b11) = \u00b10.76)")
    ax.set_ylabel("density")
    ax.set_xlim(-1, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


# ---- the discovery report page --------------------------------------------------------------------------

@dataclass
class Snippet:
    """A stretch of text with one cell's values, to show next to a feature."""

    feature: str
    cell: str                # "layers.L.c:I"
    symbols: np.ndarray      # (n,)
    values: np.ndarray       # (n,)
    offset: int              # position of the first character in the source text


def best_window(feature: np.ndarray, length: int) -> tuple[int, int]:
    """(row, start) of the ``length``-wide window of a (B, N) feature array with the most value changes
    (where a binary feature switches on and off, or a graded one moves): the liveliest place to look."""
    rows, cols = feature.shape
    length = min(length, cols)
    changes = np.zeros((rows, cols), np.int64)
    changes[:, 1:] = feature[:, 1:] != feature[:, :-1]
    csum = np.concatenate([np.zeros((rows, 1), np.int64), np.cumsum(changes, axis=1)], axis=1)
    win = csum[:, length:] - csum[:, :cols - length + 1]  # (B, cols - length + 1)
    r, s = np.unravel_index(int(np.argmax(win)), win.shape)
    return int(r), int(s)


def report_page(report, snippets: Sequence[Snippet], unit: str, title: str, width: int = 100) -> str:
    """The ``cells --find`` page: the score table, then each feature's best cell over its snippet."""
    esc = html.escape
    rows = []
    for f in report.features:
        if f.skipped:
            rows.append(f"<tr><td>{esc(f.name)}</td><td>{f.kind}</td><td colspan=4>skipped: {esc(f.skipped)}</td>"
                        f"<td>{esc(f.description)}</td></tr>")
            continue
        best = f.best[0]
        others = ", ".join(f"{c.label} {c.score:.3f}{'+' if c.sign > 0 else '-'}" for c in f.best[1:])
        rows.append(f"<tr><td><a href='#{esc(f.name)}'>{esc(f.name)}</a></td><td>{f.kind}</td>"
                    f"<td>{'|r|' if f.metric == 'pearson' else 'AUC'} {best.score:.3f} ({'+' if best.sign > 0 else '-'})"
                    f"</td><td>{esc(best.label)}</td><td>{100 * f.fraction:.1f}%</td><td>{esc(others)}</td>"
                    f"<td>{esc(f.description)}</td></tr>")
    cfg = report.config
    body = [f"<h1>{esc(title)}</h1>",
            f"<p>{report.n_cells} cells over {report.n_chars:,} characters. A cell is interpretable when |r| &ge; "
            f"{cfg.r_threshold:g} (graded features) or AUC &ge; {cfg.auc_threshold:g} (yes/no features); "
            f"{report.interpretable_cells} cells ({100 * report.fraction_interpretable:.1f}%) are, for at least one "
            "memory feature. Sign +: the cell is high where the feature is high (inside); -: low.</p>",
            "<table><tr><th>feature</th><th>kind</th><th>best score</th><th>best cell</th><th>cells passing</th>"
            "<th>next best</th><th>what it is</th></tr>", *rows, "</table>", scale_legend()]
    for s in snippets:
        body.append(f"<h3 id='{esc(s.feature)}'>{esc(s.feature)}: {esc(s.cell)} (from character {s.offset:,})</h3>")
        body.append(cells_html(s.symbols, s.values, unit, width))
    return html_page(title, "\n".join(body))
