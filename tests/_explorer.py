"""Helpers for the explorer's tests (tests/test_explorer_*.py): the tiny run they all open, a plain HTTP
GET, and ``rnnlens serve`` started in a subprocess. The fixtures over the tiny run are in conftest.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from rnnlens.cli import main


def tiny_text(n_lines: int = 400, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "said", "hello", "world"]
    lines = []
    for _ in range(n_lines):
        ws = [rng.choice(words) for _ in range(rng.randint(2, 9))]
        if rng.random() < 0.4:
            k = rng.randint(0, len(ws) - 1)
            ws[k] = f'"{ws[k]} {rng.choice(words)}"'
        lines.append(" ".join(ws).capitalize() + ".")
    return "\n".join(lines) + "\n"


def train_tiny(tmp: Path) -> Path:
    text = tmp / "tiny.txt"
    text.write_text(tiny_text())
    run = tmp / "run"
    rc = main(["train", "--text", str(text), "--model", "lstm", "--layers", "2", "--batch-size", "4",
               "--seq-len", "16", "--hidden", "16", "--max-steps", "200", "--lr", "0.02", "--eval-every", "100",
               "--out", str(run),
               "--quiet", "--device", "cpu"])
    assert rc == 0
    return run


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict | bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read()
        ctype = r.getheader("Content-Type", "")
        return r.status, (json.loads(body) if ctype.startswith("application/json") and body else body), ctype
    finally:
        conn.close()


@contextlib.contextmanager
def serve_process(run: Path, cache: Path, *flags: str) -> Iterator[tuple[re.Match, str]]:
    """``rnnlens serve RUN --port 0 --cache CACHE --device cpu FLAGS`` in a subprocess, waited for until it
    prints its address: yields (the match of ``(http://127.0.0.1:PORT/)(?token=TOKEN)?``, the line it is on);
    fails the test when the process ends without printing one; terminated on exit."""
    cmd = [sys.executable, "-m", "rnnlens", "serve", str(run), "--port", "0", "--cache", str(cache),
           "--device", "cpu", *flags]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for line in proc.stderr:
            m = re.search(r"(http://127\.0\.0\.1:(\d+)/)(?:\?token=(\S+))?", line)
            if m:
                break
        else:
            pytest.fail(f"no address printed; exit {proc.wait()}")
        yield m, line
    finally:
        proc.terminate()
        proc.wait(10)
