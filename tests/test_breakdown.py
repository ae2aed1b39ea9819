"""rnnlens errors end to end (rnnlens.analysis.breakdown.run_errors behind rnnlens.commands.errors) on two tiny
trained runs: the breakdown of each, the scaling comparison, every oracle option applied to both runs."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from rnnlens.analysis.oracles import OracleConfig
from rnnlens.cli import main
from rnnlens.commands import errors as errors_cmd
from rnnlens.exceptions import RnnlensError


def test_errors_command_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", '"yes"', "no,", "cap", "car", "can"]
    (tmp_path / "t.txt").write_text(" ".join(rng.choice(words, size=1800)) + "\n")
    runs = []
    for steps in (40, 4):
        run = tmp_path / f"run{steps}"
        assert main(["train", "--text", str(tmp_path / "t.txt"), "--batch-size", "4", "--seq-len", "16", "--hidden",
                     "16", "--layers", "1", "--max-steps", str(steps), "--lr", "0.02", "--eval-every", "10", "--out", str(run),
                     "--quiet", "--device", "cpu"]) == 0
        runs.append(run)
    capsys.readouterr()  # training's own lines
    parser = argparse.ArgumentParser()
    errors_cmd.add_parser(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["errors", str(runs[0]), "--vs", str(runs[1]), "--ngram-n", "1,2,3", "--memory", "10,100",
                              "--out", str(out), "--device", "cpu", "--json"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    for f in ("errors.json", "errors.md", "errors.png"):
        assert (out / f).is_file()
    assert set(res["models"]) == {"run40", "run4"}
    for m in res["models"].values():
        assert sum(s["removed"] for s in m["steps"]) + m["remaining"] == m["errors"]
        assert [s["param"] for s in m["steps"] if s["oracle"] == "memory"] == [10, 100]
        assert m["remaining"] == 0  # the boosts go up to the threshold
    assert {k: res["oracles"][k] for k in ("memory_scope", "rare_from", "apostrophe")} == {
        "memory_scope": "split", "rare_from": "first", "apostrophe": "word"}
    s = res["scaling"]
    weak, strong = res["models"][s["weaker"]], res["models"][s["stronger"]]
    assert s["stronger"] == "run40" and s["error_difference"] == weak["errors"] - strong["errors"] > 0
    assert sum(v["difference"] for v in s["by_family"].values()) == s["error_difference"]
    assert s["fixed"]["total"] - s["new"] == s["error_difference"]
    assert "| oracle | param |" in (out / "errors.md").read_text()
    old = parser.parse_args(["errors", str(runs[0]), "--ngram-n", "1,2,3", "--memory-scope", "text", "--rare-from",
                             "second", "--boost-max", "0.4", "--apostrophe", "quote", "--out", str(tmp_path / "old"),
                             "--json"])
    assert old.func(old) == 0
    res_old = json.loads(capsys.readouterr().out)
    assert res_old["oracles"] == {**OracleConfig.before_issue_14(ngram_ns=(1, 2, 3)).to_dict(), "ngram_ns": [1, 2, 3]}
    assert res_old["models"]["run40"]["errors"] == res["models"]["run40"]["errors"]
    # --vs applies every oracle option to both runs: each breakdown is the one of that run analysed alone
    opts = ["--ngram-n", "1,2,3", "--memory", "10,100", "--memory-match", "predict", "--memory-scope", "text",
            "--rare-from", "second", "--apostrophe", "quote", "--boost-max", "0.4", "--out", str(out), "--json"]
    pair = parser.parse_args(["errors", str(runs[0]), "--vs", str(runs[1]), *opts])
    assert pair.func(pair) == 0
    res_pair = json.loads(capsys.readouterr().out)
    assert res_pair["oracles"]["memory_match"] == "predict" and res_pair["oracles"]["memory_scope"] == "text"
    for run in runs:
        alone = parser.parse_args(["errors", str(run), *opts])
        assert alone.func(alone) == 0
        assert json.loads(capsys.readouterr().out)["models"][run.name] == res_pair["models"][run.name]
    # and predict matters on this text (cap, car, can, cat: "ca" has four continuations), so it cannot be dropped
    literal = parser.parse_args(["errors", str(runs[1]), *[v if v != "predict" else "word" for v in opts]])
    assert literal.func(literal) == 0
    mem = lambda r: r["models"]["run4"]["families"]["memory"]["removed"]  # noqa: E731
    assert mem(json.loads(capsys.readouterr().out)) > mem(res_pair)
    both = parser.parse_args(["errors", str(runs[0]), "--boost", "0.1", "--boost-max", "0.4", "--out", str(out)])
    with pytest.raises(RnnlensError, match="not both"):
        both.func(both)
    # runs of different data are refused
    (tmp_path / "u.txt").write_text("other text " * 400)
    assert main(["train", "--text", str(tmp_path / "u.txt"), "--batch-size", "4", "--seq-len", "16", "--hidden", "8",
                 "--layers", "1", "--max-steps", "2", "--out", str(tmp_path / "other"), "--quiet", "--device", "cpu"]) == 0
    args = parser.parse_args(["errors", str(runs[0]), "--vs", str(tmp_path / "other"), "--out", str(out)])
    with pytest.raises(RnnlensError, match="same text"):
        args.func(args)
