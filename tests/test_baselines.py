"""Tests of rnnlens.baselines.table and commands/baselines: Table 2 on a tiny text, resuming, refusals."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

import rnnlens.baselines.table as bl
from rnnlens.baselines.table import PLOT, RESULTS, TABLE, Preset, load_data, render_table, run_table2
from rnnlens.exceptions import RnnlensError
from rnnlens.ngram.model import KneserNeyLM, NGramConfig, row_streams
from rnnlens.baselines.nnn import load_nnn
from rnnlens.data.splits import SplitConfig

TINY = Preset("tiny", ngram_ns=(1, 2, 20), nnn_ns=(1, 2), hiddens=(8, 12), epochs=2, epoch_positions=0, batch=128,
              patience=1)
SPLIT = SplitConfig(fractions=(0.8, 0.1, 0.1), batch_size=4, seq_len=20)


@pytest.fixture
def text(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the ", "then ", "hen ", "at ", "that ", "hat ", "a ", "tea ", "eat\n"]
    path = tmp_path / "t.txt"
    path.write_text("".join(rng.choice(words) for _ in range(600)))
    return path


def table(text, out, preset=TINY, **kw):
    return run_table2(None, None, out, preset, "cpu", text_path=text, split_cfg=SPLIT, **kw)


def test_table_entries_match_the_models_and_files_are_written(text, tmp_path):
    out = tmp_path / "out"
    res = table(text, out)
    assert set(res["entries"]) == {"ngram/1", "ngram/2", "ngram/20", "nnn/1", "nnn/2"}
    assert json.loads((out / RESULTS).read_text()) == res
    data = load_data(text_path=text, split_cfg=SPLIT)
    tr, te = data.splits["train"], data.splits["test"]
    lm = KneserNeyLM.fit_streams(row_streams(tr.x, tr.y), len(data.vocab), NGramConfig(2))
    assert res["entries"]["ngram/2"]["test_loss"] == pytest.approx(-lm.score_rows(te.x, te.y)[0].mean(), abs=1e-12)
    nn2 = res["entries"]["nnn/2"]
    assert nn2["hidden"] in (8, 12) and nn2["val_loss"] == min(nn2["grid"].values()) and nn2["seconds"] > 0
    model, vocab, _ = load_nnn(out / "models" / "nnn-2.safetensors", data.vocab)
    assert model.hidden == nn2["hidden"]
    assert model.loss_rows(te.x, te.y) == pytest.approx(nn2["test_loss"], abs=1e-12)
    md = (out / TABLE).read_text()
    assert "| 2 | " + f"{res['entries']['ngram/2']['test_loss']:.4f}" in md
    assert "| 20 | " in md and md.count("| - | - | - |") == 1  # n = 20 has no n-NN in this preset
    assert (out / PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_entries_and_finishes_the_rest(text, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = table(text, out)
    partial = json.loads((out / RESULTS).read_text())
    del partial["entries"]["nnn/1"], partial["entries"]["ngram/20"]
    (out / RESULTS).write_text(json.dumps(partial))
    calls = []
    real_ngram, real_nnn = bl.run_ngram, bl.run_nnn
    monkeypatch.setattr(bl, "run_ngram", lambda data, n: calls.append(("ngram", n)) or real_ngram(data, n))
    monkeypatch.setattr(bl, "run_nnn", lambda data, n, *a, **k: calls.append(("nnn", n)) or real_nnn(data, n, *a, **k))
    notes: list[str] = []
    again = run_table2(None, None, out, TINY, "cpu", notes.append, text_path=text, split_cfg=SPLIT)
    assert calls == [("ngram", 20), ("nnn", 1)]
    assert any("ngram/1: done before" in m and "skipped" in m for m in notes)
    assert again["entries"]["ngram/2"] == first["entries"]["ngram/2"]
    assert again["entries"]["nnn/1"]["test_loss"] == pytest.approx(first["entries"]["nnn/1"]["test_loss"], abs=1e-9)
    calls.clear()
    table(text, out)
    assert calls == []


def test_results_of_another_setup_are_refused(text, tmp_path):
    out = tmp_path / "out"
    table(text, out, Preset("one", (1,), (), (8,), 1, 0, 128, 1))
    with pytest.raises(RnnlensError, match="another text, unit, split, preset or seed"):
        table(text, out, Preset("one", (1,), (), (8,), 1, 0, 128, 1), seed=1)
    with pytest.raises(RnnlensError, match="another text, unit, split, preset or seed"):
        table(text, out, Preset("two", (1,), (), (8,), 1, 0, 128, 1))
    (out / RESULTS).write_text("{not json")
    with pytest.raises(RnnlensError, match="not JSON"):
        table(text, out, Preset("one", (1,), (), (8,), 1, 0, 128, 1))


def test_bad_input_is_refused(text, tmp_path):
    with pytest.raises(RnnlensError, match="the test split is empty"):
        load_data(text_path=text, split_cfg=SplitConfig(fractions=(0.9, 0.1, 0.0), batch_size=4, seq_len=20))
    with pytest.raises(RnnlensError, match="unknown preset"):
        table(text, tmp_path / "o", "huge")
    with pytest.raises(RnnlensError, match="does not exist"):
        load_data(text_path=tmp_path / "missing.txt")
    with pytest.raises(RnnlensError, match="either a dataset name or a text file"):
        load_data()


def test_render_table_marks_missing_entries():
    res = {"setup": {"data": "x", "text": {"unit": "byte"}, "vocab_size": 3,
                     "split": {"layout": "interleaved", "fractions": [0.8, 0.1, 0.1]},
                     "preset": {"name": "p", "ngram_ns": [1, 3], "nnn_ns": [1]}},
           "paper": {"best_rnn": 1.077, "ngram20": 1.195},
           "entries": {"ngram/1": {"family": "ngram", "n": 1, "test_loss": 2.0, "seconds": 1.2},
                       "nnn/1": {"family": "nnn", "n": 1, "test_loss": 2.5, "hidden": 8, "seconds": 3.0}}}
    md = render_table(res)
    assert "| 1 | 2.0000 | 1 | 2.5000 | 8 | 3 |" in md and "| 3 | - | - | - | - | - |" in md
    assert "best recurrent net 1.077, 20-gram 1.195" in md


def test_command_with_the_quick_preset(text, tmp_path, capsys):
    from rnnlens.commands import baselines
    parser = argparse.ArgumentParser(prog="rnnlens")
    baselines.add_parser(parser.add_subparsers())
    out = tmp_path / "q"
    argv = ["baselines", "--text", str(text), "--batch-size", "4", "--seq-len", "20", "--preset", "quick",
            "--out", str(out), "--device", "cpu", "--json"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    preset = bl.PRESETS["quick"]
    assert set(res["entries"]) == {f"ngram/{n}" for n in preset.ngram_ns} | {f"nnn/{n}" for n in preset.nnn_ns}
    assert all((out / f).is_file() for f in (RESULTS, TABLE, PLOT))
    args = parser.parse_args(argv[:-1] + ["--quiet"])
    assert args.func(args) == 0  # everything done: nothing recomputed, the table is printed again
    assert "| 1 | " in capsys.readouterr().out
