"""The README's first command: quickstart trains on the built-in corpus, samples, and reuses its run."""

from __future__ import annotations

import json

from rnnlens.cli import main


def test_quickstart_trains_samples_and_reuses_its_run(tmp_path, capsys):
    out = tmp_path / "qs"
    argv = ["quickstart", "--out", str(out), "--epochs", "0.005", "--length", "40", "--device", "cpu", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["sample"].startswith("def ") and len(first["sample"]) >= 44
    assert first["dataset"] == "pystdlib" and first["test_loss_nats"] > 0 and first["test_chars"] > 0
    weights = (out / "best.safetensors").read_bytes()
    assert main(argv) == 0  # the second call finds the finished run and only samples again
    second = json.loads(capsys.readouterr().out)
    assert second["sample"] == first["sample"] and (out / "best.safetensors").read_bytes() == weights


def test_quickstart_plain_output_names_the_test_loss(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--epochs", "0.002", "--length", "20", "--quiet",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("def ")
    assert "test loss:" in captured.err and "nats/char" in captured.err
