"""Shipping a run as a model folder: the files, the card, every reader works on it, bad folders are refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rnnlens.cli import main
from rnnlens.fsutil import atomic_write_json, read_json

from test_train import TINY, make_text


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    text = make_text(root / "tiny.txt", n_words=1500)
    run = root / "run"
    assert main(["train", "--text", str(text), *TINY, "--max-steps", "40", "--out", str(run)]) == 0
    return run


@pytest.fixture
def model(tmp_path, finished):
    out = tmp_path / "models" / "tiny-lstm"
    notes = tmp_path / "notes.md"
    notes.write_text("Dropout 0.1, chosen by hand for this test.\n")
    assert main(["export", str(finished), "--out", str(out), "--notes", str(notes)]) == 0
    return out


def test_the_folder_holds_fp32_weights_config_history_and_a_card(model, finished):
    assert sorted(p.name for p in model.iterdir()) == ["README.md", "best.safetensors", "config.json",
                                                       "metrics.jsonl", "summary.json"]
    weights = load_file(str(model / "best.safetensors"))
    assert weights and all(k.startswith("model.") and v.dtype == torch.float32 for k, v in weights.items())
    original = load_file(str(finished / "best.safetensors"))
    assert all(torch.equal(weights[k], original[k]) for k in weights)
    card = (model / "README.md").read_text()
    summary = read_json(finished / "summary.json")
    assert f"{summary['test_loss_nats']:.4f} nats/char" in card and "Dropout 0.1, chosen by hand" in card
    assert read_json(model / "config.json") == read_json(finished / "config.json")


def test_eval_on_the_model_reproduces_its_card(model, capsys):
    assert main(["eval", str(model), "--split", "test", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["loss_nats"]
    assert got == pytest.approx(read_json(model / "summary.json")["test_loss_nats"], abs=1e-6)


def test_resume_on_a_model_changes_nothing(model):
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    assert main(["train", "--resume", "--out", str(model), "--quiet"]) == 0
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


def test_sample_and_gates_read_the_model(model, tmp_path, capsys):
    assert main(["sample", str(model), "--length", "20", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out) >= 20
    assert main(["gates", str(model), "--max-chars", "200", "--out", str(tmp_path / "g"), "--json"]) == 0


def test_a_model_without_weights_is_a_one_line_error(model, capsys):
    (model / "best.safetensors").unlink()
    assert main(["eval", str(model), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "no best weights" in err and "Traceback" not in err


def test_weights_of_another_vocabulary_are_refused(model, capsys):
    cfg = read_json(model / "config.json")
    unused = next(b for b in range(256) if b not in cfg["vocab"]["symbols"])
    cfg["vocab"]["symbols"] = sorted(cfg["vocab"]["symbols"][:-1] + [unused])  # same size, another vocabulary
    atomic_write_json(model / "config.json", cfg)
    assert main(["eval", str(model), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "another vocabulary" in err and "Traceback" not in err


def test_a_config_of_a_newer_format_names_the_fix(model, capsys):
    cfg = read_json(model / "config.json")
    cfg["format"], cfg["rnnlens_version"] = "rnnlens-run-v9", "9.0.0"
    atomic_write_json(model / "config.json", cfg)
    assert main(["eval", str(model), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "upgrade rnnlens" in err and "9.0.0" in err and "Traceback" not in err


def test_export_refuses_unfinished_runs_and_existing_folders(tmp_path, finished, model, capsys):
    assert main(["export", str(finished), "--out", str(model)]) == 2
    assert "already exists" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((finished / "config.json").read_text())
    assert main(["export", str(unfinished), "--out", str(tmp_path / "x")]) == 2
    assert "has not finished" in capsys.readouterr().err


def test_a_full_disk_while_exporting_is_one_line_and_leaves_no_temp_files(tmp_path, finished, monkeypatch, capsys):
    import errno

    from rnnlens import export

    def full(src, dst):
        open(dst, "wb").write(b"\0")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(export.shutil, "copyfile", full)
    out = tmp_path / "model"
    assert main(["export", str(finished), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"rnnlens: error: no space left on device while writing {out / 'config.json'}; the previous "
                   "version of the file, if any, is kept; free space and run the command again\n")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
