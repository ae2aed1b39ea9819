"""Character-level recurrent language models: one-hot input, a fused recurrent stack, a linear readout.

Training and plain evaluation use PyTorch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (cuDNN on a
GPU). Their internals (gates, per-step cell states) are recomputed elsewhere by an unfused path that the
tests prove equal to this one.

Note on the GRU: PyTorch's fused GRU applies the reset gate after the recurrent matrix product,
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, where the paper writes ``tanh(W_x x + W_g (r * h))``.
rnnlens trains the fused (cuDNN) variant and documents the difference.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .exceptions import RnnlensError

CellType = Literal["rnn", "lstm", "gru"]
CELL_TYPES: tuple[str, ...] = ("rnn", "lstm", "gru")
GATES_PER_CELL = {"rnn": 1, "gru": 3, "lstm": 4}

# The paper's four budgets are named after a 1-layer LSTM with 64/128/256/512 cells. A named budget is
# that reference LSTM's exact parameter count over the corpus' vocabulary (44,823 / 122,327 / 375,639 /
# 1,275,479 for K=87, counting PyTorch's two bias vectors), so the 1-layer LSTM gets exactly those cells and every other model the closest size.
PAPER_BUDGETS = {"50k": 64, "130k": 128, "400k": 256, "1.3m": 512}
MIN_HIDDEN = 4
MAX_HIDDEN = 8192

State = tuple[torch.Tensor, ...]  # (h,) for rnn/gru, (h, c) for lstm; each (L, B, H)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every run's config.json."""

    cell: CellType = "lstm"
    layers: int = 2
    hidden: int = 128
    vocab_size: int = 87
    dropout: float = 0.0  # between stacked layers, as in the paper

    def __post_init__(self) -> None:
        if self.cell not in CELL_TYPES:
            raise RnnlensError(f"unknown model type {self.cell!r}; choose one of {', '.join(CELL_TYPES)}")
        if not 1 <= self.layers <= 8:
            raise RnnlensError(f"layers must be between 1 and 8, got {self.layers}", field="layers")
        if not MIN_HIDDEN <= self.hidden <= MAX_HIDDEN:
            raise RnnlensError(f"hidden must be between {MIN_HIDDEN} and {MAX_HIDDEN}, got {self.hidden}", field="hidden")
        if self.vocab_size < 2:
            raise RnnlensError(f"the vocabulary needs at least 2 symbols, got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise RnnlensError(f"dropout must be in [0, 1), got {self.dropout}", field="dropout")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        try:
            return cls(**{k: d[k] for k in ("cell", "layers", "hidden", "vocab_size", "dropout")})
        except (KeyError, TypeError) as exc:
            raise RnnlensError(f"model config is incomplete or malformed ({exc}); the run's config.json is damaged") from exc


def param_count(cell: str, layers: int, hidden: int, vocab_size: int) -> int:
    """Exact parameter count of ``CharRNN`` (PyTorch layers carry two bias vectors per gate block)."""
    if cell not in GATES_PER_CELL:
        raise RnnlensError(f"unknown model type {cell!r}; choose one of {', '.join(CELL_TYPES)}")
    if layers < 1 or hidden < 1 or vocab_size < 1:
        raise RnnlensError(f"layers, hidden size and vocabulary size must be >= 1, got {layers}, {hidden}, {vocab_size}")
    g = GATES_PER_CELL[cell]
    total = 0
    for layer in range(layers):
        inp = vocab_size if layer == 0 else hidden
        total += g * hidden * (inp + hidden) + 2 * g * hidden
    return total + hidden * vocab_size + vocab_size


def parse_budget(text: str | int | float, vocab_size: int) -> int:
    """A parameter count: the paper's names (50k, 130k, 400k, 1.3m: see ``PAPER_BUDGETS``) or any number
    ('250000', '2.5e5', '300k')."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip().lower().replace("_", "").replace(",", "")
        if s in PAPER_BUDGETS:
            return param_count("lstm", 1, PAPER_BUDGETS[s], vocab_size)
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+]?[0-9]+)?)([km]?)", s)
        if not m:
            raise RnnlensError(f"cannot read parameter budget {text!r}; use e.g. 50k, 130k, 400k, 1.3m or 250000")
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2)]
    if not math.isfinite(value) or value < 1:
        raise RnnlensError(f"parameter budget must be at least 1 parameter, got {text!r}")
    return int(round(value))


def hidden_for_budget(cell: str, layers: int, budget: int, vocab_size: int) -> int:
    """The hidden size whose parameter count is closest to ``budget`` (ties go to the smaller size)."""
    if cell not in CELL_TYPES:
        raise RnnlensError(f"unknown model type {cell!r}; choose one of {', '.join(CELL_TYPES)}")
    smallest = param_count(cell, layers, MIN_HIDDEN, vocab_size)
    if budget < smallest:
        raise RnnlensError(
            f"a budget of {budget:,} parameters is too small for a {layers}-layer {cell} over {vocab_size} symbols "
            f"(the smallest, hidden size {MIN_HIDDEN}, has {smallest:,}); raise --params"
        )
    lo, hi = MIN_HIDDEN, MAX_HIDDEN
    while lo < hi:  # first hidden size whose count reaches the budget
        mid = (lo + hi) // 2
        if param_count(cell, layers, mid, vocab_size) < budget:
            lo = mid + 1
        else:
            hi = mid
    candidates = [h for h in (lo - 1, lo) if MIN_HIDDEN <= h <= MAX_HIDDEN]
    return min(candidates, key=lambda h: (abs(param_count(cell, layers, h, vocab_size) - budget), h))


class CharRNN(nn.Module):
    """One-hot characters -> stacked recurrent layers -> logits over the vocabulary."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[config.cell]
        extra = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = rnn_cls(
            input_size=config.vocab_size,
            hidden_size=config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
            **extra,
        )
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def reset_parameters(self, init_range: float = 0.08) -> None:
        """The paper's initialisation: every weight and bias uniform in [-init_range, init_range]."""
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state: (h,) or (h, c), each (L, B, H)."""
        c = self.config
        device = device if device is not None else self.head.weight.device
        zeros = lambda: torch.zeros(c.layers, batch, c.hidden, device=device)  # noqa: E731
        return (zeros(), zeros()) if c.cell == "lstm" else (zeros(),)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x: (B, T) symbol ids -> logits (B, T, K) and the state after the last step."""
        inp = F.one_hot(x, self.config.vocab_size).to(self.head.weight.dtype)  # (B, T, K)
        if state is None:
            out, new = self.rnn(inp)
        elif self.config.cell == "lstm":
            out, new = self.rnn(inp, (state[0], state[1]))
        else:
            out, new = self.rnn(inp, state[0])
        new_state: State = tuple(new) if isinstance(new, tuple) else (new,)
        return self.head(out), new_state  # (B, T, K)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def detach_state(state: State) -> State:
    return tuple(s.detach() for s in state)
