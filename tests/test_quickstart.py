"""The README's first command: quickstart trains on the built-in corpus, runs the baselines and the analyses,
writes the report, samples, and reuses everything on a second call."""

from __future__ import annotations

import json

import pytest

from rnnlens.cli import main
from rnnlens.fsutil import read_json

RUN = "stages/train/pystdlib/lstm-2l-130k-d0/lstm-2l-130k-d0"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "qs"
    argv = ["quickstart", "--out", str(out), "--chars", "60000", "--epochs", "0.3", "--length", "40", "--device",
            "cpu", "--json"]
    return out, argv


def test_quickstart_trains_analyses_reports_and_reuses_its_run(quick, capsys):
    out, argv = quick
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["sample"].startswith("def ") and len(first["sample"]) >= 44
    assert first["run"].endswith(RUN) and first["test_loss_nats"] > 0 and first["test_chars"] > 0
    assert first["failed"] == [] and first["report"].endswith("report.html")
    results = read_json(out / "results.json")["results"]["pystdlib"]
    for part in ("baselines", "cells", "gates", "compare", "errors"):
        assert results.get(part), f"the report lacks {part}"
    assert "Figure 6" in (out / "report.html").read_text()
    weights = (out / RUN / "best.safetensors").read_bytes()
    assert main(argv) == 0  # the second call finds everything done and only samples again
    second = json.loads(capsys.readouterr().out)
    assert second["sample"] == first["sample"] and (out / RUN / "best.safetensors").read_bytes() == weights


def test_quickstart_plain_output_names_the_test_loss_and_the_report(quick, capsys):
    out, argv = quick
    plain = [a for a in argv if a != "--json"] + ["--quiet"]
    assert main(plain) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("def ")
    assert "test loss:" in captured.err and "nats/char" in captured.err and "report.html" in captured.err


def test_quickstart_refuses_bad_flags(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--chars", "100"]) == 2
    assert "--chars" in capsys.readouterr().err and not (tmp_path / "q").exists()
