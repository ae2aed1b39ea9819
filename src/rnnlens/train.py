"""The training loop: truncated BPTT over row streams, validation, best weights, exact resume.

``train`` runs a new or resumed run to its end. The resumable state (weights, optimizer moments, RNG
states, the carried hidden state, the step, the best validation so far and the length of metrics.jsonl)
is one safetensors file replaced atomically, so a run killed at any moment and resumed with the same
command ends with weights bit-identical to an uninterrupted run on CPU.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from .checkpoint import save_tensors
from .exceptions import DiskFullError, RnnlensError
from .evaluate import evaluate, evaluate_tensors
from . import health
from .fsutil import atomic_write_json, disk_full_reason, is_disk_full, read_json
from .lock import hold
from . import __version__
from .model import CharRNN, detach_state
from .precision import autocast, explain_failure
from .recipe import clip_gradients, lr_for_epoch, make_optimizer, set_lr
from . import tblog
from .trainstate import Progress, finite, restore, save_state, saved_step
from .run import BEST, CONFIG, METRICS, SNAPSHOTS, STATE, SUMMARY, RunConfig, load_config, load_splits
from .data.splits import Split

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Receives progress; the CLI shows it as a bar, library users may ignore it."""

    def start(self, total_steps: int, done_steps: int, chars_per_step: int) -> None: ...
    def update(self, step: int, loss: float, chars_per_s: float, lr: float) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    def start(self, total_steps: int, done_steps: int, chars_per_step: int) -> None:
        pass

    def update(self, step: int, loss: float, chars_per_s: float, lr: float) -> None:
        pass

    def note(self, message: str) -> None:
        log.info(message)

    def close(self) -> None:
        pass


@dataclass
class TrainOutcome:
    status: str  # complete | early_stopped | interrupted
    step: int
    summary: dict | None = None
    extra: dict = field(default_factory=dict)


class _StopFlag:
    """SIGINT/SIGTERM set a flag checked between updates; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def init_run(run_dir: str | os.PathLike, cfg: RunConfig) -> Path:
    """Create ``run_dir`` with its config.json; refuses to touch an existing non-empty directory."""
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RnnlensError(
            f"run directory {run_dir} already exists; pass --resume to continue it, or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / CONFIG, cfg.to_dict())
    return run_dir


def train(
    run_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    reporter: Reporter | None = None,
    data_dir: str | os.PathLike | None = None,
    splits: dict[str, Split] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train the run in ``run_dir`` (made by :func:`init_run`) from its saved state, or from scratch; the run's
    write lock is held throughout (:mod:`rnnlens.lock`): a second writer gets an error naming this pid.

    A full disk or quota raises :class:`~rnnlens.exceptions.DiskFullError` naming the file and how to resume:
    every write of the run is atomic (or, for metrics.jsonl, truncated back on resume), so the run is intact."""
    load_config(run_dir)  # a folder that is not a run is refused before anything is written
    with hold(run_dir, "run"):
        try:
            return _train(run_dir, device, reporter, data_dir, splits, should_stop)
        except DiskFullError as exc:
            raise exc.with_hint(_resume_hint(Path(run_dir))) from exc
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise DiskFullError(exc.filename or str(run_dir), disk_full_reason(exc), _resume_hint(Path(run_dir))) from exc


def _resume_hint(run_dir: Path) -> str:
    step = saved_step(run_dir) if (run_dir / STATE).is_file() else 0
    kept = f"the previous checkpoint, of step {step}, is kept" if step else "no checkpoint was saved yet"
    return f"the run is intact ({kept}): free space, then resume with rnnlens train --resume --out {run_dir}"


def _train(
    run_dir: str | os.PathLike,
    device: torch.device | str,
    reporter: Reporter | None,
    data_dir: str | os.PathLike | None,
    splits: dict[str, Split] | None,
    should_stop: Callable[[], bool] | None,
) -> TrainOutcome:
    run_dir = Path(run_dir)
    reporter = reporter or NullReporter()
    cfg = load_config(run_dir)
    if (run_dir / SUMMARY).is_file():
        summary = read_json(run_dir / SUMMARY)
        return TrainOutcome(summary.get("status", "complete"), int(summary.get("steps", 0)), summary)
    device = torch.device(device)
    splits = splits if splits is not None else load_splits(cfg, data_dir)
    train_split, val_split = splits["train"], splits["val"]
    if val_split.num_chars == 0:
        raise RnnlensError("the validation split is empty; training keeps the best-on-validation weights, give val a fraction > 0")
    t = cfg.train
    seq_len = cfg.split.seq_len
    steps_per_epoch = train_split.num_blocks(seq_len)
    total_steps = t.total_steps(steps_per_epoch)

    if device.type == "cuda":
        # deterministic cuDNN kernels: a resumed CUDA run without dropout repeats the uninterrupted one exactly;
        # with dropout it does not (cuDNN keeps its dropout state outside torch's RNG; see the README)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(t.seed)
    model = CharRNN(cfg.model)
    model.reset_parameters(t.init_range)
    model.to(device).train()
    optimizer = make_optimizer(model.parameters(), t)
    hidden = model.initial_state(train_split.x.shape[0], device)
    progress = Progress()
    if (run_dir / STATE).is_file():
        hidden = restore(run_dir / STATE, model, optimizer, progress, device)
    _truncate_metrics(run_dir / METRICS, progress.metrics_offset)
    tb = tblog.open_log(t.tensorboard, run_dir, progress.step)  # cut back to the saved step too

    x_all = torch.from_numpy(train_split.x).to(device)  # (B, N)
    y_all = torch.from_numpy(train_split.y).to(device)
    val_x = torch.from_numpy(val_split.x).to(device)  # kept on the device for every validation
    val_y = torch.from_numpy(val_split.y).to(device)
    unigram = health.unigram_loss(train_split.y, val_split.y, cfg.model.vocab_size)
    chars_per_step = x_all.shape[0] * seq_len
    # On CUDA the loop only queues work; time is read at the points where it synchronises anyway (the loss
    # read-out every log_every updates), so elapsed time and chars/s count the work done, not the queueing.
    log_every = 1 if device.type == "cpu" else 20
    params = list(model.parameters())
    reporter.start(total_steps, progress.step, chars_per_step)
    status = "interrupted"
    last_save = time.monotonic()
    window_start, window_chars = time.monotonic(), 0
    mark = time.monotonic()
    running = torch.zeros((), dtype=torch.float64, device=device)
    running_count = 0
    try:
        with _StopFlag() as stop:
            while progress.step < total_steps and progress.status == "running":
                epoch, block = divmod(progress.step, steps_per_epoch)
                if block == 0:
                    hidden = model.initial_state(x_all.shape[0], device)
                lr = lr_for_epoch(t, epoch)
                set_lr(optimizer, lr)
                cols = slice(block * seq_len, (block + 1) * seq_len)
                try:
                    with autocast(t.precision, device):
                        logits, hidden = model(x_all[:, cols], hidden)  # (B, T, K)
                except RuntimeError as exc:
                    raise (explain_failure(exc, t.precision, cfg.model.cell, device) or exc) from None
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y_all[:, cols].reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                tb.before_clip(params)  # the gradient norm, before clipping (when logging)
                clip_gradients(params, t.clip)
                optimizer.step()
                hidden = tuple(h.detach().float() for h in hidden)  # carried in fp32 whatever the precision
                running += loss.detach().double()
                running_count += 1
                progress.step += 1
                window_chars += x_all[:, cols].numel()

                at_epoch_end = progress.step % steps_per_epoch == 0
                at_eval = at_epoch_end or progress.step == total_steps or (t.eval_every and progress.step % t.eval_every == 0)
                due_snapshot = bool(t.snapshot_every) and progress.step % t.snapshot_every == 0
                due_save = time.monotonic() - last_save >= t.checkpoint_every
                stopping = stop.raised or (should_stop is not None and should_stop())
                other_work = at_eval or due_snapshot or due_save or stopping
                if progress.step % log_every == 0 or other_work:
                    mean = float(running) / running_count  # synchronises on CUDA
                    now = time.monotonic()
                    progress.elapsed += now - mark
                    mark = now
                    progress.loss_sum += float(running)
                    progress.loss_count += running_count
                    running.zero_()
                    running_count = 0
                    if not math.isfinite(mean):
                        raise RnnlensError(
                            f"training diverged at step {progress.step}: the loss is {mean}; the last good checkpoint "
                            f"(step {saved_step(run_dir)}) is kept; lower --lr or --clip and start a new run"
                        )
                    rate = window_chars / max(1e-9, time.monotonic() - window_start)
                    window_start, window_chars = time.monotonic(), 0
                    reporter.update(progress.step, mean, rate, lr)
                    tb.train(progress.step, mean, lr, rate)
                if due_snapshot:
                    _save_snapshot(run_dir, cfg, model, progress.step)
                if at_eval:
                    verdict = _validate(run_dir, cfg, model, (val_x, val_y), progress, lr, steps_per_epoch, reporter,
                                        unigram, tb)
                    if verdict:
                        status = verdict
                        break
                if due_save or stopping:
                    tb.flush()  # every event up to the saved step is on disk before the state says so
                    save_state(run_dir, cfg, model, optimizer, hidden, progress)
                    last_save = time.monotonic()
                if stopping:
                    return TrainOutcome("interrupted", progress.step)
                if other_work:
                    mark = time.monotonic()  # validation, snapshots and saves are not training time
            else:
                status = "complete" if progress.status == "running" else progress.status
    finally:
        reporter.close()
        tb.close()
    progress.status = status
    if status != health.DIVERGED or finite(model):
        save_state(run_dir, cfg, model, optimizer, hidden, progress)
    summary = _finish(run_dir, cfg, splits, device, progress, total_steps, steps_per_epoch)
    return TrainOutcome(status, progress.step, summary)


def _validate(
    run_dir: Path, cfg: RunConfig, model: CharRNN, val: tuple[torch.Tensor, torch.Tensor], progress: Progress,
    lr: float, steps_per_epoch: int, reporter: Reporter, unigram: float, tb: tblog.NullLog,
) -> str | None:
    """Evaluate on val, log a metrics line, keep the best weights; the status that ends the run, if any
    (early_stopped when patience runs out, stalled or diverged by the rules of ``rnnlens.health``)."""
    result = evaluate_tensors(model, val[0], val[1], cfg.split.seq_len, cfg.train.eval_chars)
    train_loss = progress.loss_sum / progress.loss_count if progress.loss_count else float("nan")
    line = {
        "step": progress.step,
        "epoch": round(progress.step / steps_per_epoch, 4),
        "train_loss": train_loss,
        "val_loss": result.loss_nats,
        "lr": lr,
        "chars_per_s": progress.step * cfg.split.batch_size * cfg.split.seq_len / max(1e-9, progress.elapsed),
        "elapsed_s": round(progress.elapsed, 3),
    }
    progress.loss_sum, progress.loss_count = 0.0, 0
    improved = result.loss_nats < progress.best_val
    if improved:
        progress.best_val, progress.best_step, progress.bad_evals = result.loss_nats, progress.step, 0
        meta = {"kind": "best", "step": progress.step, "val_loss": result.loss_nats, "vocab": cfg.vocab.to_dict()}
        save_tensors(run_dir / BEST, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)
    else:
        progress.bad_evals += 1
    line["best_val_loss"] = progress.best_val
    try:  # a partial line left by a full disk is cut off on resume (the state records the length before it)
        with open(run_dir / METRICS, "a", encoding="utf-8") as fh:
            fh.write(_json_line(line))
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(str(run_dir / METRICS), disk_full_reason(exc)) from exc
        raise
    progress.metrics_offset = (run_dir / METRICS).stat().st_size
    tb.val(progress.step, result.loss_nats)
    reporter.note(
        f"step {progress.step}: val loss {result.loss_nats:.4f} nats/char"
        + (" (best)" if improved else f" (best {progress.best_val:.4f} at step {progress.best_step})")
    )
    t = cfg.train
    verdict = health.check(progress.step, result.loss_nats, progress.best_val, unigram, cfg.model.vocab_size,
                           t.stall_after, t.stall_margin)
    if verdict:
        progress.health = verdict.message
        reporter.note(verdict.message)
        return verdict.status
    return "early_stopped" if t.patience and progress.bad_evals >= t.patience else None


def _json_line(obj: dict) -> str:
    import json

    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in obj.items()}) + "\n"


def _truncate_metrics(path: Path, offset: int) -> None:
    """Drop metrics lines written after the saved state (they will be written again, identically)."""
    if path.is_file() and path.stat().st_size > offset:
        with open(path, "r+b") as fh:
            fh.truncate(offset)


def _save_snapshot(run_dir: Path, cfg: RunConfig, model: CharRNN, step: int) -> None:
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"kind": "snapshot", "step": step, "vocab": cfg.vocab.to_dict()}
    save_tensors(run_dir / SNAPSHOTS / f"step-{step:08d}.safetensors", weights, meta)


def _finish(run_dir: Path, cfg: RunConfig, splits: dict[str, Split], device: torch.device, progress: Progress,
            total_steps: int, steps_per_epoch: int) -> dict:
    """Test the best weights and write summary.json."""
    from .model import param_count
    from .run import load_model

    test = splits["test"]
    test_result = None
    if (run_dir / BEST).is_file():  # a run that diverged at its first validation has no best weights
        model, _, meta = load_model(run_dir, "best", device)
        test_result = evaluate(model, test, cfg.split.seq_len) if test.num_chars else None
    m = cfg.model
    summary = {
        "status": progress.status,
        "health": progress.health or None,
        "params": param_count(m.cell, m.layers, m.hidden, m.vocab_size),
        "precision": cfg.train.precision,
        "model": cfg.model.to_dict(),
        "dataset": cfg.source.label,
        "best_val_loss": progress.best_val if math.isfinite(progress.best_val) else None,
        "best_step": progress.best_step,
        "test_loss_nats": test_result.loss_nats if test_result else None,
        "test_loss_bits": test_result.loss_bits if test_result else None,
        "test_chars": test_result.chars if test_result else 0,
        "train_chars": splits["train"].num_chars,
        "val_chars": splits["val"].num_chars,
        "steps": progress.step,
        "epochs": round(progress.step / steps_per_epoch, 4),
        "wall_s": round(progress.elapsed, 3),
        "chars_per_s": progress.step * cfg.split.batch_size * cfg.split.seq_len / max(1e-9, progress.elapsed),
        "device": str(device),
        "tensorboard": str(tblog.log_dir(cfg.train.tensorboard, run_dir)) if cfg.train.tensorboard else None,
        "torch": torch.__version__,
        "rnnlens_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(run_dir / SUMMARY, summary)
    return summary
