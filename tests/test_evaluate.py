"""Tests for rnnlens.evaluate: the batched, block-wise loss equals a one-character-at-a-time reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlens.exceptions import RnnlensError
from rnnlens.evaluate import EvalResult, evaluate
from rnnlens.model import CELL_TYPES, CharRNN, ModelConfig
from rnnlens.data.splits import Split, SplitConfig, make_splits, stream_split

K = 6


def make_model(cell: str, layers: int, dropout: float = 0.0) -> CharRNN:
    torch.manual_seed(layers * 10 + CELL_TYPES.index(cell))
    model = CharRNN(ModelConfig(cell=cell, layers=layers, hidden=8, vocab_size=K, dropout=dropout))
    model.reset_parameters(0.6)  # wide enough that predictions differ a lot between contexts
    return model


def ids(n: int = 260, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, K, n).astype(np.int64)


@torch.no_grad()
def reference_nll(model: CharRNN, split: Split, cols: int | None = None) -> float:
    """Mean -log p(y | x, past of its row), one character at a time, state carried, in float64."""
    model = model.eval()
    cols = split.x.shape[1] if cols is None else cols
    total, count = 0.0, 0
    for r in range(split.x.shape[0]):
        state = None
        for j in range(cols):
            logits, state = model(torch.tensor([[int(split.x[r, j])]]), state)  # (1, 1, K)
            total -= float(torch.log_softmax(logits[0, 0].double(), dim=-1)[int(split.y[r, j])])
            count += 1
    return total / count


@pytest.mark.parametrize("layout", ["interleaved", "contiguous"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELL_TYPES)
def test_evaluate_equals_the_step_by_step_reference(cell: str, layers: int, layout: str) -> None:
    model = make_model(cell, layers)
    splits = make_splits(ids(), SplitConfig(layout=layout, fractions=(0.6, 0.2, 0.2), batch_size=3, seq_len=5))
    for name, split in splits.items():
        ref = reference_nll(model, split)
        for seq_len in (5, 3, 1000):  # block width: the split's own, ragged last block, one block
            result = evaluate(model, split, seq_len)
            assert result.chars == split.num_chars
            assert result.loss_nats == pytest.approx(ref, abs=1e-5), (name, seq_len)


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_evaluate_a_stream_split_equals_the_reference(cell: str) -> None:
    model = make_model(cell, 2)
    split = stream_split(ids(97, seed=3), batch_size=4)
    assert evaluate(model, split, 7).loss_nats == pytest.approx(reference_nll(model, split), abs=1e-5)


def test_the_carried_state_matters() -> None:
    """Resetting the state at every block (a wrong implementation) would give another loss."""
    model = make_model("lstm", 1)
    split = make_splits(ids(), SplitConfig(fractions=(1.0, 0.0, 0.0), batch_size=2, seq_len=5))["train"]
    reset_each_block = []
    for x, y in split.blocks(5):
        logits, _ = model(torch.from_numpy(x))
        with torch.no_grad():
            reset_each_block.append(F.cross_entropy(logits.reshape(-1, K), torch.from_numpy(y).reshape(-1), reduction="sum"))
    wrong = float(sum(reset_each_block)) / split.num_chars
    right = evaluate(model, split, 5).loss_nats
    assert right == pytest.approx(reference_nll(model, split), abs=1e-5)
    assert abs(right - wrong) > 1e-3


def test_max_chars_limits_the_columns() -> None:
    model = make_model("gru", 1)
    split = make_splits(ids(), SplitConfig(fractions=(1.0, 0.0, 0.0), batch_size=4, seq_len=5))["train"]
    rows, cols = split.x.shape
    for max_chars, expect_cols in ((1, 1), (4, 1), (5, 2), (22, 6), (10**6, cols)):
        result = evaluate(model, split, 5, max_chars=max_chars)
        assert result.chars == rows * expect_cols
        assert result.loss_nats == pytest.approx(reference_nll(model, split, expect_cols), abs=1e-5), max_chars
    assert evaluate(model, split, 5, max_chars=0).chars == split.num_chars


def test_evaluate_runs_in_eval_mode_and_restores_the_mode() -> None:
    model = make_model("lstm", 2, dropout=0.5)
    split = make_splits(ids(), SplitConfig(fractions=(1.0, 0.0, 0.0), batch_size=2, seq_len=5))["train"]
    model.train()
    first = evaluate(model, split, 5)
    assert model.training  # restored
    assert evaluate(model, split, 5) == first  # no dropout noise
    assert first.loss_nats == pytest.approx(reference_nll(model, split), abs=1e-5)
    model.eval()
    evaluate(model, split, 5)
    assert not model.training


def test_an_empty_split_is_refused() -> None:
    model = make_model("rnn", 1)
    empty = make_splits(ids(), SplitConfig(fractions=(1.0, 0.0, 0.0), batch_size=2, seq_len=5))["val"]
    assert empty.num_chars == 0
    with pytest.raises(RnnlensError, match="empty"):
        evaluate(model, empty, 5)


def test_eval_result_bits_and_dict() -> None:
    result = EvalResult(loss_nats=1.5, chars=10)
    assert result.loss_bits == pytest.approx(1.5 / math.log(2), rel=1e-15)
    assert result.to_dict() == {"loss_nats": 1.5, "loss_bits": result.loss_bits, "chars": 10}


def test_a_uniform_model_scores_log_k() -> None:
    """An independent sanity anchor: zero readout weights give exactly ln K nats per character."""
    model = make_model("rnn", 1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    split = stream_split(ids(50), batch_size=3)
    result = evaluate(model, split, 4)
    assert result.loss_nats == pytest.approx(math.log(K), rel=1e-6)
    assert result.loss_bits == pytest.approx(math.log2(K), rel=1e-6)
