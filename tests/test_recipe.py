"""Tests for rnnlens.recipe: the paper's defaults, lr schedule, element-wise clipping, RMSProp, validation."""
from __future__ import annotations

import math

import pytest
import torch

from rnnlens.exceptions import RnnlensError
from rnnlens.recipe import TrainConfig, clip_gradients, lr_for_epoch, make_optimizer, set_lr


def test_defaults_are_the_papers_recipe() -> None:
    t = TrainConfig()
    assert (t.lr, t.alpha, t.clip, t.epochs, t.init_range) == (2e-3, 0.95, 5.0, 50.0, 0.08)
    assert (t.lr_decay, t.lr_decay_after) == (0.95, 10)


def test_lr_is_constant_for_ten_epochs_then_decays_by_095_per_epoch() -> None:
    t = TrainConfig()
    for one_based in range(1, 51):
        expected = 2e-3 * 0.95 ** max(0, one_based - 10)
        assert lr_for_epoch(t, one_based - 1) == pytest.approx(expected, rel=1e-12), one_based
    assert lr_for_epoch(t, 9) == 2e-3  # the 10th epoch still runs at the full rate
    assert lr_for_epoch(t, 10) == pytest.approx(2e-3 * 0.95)


def test_lr_schedule_follows_its_settings() -> None:
    t = TrainConfig(lr=0.1, lr_decay=0.5, lr_decay_after=2)
    assert [lr_for_epoch(t, e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125])
    assert lr_for_epoch(TrainConfig(lr=0.1, lr_decay=0.5, lr_decay_after=0), 0) == pytest.approx(0.05)
    assert lr_for_epoch(TrainConfig(lr=0.1, lr_decay=1.0), 40) == 0.1


def test_clip_gradients_clamps_each_element_not_the_norm() -> None:
    a = torch.zeros(4, requires_grad=True)
    b = torch.zeros(2, 2, requires_grad=True)
    a.grad = torch.tensor([10.0, -10.0, 3.0, -7.0])
    b.grad = torch.tensor([[0.5, -0.5], [6.0, -4.5]])
    unused = torch.zeros(3, requires_grad=True)  # no gradient: must be skipped
    clip_gradients([a, b, unused], 5.0)
    assert a.grad.tolist() == [5.0, -5.0, 3.0, -5.0]  # norm clipping would have scaled the 3 as well
    assert b.grad.tolist() == [[0.5, -0.5], [5.0, -4.5]]
    assert unused.grad is None


def test_clip_zero_disables_clipping() -> None:
    a = torch.zeros(2, requires_grad=True)
    a.grad = torch.tensor([100.0, -1e6])
    clip_gradients([a], 0.0)
    assert a.grad.tolist() == [100.0, -1e6]


def test_rmsprop_update_matches_the_formula() -> None:
    cfg = TrainConfig(lr=0.01, alpha=0.9, eps=1e-8)
    p = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = make_optimizer([p], cfg)
    grads = [[1.0, -2.0, 0.0], [0.5, 3.0, -1.0], [-4.0, 0.1, 2.0]]
    ref_p = [0.5, -1.0, 2.0]
    ref_m = [0.0, 0.0, 0.0]
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        for i, gi in enumerate(g):
            ref_m[i] = 0.9 * ref_m[i] + 0.1 * gi * gi
            ref_p[i] -= 0.01 * gi / (math.sqrt(ref_m[i]) + 1e-8)
        assert p.detach().tolist() == pytest.approx(ref_p, rel=1e-12, abs=1e-15)
    assert opt.state[p]["square_avg"].tolist() == pytest.approx(ref_m, rel=1e-12)


def test_set_lr_changes_the_rate_of_the_next_step() -> None:
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = make_optimizer([p], TrainConfig(lr=0.1, alpha=0.5))
    set_lr(opt, 0.001)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    # m = 0.5 * 4 = 2, step = 0.001 * 2 / (sqrt(2) + eps)
    assert float(p.detach()) == pytest.approx(1.0 - 0.001 * 2 / (math.sqrt(2) + 1e-8), rel=1e-12)


@pytest.mark.parametrize(
    "field, value, flag",
    [("epochs", 0, "--epochs"), ("epochs", float("inf"), "--epochs"), ("max_steps", -1, "--max-steps"),
     ("lr", 0, "--lr"), ("lr", float("nan"), "--lr"), ("alpha", 1.0, "--alpha"), ("alpha", 0.0, "--alpha"),
     ("lr_decay", 0.0, "--lr-decay"), ("lr_decay", 1.5, "--lr-decay"), ("lr_decay_after", -1, "--lr-decay-after"),
     ("clip", -1, "--clip"), ("init_range", 0, "--init-range"), ("eval_every", -1, "--eval-every"),
     ("eval_chars", -1, "--eval-chars"), ("patience", -1, "--patience"),
     ("checkpoint_every", 0, "--checkpoint-every"), ("snapshot_every", -1, "--snapshot-every")],
)
def test_train_config_rejects_bad_values_naming_the_field(field: str, value: float, flag: str) -> None:
    """The library names the field (``epochs must be > 0``); the CLI shows the flag of that name."""
    import argparse

    from rnnlens.cli import flag_message

    with pytest.raises(RnnlensError) as info:
        TrainConfig(**{field: value})
    message = str(info.value)
    assert message.startswith(field + " ") and info.value.field == field
    assert "\n" not in message
    assert flag_message(info.value, argparse.Namespace(**{field: value})).startswith(flag + " ")


def test_train_config_round_trip_and_total_steps() -> None:
    t = TrainConfig(epochs=2.5, lr=1e-3, seed=7)
    assert TrainConfig.from_dict({**t.to_dict(), "unknown_future_key": 1}) == t
    assert t.total_steps(10) == 25
    assert TrainConfig(epochs=0.01).total_steps(10) == 1  # a fraction of an epoch is at least one step
    assert TrainConfig(epochs=50, max_steps=7).total_steps(100) == 7
    assert TrainConfig(epochs=1, max_steps=70).total_steps(10) == 10
