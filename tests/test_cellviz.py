"""Cell rendering (HTML, PNG), the tanh(c) histogram, and the ``rnnlens cells`` command on a tiny run."""

import html
import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnlens.capture.core import run_with_cache
from rnnlens.cells.viz import (CR, HIDDEN, LF, TAB, best_window, colors, glyphs, histogram, layout, render_html,
                             render_png)
from rnnlens.cli import main
from rnnlens.cells.analysis import cell_state as _state
from rnnlens.exceptions import RnnlensError
from rnnlens.run import load_model
from rnnlens.data.text import read_symbols

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def byte_symbols(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8).astype(np.int64)


def test_glyphs_for_line_ends_tabs_controls_and_multibyte_bytes():
    g = glyphs(byte_symbols("a\r\n\tb\x01é\ufeff"), "byte")
    assert g == ["a", CR, LF, TAB, "b", HIDDEN, "é", HIDDEN, HIDDEN, HIDDEN, HIDDEN]  # BOM: 3 hidden bytes
    assert glyphs([ord("é"), 0x85, ord("<")], "char") == ["é", HIDDEN, "<"]


def test_layout_wraps_lines_breaks_after_lf_and_aligns_tabs():
    boxes = layout(["a", TAB, "b", LF, "c"] + ["x"] * 9, width=8)
    assert [(b.row, b.col, b.width) for b in boxes[:5]] == [(0, 0, 1), (0, 1, 7), (1, 0, 1), (1, 1, 1), (2, 0, 1)]
    assert [(b.row, b.col) for b in boxes[-3:]] == [(2, 7), (3, 0), (3, 1)]  # "c" + 9 x wrap after 8
    with pytest.raises(RnnlensError, match="at least 8"):
        layout(["a"], width=4)


def test_colors_run_from_red_through_white_to_blue_and_clip():
    rgb = colors(np.array([-1.0, 0.0, 1.0, 5.0, np.nan]))
    assert rgb[0, 0] > 0.3 and rgb[0, 2] < 0.2  # red
    assert rgb[2, 2] > 0.3 and rgb[2, 0] < 0.1  # blue
    assert np.all(rgb[1] > 0.95)  # white
    assert np.allclose(rgb[3], rgb[2]) and np.allclose(rgb[4], rgb[1])


def test_html_page_holds_every_character_its_colour_and_value(tmp_path):
    text = 'if (a < b) {\r\n\tx = "&";\n}'
    sym = byte_symbols(text)
    vals = np.linspace(-1, 1, len(sym))
    page = render_html(sym, vals, "byte", "cell <3>", tmp_path / "c.html")
    assert (tmp_path / "c.html").read_text(encoding="utf-8") == page
    spans = re.findall(r'<span(?: class="dark")? style="background:(#[0-9a-f]{6})" title="(\d+): ([-+]\d\.\d{3})">(.*?)</span>', page)
    assert len(spans) == len(sym)
    assert spans[0][0] == "#67001f" and spans[-1][0] == "#053061"  # -1 and +1 ends of RdBu
    assert [float(s[2]) for s in spans] == pytest.approx(vals, abs=5e-4)
    shown = "".join(s[3] for s in spans)
    assert "&lt;" in shown and "&amp;" in shown and "cell &lt;3&gt;" in page
    assert "http" not in page and "<script" not in page


def test_png_is_written(tmp_path):
    sym = byte_symbols("hello\tworld\r\n" * 20)
    render_png(sym, np.tanh(np.arange(len(sym)) - 100.0), "byte", tmp_path / "c.png", "title", width=30)
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(RnnlensError, match="one value per character"):
        render_png(sym, np.zeros(3), "byte", tmp_path / "d.png")


def test_histogram_matches_numpy_and_finds_the_peaks():
    rng = np.random.default_rng(0)
    a = np.tanh(np.concatenate([rng.normal(1, 0.05, 3000), rng.normal(-1, 0.05, 2000)]))
    chunks = [{"c": a[:1000].reshape(10, 100)}, {"c": a[1000:]}, {"d": np.array([-1.0, 1.0])}]
    h = histogram(chunks, bins=50)
    assert h.counts["c"].tolist() == np.histogram(a, bins=50, range=(-1, 1))[0].tolist()
    assert h.counts["d"][0] == 1 and h.counts["d"][-1] == 1  # the ends fall in the outer bins
    lo, hi = h.peaks()["c"]
    assert lo == pytest.approx(-0.78) and hi == pytest.approx(0.78)  # bin centres nearest tanh(1)
    assert json.loads(json.dumps(h.to_dict()))["total"]["c"] == 5000


def test_interior_peaks_lie_under_the_saturated_ends():
    rng = np.random.default_rng(1)
    # most mass saturated at +-1 (what peaks() finds), bumps at -0.75 and +0.75 (the paper's), noise between
    a = np.concatenate([np.full(9000, 0.999), np.full(7000, -0.999), np.clip(rng.normal(0.75, 0.03, 3000), -1, 1),
                        np.clip(rng.normal(-0.75, 0.03, 2000), -1, 1), rng.uniform(-1, 1, 2000)])
    h = histogram([{"c": a}], bins=100)
    assert h.peaks()["c"] == pytest.approx([-0.99, 0.99])
    lo, hi = h.interior_peaks()["c"]
    assert lo == pytest.approx(-0.75, abs=0.021) and hi == pytest.approx(0.75, abs=0.021)
    centres = (h.edges[:-1] + h.edges[1:]) / 2
    inner = np.abs(centres) < 0.9
    for side, want in ((centres < 0, lo), (centres > 0, hi)):  # brute force: the fullest inner bin of each side
        m = inner & side
        assert want == pytest.approx(float(centres[m][np.argmax(h.counts["c"][m])]))
    flat = histogram([{"c": np.full(100, 0.999)}], bins=10)
    assert flat.interior_peaks()["c"] == [None, None]  # nothing away from the ends
    assert json.loads(json.dumps(h.to_dict()))["interior_peaks"]["c"] == pytest.approx([lo, hi])


def test_best_window_has_the_most_changes_within_one_row():
    f = np.zeros((3, 50))
    f[1, 30:40:2] = 1  # 10 changes in columns 30..40
    f[2, 0:4] = 1
    assert best_window(f, 12) == (1, 28)  # the first window holding all 10 changes (columns 30..39)
    assert best_window(f, 500) == (1, 0)


def test_state_c_needs_an_lstm():
    assert _state(SimpleNamespace(model=SimpleNamespace(cell="gru")), None) == "h"
    with pytest.raises(RnnlensError, match="no cell state c"):
        _state(SimpleNamespace(model=SimpleNamespace(cell="gru")), "c")


# ---- the command on a tiny trained run -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cells")
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(150):
        words = ["".join(rng.choice(list("abcdef"), rng.integers(1, 6))) for _ in range(rng.integers(1, 6))]
        lines.append(" " * int(rng.integers(0, 3)) * 4 + " ".join(words) + (' "xy z";' if rng.random() < 0.4 else "(a);"))
    text = root / "t.txt"
    text.write_text("\n".join(lines) + "\n")
    run = root / "run"
    assert main(["train", "--text", str(text), "--batch-size", "4", "--seq-len", "16", "--hidden", "8", "--layers", "2",
                 "--max-steps", "20", "--eval-every", "10", "--out", str(run), "--quiet", "--device", "cpu"]) == 0
    return SimpleNamespace(root=root, text=text, run=run)


def test_cell_html_values_equal_a_one_shot_capture(tiny_run, tmp_path):
    out = tmp_path / "cell.html"
    assert main(["cells", str(tiny_run.run), "--cell", "1:3", "--text", str(tiny_run.text), "--chars", "150",
                 "--out", str(out), "--device", "cpu"]) == 0
    page = out.read_text(encoding="utf-8")
    shown = [float(v) for v in re.findall(r'title="\d+: ([-+]\d\.\d{3})"', page)]
    model, cfg, _ = load_model(tiny_run.run)
    ids = torch.from_numpy(cfg.vocab.encode(read_symbols(tiny_run.text, cfg.text)[:150]))[None]
    ref = torch.tanh(run_with_cache(model, ids, names="layers.1.c")["layers.1.c"][0, :, 3]).numpy()
    assert shown == pytest.approx(ref, abs=5e-4)  # the command carries the state across its 16-step blocks
    shown_text = html.unescape("".join(re.findall(r'title="[^"]*">(.*?)</span>', page)))
    assert shown_text == "".join(glyphs(read_symbols(tiny_run.text, cfg.text)[:150], "byte"))


def test_cell_png_and_errors(tiny_run, tmp_path, capsys):
    run, text = str(tiny_run.run), str(tiny_run.text)
    assert main(["cells", run, "--cell", "0:7", "--text", text, "--chars", "80", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
    capsys.readouterr()
    for spec, message in (("2:0", "layers 0..1"), ("0:8", "has cells 0..7"), ("x", "LAYER:INDEX")):
        assert main(["cells", run, "--cell", spec, "--text", text]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "odd.txt").write_text("QQQ")
    assert main(["cells", run, "--cell", "0:0", "--text", str(tmp_path / "odd.txt")]) == 2
    assert "not in the model's vocabulary" in capsys.readouterr().err
    assert main(["cells", run, "--cell", "0:0", "--text", text, "--out", str(tmp_path / "c.svg")]) == 2
    assert ".html or .png" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_run.run / "config.json", bare / "config.json")
    assert main(["cells", str(bare), "--cell", "0:0", "--text", text]) == 2
    assert "no best weights" in capsys.readouterr().err


def test_find_writes_report_and_json(tiny_run, tmp_path, capsys):
    out = tmp_path / "find"
    assert main(["cells", str(tiny_run.run), "--find", "--text", str(tiny_run.text), "--top", "2", "--chars", "150", "--out", str(out),
                 "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_cells"] == 16 and result["layers"] == {"layers.0.c": 8, "layers.1.c": 8}
    scored = [f for f in result["features"] if not f["skipped"]]
    assert {"in_double_quotes", "line_pos", "indent"} <= {f["name"] for f in scored}
    assert all(len(f["best"]) == 2 and f["best"][0]["score"] >= f["best"][1]["score"] for f in scored)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<table>" in page and "http" not in page and "in_double_quotes" in page
    for f in scored:
        assert (out / f"{f['name']}.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((out / "report.json").read_text())["n_chars"] == result["n_chars"] > 0


def test_histogram_command(tiny_run, tmp_path, capsys):
    out = tmp_path / "hist"
    assert main(["cells", str(tiny_run.run), "--histogram", "--text", str(tiny_run.text), "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["counts"]) == {"layers.0.c", "layers.1.c"}
    saved = json.loads((out / "histogram.json").read_text())
    assert saved["total"]["layers.0.c"] == result["total"]["layers.0.c"] > 0
    assert result["total"]["layers.0.c"] % 8 == 0  # characters x 8 cells
    assert (out / "histogram.png").read_bytes()[:8] == PNG_MAGIC
