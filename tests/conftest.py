"""Shared test fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RNNLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The directory with the paper's full corpora; skips the test when they are absent."""
    if not (SHARED_DATA / "warpeace_input.txt").is_file() or not (SHARED_DATA / "linux_input.txt").is_file():
        pytest.skip(f"full corpora not found in {SHARED_DATA} (set RNNLENS_SHARED_DATA to the folder holding them)")
    return SHARED_DATA


# Tiny test models run fastest on one thread, and the machine is shared: pin torch (and the
# subprocesses tests start) to one thread unless the caller chose otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# ---- the explorer's tests (tests/test_explorer_*.py; helpers in tests/_explorer.py) ----

@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(run dir, ExplorerData over its test split, cache dir, (model, cfg, split, symbols)) of a tiny 2-layer
    LSTM trained once for the whole session."""
    from _explorer import train_tiny
    from rnnlens.explorer.data import load_explorer
    from rnnlens.run import load_model, load_splits, load_symbols

    tmp = tmp_path_factory.mktemp("explorer")
    run = train_tiny(tmp)
    model, cfg, _ = load_model(run, "best", "cpu")
    symbols = load_symbols(cfg)
    split = load_splits(cfg)["test"]
    data = load_explorer(model, cfg, split, symbols, "test", run, cache_dir=tmp / "cache")
    return run, data, tmp / "cache", (model, cfg, split, symbols)


@pytest.fixture(scope="module")
def tiny_server(tiny):
    """The port of an explorer server (open, loopback) over the tiny run's test split."""
    from rnnlens.explorer.server import make_server, serve_in_thread

    srv = make_server(tiny[1], "127.0.0.1", 0)
    serve_in_thread(srv)
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
