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
