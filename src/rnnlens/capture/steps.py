"""The step loop of capture: one layer, one time step at a time, every gate kept, hooks applied inside.

This is the CPU default of :func:`rnnlens.capture.core.run_with_cache` (``method="steps"``) and the path
of every intervention. It does the fused kernel's arithmetic (an input and a recurrent matrix product per
step) and writes each gate as it goes, so on a CPU it costs less than twice the fused forward pass
(``bench/capture_throughput.py``: 1.7x for the 1.3M 3-layer LSTM, every gate kept). Two things keep it fast:

* Memory: each step's input and recurrent products are written straight into that step's row of the
  gate buffer and turned into gates in place: no copy, and the (B, G*H) row stays in cache. The input
  product is done one step at a time, not once for the block: MKL is slower on one (B*T, D) product than
  on T products of (B, D) on these AMD CPUs, and no (T, B, G*H) intermediate is needed.
* LSTM tanh as a sigmoid: ``tanh(x) = 2 * sigmoid(2x) - 1``. The candidate's weight rows are doubled
  once per call, so one sigmoid covers all four gates, and tanh(c) is a sigmoid too (PyTorch's CPU tanh
  is several times slower than its sigmoid). The results equal tanh to float precision (absolute error
  about 1e-7); tests compare them with the fused path and a float64 reference.

Hooks (short name -> ``fn(value (B, H), position)``): a returned tensor or number replaces the value in
place, so everything computed after it in the step sees the edit (gates and candidate before c, c before
h, h before the next step and the layer above).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..exceptions import RnnlensError

# A hook: fn(value (B, H) of one step, position t) -> None (keep, or edited in place) | replacement.
Hook = Callable[[torch.Tensor, int], "torch.Tensor | float | None"]
Weights = list[torch.Tensor]  # [w_ih (G*H, D), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)]
LSTM_GATES = ("input_gate", "forget_gate", "candidate", "output_gate")  # PyTorch's row order [i f g o]


def apply_hook(hooks: dict[str, Hook], name: str, dest: torch.Tensor, t: int) -> None:
    """Call the hook of ``name`` (if any) on this step's value ``dest`` (B, H); a returned tensor or number
    replaces it in place (broadcast to (B, H)), so everything computed after it in the step sees the edit."""
    fn = hooks.get(name)
    if fn is None:
        return
    new = fn(dest, t)
    if new is None:
        return
    try:
        dest.copy_(torch.as_tensor(new, dtype=dest.dtype, device=dest.device).expand_as(dest))
    except (RuntimeError, TypeError, ValueError) as e:
        raise RnnlensError(f"the hook on {name} returned a value of shape {tuple(torch.as_tensor(new).shape)}; "
                           f"return None, a number or a tensor that broadcasts to {tuple(dest.shape)}") from e


def _input_weights(inp: torch.Tensor | None, w_ih: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """What ``_step_input`` multiplies by: W_ih^T (D, G*H), or for layer 0 (one-hot input) the lookup table
    W_ih^T + bias (K, G*H), one row per character."""
    return (w_ih.t() + bias).contiguous() if inp is None else w_ih.t()


def _step_input(inp: torch.Tensor | None, ids: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, t: int,
                out: torch.Tensor) -> torch.Tensor:
    """W_ih x_t + bias of step t into ``out`` (B, G*H). One step at a time, not one product for the block:
    the small product stays in cache and MKL is faster at it than at one (B*T, D) product on these CPUs."""
    if inp is None:
        return torch.index_select(w, 0, ids[:, t], out=out)
    return torch.addmm(bias, inp[:, t], w, out=out)


def lstm_steps(w: Weights, inp: torch.Tensor | None, ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
               want: set[str], hooks: dict[str, Hook] | None = None, start: int = 0
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
    """An LSTM layer from state (h, c), each (B, H): outputs (B, T, H), the final (h, c) (each (1, B, H)),
    and the wanted internals (gates, candidate, c) as (B, T, H) views of time-major buffers."""
    w_ih, w_hh, b_ih, b_hh = w
    B, T = ids.shape
    H = h.shape[-1]
    scale = torch.ones(4 * H, 1, dtype=w_ih.dtype, device=w_ih.device)
    scale[2 * H:3 * H] = 2  # the candidate's pre-activation doubled: tanh(x) = 2 * sigmoid(2x) - 1
    w_ih, wt, bias = w_ih * scale, (w_hh * scale).t(), (b_ih + b_hh) * scale[:, 0]
    out = h.new_empty(T, B, H)
    keep = [n for n in LSTM_GATES if n in want]
    gates = h.new_empty(T, B, 4 * H) if keep else None  # written in place: no copy per step
    cs = h.new_empty(T, B, H) if "c" in want else None
    spare = (h.new_empty(B, H), h.new_empty(B, H))  # c ping-pongs here when it is not kept
    s = h.new_empty(B, H)  # tanh(c), by way of sigmoid(2c)
    one = h.new_ones(1)  # a tensor, not a Python number: a number operand costs a conversion every step
    w_in = _input_weights(inp, w_ih, bias)
    step = h.new_empty(B, 4 * H) if gates is None else None
    for t in range(T):
        p = _step_input(inp, ids, w_in, bias, t, step if gates is None else gates[t])  # (B, 4H) [i f 2g o]
        p.addmm_(h, wt).sigmoid_()  # pre-activations -> activations
        i, f, g, o = p.split(H, dim=1)
        g.add_(g).sub_(one)  # 2 * sigmoid(2x) - 1 = tanh(x)
        if hooks:
            for name, v in zip(LSTM_GATES, (i, f, g, o)):
                apply_hook(hooks, name, v, start + t)
        c = torch.mul(f, c, out=cs[t] if cs is not None else spare[t % 2]).addcmul_(i, g)
        if hooks:
            apply_hook(hooks, "c", c, start + t)
        torch.add(c, c, out=s).sigmoid_()
        h = torch.mul(o, s.add_(s).sub_(one), out=out[t])  # o * (2 * sigmoid(2c) - 1) = o * tanh(c)
        if hooks:
            apply_hook(hooks, "h", h, start + t)
    inner = {n: gates[..., k * H:(k + 1) * H].transpose(0, 1) for k, n in enumerate(LSTM_GATES) if n in keep}
    if cs is not None:
        inner["c"] = cs.transpose(0, 1)
    return out.transpose(0, 1), (h.unsqueeze(0), c.unsqueeze(0)), inner


def gru_steps(w: Weights, inp: torch.Tensor | None, ids: torch.Tensor, h: torch.Tensor,
              hooks: dict[str, Hook] | None = None, start: int = 0
              ) -> tuple[torch.Tensor, tuple[torch.Tensor], dict[str, torch.Tensor]]:
    """A GRU layer (PyTorch's rows [r z n], the reset gate applied after W_hn h + b_hn)."""
    w_ih, w_hh, b_ih, b_hh = w
    B, T = ids.shape
    H = h.shape[-1]
    wt = w_hh.t()
    out = h.new_empty(T, B, H)
    acts = h.new_empty(T, B, 3 * H)  # r, z, n
    w_in = _input_weights(inp, w_ih, b_ih)
    gi = h.new_empty(B, 3 * H)
    for t in range(T):
        _step_input(inp, ids, w_in, b_ih, t, gi)  # (B, 3H)
        gh = torch.addmm(b_hh, h, wt)  # (B, 3H)
        rz = torch.add(gi[:, :2 * H], gh[:, :2 * H], out=acts[t, :, :2 * H]).sigmoid_()
        if hooks:
            apply_hook(hooks, "reset_gate", rz[:, :H], start + t)
            apply_hook(hooks, "update_gate", rz[:, H:], start + t)
        n = torch.addcmul(gi[:, 2 * H:], rz[:, :H], gh[:, 2 * H:], out=acts[t, :, 2 * H:]).tanh_()
        if hooks:
            apply_hook(hooks, "candidate", n, start + t)
        h = torch.addcmul(n, rz[:, H:], h - n, out=out[t])  # (1 - z) * n + z * h
        if hooks:
            apply_hook(hooks, "h", h, start + t)
    inner = {"reset_gate": acts[..., :H].transpose(0, 1), "update_gate": acts[..., H:2 * H].transpose(0, 1),
             "candidate": acts[..., 2 * H:].transpose(0, 1)}
    return out.transpose(0, 1), (h.unsqueeze(0),), inner


def rnn_steps(w: Weights, inp: torch.Tensor | None, ids: torch.Tensor, h: torch.Tensor,
              hooks: dict[str, Hook] | None = None, start: int = 0
              ) -> tuple[torch.Tensor, tuple[torch.Tensor], dict[str, torch.Tensor]]:
    """A vanilla tanh RNN layer; ``pre`` is the pre-activation (h = tanh(pre))."""
    w_ih, w_hh, b_ih, b_hh = w
    B, T = ids.shape
    bias = b_ih + b_hh
    w_in = _input_weights(inp, w_ih, bias)
    pre = h.new_empty(T, B, w_ih.shape[0])  # (T, B, H), kept: it is captured
    out = torch.empty_like(pre)
    wt = w_hh.t()
    for t in range(T):
        p = _step_input(inp, ids, w_in, bias, t, pre[t]).addmm_(h, wt)
        if hooks:
            apply_hook(hooks, "pre", p, start + t)
        h = torch.tanh(p, out=out[t])
        if hooks:
            apply_hook(hooks, "h", h, start + t)
    return out.transpose(0, 1), (h.unsqueeze(0),), {"pre": pre.transpose(0, 1)}
