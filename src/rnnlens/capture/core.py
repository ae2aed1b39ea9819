"""Every hidden state, cell state and gate of a trained model, with stable dotted names.

The fused training path (``CharRNN.forward``: one ``nn.LSTM``/``nn.GRU``/``nn.RNN`` call for all layers)
only returns the top layer's outputs. Capture runs the same weights one layer at a time through the same
fused kernel (``torch.lstm`` / ``torch.gru`` / ``torch.rnn_tanh``), which gives every layer's h; because
the input x_t and the previous state h_{t-1} of every step are then known, all gate pre-activations are
recomputed with one batched matrix product per layer, and the LSTM cell state with an elementwise scan
``c_t = f_t * c_{t-1} + i_t * g_t`` (method ``"fused"``, the default on a GPU). On a CPU the forward pass is
bound by arithmetic, so recomputing would double it; there the default is method ``"steps"``
(:mod:`rnnlens.capture.steps`): each step does one matrix product and writes its gates as it goes, the
fused kernel's arithmetic. Layers with only h requested always use the fused kernel. Tests prove h and
logits equal to ``CharRNN.forward`` and c and the gates equal to a step-by-step reference written from the
equations, for both methods.

Names (``L`` = layer index from 0; shapes (B, T, H) unless noted):

* every type:  ``layers.L.h``
* LSTM:        ``layers.L.c``, ``layers.L.input_gate`` (i), ``layers.L.forget_gate`` (f),
               ``layers.L.output_gate`` (o), ``layers.L.candidate`` (g = tanh(...), in [-1, 1])
* GRU:         ``layers.L.reset_gate`` (r), ``layers.L.update_gate`` (z, **PyTorch's convention**:
               ``h = (1 - z) * n + z * h_prev``, so z is the share of the *old* state kept; the paper's z
               is ``1 - update_gate``), ``layers.L.candidate`` (n = tanh(W_in x + b_in + r * (W_hn h + b_hn)))
* vanilla RNN: ``layers.L.pre`` (the pre-activation; h = tanh(pre))
* outputs:     ``logits`` (B, T, K); with targets: ``next_prob`` (B, T) the probability given to the true
               next character and ``loss`` (B, T) its cross-entropy, ``-log next_prob``, in nats.

A names filter (``NamesFilter``) is ``None`` (everything), a callable ``name -> bool``, a string of
comma-separated ``fnmatch`` patterns (``"layers.*.forget_gate,loss"``) or a list of patterns. Nothing is
attached to the model: capture is a pure function of the weights, so no hook can outlive a call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..exceptions import RnnlensError
from ..model import CharRNN, ModelConfig, State
from ..data.splits import Split
from .steps import Hook, gru_steps, lstm_steps, rnn_steps

NamesFilter = None | str | Sequence[str] | Callable[[str], bool]

LAYER_NAMES: dict[str, tuple[str, ...]] = {
    "lstm": ("h", "c", "input_gate", "forget_gate", "output_gate", "candidate"),
    "gru": ("h", "reset_gate", "update_gate", "candidate"),
    "rnn": ("h", "pre"),
}
# The sigmoid gates of each type, in the order figures show them (the paper's Figure 3).
GATES: dict[str, tuple[str, ...]] = {
    "lstm": ("forget_gate", "input_gate", "output_gate"),
    "gru": ("reset_gate", "update_gate"),
    "rnn": (),
}
METHODS = ("auto", "fused", "steps")
OUTPUT_NAMES = ("logits",)
TARGET_NAMES = ("next_prob", "loss")


def activation_names(config: ModelConfig, with_targets: bool = True) -> list[str]:
    """Every name a model of this config can capture, layer by layer, then the outputs."""
    names = [f"layers.{layer}.{n}" for layer in range(config.layers) for n in LAYER_NAMES[config.cell]]
    return names + list(OUTPUT_NAMES) + (list(TARGET_NAMES) if with_targets else [])


def gate_names(config: ModelConfig) -> list[str]:
    """The names of the sigmoid gates (no candidates), layer by layer; empty for the vanilla RNN."""
    return [f"layers.{layer}.{g}" for layer in range(config.layers) for g in GATES[config.cell]]


def resolve_names(config: ModelConfig, names: NamesFilter = None, with_targets: bool = True) -> list[str]:
    """The selected names, in ``activation_names`` order; ``RnnlensError`` if a pattern matches nothing."""
    available = activation_names(config, with_targets)
    if names is None:
        return available
    if callable(names):
        chosen = [n for n in available if names(n)]
        if not chosen:
            raise RnnlensError("the names filter selects no activation; loosen it (e.g. layers.*.h)")
        return chosen
    patterns = [p.strip() for p in (names.split(",") if isinstance(names, str) else names)]
    patterns = [p for p in patterns if p]
    if not patterns:
        raise RnnlensError("the names filter is empty; pass patterns such as layers.*.forget_gate,loss")
    for p in patterns:
        if not any(fnmatchcase(n, p) for n in available):
            hint = " (next_prob and loss need target characters)" if p in TARGET_NAMES else ""
            raise RnnlensError(
                f"names pattern {p!r} matches no activation of this {config.layers}-layer {config.cell}{hint}; "
                f"available: {', '.join(_name_summary(config, with_targets))}"
            )
    return [n for n in available if any(fnmatchcase(n, p) for p in patterns)]


def _name_summary(config: ModelConfig, with_targets: bool) -> list[str]:
    layer = f"layers.{{0..{config.layers - 1}}}" if config.layers > 1 else "layers.0"
    return [f"{layer}.{n}" for n in LAYER_NAMES[config.cell]] + list(OUTPUT_NAMES) + (
        list(TARGET_NAMES) if with_targets else [])


@dataclass
class CaptureBlock:
    """What one call of ``run_with_cache`` (or one column block of ``iter_capture``) produced.

    start: first column of the block in the split (0 for a single call).
    x, y: (B, T) input ids and targets (y None without targets).
    acts: name -> tensor on the model's device; (B, T, H), (B, T, K) for logits, (B, T) for next_prob/loss.
        Gate tensors may be strided views into one (B, T, 4H) buffer; call ``.contiguous()`` if needed.
    state: the model state after the block's last step, (h,) or (h, c), each (L, B, H): pass it on.
    """

    start: int
    x: torch.Tensor
    y: torch.Tensor | None
    acts: dict[str, torch.Tensor]
    state: State

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.acts[name]
        except KeyError:
            raise RnnlensError(f"{name!r} was not captured; captured: {', '.join(self.acts)}") from None


def _check_ids(x: torch.Tensor, vocab_size: int, what: str = "input") -> None:
    if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise RnnlensError(f"{what} ids must be a 2-D integer array (B, T), got {x.dtype} of shape {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise RnnlensError(f"{what} ids must be in 0..{vocab_size - 1}; encode the text with the run's vocabulary")


def _layer_weights(model: CharRNN, layer: int) -> list[torch.Tensor]:
    rnn = model.rnn
    return [getattr(rnn, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def _input_projection(inp: torch.Tensor | None, ids: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor) -> torch.Tensor:
    """W_ih x + b_ih for every step: (B, T, G*H). Layer 0's one-hot input is a column lookup."""
    if inp is None:
        return F.embedding(ids, w_ih.t()) + b_ih
    B, T, D = inp.shape
    return torch.addmm(b_ih, inp.reshape(B * T, D), w_ih.t()).view(B, T, -1)


def _recurrent_projection(out: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
                          add_to: torch.Tensor | None = None) -> torch.Tensor:
    """W_hh h_{t-1} + b_hh for every step, from the layer's outputs and initial state: (B, T, G*H).
    With ``add_to`` (B, T, G*H) the result is accumulated into it in place (saving a buffer)."""
    B, T, H = out.shape
    prev = torch.cat([h0.unsqueeze(1), out[:, :-1]], dim=1).view(B * T, H)  # h_{t-1}
    if add_to is None:
        return torch.addmm(b_hh, prev, w_hh.t()).view(B, T, -1)
    return add_to.view(B * T, -1).addmm_(prev, w_hh.t()).add_(b_hh).view(B, T, -1)


def _lstm_internals(pre: torch.Tensor, c0: torch.Tensor, want: set[str]) -> dict[str, torch.Tensor]:
    """Gates [i, f, g, o] (PyTorch's row order) from the pre-activations (B, T, 4H, overwritten) and the
    cell state c by an elementwise scan."""
    H = pre.shape[-1] // 4
    g = torch.tanh(pre[..., 2 * H:3 * H])
    sig = pre.sigmoid_()
    i, f, o = sig[..., :H], sig[..., H:2 * H], sig[..., 3 * H:]
    acts = {"input_gate": i, "forget_gate": f, "output_gate": o, "candidate": g}
    if "c" in want:
        c = i * g  # (B, T, H), becomes c in place: c_t = f_t * c_{t-1} + i_t * g_t
        c[:, 0].addcmul_(f[:, 0], c0)
        for t in range(1, c.shape[1]):
            c[:, t].addcmul_(f[:, t], c[:, t - 1])
        acts["c"] = c
    return acts


def _gru_internals(gi: torch.Tensor, gh: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gates [r, z] and candidate n (PyTorch's rows and reset-after-product convention)."""
    H = gi.shape[-1] // 3
    rz = torch.sigmoid(gi[..., :2 * H] + gh[..., :2 * H])  # (B, T, 2H)
    r, z = rz[..., :H], rz[..., H:]
    n = torch.tanh(torch.addcmul(gi[..., 2 * H:], r, gh[..., 2 * H:]))
    return {"reset_gate": r, "update_gate": z, "candidate": n}


def _run_layer(model: CharRNN, layer: int, inp: torch.Tensor, state: State) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One layer through the fused kernel: outputs (B, T, H) and its final state tensors, each (1, B, H)."""
    w = _layer_weights(model, layer)
    cell = model.config.cell
    h0 = state[0][layer:layer + 1].contiguous()
    if cell == "lstm":
        out, h_n, c_n = torch.lstm(inp, (h0, state[1][layer:layer + 1].contiguous()), w, True, 1, 0.0, False, False, True)
        return out, (h_n, c_n)
    fn = torch.gru if cell == "gru" else torch.rnn_tanh
    out, h_n = fn(inp, h0, w, True, 1, 0.0, False, False, True)
    return out, (h_n,)


def _steps_layer(model: CharRNN, layer: int, inp: torch.Tensor | None, ids: torch.Tensor, state: State,
                 want: set[str], hooks: dict[str, Hook] | None, start: int
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """One layer through the step loop of :mod:`rnnlens.capture.steps`; ``inp`` None means layer 0."""
    w, cell, h = _layer_weights(model, layer), model.config.cell, state[0][layer]
    if cell == "lstm":
        return lstm_steps(w, inp, ids, h, state[1][layer], want, hooks, start)
    return (gru_steps if cell == "gru" else rnn_steps)(w, inp, ids, h, hooks, start)


def split_hooks(config: ModelConfig, hooks: dict[str, Hook] | None) -> dict[int, dict[str, Hook]]:
    """``{"layers.1.c": fn}`` -> ``{1: {"c": fn}}``; ``RnnlensError`` for a name the model has no layer value
    of (outputs cannot be hooked: they are computed after the recurrence) or a hook that is not callable."""
    out: dict[int, dict[str, Hook]] = {}
    valid = [n for n in activation_names(config, with_targets=False) if n.startswith("layers.")]
    for name, fn in (hooks or {}).items():
        if name not in valid:
            raise RnnlensError(f"cannot hook {name!r}: hooks take one of this {config.layers}-layer {config.cell}'s "
                               f"layer values ({', '.join(_name_summary(config, False)[:len(LAYER_NAMES[config.cell])])})")
        if not callable(fn):
            raise RnnlensError(f"the hook on {name} is not callable; pass a function fn(value, position)")
        layer, short = name.split(".")[1:]
        out.setdefault(int(layer), {})[short] = fn
    return out


@torch.no_grad()
def run_with_cache(model: CharRNN, x: torch.Tensor, state: State | None = None, names: NamesFilter = None,
                   targets: torch.Tensor | None = None, start: int = 0, method: str = "auto",
                   hooks: dict[str, Hook] | None = None) -> CaptureBlock:
    """Run ids ``x`` (B, T) from ``state`` (zero when None) and return the selected activations.

    ``targets`` (B, T), the next character of every input, enables ``next_prob`` and ``loss``. The model
    must be in eval mode (dropout off), which is what ``run.load_model`` returns. ``method``: ``"fused"``
    (fused kernel + batched recomputation), ``"steps"`` (step loop) or ``"auto"`` (steps on CPU, else fused).
    ``hooks``: layer activation name -> ``fn(value, position)``, an intervention applied inside the
    recurrence (see :func:`rnnlens.capture.hooks.run_with_hooks`); a hooked layer always runs the step loop.
    """
    cfg = model.config
    if method not in METHODS:
        raise RnnlensError(f"unknown capture method {method!r}; use one of {', '.join(METHODS)}")
    if model.training and cfg.dropout > 0 and cfg.layers > 1:
        raise RnnlensError("capture needs the model in eval mode (dropout off); call model.eval() first")
    device = model.head.weight.device
    x = torch.as_tensor(x).to(device)
    _check_ids(x, cfg.vocab_size)
    if targets is not None:
        targets = torch.as_tensor(targets).to(device)
        _check_ids(targets, cfg.vocab_size, "target")
        if targets.shape != x.shape:
            raise RnnlensError(f"targets have shape {tuple(targets.shape)} but inputs {tuple(x.shape)}; pass one target per input")
    want = resolve_names(cfg, names, with_targets=targets is not None)
    B, T = x.shape
    if T == 0:
        raise RnnlensError("nothing to capture: the input has no time steps; pass at least one character")
    state = model.initial_state(B, device) if state is None else state
    onehot = F.one_hot(x, cfg.vocab_size).to(model.head.weight.dtype)  # (B, T, K)
    acts: dict[str, torch.Tensor] = {}
    finals: list[tuple[torch.Tensor, ...]] = []
    inp: torch.Tensor = onehot
    steps = method == "steps" or (method == "auto" and device.type == "cpu")
    by_layer = split_hooks(cfg, hooks)
    for layer in range(cfg.layers):
        here = {n.rsplit(".", 1)[1] for n in want if n.startswith(f"layers.{layer}.")}
        if (steps and here - {"h"}) or layer in by_layer:
            out, final, inner = _steps_layer(model, layer, None if layer == 0 else inp, x, state, here,
                                             by_layer.get(layer), start)
            acts.update({f"layers.{layer}.{k}": v for k, v in inner.items() if k in here})
        else:
            out, final = _run_layer(model, layer, inp, state)
        finals.append(final)
        if here - {"h"} and not steps and layer not in by_layer:
            w_ih, w_hh, b_ih, b_hh = _layer_weights(model, layer)
            gi = _input_projection(None if layer == 0 else inp, x, w_ih, b_ih)
            if cfg.cell == "gru":  # the reset gate multiplies W_hn h + b_hn alone: keep both parts
                inner = _gru_internals(gi, _recurrent_projection(out, state[0][layer], w_hh, b_hh))
            else:
                pre = _recurrent_projection(out, state[0][layer], w_hh, b_hh, add_to=gi)
                inner = _lstm_internals(pre, state[1][layer], here) if cfg.cell == "lstm" else {"pre": pre}
            acts.update({f"layers.{layer}.{k}": v for k, v in inner.items() if k in here})
        if "h" in here:
            acts[f"layers.{layer}.h"] = out
        inp = out
    if not torch.isfinite(inp).all():
        raise RnnlensError(f"the model produced non-finite activations (NaN or inf) in columns {start}..{start + T - 1}; "
                           "its weights are damaged, use another checkpoint")
    if any(n in want for n in OUTPUT_NAMES + TARGET_NAMES):
        logits = model.head(inp)  # (B, T, K)
        if "logits" in want:
            acts["logits"] = logits
        if targets is not None and ("loss" in want or "next_prob" in want):
            nll = -torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
            if "next_prob" in want:
                acts["next_prob"] = torch.exp(-nll)
            if "loss" in want:
                acts["loss"] = nll
    new_state: State = tuple(torch.cat([f[k] for f in finals], dim=0) for k in range(len(finals[0])))
    order = {n: k for k, n in enumerate(want)}
    return CaptureBlock(start, x, targets, dict(sorted(acts.items(), key=lambda kv: order[kv[0]])), new_state)


def capture_columns(split: Split, max_chars: int = 0) -> int:
    """How many columns of every row a capture covers (all, or enough for ``max_chars`` predictions)."""
    rows, cols = split.x.shape
    if split.x.size == 0:
        raise RnnlensError(f"the {split.name} split is empty; choose a split with characters in it")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 0:
        raise RnnlensError(f"max_chars must be an integer >= 0 (0 = all), got {max_chars!r}")
    return min(cols, max(1, math.ceil(max_chars / rows))) if max_chars > 0 else cols


def counted_columns(split: Split, max_chars: int = 0, warmup: int = 0) -> tuple[int, int]:
    """(start, end): the columns ``start..end-1`` of every row that an analysis counts, ``max_chars``
    predictions after a warmup (0 = to the end). The warmup (columns where the state still starts from
    zero) is at most a quarter of a row; stream ``end * rows`` characters to cover them."""
    total = capture_columns(split, 0)
    start = min(max(int(warmup), 0), total // 4)
    end = total if max_chars == 0 else min(total, start + capture_columns(split, max_chars))
    return start, end


def iter_capture(model: CharRNN, split: Split, seq_len: int, names: NamesFilter = None,
                 max_chars: int = 0, method: str = "auto", hooks: dict[str, Hook] | None = None) -> Iterator[CaptureBlock]:
    """Stream a split block by block (columns ``j:j+seq_len`` of all B rows), the state carried as in
    training and evaluation, yielding each block's activations (targets are the split's ``y``); ``hooks``
    as in :func:`run_with_cache` (the edited state is what is carried)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise RnnlensError(f"seq_len must be a positive integer, got {seq_len!r}; pass e.g. 100")
    cols = capture_columns(split, max_chars)
    resolve_names(model.config, names)  # fail before any work
    k = model.config.vocab_size
    for arr, what in ((split.x, "input"), (split.y, "target")):
        if arr.size and (int(arr[:, :cols].min()) < 0 or int(arr[:, :cols].max()) >= k):
            raise RnnlensError(f"{what} ids of the {split.name} split must be in 0..{k - 1}; the split does not match the model")
    x_all = torch.from_numpy(np.ascontiguousarray(split.x[:, :cols]))
    y_all = torch.from_numpy(np.ascontiguousarray(split.y[:, :cols]))
    state: State | None = None
    for j in range(0, cols, seq_len):
        block = run_with_cache(model, x_all[:, j:j + seq_len], state, names, y_all[:, j:j + seq_len], j, method, hooks)
        state = block.state
        yield block
