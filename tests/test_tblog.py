"""TensorBoard logging (rnnlens.tblog): what is logged, and an interrupted, killed and resumed run whose event
log, read back with TensorBoard's own readers, holds every step once with the uninterrupted run's values."""

from __future__ import annotations

import builtins
import importlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from rnnlens import RnnlensError, prepare_run
from rnnlens.cli import main
from rnnlens.tblog import EventLog, grad_norm
from rnnlens.train import train

if os.environ.get("CI") == "true":  # under CI nothing may be skipped: a missing package fails here
    tb_loader = importlib.import_module("tensorboard.backend.event_processing.event_file_loader")
else:
    tb_loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader",
                                    reason="needs the extra rnnlens[tensorboard] (in the test extra)")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.util.tensor_util import make_ndarray  # noqa: E402

STEPS = 12
TINY = dict(dataset="pystdlib", batch_size=50, seq_len=20, hidden=16, layers=1, max_steps=STEPS, eval_every=4,
            eval_chars=500, checkpoint_every=1e9)
TINY_FLAGS = ["--batch-size", "50", "--seq-len", "20", "--hidden", "16", "--layers", "1", "--max-steps", "6",
              "--eval-every", "3", "--eval-chars", "500", "--quiet", "--device", "cpu"]
MISSING = "rnnlens: error: --tensorboard needs the tensorboard package; install it with pip install 'rnnlens[tensorboard]'"


def raw_scalars(folder: Path) -> list[tuple[str, int, float]]:
    """Every scalar record in every event file of ``folder``, as written (no purging, unlike the accumulator)."""
    out = []
    for path in sorted(folder.glob("*tfevents*")):
        for event in tb_loader.EventFileLoader(str(path)).Load():
            out += [(value.tag, event.step, float(make_ndarray(value.tensor))) for value in event.summary.value]
    return out


def shown(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows: tag -> [(step, value)] from its EventAccumulator."""
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def stop_at(step: int):
    calls = iter(range(1, 10**6))
    return lambda: next(calls) >= step


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with TensorBoard logging."""
    out, _, splits = prepare_run(tmp_path_factory.mktemp("ref") / "run", device="cpu", tensorboard=True, **TINY)
    assert train(out, "cpu", splits=splits).status == "complete"
    return out


def test_every_scalar_is_logged_at_every_update_with_the_metrics_values(reference):
    log = shown(reference / "tensorboard")
    assert set(log) == {"loss/train", "loss/val", "train/lr", "train/chars_per_s", "train/grad_norm"}
    for tag in ("loss/train", "train/lr", "train/chars_per_s", "train/grad_norm"):
        assert [s for s, _ in log[tag]] == list(range(1, STEPS + 1)), tag
    lines = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines()]
    assert log["loss/val"] == [(x["step"], pytest.approx(x["val_loss"], rel=1e-6)) for x in lines]
    assert [s for s, _ in log["loss/val"]] == [4, 8, 12]
    assert all(v == pytest.approx(2e-3) for _, v in log["train/lr"])
    # the mean training loss of the steps since the previous validation is metrics.jsonl's train_loss
    train = dict(log["loss/train"])
    for prev, x in zip([0] + [y["step"] for y in lines], lines):
        mean = sum(train[s] for s in range(prev + 1, x["step"] + 1)) / (x["step"] - prev)
        assert mean == pytest.approx(x["train_loss"], rel=1e-6)
    assert all(v > 0 for _, v in log["train/grad_norm"] + log["train/chars_per_s"])
    cfg = json.loads((reference / "config.json").read_text())
    summary = json.loads((reference / "summary.json").read_text())
    assert cfg["train"]["tensorboard"] == "tensorboard"  # relative to the run folder
    assert summary["tensorboard"] == str(reference / "tensorboard")


def test_logging_changes_no_number_of_training(tmp_path, reference):
    out, _, splits = prepare_run(tmp_path / "plain", device="cpu", **TINY)
    assert train(out, "cpu", splits=splits).status == "complete"
    assert not (out / "tensorboard").exists()
    from safetensors.torch import load_file

    for name in ("state.safetensors", "best.safetensors"):
        wa, wb = load_file(str(out / name)), load_file(str(reference / name))
        assert all(torch.equal(wa[k], wb[k]) for k in wa if k.startswith("model.")), name
    drop = ("chars_per_s", "elapsed_s")
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if k not in drop} for x in p.read_text().splitlines()]  # noqa: E731
    assert strip(out / "metrics.jsonl") == strip(reference / "metrics.jsonl")


def test_a_killed_and_resumed_run_logs_every_step_once_with_the_uninterrupted_values(tmp_path, reference):
    out, _, splits = prepare_run(tmp_path / "cut", device="cpu", tensorboard=True, **TINY)
    assert train(out, "cpu", splits=splits, should_stop=stop_at(5)).status == "interrupted"  # saved at step 5
    saved = tmp_path / "state-5.safetensors"
    shutil.copy(out / "state.safetensors", saved)
    assert train(out, "cpu", splits=splits, should_stop=stop_at(4)).status == "interrupted"  # ran on to step 9
    shutil.copy(saved, out / "state.safetensors")  # as if killed at step 9 with the last save at step 5
    written = raw_scalars(out / "tensorboard")
    assert max(s for _, s, _ in written) == 9 and Counter((t, s) for t, s, _ in written)[("loss/train", 7)] == 1
    assert train(out, "cpu").status == "complete"  # resumes from step 5: steps 6..9 are written again

    records = raw_scalars(out / "tensorboard")
    twice = [k for k, n in Counter((t, s) for t, s, _ in records).items() if n > 1]
    assert not twice, f"logged more than once: {twice}"
    expected = {(t, s): v for t, s, v in raw_scalars(reference / "tensorboard") if t != "train/chars_per_s"}
    got = {(t, s): v for t, s, v in records if t != "train/chars_per_s"}
    assert len(expected) == 3 * STEPS + 3 and len(set(expected.values())) > STEPS  # real, varied values
    assert got == expected  # bit-exact resume: the same float32 values at the same steps
    log, ref = shown(out / "tensorboard"), shown(reference / "tensorboard")
    assert [s for s, _ in log["loss/train"]] == list(range(1, STEPS + 1))
    assert log["loss/train"] == ref["loss/train"] and log["loss/val"] == ref["loss/val"]
    assert len(list((out / "tensorboard").glob("*tfevents*"))) == 1  # one file, appended to


def test_a_torn_record_and_events_past_the_saved_step_are_cut(tmp_path):
    log = EventLog(tmp_path, "abc", 0)
    for step in range(1, 6):
        log.train(step, float(step), 1e-3, 100.0)
    log.close()
    path = log.path
    with open(path, "ab") as fh:
        fh.write(path.read_bytes()[-30:-7])  # half a record, as a kill in the middle of a write leaves
    log = EventLog(tmp_path, "abc", 3)
    for step in range(4, 7):
        log.train(step, 10.0 * step, 1e-3, 100.0)
    log.close()
    assert [(s, v) for t, s, v in raw_scalars(tmp_path) if t == "loss/train"] == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    other = EventLog(tmp_path, "xyz", 0)  # another run's file in the same folder is left alone
    other.close()
    assert len(raw_scalars(tmp_path)) == 6 * 3


def test_gradient_norm_is_clip_grad_norm_s_and_leaves_the_gradients_alone():
    torch.manual_seed(0)
    model = torch.nn.LSTM(5, 7, 2)
    model(torch.randn(4, 3, 5))[0].pow(2).sum().backward()
    params = list(model.parameters())
    before = [p.grad.clone() for p in params]
    norm = grad_norm(params)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before))
    expected = torch.nn.utils.clip_grad_norm_(params, float("inf"))
    assert float(norm) == pytest.approx(float(expected), rel=1e-6)


def test_cli_writes_to_the_given_folder_and_resume_keeps_it(tmp_path, capsys):
    out, logs = tmp_path / "run", tmp_path / "logs"
    assert main(["train", *TINY_FLAGS, "--out", str(out), "--tensorboard", str(logs)]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["tensorboard"] == str(logs.resolve())
    assert [s for t, s, _ in raw_scalars(logs) if t == "loss/val"] == [3, 6]
    assert not (out / "tensorboard").exists()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--tensorboard"]) == 2
    assert "drop --tensorboard" in capsys.readouterr().err


def _without_tensorboard(monkeypatch):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_a_missing_tensorboard_package_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch, reference):
    _without_tensorboard(monkeypatch)
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--out", str(out), "--tensorboard"]) == 2
    assert capsys.readouterr().err == MISSING + "\n"
    assert not out.exists()  # refused before the run folder is made
    with pytest.raises(RnnlensError, match=r"^tensorboard needs the tensorboard package; install it with pip install "
                                           r"'rnnlens\[tensorboard\]'$"):
        prepare_run(tmp_path / "lib", device="cpu", tensorboard=True, **TINY)
    cut = tmp_path / "cut"  # a run made with logging, resumed where the package is gone
    shutil.copytree(reference, cut)
    (cut / "summary.json").unlink()
    assert main(["train", "--resume", "--out", str(cut), "--quiet", "--device", "cpu"]) == 2
    full = capsys.readouterr().err
    err = full.splitlines()[-1] + "\n"  # after the line that names the run
    assert "Traceback" not in full and len(full.splitlines()) == 2 and err.startswith(f"rnnlens: error: run {cut} logs to TensorBoard")
    assert err.endswith("needs the tensorboard package; install it with pip install 'rnnlens[tensorboard]'\n")
