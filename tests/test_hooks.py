"""Interventions inside the recurrence (rnnlens.capture.hooks): an identity hook changes nothing bit for bit,
an edit at step t leaves earlier steps alone and moves later ones, and a zeroed cell equals a step-by-step
reference written from the equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlens.capture.core import activation_names, iter_capture, run_with_cache
from rnnlens.capture.hooks import iter_hooked, run_with_hooks, set_cell
from rnnlens.data.splits import SplitConfig, make_splits
from rnnlens.exceptions import RnnlensError
from rnnlens.model import CharRNN, ModelConfig

K = 9


def make_model(cell: str, layers: int = 2, hidden: int = 12) -> CharRNN:
    torch.manual_seed(5)
    return CharRNN(ModelConfig(cell=cell, layers=layers, hidden=hidden, vocab_size=K)).eval()


def ids(B: int = 3, T: int = 25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, K, (B, T), generator=g), torch.randint(0, K, (B, T), generator=g)


def layer_names(model: CharRNN) -> list[str]:
    return [n for n in activation_names(model.config, with_targets=False) if n.startswith("layers.")]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_identity_hooks_are_bit_identical(cell: str) -> None:
    model = make_model(cell)
    x, y = ids()
    ref = run_with_cache(model, x, targets=y, method="steps")
    calls = []
    for hook in (lambda v, t: calls.append(t), lambda v, t: v.clone()):
        out = run_with_hooks(model, x, {n: hook for n in layer_names(model)}, targets=y)
        assert list(out.acts) == list(ref.acts)
        for n in ref.acts:
            assert torch.equal(out[n], ref[n]), n
        for a, b in zip(out.state, ref.state):
            assert torch.equal(a, b)
    assert sorted(set(calls)) == list(range(x.shape[1]))  # every step is offered to the hook
    fused = model(x)[0]  # and the step loop is the model: same logits as the fused forward pass
    assert torch.allclose(ref["logits"], fused, atol=1e-5)


@pytest.mark.parametrize("cell,name", [("lstm", "layers.0.c"), ("lstm", "layers.0.forget_gate"),
                                       ("lstm", "layers.1.h"), ("gru", "layers.0.h"), ("gru", "layers.0.reset_gate"),
                                       ("rnn", "layers.0.pre")])
def test_an_edit_at_step_t_changes_only_later_steps(cell: str, name: str) -> None:
    model = make_model(cell)
    x, y = ids()
    t0 = 9
    ref = run_with_cache(model, x, targets=y, method="steps")
    out = run_with_hooks(model, x, {name: lambda v, t: torch.full_like(v, 0.7) if t == t0 else None}, targets=y)
    assert torch.equal(out["logits"][:, :t0], ref["logits"][:, :t0])
    assert torch.equal(out[name][:, t0], torch.full_like(out[name][:, t0], 0.7))  # the cache holds the edit
    later = (out["logits"][:, t0:] - ref["logits"][:, t0:]).abs()
    assert (later[:, 0].amax(-1) > 0).all()          # the step itself (the output reads the edited state) ...
    assert (later[:, 1:].amax(-1) > 0).all()         # ... and every later one, through the recurrence
    if name.startswith("layers.0."):
        up = name.replace("layers.0.", "layers.1.").rsplit(".", 1)[0] + ".h"
        assert not torch.equal(out[up][:, t0:], ref[up][:, t0:])  # the layer above sees the edit


def reference_lstm(model: CharRNN, x: torch.Tensor, zero: tuple[int, int]) -> torch.Tensor:
    """The LSTM written from the equations, one step and one layer at a time, with c[layer][:, index] = 0."""
    cfg = model.config
    B, T = x.shape
    H = cfg.hidden
    h = [torch.zeros(B, H) for _ in range(cfg.layers)]
    c = [torch.zeros(B, H) for _ in range(cfg.layers)]
    logits = []
    for t in range(T):
        inp = torch.nn.functional.one_hot(x[:, t], K).float()
        for layer in range(cfg.layers):
            w_ih, w_hh = getattr(model.rnn, f"weight_ih_l{layer}"), getattr(model.rnn, f"weight_hh_l{layer}")
            b = getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")
            z = inp @ w_ih.t() + h[layer] @ w_hh.t() + b
            i, f, g, o = z[:, :H].sigmoid(), z[:, H:2 * H].sigmoid(), z[:, 2 * H:3 * H].tanh(), z[:, 3 * H:].sigmoid()
            c[layer] = f * c[layer] + i * g
            if layer == zero[0]:
                c[layer] = c[layer].clone()
                c[layer][:, zero[1]] = 0.0
            h[layer] = o * c[layer].tanh()
            inp = h[layer]
        logits.append(model.head(inp))
    return torch.stack(logits, dim=1)


@torch.no_grad()
def test_a_zeroed_cell_equals_the_step_by_step_reference() -> None:
    model = make_model("lstm", hidden=8)
    x, _ = ids(2, 30)
    out = run_with_hooks(model, x, {"layers.0.c": set_cell(3, 0.0)}, names="logits")
    ref = reference_lstm(model, x, (0, 3))
    assert torch.allclose(out["logits"], ref, atol=1e-5)
    clean = run_with_cache(model, x, names="logits")["logits"]
    assert not torch.allclose(clean, ref, atol=1e-3)  # the ablation did something


def test_set_cell_per_row_and_row_ranges() -> None:
    model = make_model("gru")
    x, y = ids(2, 15)
    xx, yy = x.repeat(3, 1), y.repeat(3, 1)
    out = run_with_hooks(model, xx, {"layers.1.h": set_cell(torch.tensor([0, 0, 4, 4]), torch.tensor([0.0, 0.0, 0.5, 0.5]),
                                                                    rows=slice(2, None))}, targets=yy)
    clean = run_with_cache(model, x, targets=y, method="steps")
    one = run_with_hooks(model, x, {"layers.1.h": set_cell(0, 0.0)}, targets=y)
    four = run_with_hooks(model, x, {"layers.1.h": set_cell(4, 0.5)}, targets=y)
    assert torch.allclose(out["loss"][:2], clean["loss"], atol=1e-6)  # batch size may change the summation order
    assert torch.allclose(out["loss"][2:4], one["loss"], atol=1e-6)
    assert torch.allclose(out["loss"][4:], four["loss"], atol=1e-6)


def test_streaming_carries_the_edited_state() -> None:
    model = make_model("lstm")
    split = make_splits(np.random.default_rng(1).integers(0, K, 4 * 40 + 1),
                        SplitConfig(batch_size=4, seq_len=10, fractions=(0.5, 0.25, 0.25)))["train"]
    hook = {"layers.0.c": set_cell(2, 0.0)}
    blocks = list(iter_hooked(model, split, 7, hook, names="loss"))
    whole = run_with_hooks(model, torch.from_numpy(split.x), hook, names="loss", targets=torch.from_numpy(split.y))
    assert torch.allclose(torch.cat([b["loss"] for b in blocks], dim=1), whole["loss"], atol=1e-6)
    assert [b.start for b in blocks] == list(range(0, split.x.shape[1], 7))
    clean = torch.cat([b["loss"] for b in iter_capture(model, split, 7, "loss")], dim=1)
    assert not torch.allclose(clean, whole["loss"])


def test_bad_hooks_get_one_line_errors() -> None:
    model = make_model("gru")
    x, _ = ids()
    with pytest.raises(RnnlensError, match="cannot hook 'layers.0.c'"):
        run_with_hooks(model, x, {"layers.0.c": lambda v, t: None})
    with pytest.raises(RnnlensError, match="cannot hook 'logits'"):
        run_with_hooks(model, x, {"logits": lambda v, t: None})
    with pytest.raises(RnnlensError, match="not callable"):
        run_with_hooks(model, x, {"layers.0.h": 3.0})
    with pytest.raises(RnnlensError, match="broadcasts to"):
        run_with_hooks(model, x, {"layers.0.h": lambda v, t: torch.zeros(5, 5)})
