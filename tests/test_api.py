"""Tests for the front door (rnnlens.api, rl.KneserNeyLM's text methods): every answer equals the lower-level
path it wraps (load_model, the fused forward pass, evaluate, the CLI's train/cells/gates/sample, the n-gram's
own scoring), and the library names the field in its errors."""
from __future__ import annotations

import contextlib
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnlens as rl
from rnnlens.cli import main
from rnnlens.data.splits import stream_split
from rnnlens.evaluate import evaluate
from rnnlens.exceptions import RnnlensError
from rnnlens.run import load_model

TINY = dict(batch_size=4, seq_len=16, layers=2, hidden=16, max_steps=30, eval_every=10, seed=3)
PROBE = "the cat sat on the mat and the dog ate the hat\n"


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def flags(settings: dict) -> list[str]:
    return [a for k, v in settings.items() for a in ("--" + k.replace("_", "-"), str(v))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "and", "dog", "ate", "hat", "a", "big", "red"]
    path = tmp_path_factory.mktemp("api") / "text.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(400)) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory) -> tuple[rl.Run, Path]:
    """The same tiny run trained twice: by rl.train and by `rnnlens train` with the same settings."""
    root = tmp_path_factory.mktemp("runs")
    run = rl.train(root / "lib", text=corpus, device="cpu", **TINY)
    rc, _, err = cli("train", "--text", corpus, *flags(TINY), "--out", root / "cli", "--quiet", "--device", "cpu")
    assert rc == 0, err
    return run, root / "cli"


def test_train_equals_the_cli_train_of_the_same_settings(trained) -> None:
    run, cli_dir = trained
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("chars_per_s", "elapsed_s")}  # noqa: E731
    ours = [strip(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    theirs = [strip(x) for x in (cli_dir / "metrics.jsonl").read_text().splitlines()]
    assert ours == theirs and [m["step"] for m in ours] == [10, 20, 30]
    assert json.loads((run.path / "config.json").read_text()) == json.loads((cli_dir / "config.json").read_text())
    cli_model, _, _ = load_model(cli_dir)
    for (k, a), (_, b) in zip(run.model.state_dict().items(), cli_model.state_dict().items()):
        assert torch.equal(a, b), k
    s1, s2 = run.summary, json.loads((cli_dir / "summary.json").read_text())
    assert s1["test_loss_nats"] == s2["test_loss_nats"] and s1["best_val_loss"] == s2["best_val_loss"]


def test_load_equals_load_model(trained) -> None:
    run, _ = trained
    again = rl.load(run.path)
    model, cfg, meta = load_model(run.path)
    assert again.config == cfg and again.meta == meta and not again.model.training
    for (k, a), (_, b) in zip(again.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), k
    assert rl.load(run.path, weights="last").meta["kind"] == "state"
    assert again.decode(again.encode(PROBE)) == PROBE


def test_run_with_cache_equals_the_fused_forward_and_is_indexed_by_position(trained) -> None:
    run, _ = trained
    ids = torch.from_numpy(run.encode(PROBE))
    logits, cache = run.run_with_cache(PROBE)
    fused, (h, c) = run.model(ids[None])  # (1, N, K); final states (L, 1, H)
    assert logits.shape == (len(PROBE), run.vocab.__len__())
    assert torch.allclose(logits, fused[0], atol=1e-5, rtol=0)
    assert torch.allclose(cache["layers.1.h"][-1], h[1, 0], atol=1e-6)
    assert torch.allclose(cache["layers.1.c"][-1], c[1, 0], atol=1e-6)
    t = 7  # the state after character t is the last state of the prefix text[:t+1]
    _, prefix = run.run_with_cache(PROBE[:t + 1], names="layers.1.c")
    assert list(prefix) == ["layers.1.c"] and torch.allclose(cache["layers.1.c"][t], prefix["layers.1.c"][-1])
    logits_ids, _ = run.run_with_cache(ids.tolist(), names="layers.0.h")
    assert torch.allclose(logits_ids, logits, atol=1e-5, rtol=0)  # ids in, the same text


def test_loss_equals_evaluate_and_the_cached_logits(trained) -> None:
    run, _ = trained
    ids = run.encode(PROBE)
    ref = evaluate(run.model, stream_split(ids, 1), run.config.split.seq_len).loss_nats
    logits, _ = run.run_with_cache(PROBE, names="logits")
    nll = -torch.log_softmax(logits[:-1].double(), -1).gather(1, torch.from_numpy(ids[1:])[:, None]).mean()
    assert run.loss(PROBE) == pytest.approx(ref, abs=1e-12)
    assert run.loss(PROBE) == pytest.approx(float(nll), abs=1e-5)


def test_sample_cells_and_gates_equal_the_cli(trained, tmp_path) -> None:
    run, _ = trained
    rc, out, _ = cli("sample", run.path, "--prime", "the ", "--length", "40", "--seed", "5", "--json", "--device", "cpu")
    assert rc == 0 and run.sample(prime="the ", length=40, seed=5) == json.loads(out)["text"]
    report = run.cells(max_chars=2000, out=tmp_path / "cells")
    rc, out, err = cli("cells", run.path, "--find", "--max-chars", "2000", "--out", tmp_path / "cli", "--json",
                       "--device", "cpu")
    assert rc == 0, err
    assert {"out": str(tmp_path / "cli"), **report.to_dict()} == json.loads(out)
    assert (tmp_path / "cells" / "report.html").is_file() and (tmp_path / "cells" / "report.json").is_file()
    rc, out, err = cli("gates", run.path, "--max-chars", "600", "--json", "--out", tmp_path / "g", "--device", "cpu")
    assert rc == 0, err
    assert run.gates(max_chars=600).summary() == json.loads(out)["summary"]


def test_library_errors_name_the_field_and_the_cli_the_flag(corpus, tmp_path) -> None:
    with pytest.raises(RnnlensError, match=r"^epochs must be > 0") as info:
        rl.train(tmp_path / "bad", text=corpus, epochs=0, device="cpu", **{k: v for k, v in TINY.items()})
    assert info.value.field == "epochs" and not (tmp_path / "bad").exists()
    rc, _, err = cli("train", "--text", corpus, "--epochs", "0", "--out", tmp_path / "bad", "--device", "cpu")
    assert rc == 2 and err.startswith("rnnlens: error: --epochs must be > 0") and not (tmp_path / "bad").exists()
    with pytest.raises(RnnlensError, match="unknown setting.*epoch"):
        rl.train(tmp_path / "bad", text=corpus, epoch=3)
    with pytest.raises(RnnlensError, match="params and hidden"):
        rl.new_run_config(text=corpus, params="50k", hidden=16)
    with pytest.raises(RnnlensError, match="^resume continues .*drop hidden"):
        rl.prepare_run(tmp_path, resume=True, hidden=16)


def test_the_library_never_imports_the_cli() -> None:
    """Every module of the library (all but cli.py, __main__.py and commands/) by its import statements."""
    import ast

    root = Path(rl.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "commands" or rel.name in ("cli.py", "__main__.py"):
            continue
        package = ["rnnlens", *rel.parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                mod = ".".join([*base, node.module] if node.module else base)
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for t in targets:
                if t in ("rnnlens.cli", "rnnlens.commands") or t.startswith(("rnnlens.cli.", "rnnlens.commands.")):
                    offenders.append(f"{rel}:{node.lineno} imports {t}")
    assert len(list(root.rglob("*.py"))) > 40  # the walk saw the package
    assert not offenders, offenders


# ----- rl.KneserNeyLM at the text level --------------------------------------------------------------------
TRAIN_TEXT = "abracadabra cadabra abra\nbarbara and abracadabra\n"


def brute_matched(train: str, text: str, i: int, n: int) -> int:
    """The longest context (<= n characters, not reaching before the text) that, followed by text[i], occurs
    in the training text."""
    return max(L for L in range(0, min(n, i) + 1) if text[i - L:i + 1] in train)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_kneser_ney_full_scores_sum_to_score_and_match_brute_force(n: int) -> None:
    lm = rl.KneserNeyLM.from_text(TRAIN_TEXT, n=n)
    text = "cadabra abracad\nbarb"
    scores = list(lm.full_scores(text))
    assert lm.order == n + 1 and len(scores) == len(text)
    assert math.isclose(sum(s[0] for s in scores), lm.score(text), rel_tol=1e-12)
    assert [s[1] for s in scores] == [brute_matched(TRAIN_TEXT, text, i, n) for i in range(len(text))]
    ids = np.array([lm.symbols.index(ord(ch)) for ch in text])
    logp, matched = lm.score_stream(ids)  # the model's own scoring of characters 1.. given the prefix
    assert np.allclose([s[0] for s in scores[1:]], logp, rtol=0, atol=1e-12)
    assert [s[1] for s in scores[1:]] == matched.tolist()
    first = lm.next_distributions(np.full((1, n), -1))[0, ids[0]]  # no context: the unigram level
    assert math.isclose(scores[0][0], math.log(first), rel_tol=1e-12) and not any(s[2] for s in scores)


def test_kneser_ney_out_of_vocabulary_cuts_the_context() -> None:
    lm = rl.KneserNeyLM.from_text(TRAIN_TEXT, n=4)
    scores = list(lm.full_scores("abraZcad"))
    assert scores[4] == (-math.inf, 0, True) and lm.score("abraZcad") == -math.inf
    after = list(lm.full_scores("cad"))
    assert scores[5:] == [after[0], (after[1][0], after[1][1], False), after[2]]  # as if the text began there
    assert all(not s[2] for i, s in enumerate(scores) if i != 4)


def test_kneser_ney_from_run_uses_its_train_split_and_vocabulary(trained, tmp_path) -> None:
    run, _ = trained
    lm = rl.KneserNeyLM.from_run(run, n=3)
    assert lm.symbols == run.vocab.symbols and lm.unit == run.vocab.unit
    train = run.splits()["train"]
    logp, _ = lm.score_rows(train.x[:, 3:50], train.y[:, 3:50])
    assert math.isfinite(lm.score(PROBE)) and float(-logp.mean()) < math.log(len(run.vocab))
    lm.save(tmp_path / "kn.npz")
    again = rl.KneserNeyLM.load(tmp_path / "kn.npz")
    assert list(again.full_scores(PROBE)) == list(lm.full_scores(PROBE))


def test_every_train_flag_is_a_library_setting_of_the_same_name() -> None:
    """The flag <-> setting mapping is the identity on names: --max-steps is max_steps, nothing is renamed."""
    from rnnlens.cli import build_parser
    from rnnlens.commands.train import RUN_FLAGS
    from rnnlens.newrun import SETTINGS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    dests = {a.dest for a in sub.choices["train"]._actions} - {"help", "out", "resume", "device", "threads", "quiet",
                                                                 "json", "func"}
    assert dests == set(RUN_FLAGS) | {"data_dir"}
    assert set(RUN_FLAGS) <= set(SETTINGS) and set(SETTINGS) - dests == {"eps"}  # eps: no flag, library only
