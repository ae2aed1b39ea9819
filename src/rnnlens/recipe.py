"""The paper's training recipe: optimizer, learning-rate schedule, gradient clipping, stopping rules.

Defaults are Karpathy, Johnson & Fei-Fei (2015): RMSProp (lr 2e-3, alpha 0.95), element-wise gradient
clipping at 5, 50 epochs, and after epoch 10 the learning rate times 0.95 after every epoch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from .exceptions import RnnlensError


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 50.0           # passes over the training split (fractions allowed)
    max_steps: int = 0             # stop after this many updates if > 0 (for quick runs)
    lr: float = 2e-3
    alpha: float = 0.95            # RMSProp decay of the squared-gradient average
    eps: float = 1e-8
    lr_decay: float = 0.95         # multiply the learning rate by this ...
    lr_decay_after: int = 10       # ... after every epoch past this one
    clip: float = 5.0              # element-wise gradient clip; 0 disables
    init_range: float = 0.08       # uniform(-r, r) initialisation
    eval_every: int = 1000         # validate every N updates (and at every epoch end); 0: epoch ends only
    eval_chars: int = 0            # validate on at most this many val characters (0: all of them)
    patience: int = 0              # stop after N validations without improvement (0: never)
    checkpoint_every: float = 60.0  # save the resumable state at least every N seconds of training
    snapshot_every: int = 0        # also keep a copy of the weights every N updates (training dynamics)
    seed: int = 0
    precision: str = "fp32"        # fp32 | bf16 (autocast of the forward pass; see rnnlens.precision)
    stall_after: int = 500         # from this update on, a run not beating the unigram model is stalled (0: off)
    stall_margin: float = 0.1      # ... by at least this many nats (see rnnlens.health)
    tensorboard: str | None = None  # log scalars to this TensorBoard folder, relative to the run folder (rnnlens.tblog)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs > 0 and math.isfinite(self.epochs), "epochs", f"epochs must be > 0, got {self.epochs}"),
            (self.max_steps >= 0, "max_steps", f"max_steps must be >= 0, got {self.max_steps}"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", f"lr must be > 0, got {self.lr}"),
            (0 < self.alpha < 1, "alpha", f"alpha must be in (0, 1), got {self.alpha}"),
            (0 < self.lr_decay <= 1, "lr_decay", f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (self.lr_decay_after >= 0, "lr_decay_after", f"lr_decay_after must be >= 0, got {self.lr_decay_after}"),
            (self.clip >= 0, "clip", f"clip must be >= 0, got {self.clip}"),
            (self.init_range > 0, "init_range", f"init_range must be > 0, got {self.init_range}"),
            (self.eval_every >= 0, "eval_every", f"eval_every must be >= 0, got {self.eval_every}"),
            (self.eval_chars >= 0, "eval_chars", f"eval_chars must be >= 0, got {self.eval_chars}"),
            (self.patience >= 0, "patience", f"patience must be >= 0, got {self.patience}"),
            (self.checkpoint_every > 0, "checkpoint_every", f"checkpoint_every must be > 0 seconds, got {self.checkpoint_every}"),
            (self.snapshot_every >= 0, "snapshot_every", f"snapshot_every must be >= 0, got {self.snapshot_every}"),
            (self.precision in ("fp32", "bf16"), "precision", f"precision must be fp32, bf16 or auto, got {self.precision!r}"),
            (self.stall_after >= 0, "stall_after", f"stall_after must be >= 0, got {self.stall_after}"),
            (self.stall_margin >= 0, "stall_margin", f"stall_margin must be >= 0, got {self.stall_margin}"),
            (self.tensorboard is None or (isinstance(self.tensorboard, str) and self.tensorboard != ""), "tensorboard",
             f"tensorboard must be a folder or None, got {self.tensorboard!r}"),
        ]
        for ok, name, message in checks:
            if not ok:
                raise RnnlensError(message, field=name)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def total_steps(self, steps_per_epoch: int) -> int:
        total = int(math.ceil(self.epochs * steps_per_epoch))
        return min(total, self.max_steps) if self.max_steps else total


def lr_for_epoch(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate during 0-based ``epoch``: constant for the first ``lr_decay_after`` epochs, then decayed."""
    return cfg.lr * cfg.lr_decay ** max(0, epoch + 1 - cfg.lr_decay_after)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_gradients(params, clip: float) -> None:
    """Clamp every gradient element to [-clip, clip] (the paper's element-wise clipping)."""
    if clip > 0:
        torch.nn.utils.clip_grad_value_(params, clip)
