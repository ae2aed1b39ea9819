"""Running a plan: resumable and incremental, on a pool of local worker processes.

A stage is *up to date* when its ``stage.json`` exists and was written after the records of all its
dependencies (as ``make`` decides); up-to-date stages are skipped, so a reproduction killed at any point
resumes where it stopped (a half-trained run resumes from its own saved state). A stage that raises is
recorded in ``failed.json`` and reported; stages that need it are *blocked*, everything else goes on.

The pool is behind the small :class:`Backend` interface (``workers``, ``submit(stage, ctx) -> Future``,
``restart()``, ``close()``): :class:`LocalBackend` uses a process pool, :class:`InlineBackend` runs stages in
this process (one worker, for tests and debugging); a cluster backend (e.g. Ray) only has to return
futures the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..exceptions import DiskFullError, RnnlensError
from ..fsutil import atomic_write_json, disk_full_reason, is_disk_full, read_json
from ..lock import LOCK_NAME
from .plan import Preset, Stage
from .schedule import start_order
from .stages import RECORD, Context, execute, read_record, stage_dir

PLAN = "plan.json"
FAILED = "failed.json"
OUTPUTS = ("stages", PLAN, "results.json", "summary.md", "report.html", "figures")  # what --force replaces


class Backend(Protocol):
    workers: int

    def submit(self, stage: Stage, ctx: Context) -> Future: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...


class InlineBackend:
    """Runs each stage at once in this process; the future is already resolved."""

    workers = 1

    def submit(self, stage: Stage, ctx: Context) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(_run_timed(stage, ctx))
        except Exception as exc:  # noqa: BLE001 - a failed stage is data, not a crash
            fut.set_exception(exc)
        return fut

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocalBackend:
    """A pool of ``workers`` processes (spawned, so each has a clean torch)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, stage: Stage, ctx: Context) -> Future:
        return self._pool.submit(_run_timed, stage, ctx)

    def restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new()

    def interrupt(self) -> None:
        """Pass an interrupt on to the workers (a training run saves its state and stops), so a signal sent
        to this process alone, not its whole process group, stops the reproduction quickly too."""
        for proc in list(getattr(self._pool, "_processes", {}).values()):
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except OSError:
                    pass

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def default_workers(device: str) -> int:
    """One worker per CPU core (at least 1); one per machine when training on a GPU."""
    return 1 if device.startswith("cuda") else max(1, os.cpu_count() or 1)


RESUME_HINT = ("the stage's files are intact (each keeps its previous version): free space, then run the same "
               "rnnlens reproduce command again; it resumes where it stopped")


def _run_timed(stage: Stage, ctx: Context) -> dict[str, Any]:
    """Runs in the worker: the stage's record wrapped with its timing; failures carry a short traceback."""
    started = time.time()
    try:
        result = execute(stage, ctx)
    except DiskFullError as exc:
        raise exc.with_hint(RESUME_HINT) from None
    except RnnlensError:
        raise
    except Exception as exc:  # noqa: BLE001
        if is_disk_full(exc):
            raise DiskFullError(getattr(exc, "filename", None) or stage_dir(ctx.root, stage.id),
                                disk_full_reason(exc), RESUME_HINT) from None
        tb = traceback.format_exc(limit=4)
        raise RnnlensError(f"{type(exc).__name__}: {exc}\n{tb}") from None
    return {"id": stage.id, "kind": stage.kind, "dataset": stage.dataset, "started": started,
            "finished": time.time(), "wall_s": round(time.time() - started, 3), "result": result}


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def stage(self, stage_id: str, status: str) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    def start(self, total: int) -> None:
        pass

    def stage(self, stage_id: str, status: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Outcome:
    """How each stage ended in this invocation: done (ran now), skipped (up to date), failed, blocked."""

    status: dict[str, str]
    errors: dict[str, str]

    def count(self, status: str) -> int:
        return sum(1 for s in self.status.values() if s == status)


def up_to_date(stage: Stage, root: str | os.PathLike) -> bool:
    rec = read_record(root, stage.id)
    if rec is None:
        return False
    for dep in stage.all_deps:
        d = read_record(root, dep)
        if d is not None and d["finished"] > rec["finished"]:
            return False
        if d is None and dep in stage.deps:
            return False
    return True


def _store(root: str, record: dict[str, Any]) -> None:
    out = stage_dir(root, record["id"])
    atomic_write_json(out / RECORD, record)
    (out / FAILED).unlink(missing_ok=True)


def _store_failure(root: str, stage: Stage, message: str) -> None:
    atomic_write_json(stage_dir(root, stage.id) / FAILED, {"id": stage.id, "error": message, "time": time.time()})


def run_plan(stages: list[Stage], ctx: Context, backend: Backend, progress: Progress | None = None) -> Outcome:
    """Run every stage whose dependencies allow it, up to ``backend.workers`` at once. Of the stages ready to
    start, the one with the longest critical path (:mod:`.schedule`) goes first (the plan's order among equals), so the
    slow trainings do not wait for the quick ones and leave one worker busy at the end."""
    progress = progress or NullProgress()
    progress.start(len(stages))
    status: dict[str, str] = {}
    errors: dict[str, str] = {}
    by_id = {s.id: s for s in stages}
    pending = start_order(stages)  # stable: dependencies stay ahead of their dependents
    running: dict[Future, Stage] = {}
    try:
        while pending or running:
            for stage in list(pending):
                deps_state = [status.get(d) for d in stage.all_deps if d in by_id]
                hard = [status.get(d) for d in stage.deps if d in by_id]
                if any(h in ("failed", "blocked") for h in hard):
                    status[stage.id] = "blocked"
                elif None in deps_state:
                    continue  # a dependency is still pending or running
                elif up_to_date(stage, ctx.root):
                    status[stage.id] = "skipped"
                elif len(running) < backend.workers:
                    stage_dir(ctx.root, stage.id).mkdir(parents=True, exist_ok=True)
                    (stage_dir(ctx.root, stage.id) / RECORD).unlink(missing_ok=True)
                    progress.stage(stage.id, "running")
                    running[backend.submit(stage, ctx)] = stage
                    pending.remove(stage)
                    continue
                else:
                    continue
                pending.remove(stage)
                progress.stage(stage.id, status[stage.id])
            if not running:
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                stage = running.pop(fut)
                try:
                    _store(ctx.root, fut.result())
                    status[stage.id] = "done"
                except BrokenProcessPool:
                    broken = True
                    errors[stage.id] = "the worker process died (killed, or out of memory)"
                    status[stage.id] = "failed"
                except Exception as exc:  # noqa: BLE001 - one failed stage must not stop the others
                    errors[stage.id] = str(exc)
                    status[stage.id] = "failed"
                if status[stage.id] == "failed":
                    _store_failure(ctx.root, stage, errors[stage.id])
                progress.stage(stage.id, status[stage.id])
            if broken:
                for fut, stage in list(running.items()):  # their pool is gone: run them again
                    pending.insert(0, stage)
                    running.pop(fut)
                backend.restart()
    except KeyboardInterrupt:
        stop = getattr(backend, "interrupt", None)
        if stop is not None:
            stop()
        raise
    finally:
        progress.close()
    return Outcome(status, errors)


# ----- the output directory ----------------------------------------------------------------------------------
def prepare_out_dir(root: Path, preset: Preset, datasets: tuple[str, ...], stages: list[Stage], force: bool,
                    invocation: dict[str, Any] | None = None) -> None:
    """Check ``root`` holds nothing or results of this preset (else refuse, or clear them with force), and
    write plan.json; the datasets of earlier invocations stay listed (adding a corpus is incremental)."""
    plan_path = root / PLAN
    old = None
    if plan_path.is_file():
        try:
            old = read_json(plan_path)
        except (OSError, ValueError):
            old = {"fingerprint": "unreadable"}
    elif root.is_dir() and any(p.name != LOCK_NAME for p in root.iterdir()):  # its own lock is not content
        if not force:
            raise RnnlensError(f"{root} is not empty and holds no reproduction; choose another --out "
                               "(or pass --force to write into it)")
    if old is not None and old.get("fingerprint") != preset.fingerprint():
        if not force:
            raise RnnlensError(f"{root} holds results of another configuration (preset {old.get('preset')!r}); "
                               "choose another --out, or pass --force to delete them and start over")
        for name in OUTPUTS:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        old = None
    known = tuple(old.get("datasets", ())) if old else ()
    ids = {s.id for s in stages}
    kept = [s for s in (old or {}).get("stages", []) if s["id"] not in ids and s["dataset"] not in datasets]
    invocations = (old or {}).get("invocations", []) + ([invocation] if invocation else [])
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_path, {"preset": preset.name, "fingerprint": preset.fingerprint(),
                                  "settings": _settings(preset), "datasets": list(dict.fromkeys(known + datasets)),
                                  "stages": kept + [s.to_dict() for s in stages], "invocations": invocations})


def _settings(preset: Preset) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(preset)
