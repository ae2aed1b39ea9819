"""One writer per run or reproduction folder: an OS lock, tested with real processes (and a SIGKILLed holder)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.lock import LOCK_NAME, acquire, hold, holder, release

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
TINY = ["--batch-size", "4", "--seq-len", "16", "--hidden", "16", "--layers", "1", "--eval-every", "20",
        "--eval-chars", "200", "--quiet", "--device", "cpu", "--threads", "1"]

HOLD = "import sys, time; from rnnlens.lock import hold\nwith hold(sys.argv[1]):\n    print('held', flush=True)\n" \
       "    time.sleep(60)\n"


def start_holder(folder: Path) -> subprocess.Popen:
    """A separate process that takes the folder's lock and sleeps; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, env=ENV, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def make_text(path: Path) -> Path:
    import random

    rng = random.Random(3)
    path.write_text(" ".join(rng.choice(["the", "cat", "(", ")", "if", "x", "\n"]) for _ in range(1500)))
    return path


def test_a_second_process_is_refused_with_the_holders_pid_and_sigkill_frees_the_lock(tmp_path):
    assert holder(tmp_path) is None  # no lock file at all
    proc = start_holder(tmp_path)
    try:
        assert holder(tmp_path) == proc.pid
        with pytest.raises(RnnlensError, match=rf"pid {proc.pid}\b") as info:
            acquire(tmp_path, "run", retry_s=0.1)
        assert "\n" not in str(info.value)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the killed holder left its file behind, but no lock
    assert holder(tmp_path) is None
    with hold(tmp_path):
        assert holder(tmp_path) == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists() and holder(tmp_path) is None


def test_probing_the_holder_never_makes_a_writer_fail(tmp_path):
    """holder() takes a shared lock for an instant; a writer arriving then retries instead of failing."""
    probe = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom rnnlens.lock import holder\n"
                              "end = time.time() + 3\nwhile time.time() < end: holder(sys.argv[1])\n", str(tmp_path)],
                             env=ENV)
    try:
        time.sleep(1.0)  # the probe is looping
        for _ in range(50):
            fd = acquire(tmp_path)
            release(tmp_path, fd)
    finally:
        probe.wait()


@pytest.mark.slow
def test_train_refuses_a_second_writer_and_leaves_the_run_untouched(tmp_path):
    text = make_text(tmp_path / "t.txt")
    run = tmp_path / "run"
    assert main(["train", "--text", str(text), "--out", str(run), "--max-steps", "30",
                 *TINY]) == 0
    before = snapshot(run)
    proc = start_holder(run)
    try:
        res = subprocess.run([sys.executable, "-m", "rnnlens", "train", "--resume", "--out", str(run)], env=ENV,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2
        errors = [line for line in res.stderr.splitlines() if line.startswith("rnnlens: error: ")]
        assert errors == [res.stderr.strip().splitlines()[-1]] and f"pid {proc.pid}" in errors[0]
        assert errors[0].startswith("rnnlens: error: run ")
        # readers go on while the run is held
        assert main(["eval", str(run), "--device", "cpu", "--json"]) == 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert snapshot(run) == before


@pytest.mark.slow
def test_two_real_trainings_of_one_run_one_is_refused_and_metrics_have_no_duplicate_steps(tmp_path):
    text = make_text(tmp_path / "t.txt")
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "rnnlens", "train", "--text", str(text), "--out", str(run),
                              "--max-steps", "100000", "--checkpoint-every", "0.5", *TINY], env=ENV,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while holder(run) != first.pid:
            assert first.poll() is None and time.time() < deadline, "the first training never took the lock"
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "rnnlens", "train", "--resume", "--out", str(run)], env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # still training: the refusal was for a live writer
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr
        first.send_signal(signal.SIGINT)  # the first saves its state and stops
        assert first.wait(timeout=120) == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps and steps == sorted(set(steps))
    assert holder(run) is None and not (run / LOCK_NAME).exists()


def test_a_reproduction_folder_held_by_another_process_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "repro"
    out.mkdir()
    proc = start_holder(out)
    try:
        before = snapshot(out)
        assert main(["reproduce", "--preset", "smoke", "--out", str(out), "--device", "cpu", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rnnlens: error: reproduction ") and f"pid {proc.pid}" in err and "\n" not in err
        assert snapshot(out) == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
