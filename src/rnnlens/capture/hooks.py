"""Causal interventions: edit an activation inside the recurrence and see what the model does then.

``run_with_hooks(model, x, {"layers.1.c": fn})`` runs the model like :func:`run_with_cache`, but at every
step t of a hooked layer calls ``fn(value, t)`` on that step's value (B, H) of the named activation; ``fn``
returns ``None`` (keep the value, possibly edited in place) or a replacement (a tensor that broadcasts to
(B, H), or a number). The edit is applied *inside* the step loop, so it feeds everything computed after it:
within a step the gates and candidate come before c, c before h (LSTM); the reset gate before the candidate,
both gates before h (GRU); ``pre`` before h (RNN); and h feeds step t + 1 and the layer above. ``t`` is the
column of the block (``start + t`` when a split is streamed block by block). Hook names are the layer
names of :mod:`rnnlens.capture.core` (``layers.L.h``, ``layers.L.c``, ``layers.L.forget_gate``, ...).

Nothing is attached to the model (hooks are arguments, not registrations), so no hook outlives a call.
A hooked layer always runs the step loop (the arithmetic of ``run_with_cache(method="steps")``): an
identity hook gives bit-identical results to that method, which tests prove equal to the fused model.
"""

from __future__ import annotations

from typing import Iterator

import torch

from ..data.splits import Split
from ..model import CharRNN, State
from .core import CaptureBlock, Hook, NamesFilter, iter_capture, run_with_cache, split_hooks


def run_with_hooks(model: CharRNN, x: torch.Tensor, hooks: dict[str, Hook], state: State | None = None,
                   names: NamesFilter = None, targets: torch.Tensor | None = None, start: int = 0) -> CaptureBlock:
    """Run ids ``x`` (B, T) with ``hooks`` (name -> ``fn(value, t)``) applied inside the recurrence; returns
    the selected activations (after the edits) like :func:`rnnlens.capture.core.run_with_cache`."""
    split_hooks(model.config, hooks)  # fail on a bad name before any work
    return run_with_cache(model, x, state, names, targets, start, method="steps", hooks=hooks)


def iter_hooked(model: CharRNN, split: Split, seq_len: int, hooks: dict[str, Hook], names: NamesFilter = None,
                max_chars: int = 0) -> Iterator[CaptureBlock]:
    """Stream a split block by block with ``hooks`` applied (the edited state carried from block to block),
    as :func:`rnnlens.capture.core.iter_capture` streams it without; targets are the split's ``y``."""
    split_hooks(model.config, hooks)  # fail on a bad name before any work
    return iter_capture(model, split, seq_len, names, max_chars, method="steps", hooks=hooks)


def set_cell(index: int | torch.Tensor, value: float | torch.Tensor, rows: slice | torch.Tensor | None = None) -> Hook:
    """A hook that sets cell ``index`` to ``value`` at every step (an ablation or a clamp), in the rows
    ``rows`` of the batch (default: all). ``index`` may be a (R,) tensor of one cell per selected row and
    ``value`` a matching (R,) tensor: ``--rank`` ablates a different cell in every row that way."""
    sel = slice(None) if rows is None else rows

    def fn(v: torch.Tensor, t: int) -> None:
        if torch.is_tensor(index):
            r = torch.arange(v.shape[0], device=v.device)[sel]
            v[r, index.to(v.device)] = torch.as_tensor(value, dtype=v.dtype, device=v.device)
        else:
            v[sel, index] = torch.as_tensor(value, dtype=v.dtype, device=v.device)
        return None

    return fn
