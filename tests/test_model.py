"""Tests for rnnlens.model: parameter counting, budgets, the forward pass with a carried state, init."""
from __future__ import annotations

import random

import pytest
import torch

from rnnlens.exceptions import RnnlensError
from rnnlens.model import (
    CELL_TYPES,
    MIN_HIDDEN,
    PAPER_BUDGETS,
    CharRNN,
    ModelConfig,
    detach_state,
    hidden_for_budget,
    param_count,
    parse_budget,
)

DEPTHS = (1, 2, 3)


def make_model(cell: str, layers: int, hidden: int = 8, vocab: int = 7, seed: int = 0, init: float = 0.5) -> CharRNN:
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(cell=cell, layers=layers, hidden=hidden, vocab_size=vocab))
    model.reset_parameters(init)
    return model.eval()


@pytest.mark.parametrize("cell", CELL_TYPES)
@pytest.mark.parametrize("layers", DEPTHS)
@pytest.mark.parametrize("vocab", (2, 5, 87))
def test_param_count_equals_numel_of_the_module(cell: str, layers: int, vocab: int) -> None:
    for hidden in (4, 7, 16):
        model = CharRNN(ModelConfig(cell=cell, layers=layers, hidden=hidden, vocab_size=vocab))
        expected = sum(p.numel() for p in model.parameters())
        assert param_count(cell, layers, hidden, vocab) == expected == model.num_parameters()


@pytest.mark.parametrize("cell", CELL_TYPES)
@pytest.mark.parametrize("layers", DEPTHS)
def test_hidden_for_budget_is_the_closest_size_by_brute_force(cell: str, layers: int) -> None:
    vocab = 65
    sizes = range(MIN_HIDDEN, 400)
    lo, hi = param_count(cell, layers, MIN_HIDDEN, vocab), param_count(cell, layers, 350, vocab)
    rng = random.Random(f"{cell}{layers}")
    budgets = [lo, hi] + [rng.randint(lo, hi) for _ in range(40)]
    budgets += [param_count(cell, layers, h, vocab) + d for h in (20, 57, 200) for d in (-1, 0, 1)]
    for budget in budgets:
        brute = min(sizes, key=lambda h: (abs(param_count(cell, layers, h, vocab) - budget), h))
        assert hidden_for_budget(cell, layers, budget, vocab) == brute, budget


def test_hidden_for_budget_ties_go_to_the_smaller_size() -> None:
    # A budget exactly between two consecutive sizes' counts (when the gap is even) picks the smaller one.
    cell, layers, vocab = "lstm", 1, 10  # gaps 4(K+2h+1)+8+K are even for even K
    for h in range(MIN_HIDDEN, 200):
        a, b = param_count(cell, layers, h, vocab), param_count(cell, layers, h + 1, vocab)
        if (b - a) % 2 == 0:
            assert hidden_for_budget(cell, layers, (a + b) // 2, vocab) == h
            return
    pytest.fail("no even gap found")


def test_paper_budgets_give_a_one_layer_lstm_exactly_its_cells_for_k87() -> None:
    # By hand: 4H(K+H) weights + 8H biases + HK + K readout, K=87.
    expected_counts = {"50k": 44_823, "130k": 122_327, "400k": 375_639, "1.3m": 1_275_479}
    for name, cells in PAPER_BUDGETS.items():
        budget = parse_budget(name, 87)
        assert budget == expected_counts[name] == param_count("lstm", 1, cells, 87)
        assert hidden_for_budget("lstm", 1, budget, 87) == cells
    assert list(PAPER_BUDGETS.values()) == [64, 128, 256, 512]


def test_paper_budget_names_follow_the_vocabulary() -> None:
    assert parse_budget("50k", 65) == param_count("lstm", 1, 64, 65)
    assert hidden_for_budget("lstm", 1, parse_budget("130K", 65), 65) == 128


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_too_small_a_budget_raises(cell: str) -> None:
    smallest = param_count(cell, 2, MIN_HIDDEN, 87)
    assert hidden_for_budget(cell, 2, smallest, 87) == MIN_HIDDEN
    with pytest.raises(RnnlensError, match="too small"):
        hidden_for_budget(cell, 2, smallest - 1, 87)
    with pytest.raises(RnnlensError, match="too small"):
        hidden_for_budget(cell, 1, 100, 87)


def test_hidden_for_budget_rejects_an_unknown_cell() -> None:
    with pytest.raises(RnnlensError, match="unknown model type"):
        hidden_for_budget("transformer", 1, 100_000, 87)


@pytest.mark.parametrize(
    "text, expected",
    [("250000", 250_000), ("2.5e5", 250_000), ("300k", 300_000), ("1.5M", 1_500_000), (" 75K ", 75_000),
     ("1_000", 1_000), ("12,345", 12_345), ("0.5m", 500_000), (250000, 250_000), (2.5e5, 250_000)],
)
def test_parse_budget_numbers(text, expected: int) -> None:
    assert parse_budget(text, 87) == expected


@pytest.mark.parametrize("text", ["", "abc", "50kk", "k", "-5", "5x", "1e", "1.3 m", "0", "0k", "nan", "inf"])
def test_parse_budget_rejects_bad_strings(text: str) -> None:
    with pytest.raises(RnnlensError):
        parse_budget(text, 87)


@pytest.mark.parametrize("value", [0, -3, float("nan"), float("inf")])
def test_parse_budget_rejects_bad_numbers(value: float) -> None:
    with pytest.raises(RnnlensError):
        parse_budget(value, 87)


@pytest.mark.parametrize("cell", CELL_TYPES)
@pytest.mark.parametrize("layers", (1, 2))
def test_forward_in_two_chunks_with_the_state_carried_equals_one_pass(cell: str, layers: int) -> None:
    model = make_model(cell, layers)
    x = torch.randint(0, 7, (3, 13), generator=torch.Generator().manual_seed(1))  # (B, T)
    full, state_full = model(x)
    first, state = model(x[:, :5])
    second, state_two = model(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full, rtol=0, atol=1e-6)
    assert len(state_full) == (2 if cell == "lstm" else 1)
    for a, b in zip(state_two, state_full):
        assert a.shape == (layers, 3, 8)  # (L, B, H)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert full.shape == (3, 13, 7)  # (B, T, K)
    # The carried state matters: restarting the second chunk from zero gives different logits.
    restarted, _ = model(x[:, 5:])
    assert not torch.allclose(restarted, second, atol=1e-4)


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_explicit_zero_state_equals_no_state(cell: str) -> None:
    model = make_model(cell, 2)
    x = torch.randint(0, 7, (2, 6), generator=torch.Generator().manual_seed(2))
    zero = model.initial_state(2)
    assert all(s.shape == (2, 2, 8) and not s.any() for s in zero)
    torch.testing.assert_close(model(x, zero)[0], model(x)[0], rtol=0, atol=0)


def test_detach_state_cuts_the_graph() -> None:
    model = make_model("lstm", 1)
    _, state = model(torch.zeros(1, 3, dtype=torch.long))
    assert all(s.requires_grad for s in state)
    detached = detach_state(state)
    assert all(not s.requires_grad for s in detached)
    assert all(torch.equal(a, b) for a, b in zip(state, detached))


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_uniform_init_within_the_paper_range(cell: str) -> None:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell=cell, layers=2, hidden=32, vocab_size=20))
    model.reset_parameters()
    values = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert values.abs().max() <= 0.08
    assert values.abs().max() > 0.079  # it fills the range ...
    assert abs(float(values.mean())) < 0.005  # ... symmetrically ...
    assert float(values.std()) == pytest.approx(0.08 / 3**0.5, rel=0.05)  # ... and uniformly
    for name, p in model.named_parameters():
        assert p.abs().max() > 0.05, f"{name} was not re-initialised"
    model.reset_parameters(0.5)
    values = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert 0.49 < values.abs().max() <= 0.5


def test_model_config_validation_and_round_trip() -> None:
    cfg = ModelConfig(cell="gru", layers=3, hidden=64, vocab_size=87, dropout=0.25)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"cell": "transformer"}, {"layers": 0}, {"hidden": 2}, {"vocab_size": 1}, {"dropout": 1.0}):
        with pytest.raises(RnnlensError):
            ModelConfig(**bad)
    with pytest.raises(RnnlensError, match="malformed"):
        ModelConfig.from_dict({"cell": "lstm"})
