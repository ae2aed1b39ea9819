"""Ablation (rnnlens.analysis.ablation, rnnlens ablate): the clean half equals evaluation, the ablated half a
hooked run of its own, regions and characters equal brute-force sums, --rank equals one ablation per cell."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnlens as rl
from rnnlens.analysis.ablation import AblationConfig, ablate, rank_cells
from rnnlens.capture.core import iter_capture
from rnnlens.capture.hooks import iter_hooked, set_cell
from rnnlens.cli import main
from rnnlens.evaluate import evaluate
from rnnlens.exceptions import RnnlensError

TINY = dict(batch_size=4, seq_len=16, layers=2, hidden=12, max_steps=40, eval_every=20, seed=1)


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> rl.Run:
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "and", "dog", "ate", "hat", "a", '"big"', "(red)"]
    path = tmp_path_factory.mktemp("abl") / "text.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(300)) + "\n")
    return rl.train(tmp_path_factory.mktemp("runs") / "tiny", text=path, device="cpu", **TINY)


def source(run: rl.Run):
    """(every symbol of the run's text, its test split, a label)."""
    return run._source("test", None)


def test_clean_and_ablated_halves_equal_their_own_runs(run: rl.Run) -> None:
    symbols, split, _ = source(run)
    res = ablate(run.model, run.config, symbols, split, AblationConfig(1, 3, "zero", max_chars=0, warmup=0))
    seq = run.config.split.seq_len
    assert res.loss_nats == pytest.approx(evaluate(run.model, split, seq).loss_nats, abs=1e-5)
    hooked = torch.cat([b["loss"] for b in iter_hooked(run.model, split, seq, {"layers.1.c": set_cell(3, 0.0)}, "loss")], 1)
    assert res.ablated_loss_nats == pytest.approx(float(hooked.mean()), abs=1e-5)
    clean = torch.cat([b["loss"] for b in iter_capture(run.model, split, seq, "loss")], 1)
    assert np.allclose(res.delta, (hooked - clean).numpy(), atol=1e-5)
    assert res.delta.shape == split.x.shape and res.chars == split.x.size
    assert res.ablated_loss_nats != res.loss_nats
    warm = ablate(run.model, run.config, symbols, split, AblationConfig(1, 3, "zero", max_chars=0, warmup=5))
    assert np.allclose(warm.delta, (hooked - clean).numpy()[:, 5:], atol=1e-5)  # run, but not counted
    assert np.array_equal(warm.positions, split.positions()[:, 5:])
    default = ablate(run.model, run.config, symbols, split, AblationConfig(1, 3, "zero", max_chars=40))
    assert default.positions[0, 0] == split.positions()[0, min(seq, split.x.shape[1] // 4)]  # one unroll skipped
    assert default.chars == split.x.shape[0] * -(-40 // split.x.shape[0])


def test_regions_and_characters_equal_brute_force(run: rl.Run) -> None:
    symbols, split, _ = source(run)
    res = ablate(run.model, run.config, symbols, split, AblationConfig(0, 5, 0.5, max_chars=0, top_chars=50))
    by_feature: dict[str, list[dict]] = {}
    for r in res.regions:
        by_feature.setdefault(r["feature"], []).append(r)
    assert "in_double_quotes" in by_feature and "line_pos" in by_feature
    for rows in by_feature.values():  # every feature's regions partition the positions
        assert sum(r["chars"] for r in rows) == res.chars
        assert sum(r["chars"] * r["delta_nats"] for r in rows) == pytest.approx(float(res.delta.sum()), abs=1e-3)
    inside = next(r for r in by_feature["in_double_quotes"] if r["region"] == "inside")
    feat = rl.cells.features.compute_features(symbols)["in_double_quotes"][res.positions] > 0.5
    assert inside["chars"] == int(feat.sum())
    assert inside["delta_nats"] == pytest.approx(float(res.delta[feat].mean()), abs=1e-6)
    targets = symbols[res.positions + 1]
    for c in res.characters:
        m = targets == ord(c["char"])
        assert c["count"] == int(m.sum())
        assert c["delta_nats"] == pytest.approx(float(res.delta[m].mean()), abs=1e-6)
    assert sum(c["count"] for c in res.characters) == res.chars  # top 50 covers this small vocabulary
    totals = [abs(c["count"] * c["delta_nats"]) for c in res.characters]
    assert totals == sorted(totals, reverse=True)


def test_mean_value_is_the_cells_mean_and_rank_equals_single_ablations(run: rl.Run) -> None:
    symbols, split, _ = source(run)
    seq = run.config.split.seq_len
    res = ablate(run.model, run.config, symbols, split, AblationConfig(1, 2, "mean", max_chars=200))
    c = torch.cat([b["layers.1.c"] for b in iter_capture(run.model, split, seq, "layers.1.c")], 1)
    counted = c[:, res.positions[0, 0] - split.positions()[0, 0]:][:, :res.delta.shape[1]]
    assert res.value_rule == "mean" and res.value == pytest.approx(float(counted[..., 2].mean()), abs=1e-5)
    ranked = rank_cells(run.model, run.config, split, [1], None, "zero", max_chars=200, chunk=5)
    assert len(ranked) == run.config.model.hidden
    assert [r["delta_nats"] for r in ranked] == sorted((r["delta_nats"] for r in ranked), reverse=True)
    for r in ranked[:3] + ranked[-2:]:
        single = ablate(run.model, run.config, symbols, split, AblationConfig(1, r["index"], "zero", max_chars=200))
        assert r["delta_nats"] == pytest.approx(single.ablated_loss_nats - single.loss_nats, abs=1e-5)


def test_library_errors_name_the_problem(run: rl.Run) -> None:
    symbols, split, _ = source(run)
    with pytest.raises(RnnlensError, match="value must be zero, mean or a number"):
        AblationConfig(0, 0, "half")
    with pytest.raises(RnnlensError, match="cell index 99 is out of range"):
        ablate(run.model, run.config, symbols, split, AblationConfig(0, 99))
    with pytest.raises(RnnlensError, match="cannot read cell"):
        run.ablate("one:two")


def test_cli_json_files_and_errors(run: rl.Run, tmp_path: Path) -> None:
    rc, out, err = cli("ablate", run.path, "--cell", "1:4", "--max-chars", "300", "--out", tmp_path / "a", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert {"loss_nats", "ablated_loss_nats", "regions", "characters", "files"} <= set(d)
    lib = run.ablate("1:4", max_chars=300)
    assert d["loss_nats"] == pytest.approx(lib.loss_nats) and d["ablated_loss_nats"] == pytest.approx(lib.ablated_loss_nats)
    for f in ("ablation.json", "ablation.html", "ablation.png"):
        assert (tmp_path / "a" / f).stat().st_size > 0
    assert "<script src" not in (tmp_path / "a" / "ablation.html").read_text()
    rc, out, err = cli("ablate", run.path, "--rank", "--layer", "0", "--max-chars", "200", "--out", tmp_path / "r", "--json")
    assert rc == 0, err
    assert len(json.loads((tmp_path / "r" / "rank.json").read_text())["cells"]) == run.config.model.hidden
    rc, _, err = cli("ablate", run.path)
    assert rc == 2 and "needs --cell" in err and "Traceback" not in err
    rc, _, err = cli("ablate", run.path, "--cell", "5:0")
    assert rc == 2 and "layer 5 does not exist" in err
    rc, _, err = cli("ablate", run.path, "--cell", "0:0", "--value", "lots")
    assert rc == 2 and "value must be zero, mean or a number" in err


def test_run_with_hooks_on_a_text(run: rl.Run) -> None:
    text = 'the "big" cat sat\n'
    logits, cache = run.run_with_cache(text)
    same, cache2 = run.run_with_hooks(text, {"layers.0.c": lambda v, t: None})
    assert torch.allclose(same, logits, atol=1e-6)
    edited, cache3 = run.run_with_hooks(text, {"layers.0.c": rl.set_cell(1, 0.0)})
    assert float(cache3["layers.0.c"][:, 1].abs().max()) == 0.0 and not torch.allclose(edited, logits)
    assert not torch.allclose(edited[0], logits[0])  # step 0 is edited too: its output reads the edited c_0
