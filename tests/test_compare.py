"""Venn regions, per-character statistics, symmetric KL and the ``rnnlens compare`` command end to end."""
from __future__ import annotations

import argparse
import dataclasses
import json
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from rnnlens.cli import main
from rnnlens.commands import compare as compare_cmd
from rnnlens.analysis.compare import (context_buckets, dynamics_point, error_mask, per_char_stats, region_name, softmax,
                                     symmetric_kl, top_differences, venn_counts, winning_stretches)
from rnnlens.exceptions import RnnlensError
from rnnlens.data.text import Vocab


def test_venn_counts_match_set_operations():
    rng = np.random.default_rng(0)
    masks = {k: rng.random(500) < f for k, f in (("lstm", 0.4), ("nnn", 0.5), ("ngram", 0.45))}
    counts = venn_counts(masks)
    sets = {k: set(np.flatnonzero(m).tolist()) for k, m in masks.items()}
    universe = set(range(500))
    for bits in product([0, 1], repeat=3):
        members = [k for k, b in zip(sets, bits) if b]
        region = set(universe)
        for k, b in zip(sets, bits):
            region = region & sets[k] if b else region - sets[k]
        assert counts[region_name(tuple(members))] == len(region)
    assert sum(counts.values()) == 500 and len(counts) == 8


def test_venn_two_sets_and_empty_regions():
    counts = venn_counts({"a": np.array([1, 1, 0, 0], bool), "b": np.array([1, 0, 0, 0], bool)})
    assert counts == {"none": 2, "a": 1, "b": 0, "a&b": 1}
    with pytest.raises(RnnlensError):
        venn_counts({"a": np.zeros(3, bool), "b": np.zeros(4, bool)})
    with pytest.raises(RnnlensError):
        venn_counts({})


def test_error_mask_is_strictly_below_threshold():
    assert error_mask(np.array([0.49, 0.5, 0.51]), 0.5).tolist() == [True, False, False]


def test_per_char_stats_and_top_by_hand():
    vocab = Vocab(unit="byte", symbols=(ord("a"), ord("b"), ord("c"), ord("d")))
    y = np.array([0, 0, 1, 1, 1, 2])
    probs = {"m": np.array([0.9, 0.7, 0.2, 0.4, 0.3, 0.5]), "g": np.array([0.5, 0.5, 0.6, 0.6, 0.6, 0.5])}
    stats = per_char_stats(y, probs, vocab)
    by = {r["symbol"]: r for r in stats}
    assert set(by) == {ord("a"), ord("b"), ord("c")}  # 'd' never occurs
    assert by[ord("a")]["count"] == 2 and by[ord("a")]["m"] == pytest.approx(0.8) and by[ord("a")]["g"] == pytest.approx(0.5)
    assert by[ord("b")]["m"] == pytest.approx(0.3) and by[ord("b")]["g"] == pytest.approx(0.6)
    top = top_differences(stats, "m", "g", k=2, min_count=1)
    assert [r["symbol"] for r in top["gains"]] == [ord("a"), ord("c")]
    assert [r["symbol"] for r in top["losses"]] == [ord("b"), ord("c")]
    assert top["gains"][0]["diff"] == pytest.approx(0.3)
    # min_count drops rare characters; ties in the difference go to the more frequent character
    assert [r["symbol"] for r in top_differences(stats, "m", "g", k=5, min_count=2)["gains"]] == [ord("a"), ord("b")]
    tie = per_char_stats(np.array([0, 1, 1]), {"m": np.array([0.6, 0.6, 0.6]), "g": np.full(3, 0.5)}, vocab)
    assert [r["symbol"] for r in top_differences(tie, "m", "g", k=2, min_count=1)["gains"]] == [ord("b"), ord("a")]


def test_symmetric_kl_against_the_direct_formula():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(7), size=20)
    q = rng.dirichlet(np.ones(7), size=20)
    kl = lambda a, b: np.sum(a * np.log(a / b), axis=1)  # noqa: E731
    np.testing.assert_allclose(symmetric_kl(p, q), kl(p, q) + kl(q, p), rtol=1e-12)
    np.testing.assert_allclose(symmetric_kl(p, p), 0, atol=1e-15)
    np.testing.assert_allclose(symmetric_kl(p, q), symmetric_kl(q, p))
    zero = np.array([[1.0, 0.0]])
    assert np.isfinite(symmetric_kl(zero, np.array([[0.5, 0.5]]))).all()
    with pytest.raises(RnnlensError):
        symmetric_kl(p, q[:, :3])


def test_dynamics_point_by_hand():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]]))
    d = softmax(logits)
    np.testing.assert_allclose(d.sum(1), 1)
    ref = np.array([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]])
    y = np.array([0, 1])
    pt = dynamics_point(d, {"r": ref}, y)
    assert pt["loss"] == pytest.approx(-(np.log(0.7) + np.log(0.5)) / 2)
    # reference loss minus model loss: the model (0.7, 0.5) is ahead of the reference (0.5, 0.6), so positive
    assert pt["refs"]["r"]["ref_minus_model"] == pytest.approx(-(np.log(0.5) + np.log(0.6)) / 2 - pt["loss"])
    assert pt["refs"]["r"]["ref_minus_model"] > 0 and "loss_diff" not in pt["refs"]["r"]
    assert pt["refs"]["r"]["skl"] == pytest.approx(symmetric_kl(d, ref).mean())


# ----- end to end -----------------------------------------------------------------------------------------
def c_like_text(chars: int = 9000) -> str:
    rng = np.random.default_rng(3)
    parts = []
    while sum(map(len, parts)) < chars:
        body = "".join(f"  x{int(k)} = y; /* }}}} */\n" for k in rng.integers(0, 9, size=rng.integers(1, 5)))
        parts.append(f"int f{int(rng.integers(0, 99))}(void) {{\n{body}  s = \"{{\";\n}}\n")
    return "".join(parts)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cmp")
    (d / "code.c").write_text(c_like_text())
    run = d / "run"
    assert main(["train", "--text", str(d / "code.c"), "--batch-size", "4", "--seq-len", "16", "--hidden", "16",
                 "--layers", "1", "--max-steps", "20", "--eval-every", "10", "--snapshot-every", "10",
                 "--out", str(run), "--quiet", "--device", "cpu"]) == 0
    return run


def cli(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_compare_command_end_to_end(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compare", str(tiny_run), "--ngram", "2", "3", "--nnn", "1", "2", "--nnn-hidden", "8", "--nnn-epochs", "1",
            "--min-count", "1", "--dynamics-n", "1,2", "--max-chars", "40", "--stretch-width", "10", "--out", str(out),
            "--device", "cpu", "--json"]
    assert cli(compare_cmd, argv) == 0
    res = json.loads(capsys.readouterr().out)
    for f in ("compare.json", "venn.png", "per_char.png", "per_char.md", "braces.png", "dynamics.png"):
        assert (out / f).is_file(), f
    assert res["ngram"]["best"] in (2, 3)
    assert sum(res["venn"].values()) == res["chars"]
    model, gram, nn = res["model"], f"{res['ngram']['best']}-gram", f"{res['nnn']['best']}-NN"
    assert list(res["errors"]) == [model, gram, nn]
    v = res["venn"]
    assert v[model] + v[f"{model}&{gram}"] + v[f"{model}&{nn}"] + v[f"{model}&{gram}&{nn}"] == res["errors"][model]
    assert v[nn] + v[f"{model}&{nn}"] + v[f"{gram}&{nn}"] + v[f"{model}&{gram}&{nn}"] == res["errors"][nn]
    b = res["braces"]
    assert b["matched"] == sum(r["count"] for r in b["buckets"]) and b["closing"] == b["matched"] + b["unmatched"]
    # the per-character table and the braces compare against the 20-gram, the Venn keeps the best of the list
    assert res["reference_ngram"]["n"] == 20 and res["per_char"]["reference"] == "20-gram" != gram
    assert set(b["buckets"][0]) == {"lo", "hi", "count", model, "20-gram"}
    assert all("20-gram" in r and r["diff"] == pytest.approx(r[model] - r["20-gram"]) for r in res["per_char"]["top"]["gains"])
    assert "20-gram" not in res["venn"] and "20-gram" not in res["errors"]
    assert res["nnn"]["hidden"] == {"1": 8, "2": 8} and res["nnn"]["source"] == {"1": "trained", "2": "trained"}
    dyn = res["dynamics"]
    assert [p["step"] for p in dyn["points"]] == [10, 20] and dyn["refs"] == ["1-NN", "2-NN"]
    assert dyn["chars"] == 4 * 10  # 40 characters: 10 columns of the 4 rows
    # a rerun reads the cached scores and models and gives the same numbers; the dynamics reuse the n-NNs
    cache = sorted(p.name for p in (out / "cache").iterdir())
    scores = [c for c in cache if c.startswith("ngram-") and not c.endswith("-matched.npz")]
    assert len(scores) == 5  # two n-grams x (val, test), the 20-gram's test
    assert sorted(c for c in cache if c.endswith("-matched.npz")) == sorted(c[:-4] + "-matched.npz" for c in scores)
    # by_context: the buckets cover every character and their parts add up to the loss difference
    c = res["by_context"]
    assert c["n"] == 20 and sum(r["count"] for r in c["buckets"]) == res["chars"]
    assert sum(r[f"{model} total"] - r["20-gram total"] for r in c["buckets"]) == pytest.approx(
        res["loss"][model] - res["reference_ngram"]["loss"], abs=1e-4)
    assert c["lead"] == pytest.approx(res["loss"][model] - res["reference_ngram"]["loss"], abs=1e-4)
    assert (out / "by_context.md").is_file() and len(c["stretches"]) == 5
    for st in c["stretches"]:  # the text where the lead is measured, from the text itself
        assert len(st["text"]) == 10 and st["text"] in c_like_text() and 0 <= st["matched_full"] <= 1
    assert len([c for c in cache if c.startswith("nnn-") and c.endswith(".safetensors")]) == 2
    assert len([c for c in cache if c.startswith("nnn-") and c.endswith(".npz")]) == 4
    assert cli(compare_cmd, argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["venn"] == res["venn"] and again["loss"] == res["loss"]
    assert sorted(p.name for p in (out / "cache").iterdir()) == cache


def test_compare_with_ngram_dynamics_and_no_snapshots(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(compare_cmd, ["compare", str(tiny_run), "--ngram", "2", "--dynamics", "ngram", "--dynamics-n", "1",
                             "--max-chars", "8", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["dynamics"]["refs"] == ["1-gram"] and res["dynamics"]["chars"] == 8
    assert "nnn" not in res and len(res["venn"]) == 4


def test_compare_without_snapshots_says_so_without_the_machine_path(tiny_run, tmp_path, capsys):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(tiny_run, moved, ignore=shutil.ignore_patterns("snapshots"))
    assert cli(compare_cmd, ["compare", str(moved), "--ngram", "2", "--dynamics", "ngram", "--max-chars", "8",
                             "--out", str(tmp_path / "out"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["dynamics"] == {"skipped": "no snapshots in moved/snapshots; train with --snapshot-every N"}


def test_compare_tunes_the_nnn_hidden_size_or_reuses_a_baselines_folder(tiny_run, tmp_path, capsys):
    from rnnlens.baselines.table import Preset, run_table2
    from rnnlens.run import load_config

    out = tmp_path / "grid"
    base = ["compare", str(tiny_run), "--ngram", "2", "--reference-ngram", "0", "--nnn", "1", "--nnn-epochs", "1",
            "--dynamics", "off", "--device", "cpu", "--json"]
    assert cli(compare_cmd, base + ["--nnn-hidden", "4,12", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["nnn"]["hiddens"] == [4, 12] and res["nnn"]["hidden"]["1"] in (4, 12)
    assert res["reference_ngram"] == {"n": 2, "loss": res["loss"]["2-gram"], "chosen": "best on validation"}
    # the sizes tried were both trained: the kept one has the lower validation loss of the two
    from rnnlens.baselines.nnn import load_nnn
    (saved,) = [p for p in (out / "cache").iterdir() if p.suffix == ".safetensors"]
    grid = load_nnn(saved)[2]["grid"]
    assert set(grid) == {"4", "12"} and grid[str(res["nnn"]["hidden"]["1"])] == min(grid.values())
    # a baselines folder of the same text and split: its 1-NN is used, nothing is trained
    cfg = load_config(tiny_run)
    bdir = tmp_path / "baselines"
    run_table2(None, None, bdir, Preset("t", (), (1,), (6,), 1, 0, 64, 1), text_path=cfg.source.text_path,
               split_cfg=cfg.split)
    out2 = tmp_path / "reuse"
    assert cli(compare_cmd, base + ["--nnn-from", str(bdir), "--out", str(out2)]) == 0
    res2 = json.loads(capsys.readouterr().out)
    assert res2["nnn"]["source"] == {"1": "baselines"} and res2["nnn"]["hidden"] == {"1": 6}
    assert not [p for p in (out2 / "cache").iterdir() if p.suffix == ".safetensors"]
    # baselines of another split are refused with a one-line error
    other = tmp_path / "other"
    run_table2(None, None, other, Preset("t", (), (1,), (6,), 1, 0, 64, 1), text_path=cfg.source.text_path,
               split_cfg=dataclasses.replace(cfg.split, batch_size=2))
    with pytest.raises(RnnlensError, match="another text, unit or split"):
        cli(compare_cmd, base + ["--nnn-from", str(other), "--out", str(tmp_path / "o3")])
    with pytest.raises(RnnlensError, match="not a baselines output folder"):
        cli(compare_cmd, base + ["--nnn-from", str(tmp_path), "--out", str(tmp_path / "o4")])


def test_context_buckets_by_hand():
    matched = np.array([0, 0, 2, 5, 20, 20, 7])
    a = np.array([1.0, 3.0, 2.0, 1.0, 0.5, 1.5, 4.0])
    b = np.array([2.0, 2.0, 2.0, 2.0, 0.1, 0.1, 1.0])
    rows = context_buckets(matched, {"A": a, "B": b}, (0, 1, 5, 20))
    assert [(r["lo"], r["hi"], r["count"]) for r in rows] == [(0, 1, 2), (1, 5, 1), (5, 20, 2), (20, None, 2)]
    assert rows[0]["A"] == 2.0 and rows[2]["A"] == 2.5 and rows[3]["B"] == pytest.approx(0.1)
    assert sum(r["A total"] for r in rows) == pytest.approx(a.mean()) and rows[1]["share"] == pytest.approx(1 / 7)
    assert context_buckets(np.array([3]), {"A": np.array([1.0])}, (0, 10))[1] == {
        "lo": 10, "hi": None, "count": 0, "share": 0.0, "A": None, "A total": 0.0}
    with pytest.raises(RnnlensError, match="start at 0"):
        context_buckets(matched, {"A": a}, (1, 5))


def test_winning_stretches_against_brute_force():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(3, 30))
    got = winning_stretches(d, 4, 6)
    taken: list[tuple[int, int]] = []
    for r, j, mean in got:  # each pick is the best window overlapping no earlier pick
        free = [(rr, jj) for rr in range(3) for jj in range(27)
                if all(rr != r0 or abs(jj - j0) >= 4 for r0, j0 in taken)]
        best = max(free, key=lambda w: d[w[0], w[1]:w[1] + 4].mean())
        assert (r, j) == best and mean == pytest.approx(d[r, j:j + 4].mean())
        taken.append((r, j))
    assert winning_stretches(d, 31, 2) == [] and winning_stretches(d, 30, 5) == [
        (int(np.argmax(d.mean(axis=1))), 0, pytest.approx(d.mean(axis=1).max()))] + [
        (r, 0, pytest.approx(d[r].mean())) for r in np.argsort(-d.mean(axis=1))[1:]]


def test_compare_command_errors(tiny_run, tmp_path):
    with pytest.raises(RnnlensError):
        cli(compare_cmd, ["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        cli(compare_cmd, ["compare", str(tiny_run), "--brace-buckets", "a,b"])
    with pytest.raises(RnnlensError, match="context-buckets"):
        cli(compare_cmd, ["compare", str(tiny_run), "--context-buckets", "2,5", "--out", str(tmp_path / "o")])
    with pytest.raises(RnnlensError, match="stretch"):
        cli(compare_cmd, ["compare", str(tiny_run), "--stretch-width", "0", "--out", str(tmp_path / "o")])


def test_score_cache_hits_and_recovers(tmp_path):
    from rnnlens.baselines.refscores import cached_scores

    calls = []

    def compute():
        calls.append(1)
        return np.full((2, 3), 0.25)

    p, hit = cached_scores(tmp_path, "s", (2, 3), compute, {"n": 1})
    assert not hit and p.dtype == np.float32 and p.tolist() == [[0.25] * 3] * 2
    p, hit = cached_scores(tmp_path, "s", (2, 3), compute, {"n": 1})
    assert hit and len(calls) == 1
    (tmp_path / "s.npz").write_bytes(b"garbage")        # a damaged file is recomputed and replaced
    _, hit = cached_scores(tmp_path, "s", (2, 3), compute, {"n": 1})
    assert not hit and len(calls) == 2
    _, hit = cached_scores(tmp_path, "s", (3, 2), lambda: np.zeros((3, 2)), {"n": 1})  # other shape: stale
    assert not hit
    assert [f.name for f in tmp_path.iterdir()] == ["s.npz"]  # no temp files left behind
