"""rnnlens.run: a run remembers the data directory its named corpus came from (issue 12's loose end)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnlens.cli import main
from rnnlens.data.corpora import DATA_ENV
from rnnlens.run import DataSource

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_the_remembered_folder_is_the_fallback_and_flags_or_the_environment_override(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    src = DataSource(dataset="warpeace", data_dir=str(tmp_path))
    assert src.corpus_dir(None) == str(tmp_path)                 # nothing given: the folder the run was trained from
    assert src.corpus_dir("/elsewhere") == "/elsewhere"           # --data-dir wins
    monkeypatch.setenv(DATA_ENV, "/from/env")
    assert src.corpus_dir(None) is None                           # $RNNLENS_DATA wins (resolved by corpora.data_dir)
    monkeypatch.delenv(DATA_ENV)
    assert DataSource(dataset="warpeace", data_dir=str(tmp_path / "gone")).corpus_dir(None) is None  # moved: default
    assert DataSource.from_dict(src.to_dict()) == src
    assert "data_dir" not in DataSource(dataset="pystdlib").to_dict()  # older configs stay as they were


@pytest.mark.skipif(not (SHARED / "warpeace_input.txt").is_file(), reason=f"needs the War and Peace corpus in {SHARED}")
def test_eval_of_a_run_trained_with_data_dir_needs_no_flag_again(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default data folder is empty
    run = tmp_path / "run"
    assert main(["train", "--dataset", "warpeace", "--data-dir", str(SHARED), "--hidden", "8", "--max-steps", "1",
                 "--eval-chars", "1000", "--quiet", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["source"]["data_dir"] == str(SHARED.resolve())
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chars"] > 0
