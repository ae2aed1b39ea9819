"""Loss of a model over a split or any text, in nats and bits per character.

Every row of a split is one continuous stream: the hidden state starts at zero and is carried from each
block of ``seq_len`` columns to the next, exactly as in training. The loss is the mean over every
prediction made (``Split.num_chars`` of them, or fewer with ``max_chars``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .exceptions import RnnlensError
from .model import CharRNN
from .data.splits import Split


@dataclass(frozen=True)
class EvalResult:
    loss_nats: float
    chars: int

    @property
    def loss_bits(self) -> float:
        return self.loss_nats / math.log(2)

    def to_dict(self) -> dict:
        return {"loss_nats": self.loss_nats, "loss_bits": self.loss_bits, "chars": self.chars}


@torch.no_grad()
def evaluate(model: CharRNN, split: Split, seq_len: int, max_chars: int = 0) -> EvalResult:
    """Mean cross-entropy of ``split.y`` given ``split.x`` with the state carried across blocks.

    ``max_chars`` > 0 evaluates only the first columns of every row, enough for that many predictions.
    """
    if split.x.size == 0:
        raise RnnlensError(f"the {split.name} split is empty; choose a split with characters in it")
    device = model.head.weight.device
    return evaluate_tensors(model, torch.from_numpy(split.x).to(device), torch.from_numpy(split.y).to(device),
                            seq_len, max_chars)


@torch.no_grad()
def evaluate_tensors(model: CharRNN, x_all: torch.Tensor, y_all: torch.Tensor, seq_len: int,
                     max_chars: int = 0) -> EvalResult:
    """:func:`evaluate` on a split's ``x`` and ``y`` already on the model's device, each (B, N); always fp32."""
    rows, cols = x_all.shape
    if x_all.numel() == 0:
        raise RnnlensError("the split to evaluate is empty; choose a split with characters in it")
    if max_chars > 0:
        cols = min(cols, max(1, math.ceil(max_chars / rows)))
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x_all.device)
    state = None
    try:
        for start in range(0, cols, seq_len):
            x = x_all[:, start : min(cols, start + seq_len)]
            y = y_all[:, start : min(cols, start + seq_len)]
            logits, state = model(x, state)  # (B, T, K)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            total += loss.double()
    finally:
        model.train(was_training)
    chars = rows * cols
    return EvalResult(loss_nats=float(total) / chars, chars=chars)
