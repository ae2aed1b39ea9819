"""Tests for the command line: bad input gives one line and exit 2 and changes nothing; --json; --help.

One tiny run per module (plus one over another vocabulary and one deeper model) is shared by all tests;
tests that damage a run work on a copy.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnnlens.cli import build_parser, main
from rnnlens.evaluate import evaluate
from rnnlens.model import PAPER_BUDGETS, hidden_for_budget, param_count, parse_budget
from rnnlens.run import load_model
from rnnlens.sample import sample
from rnnlens.data.splits import stream_split
from rnnlens.data.text import read_symbols

SMALL = ["--batch-size", "4", "--seq-len", "16", "--layers", "1", "--max-steps", "20", "--eval-every", "10",
         "--quiet", "--device", "cpu"]


def words_text(alphabet: str, n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(40)]
    return " ".join(rng.choice(words) for _ in range(n_words)) + "\n"


def call(*argv) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit status, stdout, stderr). argparse exits become statuses."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def assert_user_error(result: tuple[int, str, str], *needles: str) -> str:
    rc, out, err = result
    assert rc == 2, (rc, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rnnlens: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (and every folder) under root: compare before/after to prove nothing changed."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@dataclass
class Runs:
    root: Path
    text: Path      # ~6 KB of lowercase words
    run: Path       # 1-layer LSTM, hidden 16, trained 20 steps on text
    other: Path     # the same model over a text with another vocabulary
    deep: Path      # a 2-layer LSTM on text
    train_out: str  # stdout of `train --json` for run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("cli")
    text, other_text = root / "text.txt", root / "other.txt"
    text.write_text(words_text("abcdefghijklmnopqrstuvwxyz", 1200, 0))
    other_text.write_text(words_text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef", 1200, 1))
    rc, train_out, err = call("train", "--text", text, "--hidden", "16", *SMALL, "--out", root / "run", "--json")
    assert rc == 0, err
    for name, src, layers in (("other", other_text, "1"), ("deep", text, "2")):
        args = [a if a != "1" else layers for a in SMALL]  # --layers
        rc, _, err = call("train", "--text", src, "--hidden", "16", *args, "--max-steps", "2", "--eval-every", "2",
                          "--out", root / name)
        assert rc == 0, err
    return Runs(root, text, root / "run", root / "other", root / "deep", train_out)


@pytest.fixture
def run_copy(runs: Runs, tmp_path: Path) -> Path:
    """A private copy of the trained run, free to damage."""
    return Path(shutil.copytree(runs.run, tmp_path / "run"))


# ---------------------------------------------------------------------------------------------------------------
# Bad input to `train`: one line, exit 2, and the folder holding the input and --out is left exactly as it was.

def train_fails(tmp_path: Path, *args) -> str:
    before = snapshot(tmp_path)
    line = assert_user_error(call("train", *args, "--out", tmp_path / "new"))
    assert snapshot(tmp_path) == before
    return line


def test_train_missing_file(tmp_path: Path) -> None:
    train_fails(tmp_path, "--text", tmp_path / "nope.txt", "--hidden", "16", *SMALL)


def test_train_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    train_fails(tmp_path, "--text", tmp_path / "empty.txt", "--hidden", "16", *SMALL)


def test_train_binary_file(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 40)
    assert "not text" in train_fails(tmp_path, "--text", tmp_path / "blob.bin", "--hidden", "16", *SMALL)


def test_train_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    train_fails(tmp_path, "--text", tmp_path / "folder", "--hidden", "16", *SMALL)


def test_train_text_shorter_than_one_batch(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("a short text of forty characters, or so\n")
    assert "too short" in train_fails(tmp_path, "--text", tmp_path / "short.txt", "--hidden", "16", *SMALL)


def test_train_budget_too_small(runs: Runs, tmp_path: Path) -> None:
    assert "too small" in train_fails(tmp_path, "--text", runs.text, "--params", "100", *SMALL)


def test_train_unreadable_budget(runs: Runs, tmp_path: Path) -> None:
    train_fails(tmp_path, "--text", runs.text, "--params", "lots", *SMALL)


def test_train_named_corpus_missing_from_data_dir(tmp_path: Path) -> None:
    (tmp_path / "EMPTY").mkdir()
    line = train_fails(tmp_path, "--dataset", "warpeace", "--data-dir", tmp_path / "EMPTY", "--hidden", "16", *SMALL)
    assert "warpeace" in line and "rnnlens data warpeace" in line


def test_train_unknown_model_type(runs: Runs, tmp_path: Path) -> None:
    rc, out, err = call("train", "--text", runs.text, "--model", "transformer", *SMALL, "--out", tmp_path / "new")
    assert rc == 2 and out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rnnlens train: error: argument --model: invalid choice: 'transformer'")
    assert all(f"'{cell}'" in last for cell in ("rnn", "lstm", "gru"))
    assert not (tmp_path / "new").exists()


def test_train_into_an_existing_run_without_resume(runs: Runs, run_copy: Path) -> None:
    before = snapshot(run_copy)
    line = assert_user_error(call("train", "--text", runs.text, "--hidden", "16", *SMALL, "--out", run_copy))
    assert "already exists" in line and "--resume" in line
    assert snapshot(run_copy) == before


def test_train_into_a_non_empty_folder(runs: Runs, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    assert_user_error(call("train", "--text", runs.text, "--hidden", "16", *SMALL, "--out", tmp_path), "already exists")
    assert snapshot(tmp_path) == before


def test_resume_with_conflicting_flags(run_copy: Path) -> None:
    before = snapshot(run_copy)
    line = assert_user_error(call("train", "--resume", "--out", run_copy, "--hidden", "32", "--lr", "0.1",
                                  "--quiet", "--device", "cpu"))
    assert "--hidden" in line and "--lr" in line
    assert snapshot(run_copy) == before


def test_resume_without_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    assert_user_error(call("train", "--resume", "--out", tmp_path / "empty", "--device", "cpu"), "no run to resume")
    assert_user_error(call("train", "--resume", "--out", tmp_path / "missing", "--device", "cpu"), "no run to resume")
    assert_user_error(call("train", "--resume", "--device", "cpu"), "--out")
    assert snapshot(tmp_path) == before


def test_the_real_command_exits_2_without_traceback(tmp_path: Path) -> None:
    """The same contract through the installed entry point (a real process, real exit status)."""
    args = ["train", "--text", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "r"), "--device", "cpu"]
    proc = subprocess.run([sys.executable, "-m", "rnnlens", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rnnlens: error: text file ")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# Bad input to `eval` and `sample`.

@pytest.mark.parametrize("command", ["eval", "sample"])
@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_damaged_checkpoint(run_copy: Path, command: str, damage: str) -> None:
    best = run_copy / "best.safetensors"
    raw = best.read_bytes()
    best.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else random.Random(0).randbytes(len(raw)))
    before = snapshot(run_copy)
    assert_user_error(call(command, run_copy, "--device", "cpu"), "corrupted or truncated", "best.safetensors")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_checkpoint_with_another_vocabulary(runs: Runs, run_copy: Path, command: str) -> None:
    shutil.copy(runs.other / "best.safetensors", run_copy / "best.safetensors")
    before = snapshot(run_copy)
    assert_user_error(call(command, run_copy, "--device", "cpu"), "another vocabulary")
    assert snapshot(run_copy) == before


def test_checkpoint_of_a_deeper_model(runs: Runs, run_copy: Path) -> None:
    shutil.copy(runs.deep / "best.safetensors", run_copy / "best.safetensors")
    before = snapshot(run_copy)
    assert_user_error(call("eval", run_copy, "--device", "cpu"))
    assert snapshot(run_copy) == before


def test_missing_weights_and_missing_run(tmp_path: Path, run_copy: Path) -> None:
    (run_copy / "best.safetensors").unlink()
    assert_user_error(call("eval", run_copy, "--device", "cpu"), "best.safetensors")
    assert_user_error(call("sample", tmp_path / "nothing", "--device", "cpu"), "does not exist")
    (tmp_path / "plain").mkdir()
    assert_user_error(call("eval", tmp_path / "plain", "--device", "cpu"), "config.json")


def test_sample_prime_with_unseen_characters(runs: Runs) -> None:
    before = snapshot(runs.run)
    assert_user_error(call("sample", runs.run, "--prime", "hello World", "--device", "cpu"),
                      "not in the model's vocabulary", "'W'")
    assert snapshot(runs.run) == before


@pytest.mark.parametrize("flag, value", [("--length", "-1"), ("--temperature", "-1")])
def test_sample_bad_numbers(runs: Runs, flag: str, value: str) -> None:
    assert_user_error(call("sample", runs.run, flag, value, "--device", "cpu"), flag)


def test_eval_text_with_unseen_characters(runs: Runs, tmp_path: Path) -> None:
    (tmp_path / "caps.txt").write_text("the END of the text\n")
    assert_user_error(call("eval", runs.run, "--text", tmp_path / "caps.txt", "--device", "cpu"),
                      "not in the model's vocabulary")
    assert_user_error(call("eval", runs.run, "--text", tmp_path / "nope.txt", "--device", "cpu"), "does not exist")


def test_eval_when_the_training_text_changed(runs: Runs, run_copy: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.txt"
    changed.write_text(runs.text.read_text()[:-30] + "z\n")
    cfg = json.loads((run_copy / "config.json").read_text())
    cfg["source"]["text_path"] = str(changed)
    (run_copy / "config.json").write_text(json.dumps(cfg))
    assert_user_error(call("eval", run_copy, "--device", "cpu"), "has changed")
    cfg["source"]["text_path"] = str(tmp_path / "gone.txt")
    (run_copy / "config.json").write_text(json.dumps(cfg))
    assert_user_error(call("eval", run_copy, "--device", "cpu"), "does not exist")


def test_damaged_config(run_copy: Path) -> None:
    (run_copy / "config.json").write_text("{ not json")
    assert_user_error(call("eval", run_copy, "--device", "cpu"), "config.json")


# ---------------------------------------------------------------------------------------------------------------
# --json: exactly one JSON object on stdout.

def one_json(out: str) -> dict:
    assert out.endswith("\n") and out.count("\n") == 1, out
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


def test_train_json(runs: Runs) -> None:
    obj = one_json(runs.train_out)
    assert obj["run"] == str(runs.run) and obj["status"] == "complete" and obj["step"] == 20
    assert obj["params"] == param_count("lstm", 1, 16, obj["model"]["vocab_size"]) == 16 * 4 * (28 + 16) + 128 + 16 * 28 + 28
    assert obj["test_loss_bits"] == pytest.approx(obj["test_loss_nats"] / math.log(2), rel=1e-12)
    summary = json.loads((runs.run / "summary.json").read_text())
    assert {k: v for k, v in obj.items() if k not in ("run", "step")} == summary


def test_eval_json_matches_the_summary_and_the_library(runs: Runs, tmp_path: Path) -> None:
    summary = json.loads((runs.run / "summary.json").read_text())
    rc, out, err = call("eval", runs.run, "--json", "--device", "cpu")
    assert rc == 0 and err == ""
    test = one_json(out)
    assert set(test) == {"loss_nats", "loss_bits", "chars"}
    assert test["loss_bits"] == pytest.approx(test["loss_nats"] / math.log(2), rel=1e-12)
    assert test["chars"] == summary["test_chars"]
    assert test["loss_nats"] == pytest.approx(summary["test_loss_nats"], rel=1e-9)
    val = one_json(call("eval", runs.run, "--split", "val", "--json", "--device", "cpu")[1])
    assert val["chars"] == summary["val_chars"]
    assert val["loss_nats"] == pytest.approx(summary["best_val_loss"], rel=1e-9)
    # --text: the file as row streams, as the library computes it
    piece = tmp_path / "piece.txt"
    piece.write_text(runs.text.read_text()[:500])
    got = one_json(call("eval", runs.run, "--text", piece, "--json", "--device", "cpu")[1])
    model, cfg, _ = load_model(runs.run)
    expected = evaluate(model, stream_split(cfg.vocab.encode(read_symbols(piece, cfg.text)), 4), 16)
    assert got == pytest.approx(expected.to_dict(), rel=1e-9)
    assert got["chars"] == 496  # 499 predictions in 4 rows of 124


def test_eval_text_output(runs: Runs) -> None:
    rc, out, err = call("eval", runs.run, "--device", "cpu")
    assert rc == 0 and "nats/char" in out and "bits/char" in out


def test_sizes_json() -> None:
    rc, out, err = call("sizes", "--json")
    assert rc == 0 and err == ""
    obj = one_json(out)
    assert obj["vocab_size"] == 87 and len(obj["sizes"]) == 4 * 3 * 3
    for row in obj["sizes"]:
        target = parse_budget(row["budget"], 87)
        assert row["target"] == target
        assert row["hidden"] == hidden_for_budget(row["model"], row["layers"], target, 87)
        assert row["params"] == param_count(row["model"], row["layers"], row["hidden"], 87)
    lstm1 = {r["budget"]: r["hidden"] for r in obj["sizes"] if r["model"] == "lstm" and r["layers"] == 1}
    assert lstm1 == PAPER_BUDGETS
    custom = one_json(call("sizes", "--json", "--vocab-size", "65", "--budgets", "300k", "--layers", "2")[1])
    assert [(r["model"], r["layers"]) for r in custom["sizes"]] == [("rnn", 2), ("lstm", 2), ("gru", 2)]


def test_sizes_budget_too_small() -> None:
    assert_user_error(call("sizes", "--budgets", "100"), "too small")


@pytest.mark.parametrize("layers", ["a", "0", "1,,x"])
def test_sizes_bad_layers(layers: str) -> None:
    assert_user_error(call("sizes", "--layers", layers), "--layers")


def test_sample_json_and_text(runs: Runs) -> None:
    summary = json.loads((runs.run / "summary.json").read_text())
    rc, out, err = call("sample", runs.run, "--prime", "the ", "--length", "50", "--temperature", "0.7",
                        "--seed", "3", "--json", "--device", "cpu")
    assert rc == 0 and err == ""
    obj = one_json(out)
    assert obj["prime"] == "the " and obj["length"] == 50 and obj["seed"] == 3 and obj["temperature"] == 0.7
    assert obj["step"] == summary["best_step"]
    text = obj["text"]
    assert text.startswith("the ") and len(text) == 54
    model, cfg, _ = load_model(runs.run)
    assert text == sample(model, cfg.vocab, cfg.text, "the ", 50, temperature=0.7, seed=3)
    again = call("sample", runs.run, "--prime", "the ", "--length", "50", "--temperature", "0.7", "--seed", "3",
                 "--device", "cpu")
    assert again[0] == 0 and again[1] == text + ("" if text.endswith("\n") else "\n")
    other_seed = one_json(call("sample", runs.run, "--prime", "the ", "--length", "50", "--seed", "4", "--json",
                               "--device", "cpu")[1])
    assert other_seed["text"] != text


# ---------------------------------------------------------------------------------------------------------------
# --help of every command.

def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(argv prefix, parser) for the top level and every (nested) subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, path + (name,))


def test_help_of_every_command_mentions_each_flag(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    found = list(commands(build_parser()))
    names = {p[0] for p, _ in found if p}
    assert {"train", "eval", "sample", "sizes"} <= names
    for path, parser in found:
        rc, out, err = call(*path, "--help")
        assert rc == 0 and err == "", path
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in out, (path, flag)
            if action.help and action.help != argparse.SUPPRESS and action.option_strings:
                assert action.help.split()[0] in out, (path, action.option_strings)


def test_no_command_prints_help_and_fails() -> None:
    rc, out, err = call()
    assert rc == 2 and "usage:" in err


def test_a_raw_disk_full_error_from_any_writer_is_one_line(monkeypatch, capsys):
    """The safety net for writers outside rnnlens.fsutil: ENOSPC/EDQUOT, raw or wrapped, is exit 2, no traceback."""
    import errno

    from rnnlens.commands import sizes

    def raw(args):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", "out/table.md")

    monkeypatch.setattr(sizes, "run", raw)
    assert main(["sizes"]) == 2
    assert capsys.readouterr().err == ("rnnlens: error: disk quota exceeded while writing out/table.md; free space "
                                       "and run the command again (files rnnlens writes atomically keep their "
                                       "previous version)\n")

    def wrapped(args):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("could not save the figure") from exc

    monkeypatch.setattr(sizes, "run", wrapped)
    assert main(["sizes"]) == 2
    assert capsys.readouterr().err.startswith("rnnlens: error: no space left on device; free space")

    def other(args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sizes, "run", other)
    with pytest.raises(OSError, match="Input/output error"):
        main(["sizes"])
