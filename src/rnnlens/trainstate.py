"""The resumable training state: one safetensors file (weights, optimizer moments, RNG states, the carried
hidden state) with the loop's :class:`Progress` in its header, replaced atomically at every save."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_tensors, save_tensors
from .exceptions import RnnlensError
from .model import CharRNN
from .run import STATE, RunConfig


@dataclass
class Progress:
    """Everything besides tensors that a resumed run needs; stored in the state file's header."""

    step: int = 0
    best_val: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    metrics_offset: int = 0
    elapsed: float = 0.0
    loss_sum: float = 0.0
    loss_count: int = 0
    status: str = "running"  # running | complete | early_stopped | stalled | diverged
    health: str = ""          # the stall/divergence verdict, when there is one


def finite(model: CharRNN) -> bool:
    """Whether every weight is finite (one synchronisation on CUDA)."""
    return bool(torch.stack([p.detach().abs().max() for p in model.parameters()]).isfinite().all())


def save_state(run_dir: Path, cfg: RunConfig, model: CharRNN, optimizer: torch.optim.Optimizer, hidden, progress: Progress) -> None:
    if not finite(model):
        raise RnnlensError(
            f"training diverged by step {progress.step}: the weights are no longer finite; the last good "
            f"checkpoint (step {saved_step(run_dir)}) is kept; lower --lr and start a new run"
        )
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    for i, h in enumerate(hidden):
        tensors[f"hidden.{i}"] = h
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {"kind": "state", "progress": progress.__dict__, "param_groups": opt["param_groups"],
            "vocab": cfg.vocab.to_dict()}
    save_tensors(run_dir / STATE, tensors, meta)


def restore(path: Path, model: CharRNN, optimizer: torch.optim.Optimizer, progress: Progress, device: torch.device):
    """Load a state file into ``model``/``optimizer``/``progress``; returns the carried hidden state."""
    from .checkpoint import check_state_dict

    tensors, meta = load_tensors(path, kind="training state")
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(model, weights, path)
    try:
        model.load_state_dict(weights)
        opt_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                opt_state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
        for k, v in meta["progress"].items():
            setattr(progress, k, v)
        torch.set_rng_state(tensors["rng.cpu"])
        cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        cuda_states = [tensors[k] for k in cuda_keys]  # in device order (rng.cuda.10 after rng.cuda.9)
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        hidden = tuple(tensors[f"hidden.{i}"].to(device) for i in range(2 if model.config.cell == "lstm" else 1))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise RnnlensError(f"training state {path} is incomplete ({exc}); delete it to restart the run from scratch") from exc
    return hidden


def saved_step(run_dir: Path) -> int:
    try:
        return int(load_tensors(run_dir / STATE)[1]["progress"]["step"])
    except (RnnlensError, KeyError, TypeError, ValueError):
        return 0
