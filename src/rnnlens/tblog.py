"""TensorBoard event logging of a training run (the optional extra ``rnnlens[tensorboard]``).

A run with ``TrainConfig.tensorboard`` set writes its scalars, keyed by update number, to one TFRecord event
file of its own in that folder (``RUN/tensorboard`` by default): ``loss/train`` (mean training loss in
nats/char since the previous point), ``loss/val``, ``train/lr``, ``train/chars_per_s`` and ``train/grad_norm``
(the L2 norm of all gradients before clipping, the value ``clip_grad_norm_`` would return, averaged like the
loss). The file is flushed before every save of the training state, so everything up to the saved step is on
disk; a resumed run cuts the file back to the saved step (as metrics.jsonl is) and appends to it, so the log of
an interrupted and resumed run holds every step once, for every reader. Records are written with TensorBoard's
own record writer and protos; the package is imported only when logging is on.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

import torch

from .exceptions import RnnlensError

DEFAULT_DIR = "tensorboard"  # under the run folder
EXTRA = "pip install 'rnnlens[tensorboard]'"
FLUSH_SECONDS = 5.0


def require(setting: str = "tensorboard") -> None:
    """Raise a one-line :class:`RnnlensError` naming the extra when the tensorboard package is missing."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: F401
        from tensorboard.summary.writer.record_writer import RecordWriter  # noqa: F401
    except ImportError:
        raise RnnlensError(f"{setting} needs the tensorboard package; install it with {EXTRA}",
                           field="tensorboard" if setting == "tensorboard" else None) from None


def log_dir(setting: str, run_dir: str | os.PathLike) -> Path:
    """The folder a run logs to: ``setting`` as stored in config.json, relative to the run folder if relative."""
    path = Path(setting).expanduser()
    return path if path.is_absolute() else Path(run_dir) / path


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all gradients together (what ``torch.nn.utils.clip_grad_norm_`` returns), without
    touching them; a 0-dim tensor on the parameters' device (no synchronisation)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _records(data: bytes):
    """(end offset, step) of each complete record of an event file's bytes; stops at a torn or unreadable one."""
    from tensorboard.compat.proto import event_pb2

    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        end = pos + 12 + length + 4
        if end > len(data):
            return
        try:
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
        except Exception:  # noqa: BLE001 - a damaged record ends the readable part
            return
        yield end, event.step
        pos = end


def cut_after(path: Path, step: int) -> bool:
    """Truncate the event file ``path`` after its last record of a step <= ``step`` (records are in step order);
    whether anything was cut."""
    data = path.read_bytes()
    keep = 0
    for end, record_step in _records(data):
        if record_step > step:
            break
        keep = end
    if keep == len(data):
        return False
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    return True


class NullLog:
    """Logging off: every call does nothing."""

    def before_clip(self, params: list[torch.Tensor]) -> None:
        pass

    def train(self, step: int, loss: float, lr: float, chars_per_s: float) -> None:
        pass

    def val(self, step: int, loss: float) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class EventLog(NullLog):
    """Appends scalar events to this run's event file in ``folder``, cut back to ``step`` first."""

    def __init__(self, folder: Path, run_id: str, step: int) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        mine = sorted(folder.glob(f"events.out.tfevents.*.{run_id}.rnnlens"))
        for path in mine:  # events written after the saved state (a killed run) are written again, identically
            cut_after(path, step)
        self.path = mine[-1] if mine else folder / f"events.out.tfevents.{int(time.time()):010d}.{run_id}.rnnlens"
        fresh = not self.path.is_file() or self.path.stat().st_size == 0
        self._writer = RecordWriter(open(self.path, "ab"))
        if fresh:
            self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))
        self._norm_sum: torch.Tensor | None = None
        self._norm_count = 0
        self._flushed = time.monotonic()
        self.flush()

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        summary = self._summary(value=[self._summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
        self._write(self._event(wall_time=time.time(), step=step, summary=summary))
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:  # TensorBoard shows the run as it goes
            self.flush()

    def before_clip(self, params: list[torch.Tensor]) -> None:
        norm = grad_norm(params).detach().double()
        self._norm_sum = norm if self._norm_sum is None else self._norm_sum + norm
        self._norm_count += 1

    def train(self, step: int, loss: float, lr: float, chars_per_s: float) -> None:
        values = {"loss/train": loss, "train/lr": lr, "train/chars_per_s": chars_per_s}
        if self._norm_count:
            values["train/grad_norm"] = float(self._norm_sum) / self._norm_count  # type: ignore[arg-type]
            self._norm_sum, self._norm_count = None, 0
        self._scalars(step, values)

    def val(self, step: int, loss: float) -> None:
        self._scalars(step, {"loss/val": loss})

    def flush(self) -> None:
        self._writer.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        if not self._writer.closed:
            self._writer.close()


def open_log(setting: str | None, run_dir: str | os.PathLike, step: int) -> NullLog:
    """The run's event log from ``TrainConfig.tensorboard`` (None: off), resumed at the saved ``step``."""
    if not setting:
        return NullLog()
    require(f"run {run_dir} logs to TensorBoard (train.tensorboard in its config.json) and")
    run_dir = Path(run_dir)
    run_id = hashlib.sha256((run_dir / "config.json").read_bytes()).hexdigest()[:12]
    return EventLog(log_dir(setting, run_dir), run_id, step)
