"""Is a run learning? Stall and divergence checks applied at every validation.

A net that has not learned is not a result: a reproduction must say so instead of reporting its loss.
Two rules, both relative to references computed from the run's own data:

* **stalled**: from update ``stall_after`` on, the best validation loss is still not at least
  ``stall_margin`` nats below the *unigram* loss (the cross-entropy of the validation targets under the
  train split's character frequencies: what a model that learned nothing but frequencies scores).
  This catches the 1.3M-parameter RNN that sits at 3.1-3.4 nats on War and Peace (unigram 3.13).
* **diverged**: a validation loss above ``ln K + 1`` nats, worse than guessing uniformly among the K
  characters by a wide margin (the same RNN at lr 2e-3 reached 14.96 nats). A loss that stops being
  finite is caught earlier, in the training loop itself.

The run then stops with that status in summary.json; its best weights stay, marked by the status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STALLED = "stalled"
DIVERGED = "diverged"
DIVERGE_MARGIN = 1.0  # nats above ln K


@dataclass(frozen=True)
class HealthVerdict:
    status: str   # stalled | diverged
    message: str  # one line, for logs and summary.json


def unigram_loss(train_y: np.ndarray, val_y: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/char) of ``val_y`` under add-one-smoothed character frequencies of ``train_y``."""
    counts = np.bincount(train_y.reshape(-1), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    targets = val_y.reshape(-1)
    if targets.size == 0:
        return math.nan
    return float(-logp[targets].mean())


def check(step: int, val_loss: float, best_val: float, unigram: float, vocab_size: int,
          stall_after: int, stall_margin: float) -> HealthVerdict | None:
    """The verdict of one validation (None: the run is healthy so far)."""
    limit = math.log(vocab_size) + DIVERGE_MARGIN
    if not math.isfinite(val_loss) or val_loss > limit:
        return HealthVerdict(DIVERGED, f"diverged at update {step}: validation loss {val_loss:.3f} nats/char is above "
                             f"ln K + {DIVERGE_MARGIN:g} = {limit:.3f}; lower --lr and start a new run")
    if stall_after and step >= stall_after and math.isfinite(unigram) and best_val > unigram - stall_margin:
        return HealthVerdict(STALLED, f"stalled: after {step} updates the best validation loss {best_val:.3f} nats/char "
                             f"is not {stall_margin:g} below the unigram model's {unigram:.3f}; lower --lr and start a "
                             "new run")
    return None
