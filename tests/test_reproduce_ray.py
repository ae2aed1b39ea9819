"""The Ray executor: the smoke preset through the CLI on a local Ray instance started for it, the shipped
mode (no shared filesystem) against the same results, the archive and path helpers, and bad addresses."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rnnlens.cli import main
from rnnlens.fsutil import atomic_write_json, read_json
from rnnlens.reproduce.executor import InlineBackend, run_plan
from rnnlens.reproduce.plan import PRESETS
from rnnlens.reproduce.ray_backend import TOKEN, check_address, closure, pack, relocate_configs, unpack
from rnnlens.reproduce.runner import make_plan
from rnnlens.reproduce.stages import Context
from rnnlens.exceptions import RnnlensError

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rnnlens[ray]')")

SUBSET = ("data/pystdlib", "train/pystdlib/lstm-2l-8k-d0", "train/pystdlib/lstm-2l-8k-d0.25",
          "train/pystdlib/gru-2l-8k-d0", "train/pystdlib/gru-2l-8k-d0.25", "select/pystdlib", "gates/pystdlib")
TRAIN = [s for s in SUBSET if s.startswith("train/")]


@pytest.fixture(scope="module")
def ray_smoke(tmp_path_factory) -> Path:
    """The whole smoke preset through the CLI with --executor ray (a local instance, started and stopped)."""
    out = tmp_path_factory.mktemp("ray") / "smoke"
    code = main(["reproduce", "--preset", "smoke", "--executor", "ray", "--workers", "2", "--out", str(out),
                 "--device", "cpu", "--quiet"])
    assert code == 0
    assert not ray.is_initialized()  # the instance it started is gone
    return out


def test_smoke_preset_on_a_local_ray_instance(ray_smoke):
    results = read_json(ray_smoke / "results.json")
    planned = make_plan("smoke", None, None, "cpu")
    for s in planned.stages:
        assert (ray_smoke / "stages" / s.id / "stage.json").is_file(), s.id
    assert not (ray_smoke / TOKEN).exists()
    assert "<svg" in (ray_smoke / "report.html").read_text() or "data:image/png" in (ray_smoke / "report.html").read_text()
    assert results["provenance"]["git_commit"]


def test_shipped_mode_gives_the_same_results(ray_smoke, tmp_path, monkeypatch):
    """No shared filesystem: each task gets its inputs as an archive, runs in a temp folder, and sends its
    folder back; the runs are the same as the shared-filesystem ones, and the analyses work on them."""
    from rnnlens.reproduce.ray_backend import RayBackend

    planned = make_plan("smoke", None, None, "cpu")
    stages = [s for s in planned.stages if s.id in SUBSET]
    monkeypatch.setenv("RAY_worker_niceness", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        backend = RayBackend(tmp_path, stages, workers=2, shared=False)
        outcome = run_plan(stages, Context(str(tmp_path), PRESETS["smoke"]), backend)
        backend.close()
    finally:
        ray.shutdown()
    assert outcome.errors == {} and outcome.count("done") == len(SUBSET)
    for sid in TRAIN:
        got = read_json(tmp_path / "stages" / sid / "stage.json")["result"]
        want = read_json(ray_smoke / "stages" / sid / "stage.json")["result"]
        assert got["test_loss_nats"] == want["test_loss_nats"] and got["best_val_loss"] == want["best_val_loss"]
        cfg = read_json(tmp_path / got["run"] / "config.json")  # the sliced corpus, under this folder again
        assert cfg["source"]["text_path"] == str(tmp_path.resolve() / "stages/data/pystdlib/text.txt")
    got = read_json(tmp_path / "stages/gates/pystdlib/stage.json")["result"]["models"]  # an analysis of shipped runs
    want = read_json(ray_smoke / "stages/gates/pystdlib/stage.json")["result"]["models"]
    for g, w in zip(got, want, strict=True):  # the deepest (2-layer) LSTM and GRU: the same runs as the grid's
        assert {**g, "figure": None} == {**w, "figure": None}


def test_local_instance_is_found_to_share_the_filesystem(tmp_path):
    from rnnlens.reproduce.ray_backend import RayBackend

    stages = [s for s in make_plan("smoke", None, None, "cpu").stages if s.id == "data/pystdlib"]
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        backend = RayBackend(tmp_path, stages, workers=1)
        outcome = run_plan(stages, Context(str(tmp_path), PRESETS["smoke"]), backend)
        assert backend.shared is True and outcome.count("done") == 1
        backend.close()
        assert ray.is_initialized()  # it joined an instance it did not start: left running
    finally:
        ray.shutdown()
    assert not (tmp_path / TOKEN).exists()


def test_same_results_as_the_local_pool_for_one_run(ray_smoke, tmp_path):
    stages = [s for s in make_plan("smoke", None, None, "cpu").stages if s.id in (SUBSET[0], TRAIN[0])]
    run_plan(stages, Context(str(tmp_path), PRESETS["smoke"]), InlineBackend())
    got = read_json(tmp_path / "stages" / TRAIN[0] / "stage.json")["result"]
    assert got["test_loss_nats"] == read_json(ray_smoke / "stages" / TRAIN[0] / "stage.json")["result"]["test_loss_nats"]


def test_an_address_that_does_not_answer_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["reproduce", "--preset", "smoke", "--executor", "ray", "--address", "127.0.0.1:9", "--out", str(out),
                 "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no Ray cluster answers at 127.0.0.1:9" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["reproduce", "--address", "127.0.0.1:9", "--out", str(out)]) == 2
    assert "--executor ray" in capsys.readouterr().err
    with pytest.raises(RnnlensError, match="HOST:PORT"):
        check_address("nonsense")


def test_pack_unpack_and_relocate(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run = a / "stages/train/x/run"
    run.mkdir(parents=True)
    atomic_write_json(run / "config.json", {"source": {"text_path": str(a / "stages/data/x/text.txt")}})
    atomic_write_json(a / "stages/train/y.json", {"other": 1})
    unpack(pack(a, ["stages/train/x", "stages/missing"]), b)
    assert not (b / "stages/train/y.json").exists()
    assert relocate_configs(b, str(a), str(b)) == 1
    assert read_json(b / "stages/train/x/run/config.json")["source"]["text_path"] == str(b / "stages/data/x/text.txt")
    assert relocate_configs(b, str(a), str(b)) == 0  # already relocated
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # an archive that escapes its folder is refused
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        unpack(buf.getvalue(), b)
    assert not (tmp_path / "escape.txt").exists()


def test_closure_follows_every_dependency():
    stages = make_plan("smoke", None, None, "cpu").stages
    by_id = {s.id: s for s in stages}
    deps = closure(by_id["errors/pystdlib"], by_id)
    assert "select/pystdlib" in deps and "data/pystdlib" in deps
    assert {s for s in deps if s.startswith("train/")} == {s.id for s in stages if s.kind == "train"}
    assert closure(by_id["data/pystdlib"], by_id) == []
