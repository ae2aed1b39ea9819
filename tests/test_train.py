"""Training: the loop's bookkeeping, and exact resume after SIGKILL or Ctrl-C (real processes)."""

from __future__ import annotations

import errno
import importlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnlens.cli import main
from rnnlens.run import load_config
from rnnlens.train import init_run, train

TINY = ["--batch-size", "4", "--seq-len", "16", "--hidden", "24", "--layers", "2", "--dropout", "0.1",
        "--eval-every", "40", "--eval-chars", "400", "--quiet", "--device", "cpu"]


def make_text(path: Path, n_words: int = 4000, seed: int = 1) -> Path:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "(", ")", "\"quoted\"", "if", "x", "=", "1;", "\n"]
    path.write_text(" ".join(rng.choice(words) for _ in range(n_words)), encoding="utf-8")
    return path


def cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "rnnlens", *argv]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def assert_bit_identical(a: Path, b: Path) -> None:
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{name} differs between {a} and {b}"


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    return make_text(tmp_path_factory.mktemp("text") / "tiny.txt")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, text) -> Path:
    """An uninterrupted run, the yardstick for every resume test."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", "--text", str(text), *TINY, "--max-steps", "600", "--out", str(out)]) == 0
    return out


def test_run_directory_is_complete_and_consistent(reference):
    summary = json.loads((reference / "summary.json").read_text())
    lines = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "complete" and summary["steps"] == 600
    assert [x["step"] for x in lines] == sorted({*range(40, 601, 40), *_epoch_ends(reference, 600)})
    best = min(lines, key=lambda x: x["val_loss"])
    assert summary["best_step"] == best["step"] and summary["best_val_loss"] == pytest.approx(best["val_loss"])
    assert all(x["best_val_loss"] == min(y["val_loss"] for y in lines if y["step"] <= x["step"]) for x in lines)
    assert summary["test_loss_bits"] == pytest.approx(summary["test_loss_nats"] / 0.6931471805599453)
    assert summary["params"] == sum(v.numel() for v in weights_of(reference / "best.safetensors").values())
    assert lines[-1]["val_loss"] < lines[0]["val_loss"]  # it learns
    assert set(lines[0]) >= {"step", "epoch", "train_loss", "val_loss", "lr", "chars_per_s"}


def _epoch_ends(run: Path, steps: int) -> set[int]:
    from rnnlens.run import load_splits

    cfg = load_config(run)
    per_epoch = load_splits(cfg)["train"].num_blocks(cfg.split.seq_len)
    return set(range(per_epoch, steps + 1, per_epoch))


def test_learning_rate_decays_after_the_tenth_epoch(tmp_path, text):
    out = tmp_path / "run"
    assert main(["train", "--text", str(text), *TINY, "--epochs", "3", "--lr-decay-after", "1", "--lr-decay", "0.5",
                 "--eval-every", "0", "--out", str(out)]) == 0
    lrs = [json.loads(x)["lr"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([2e-3, 1e-3, 5e-4])  # one validation per epoch end


def test_resume_after_sigkill_is_bit_identical(tmp_path, text, reference):
    out = tmp_path / "run"
    argv = cli("train", "--text", str(text), *TINY, "--max-steps", "600", "--checkpoint-every", "0.05",
               "--out", str(out))
    rng = random.Random(7)
    kills = 0
    for attempt in range(6):
        proc = subprocess.Popen(argv + (["--resume"] if attempt else []), stderr=subprocess.PIPE)
        if attempt < 2:  # kill the first two attempts at a random moment after a checkpoint exists
            deadline = time.monotonic() + 60
            while not (out / "state.safetensors").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            argv = [a for a in argv]
            if attempt == 0:  # later attempts resume with the saved settings only
                argv = cli("train", "--out", str(out), "--quiet", "--device", "cpu")
            continue
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        break
    assert kills >= 1, "the run finished before it could be killed; make it longer"
    assert_bit_identical(out / "best.safetensors", reference / "best.safetensors")
    assert_bit_identical(out / "state.safetensors", reference / "state.safetensors")
    ref_lines = (reference / "metrics.jsonl").read_text().splitlines()
    got_lines = (out / "metrics.jsonl").read_text().splitlines()
    strip = lambda ls: [{k: v for k, v in json.loads(x).items() if k not in ("chars_per_s", "elapsed_s")} for x in ls]  # noqa: E731
    assert strip(got_lines) == strip(ref_lines)


def test_ctrl_c_saves_and_resume_is_bit_identical(tmp_path, text, reference):
    out = tmp_path / "run"
    proc = subprocess.Popen(cli("train", "--text", str(text), *TINY, "--max-steps", "600", "--out", str(out)),
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:  # past the first validation
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")
    assert proc.returncode == 130
    assert "rnnlens train --resume --out" in err.decode()
    assert "Traceback" not in err.decode()
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert_bit_identical(out / "best.safetensors", reference / "best.safetensors")
    assert_bit_identical(out / "state.safetensors", reference / "state.safetensors")


def test_resume_of_a_finished_run_changes_nothing(tmp_path, reference, capsys):
    before = {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()}
    assert main(["train", "--resume", "--out", str(reference), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "complete"
    assert {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()} == before


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_state(tmp_path, text, capsys):
    out = tmp_path / "run"
    # no validation before the loss explodes; the state is saved after every update
    code = main(["train", "--text", str(text), *TINY, "--lr", "2e37", "--eval-every", "1000", "--max-steps", "200",
                 "--checkpoint-every", "0.0001", "--out", str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("rnnlens: error:")]
    assert code == 2 and len(errors) == 1 and "diverged" in errors[0] and "Traceback" not in err
    state = load_file(str(out / "state.safetensors"))
    assert all(bool(torch.isfinite(t).all()) for k, t in state.items() if k.startswith("model."))
    from rnnlens.checkpoint import load_tensors

    saved_step = load_tensors(out / "state.safetensors")[1]["progress"]["step"]
    assert saved_step >= 1 and f"checkpoint (step {saved_step})" in errors[0]


def test_a_validation_far_above_uniform_guessing_ends_the_run_as_diverged(tmp_path, text, capsys):
    out = tmp_path / "run"
    code = main(["train", "--text", str(text), *TINY, "--lr", "2e37", "--eval-every", "1", "--max-steps", "200",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3 and "diverged at update 1" in err and "not a result" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps"] == 1 and "ln K" in summary["health"]


def test_a_run_that_does_not_beat_the_unigram_model_is_stalled(tmp_path, text, capsys):
    out = tmp_path / "run"
    code = main(["train", "--text", str(text), *TINY, "--lr", "1e-9", "--eval-every", "10", "--max-steps", "100",
                 "--stall-after", "20", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 3 and result["status"] == "stalled" and result["steps"] == 20
    assert "unigram" in result["health"] and "stalled" in captured.err
    # the same run with the check off trains to its end
    code = main(["train", "--text", str(text), *TINY, "--lr", "1e-9", "--eval-every", "10", "--max-steps", "30",
                 "--stall-after", "0", "--out", str(tmp_path / "off"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["status"] == "complete"


def test_unigram_loss_is_the_cross_entropy_of_smoothed_train_frequencies():
    import math

    import numpy as np

    from rnnlens.health import unigram_loss

    train_y, val_y = np.array([[0, 0, 0, 1]]), np.array([[0, 1, 2]])
    p = np.array([4, 2, 1]) / 7  # add-one counts over K=3
    assert math.isclose(unigram_loss(train_y, val_y, 3), -np.log(p[[0, 1, 2]]).mean())


def test_library_api_trains_without_the_cli(tmp_path, text):
    from rnnlens.commands.train import build_config
    from rnnlens.cli import build_parser

    args = build_parser().parse_args(["train", "--text", str(text), *TINY, "--max-steps", "30"])
    cfg, splits = build_config(args)
    init_run(tmp_path / "run", cfg)
    stops = iter([False] * 9 + [True])
    outcome = train(tmp_path / "run", "cpu", splits=splits, should_stop=lambda: next(stops))
    assert outcome.status == "interrupted" and outcome.step == 10
    outcome = train(tmp_path / "run", "cpu", splits=splits)
    assert outcome.status == "complete" and outcome.summary["steps"] == 30


def test_existing_run_is_never_overwritten(tmp_path, text, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["train", "--text", str(text), *TINY, "--max-steps", "5", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda(tmp_path, text):
    out = tmp_path / "run"
    tiny = [a if a != "cpu" else "cuda" for a in TINY]
    assert main(["train", "--text", str(text), *tiny, "--max-steps", "50", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["device"].startswith("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_resume_without_dropout_is_bit_identical(tmp_path, text):
    tiny = [a if a != "cpu" else "cuda" for a in TINY]
    tiny[tiny.index("--dropout") + 1] = "0"
    base = ["train", "--text", str(text), *tiny, "--max-steps", "60"]
    assert main([*base, "--out", str(tmp_path / "ref")]) == 0
    from rnnlens.cli import build_parser
    from rnnlens.commands.train import build_config

    cfg, splits = build_config(build_parser().parse_args([*base, "--out", str(tmp_path / "cut")]), torch.device("cuda"))
    init_run(tmp_path / "cut", cfg)
    stops = iter([False] * 24 + [True])
    assert train(tmp_path / "cut", "cuda", splits=splits, should_stop=lambda: next(stops)).status == "interrupted"
    assert main(["train", "--resume", "--out", str(tmp_path / "cut"), "--quiet", "--device", "cuda"]) == 0
    assert_bit_identical(tmp_path / "cut" / "best.safetensors", tmp_path / "ref" / "best.safetensors")
    assert_bit_identical(tmp_path / "cut" / "state.safetensors", tmp_path / "ref" / "state.safetensors")


def _fail_once(monkeypatch, target: str, nth: int, raise_error) -> dict:
    """Make the ``nth`` write of ``target`` in the run hit a full disk after writing part of it; returns a record
    of the file's bytes just before (the previous version the error must keep)."""
    from rnnlens import checkpoint

    real_save, real_open, seen = checkpoint.save_file, open, {"calls": 0, "before": None, "tmp": None}

    def armed(name: str) -> bool:
        if Path(name).name.lstrip(".").split(".")[:2] != target.split(".")[:2]:
            return False
        seen["calls"] += 1
        return seen["calls"] == nth

    def save_file(tensors, filename, metadata=None):
        if not armed(filename):
            return real_save(tensors, filename, metadata=metadata)
        final = Path(filename).parent / target
        seen["before"], seen["tmp"] = final.read_bytes() if final.exists() else None, filename
        Path(filename).write_bytes(b"\0" * 100)  # part of it got out
        raise_error(filename)

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise_error(self.fh.name)

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if "a" in mode and armed(str(file)):
            seen["before"] = Path(file).read_bytes()
            return FullFile(fh)
        return fh

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    # the module, not the package attribute rnnlens.train (that is the function rnnlens.api.train)
    monkeypatch.setattr(importlib.import_module("rnnlens.train"), "open", fake_open, raising=False)
    return seen


def _raw_enospc(name: str) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _safetensors_enospc(name: str) -> None:
    from safetensors import SafetensorError

    raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                          'message: "No space left on device" })')


@pytest.mark.parametrize("target, nth, raise_error", [("state.safetensors", 100, _raw_enospc),
                                                      ("best.safetensors", 3, _safetensors_enospc),
                                                      ("metrics.jsonl", 4, _raw_enospc)])
def test_a_full_disk_is_one_line_keeps_the_run_and_resume_is_bit_identical(tmp_path, text, reference, monkeypatch,
                                                                          capsys, target, nth, raise_error):
    out = tmp_path / "run"
    seen = _fail_once(monkeypatch, target, nth, raise_error)
    code = main(["train", "--text", str(text), *TINY, "--max-steps", "600", "--checkpoint-every", "0.0001",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert seen["calls"] >= nth, "the write never failed; the test is not testing anything"
    lines = [x for x in err.splitlines() if x.startswith("rnnlens: error:")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    saved = load_tensors_step(out)
    assert lines[0] == (f"rnnlens: error: no space left on device while writing {out / target}; the run is intact "
                        f"(the previous checkpoint, of step {saved}, is kept): free space, then resume with "
                        f"rnnlens train --resume --out {out}")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the temp file is gone
    if target != "metrics.jsonl":
        assert (out / target).read_bytes() == seen["before"]  # the previous version, untouched
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert_bit_identical(out / "best.safetensors", reference / "best.safetensors")
    assert_bit_identical(out / "state.safetensors", reference / "state.safetensors")
    strip = lambda path: [{k: v for k, v in json.loads(x).items() if k not in ("chars_per_s", "elapsed_s")}  # noqa: E731
                          for x in path.read_text().splitlines()]
    assert strip(out / "metrics.jsonl") == strip(reference / "metrics.jsonl")


def load_tensors_step(run: Path) -> int:
    from rnnlens.checkpoint import load_tensors

    return load_tensors(run / "state.safetensors")[1]["progress"]["step"]
