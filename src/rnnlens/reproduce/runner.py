"""One reproduction from start to report: validate, plan, prepare the folder, run the stages, write the report."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..exceptions import RnnlensError
from ..lock import acquire, release
from .adopt import find_models
from .executor import Backend, InlineBackend, LocalBackend, Outcome, Progress, default_workers, prepare_out_dir, run_plan
from .plan import Preset, Stage, build_plan, check_order, corpus_info, get_preset, parse_datasets
from .report import git_commit, write_report
from .stages import Context


@dataclass
class Planned:
    preset: Preset
    datasets: tuple[str, ...]
    stages: list[Stage]
    workers: int
    requested_workers: int = 0  # what the user asked for (0: the default of the executor)
    models_dir: str | None = None  # the folder of the adopted models (absolute), when the preset adopts any


def make_plan(preset: str | Preset, datasets: str | None, data_dir: str | None, device: str,
              workers: int = 0, models_dir: str | os.PathLike = "models", cpu_scale: float = 1.0) -> Planned:
    """Validate the inputs (unknown preset or dataset, missing corpus, a model to adopt missing from
    ``models_dir`` or not the one listed: RnnlensError) and build the plan. ``preset``: a name of
    :data:`.plan.PRESETS` or a :class:`.plan.Preset` (e.g. one with changed epochs)."""
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    names = parse_datasets(datasets, p)
    adopted = find_models(p, names, models_dir)  # {} when the preset adopts nothing (models_dir is not read)
    stages = build_plan(p, [corpus_info(n, p, data_dir) for n in names], gpu=device.startswith("cuda"),
                        adopted=adopted, cpu_scale=cpu_scale)
    check_order(stages)
    return Planned(p, names, stages, workers or default_workers(device), workers,
                   str(Path(models_dir).resolve()) if adopted else None)


@contextlib.contextmanager
def sigterm_interrupts():
    """While running (main thread only): SIGTERM acts like Ctrl-C, so runs save their state and stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPU cores"


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def reproduce(out: str | os.PathLike, planned: Planned, device: str = "cpu", data_dir: str | None = None,
              force: bool = False, threads: int = 1, progress: Progress | None = None,
              backend: Backend | None = None, executor: str = "local", address: str | None = None) -> Outcome:
    """Run (or resume) every stage of ``planned`` under ``out`` and write the report; returns how stages ended.
    ``executor``: ``local`` (a process pool) or ``ray`` (:mod:`.ray_backend`, joining ``address``)."""
    root = Path(out).resolve()
    started = time.time()
    if backend is None and executor == "ray":  # before anything is written: a bad address leaves no trace
        from .ray_backend import RayBackend
        backend = RayBackend(root, planned.stages, address, planned.requested_workers, threads,
                             gpu=device.startswith("cuda"))
        planned = replace(planned, workers=backend.workers)
    elif executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}")
    invocation = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "machine": machine(),
                  "device": device_name(device), "workers": planned.workers, "torch": torch.__version__,
                  "git_commit": git_commit(),
                  "datasets": list(planned.datasets)}
    if planned.models_dir:  # relative to the output root, like the records' run paths
        invocation["models_dir"] = os.path.relpath(planned.models_dir, root)
    if root.exists() and not root.is_dir():
        raise RnnlensError(f"--out {root} is a file, not a folder; choose another --out")
    fresh = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:  # one reproduction writes a folder at a time; its stages' runs are locked by train() as well
        fd = acquire(root, "reproduction")
    except BaseException:
        if fresh:
            root.rmdir()
        raise
    try:
        prepare_out_dir(root, planned.preset, planned.datasets, planned.stages, force, invocation)
        if threads <= 0:  # torch's choice in every worker oversubscribes the cores: 2 x 2 threads ran 8x slower
            threads = max(1, (os.cpu_count() or 1) // max(1, planned.workers))
        ctx = Context(str(root), planned.preset, device, data_dir, threads, planned.models_dir)
        backend = backend or (InlineBackend() if planned.workers == 1 else LocalBackend(planned.workers))
        try:
            with sigterm_interrupts():
                outcome = run_plan(planned.stages, ctx, backend, progress)
        finally:
            backend.close()
        write_report(root)
    finally:
        release(root, fd)
        if fresh and not any(root.iterdir()):
            root.rmdir()  # refused before writing anything: leave no empty folder behind
    return outcome
