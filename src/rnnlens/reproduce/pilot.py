"""The learning-rate pilot of a reproduction: one short run per candidate learning rate, the best on validation.

The paper trains every model at lr 2e-3, but a 1.3M-parameter vanilla RNN does not learn there (its loss
sits at the unigram level or explodes: RMSProp's per-element step is too large for a 623 x 623 recurrent
matrix whose spectral radius starts near 1.15). A careful reproduction chooses the learning rate on
validation, the same way for every type: each candidate of ``Preset.lr_pilot`` trains the model without
dropout for ``steps`` updates (one epoch by default) from the same seed, is validated on the first
``Preset.pilot_eval_chars`` validation characters, and the lowest validation loss wins. Candidates that
stall or diverge (:mod:`rnnlens.health`) never win. While the smallest candidate wins, the next half of it
is tried too (at most ``MAX_EXTENSIONS`` times), so the choice is never at the edge of what was tried
unless the edge was reached.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..exceptions import RnnlensError
from ..run import METRICS
from ..runtime import resolve_device
from .plan import Stage

MAX_EXTENSIONS = 2


def pilot_run_name(lr: float) -> str:
    return f"lr{lr:g}"


def _final_val(run_dir: Path, steps: int) -> float | None:
    """The validation loss at update ``steps`` (the pilot's decision point), from metrics.jsonl."""
    path = run_dir / METRICS
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["step"] == steps and rec.get("val_loss") is not None:
            return float(rec["val_loss"])
    return None


def choose(trials: list[dict]) -> dict | None:
    """The healthy trial with the lowest validation loss (None when none is healthy)."""
    healthy = [t for t in trials if t["status"] in ("complete", "early_stopped") and t["val_loss"] is not None
               and math.isfinite(t["val_loss"])]
    return min(healthy, key=lambda t: (t["val_loss"], -t["lr"])) if healthy else None


def run_pilot(stage: Stage, ctx, out: Path) -> dict[str, Any]:
    """Train each candidate, extend downwards while the smallest wins, and record the choice."""
    from ..train import train
    from .stages import new_run, rel

    p = stage.params
    steps = int(p["steps"])
    lrs = sorted((float(x) for x in p["lrs"]), reverse=True)
    if not lrs:
        raise RnnlensError(f"{stage.id} has no candidate learning rates")
    trials: list[dict] = []

    def trial(lr: float) -> dict:
        run_dir = out / pilot_run_name(lr)
        splits = new_run(ctx, stage.dataset, run_dir, p["cell"], p["layers"], p["budget"], 0.0, lr=lr, epochs=None,
                         max_steps=steps, eval_every=0, eval_chars=ctx.preset.pilot_eval_chars, patience=None,
                         snapshot_every=None)
        outcome = train(run_dir, resolve_device(ctx.device), data_dir=ctx.data_dir, splits=splits)
        if outcome.status == "interrupted":
            raise KeyboardInterrupt
        s = outcome.summary or {}
        val = _final_val(run_dir, steps)
        return {"lr": lr, "status": s.get("status", outcome.status), "val_loss": val, "health": s.get("health"),
                "steps": s.get("steps"), "run": rel(ctx, run_dir)}

    for lr in lrs:
        trials.append(trial(lr))
    for _ in range(MAX_EXTENSIONS):
        best = choose(trials)
        if best is None or best["lr"] != min(t["lr"] for t in trials):
            break
        trials.append(trial(best["lr"] / 2))
    best = choose(trials)
    return {"cell": p["cell"], "layers": p["layers"], "budget": p["budget"], "steps": steps,
            "eval_chars": ctx.preset.pilot_eval_chars, "trials": trials, "lr": best["lr"] if best else None}
