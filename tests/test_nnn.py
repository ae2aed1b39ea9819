"""Tests of rnnlens.baselines.nnn and commands/nnn: the n-NN against brute-force references."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from rnnlens.checkpoint import save_tensors
from rnnlens.exceptions import RnnlensError
from rnnlens.baselines.nnn import NNNConfig, NNNModel, RowContexts, load_nnn, save_nnn, train_nnn
from rnnlens.data.splits import Split, SplitConfig, make_splits
from rnnlens.data.text import Vocab


def tiny_model(n: int = 3, H: int = 5, K: int = 6, seed: int = 0) -> NNNModel:
    model = NNNModel(n, H, K)
    model.init_uniform(0.5, torch.Generator().manual_seed(seed))
    return model


def brute_context(x: np.ndarray, r: int, j: int, n: int, K: int) -> list[int]:
    """The last n ids of x[r, :j+1], oldest first, K for positions before the row's start."""
    return [int(x[r, i]) if i >= 0 else K for i in range(j - n + 1, j + 1)]


def split_of(ids: np.ndarray, rows: int, name: str) -> Split:
    """Rows of a stream with their next characters (no wrap-around)."""
    m = (len(ids) - 1) // rows
    return Split(name, ids[:rows * m].reshape(rows, m), ids[1:rows * m + 1].reshape(rows, m))


# ----- the model -----------------------------------------------------------------------------------------
def test_embedding_sum_equals_one_hot_concat_linear_layer():
    n, H, K = 3, 5, 6
    model = tiny_model(n, H, K)
    ctx = torch.tensor([[0, 1, 2], [K, K, 5], [K, 4, 4], [3, 3, 3]])  # K = no symbol
    onehot = torch.zeros(len(ctx), n * (K + 1))  # the literal concatenation of n one-hot codes of K+1 slots
    for m, row in enumerate(ctx.tolist()):
        for i, c in enumerate(row):
            onehot[m, i * (K + 1) + c] = 1.0
    W1 = model.emb.detach().T  # (H, n*(K+1))
    expected = torch.tanh(onehot @ W1.T + model.b1.detach())
    torch.testing.assert_close(model.hidden_layer(ctx).detach(), expected, rtol=1e-6, atol=1e-6)
    logits = expected @ model.out.weight.detach().T + model.out.bias.detach()
    torch.testing.assert_close(model(ctx).detach(), logits, rtol=1e-6, atol=1e-6)


def test_row_contexts_and_scores_match_position_by_position():
    n, K = 3, 6
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, K, (2, 7)), rng.integers(0, K, (2, 7))
    model = tiny_model(n, 5, K)
    rows = RowContexts(x, y, n, K, torch.device("cpu"))
    got = rows.contexts(torch.arange(len(rows))).numpy()
    logp, dist = model.log_probs_rows(x, y), model.distributions_rows(x)
    assert logp.dtype == np.float64 and logp.shape == (2, 7) and dist.shape == (2, 7, K) and dist.dtype == np.float32
    for r in range(2):
        for j in range(7):
            ctx = brute_context(x, r, j, n, K)
            assert got[r * 7 + j].tolist() == ctx
            with torch.no_grad():  # one context at a time: float32 sums in another order, hence 1e-6
                p = torch.softmax(model(torch.tensor([ctx])).double(), -1)[0]
            assert logp[r, j] == pytest.approx(math.log(p[y[r, j]]), abs=1e-6)
            np.testing.assert_allclose(dist[r, j], p.numpy(), rtol=1e-5)


def test_scores_are_chunked_without_changing_them(monkeypatch):
    model = tiny_model()
    x = np.random.default_rng(1).integers(0, 6, (3, 50))
    whole = model.log_probs_rows(x, x)
    monkeypatch.setattr("rnnlens.baselines.nnn._EVAL_CHUNK", 7)
    np.testing.assert_allclose(model.log_probs_rows(x, x), whole, rtol=0, atol=1e-6)  # float32 batch effects
    assert model.log_probs_rows(x, x)[0, 7] != pytest.approx(model.log_probs_rows(x, np.roll(x, 1))[0, 7], abs=1e-3)


# ----- training ------------------------------------------------------------------------------------------
def test_learns_a_deterministic_pattern():
    ids = np.tile(np.arange(3), 2000)  # "abcabc..."
    splits = make_splits(ids, SplitConfig(fractions=(0.8, 0.1, 0.1), batch_size=4, seq_len=25))
    cfg = NNNConfig(n=2, hidden=16, epochs=15, batch=256, lr=1e-2, patience=0)
    model, info = train_nnn(splits, 3, cfg)
    test = splits["test"]
    assert model.loss_rows(test.x, test.y) < 0.02
    assert info["best_val"] < 0.02


def conditional_log_loss(ctx: np.ndarray, tgt: np.ndarray, K: int) -> float:
    """Empirical conditional entropy of tgt given ctx (the best any model of P(tgt | ctx) can do on them)."""
    counts = np.zeros((K, K))
    np.add.at(counts, (ctx, tgt), 1)
    p = counts / counts.sum(1, keepdims=True)
    return float(-(counts[counts > 0] * np.log(p[counts > 0])).sum() / counts.sum())


def test_one_nn_reaches_the_bigram_conditional_entropy():
    K = 4
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.ones(K) * 2, size=K)  # a random bigram chain
    ids = [0]
    for _ in range(12000):
        ids.append(rng.choice(K, p=P[ids[-1]]))
    ids = np.array(ids)
    splits = {"train": split_of(ids[:10001], 10, "train"), "val": split_of(ids[10000:], 10, "val")}
    cfg = NNNConfig(n=1, hidden=16, epochs=40, batch=500, lr=1e-2, patience=0)
    model, _ = train_nnn(splits, K, cfg)
    tr = splits["train"]
    optimum = conditional_log_loss(tr.x.reshape(-1), tr.y.reshape(-1), K)  # n = 1: the context is x[r, j] alone
    loss = model.loss_rows(tr.x, tr.y)
    assert optimum - 1e-6 <= loss <= optimum + 0.005


def contradicting_splits() -> dict[str, Split]:
    """Train: 'a' is always followed by 'b'. Val: by 'b' or 'c' half the time: val improves, then worsens."""
    train = np.tile([0, 1, 2, 3], 500)
    val = np.tile([0, 1, 2, 3, 0, 2, 2, 3], 50)
    return {"train": split_of(train, 4, "train"), "val": split_of(val, 4, "val")}


def test_early_stopping_keeps_the_best_val_weights():
    splits = contradicting_splits()
    cfg = NNNConfig(n=1, hidden=8, epochs=30, batch=64, lr=1e-2, patience=3)
    model, info = train_nnn(splits, 4, cfg)
    vals = [h["val_loss"] for h in info["history"]]
    assert info["stopped"] == "patience" and info["epochs_run"] == info["best_epoch"] + 3 < 30
    assert info["best_val"] == min(vals) < vals[-1]
    val = splits["val"]
    assert model.loss_rows(val.x, val.y) == pytest.approx(min(vals), abs=1e-12)


def test_training_is_reproducible_with_a_seed():
    splits = contradicting_splits()
    cfg = NNNConfig(n=2, hidden=8, epochs=2, batch=64)
    a, _ = train_nnn(splits, 4, cfg)
    b, _ = train_nnn(splits, 4, cfg)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


# ----- saving and loading --------------------------------------------------------------------------------
def test_save_load_round_trip_and_refusals(tmp_path):
    model = tiny_model(2, 4, 3)
    vocab = Vocab(unit="byte", symbols=(97, 98, 99))
    path = tmp_path / "m.safetensors"
    save_nnn(path, model, vocab, {"val_loss": 1.5})
    loaded, saved_vocab, meta = load_nnn(path, vocab)
    assert saved_vocab == vocab and meta["n"] == 2 and meta["hidden"] == 4 and meta["val_loss"] == 1.5
    x = np.array([[0, 1, 2, 0, 1]])
    np.testing.assert_array_equal(loaded.log_probs_rows(x, x), model.log_probs_rows(x, x))
    with pytest.raises(RnnlensError, match="another vocabulary"):
        load_nnn(path, Vocab(unit="byte", symbols=(97, 98, 100)))
    with pytest.raises(RnnlensError, match="unit 'byte', not 'char'"):
        load_nnn(path, Vocab(unit="char", symbols=(97, 98, 99)))
    with pytest.raises(RnnlensError, match="trained with"):
        save_nnn(path, model, Vocab(unit="byte", symbols=(97, 98)))
    other = tmp_path / "other.safetensors"
    save_tensors(other, {"w": torch.zeros(2)}, {"format": "something else"})
    with pytest.raises(RnnlensError, match="not an n-NN model"):
        load_nnn(other)
    with pytest.raises(RnnlensError, match="does not exist"):
        load_nnn(tmp_path / "missing.safetensors")


# ----- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, -1, 65, 10**6, True, 2.0])
def test_bad_context_lengths_are_refused(n):
    with pytest.raises(RnnlensError, match="context length n must be an integer in 1..64"):
        NNNConfig(n=n)


def test_bad_settings_and_splits_are_refused():
    with pytest.raises(RnnlensError, match="lr"):
        NNNConfig(lr=0)
    with pytest.raises(RnnlensError, match="hidden"):
        NNNConfig(hidden=0)
    empty = Split("train", np.zeros((4, 0), dtype=np.int64), np.zeros((4, 0), dtype=np.int64))
    splits = contradicting_splits()
    with pytest.raises(RnnlensError, match="the train split is empty"):
        train_nnn({"train": empty, "val": splits["val"]}, 4, NNNConfig(n=1))
    with pytest.raises(RnnlensError, match="the val split is empty"):
        train_nnn({"train": splits["train"], "val": empty}, 4, NNNConfig(n=1))
    with pytest.raises(RnnlensError, match="ids in 0..5"):
        tiny_model().log_probs_rows(np.array([[0, 6]]), np.array([[1, 1]]))


# ----- the command ---------------------------------------------------------------------------------------
def cli(argv: list[str]) -> int:
    """What rnnlens.cli.main does for this command: run it, a RnnlensError becomes exit status 2."""
    from rnnlens.commands import nnn
    parser = argparse.ArgumentParser(prog="rnnlens")
    nnn.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RnnlensError as exc:
        print(f"rnnlens: error: {exc}")
        return 2


def test_command_trains_saves_and_scores(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abcab cabca bcabc " * 150)
    model = tmp_path / "m.safetensors"
    common = ["--text", str(text), "--batch-size", "4", "--seq-len", "20", "--device", "cpu", "--json"]
    assert cli(["nnn", *common, "--n", "2", "--hidden", "8,16", "--epochs", "3", "--save", str(model)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["n"] == 2 and set(trained["grid"]) == {"8", "16"} and trained["chars"] > 0
    assert str(trained["hidden"]) == min(trained["grid"], key=trained["grid"].get)
    assert trained["best_val"] == min(trained["grid"].values())
    assert cli(["nnn", *common, "--load", str(model)]) == 0
    assert json.loads(capsys.readouterr().out)["loss_nats"] == pytest.approx(trained["loss_nats"], abs=1e-12)
    unseen = tmp_path / "u.txt"
    unseen.write_text("abcxyz " * 400)
    assert cli(["nnn", "--text", str(unseen), "--batch-size", "4", "--seq-len", "20", "--load", str(model)]) == 2
    assert "not in the model's vocabulary" in capsys.readouterr().out
    assert cli(["nnn", *common, "--load", str(model), "--unit", "char"]) == 2
    assert "pass --unit byte" in capsys.readouterr().out
    assert cli(["nnn", *common, "--n", "0"]) == 2
    assert cli(["nnn", *common, "--hidden", "8,x"]) == 2
