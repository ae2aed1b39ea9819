"""The order in which a plan's stages start, and the wall time that order gives on N workers.

:func:`critical_path` ranks the stages the executor may start (the one with the longest chain of work behind it
goes first); :func:`simulate` replays that rule over given stage times (the estimates of a ``--dry-run``, or
the times a finished run recorded, :func:`replay`) and says when each stage starts and ends, so the dry run's
wall figure is the one the executor's own order gives rather than the compute divided by the workers.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import RnnlensError
from ..fsutil import read_json
from .plan import Stage
from .stages import read_record


def _durations(stages: list[Stage], seconds: Mapping[str, float] | None) -> dict[str, float]:
    """Each stage's seconds: ``seconds`` where it has the stage, else the stage's estimate."""
    seconds = seconds or {}
    return {s.id: float(seconds.get(s.id, s.est_seconds)) for s in stages}


def critical_path(stages: list[Stage], seconds: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each stage's seconds (``seconds`` or its estimate) plus those of the longest chain of stages that wait for
    it (hard or soft dependencies): how long the plan takes after the stage starts, at best."""
    waiting: dict[str, list[str]] = {s.id: [] for s in stages}
    for s in stages:
        for d in s.all_deps:
            if d in waiting:
                waiting[d].append(s.id)
    own = _durations(stages, seconds)
    path: dict[str, float] = {}
    for s in reversed(stages):  # a plan lists every stage after its dependencies
        path[s.id] = own[s.id] + max((path.get(w, 0.0) for w in waiting[s.id]), default=0.0)
    return path


def start_order(stages: list[Stage], seconds: Mapping[str, float] | None = None) -> list[Stage]:
    """The stages by decreasing critical path, the plan's order among equals (dependencies stay first)."""
    path = critical_path(stages, seconds)
    return sorted(stages, key=lambda s: -path[s.id])


@dataclass(frozen=True)
class Schedule:
    """When each stage starts and ends (seconds from the start) on ``workers`` workers."""

    workers: int
    start: dict[str, float]
    end: dict[str, float]

    @property
    def wall(self) -> float:
        return max(self.end.values(), default=0.0)

    @property
    def compute(self) -> float:
        return sum(self.end[k] - self.start[k] for k in self.end)


def simulate(stages: list[Stage], workers: int, seconds: Mapping[str, float] | None = None) -> Schedule:
    """Replay the executor's rule: whenever a worker is free, start the first stage in :func:`start_order` (by the
    estimates, as the executor knows no better) whose dependencies in the plan have all ended. A stage lasts its
    ``seconds`` where given (a recorded time), else its estimate."""
    workers = max(int(workers), 1)
    in_plan = {s.id for s in stages}
    own = _durations(stages, seconds)
    pending = start_order(stages)
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    running: list[tuple[float, str]] = []  # heap of (end time, stage id)
    now = 0.0
    while pending or running:
        for stage in list(pending):
            if len(running) >= workers:
                break
            if all(d in end for d in stage.all_deps if d in in_plan):
                start[stage.id] = now
                heapq.heappush(running, (now + own[stage.id], stage.id))
                pending.remove(stage)
        if not running:
            raise ValueError("the plan's dependencies cannot all be met (a stage waits for one that never runs)")
        now, done = heapq.heappop(running)
        end[done] = now
        while running and running[0][0] == now:  # stages that end at the same moment free their workers together
            end[heapq.heappop(running)[1]] = now
    return Schedule(workers, start, end)


def replay(root: str | os.PathLike, workers: int, stages: list[Stage] | None = None) -> Schedule:
    """The schedule the executor's order gives on ``workers`` workers with the stage times a finished
    reproduction recorded in ``root`` (each stage's record; its estimate where one is missing): how long that run
    would have taken in this order, without running it again. The order follows the estimates of ``stages`` (a
    plan made now, e.g. by :func:`rnnlens.reproduce.runner.make_plan`) or else those of the run's plan.json."""
    plan_path = Path(root) / "plan.json"
    if not plan_path.is_file():
        raise RnnlensError(f"{root} holds no plan.json; point at the output folder of `rnnlens reproduce`")
    recorded = [Stage(**{**d, "deps": tuple(d["deps"]), "soft_deps": tuple(d["soft_deps"])})
                for d in read_json(plan_path)["stages"]]
    if stages is None:
        stages = recorded
    elif {s.id for s in stages} != {s.id for s in recorded}:
        raise RnnlensError(f"the plan given has other stages than {plan_path}; make it with the run's preset and datasets")
    seconds = {}
    for s in stages:
        rec = read_record(root, s.id)
        if rec is not None:
            seconds[s.id] = float(rec["wall_s"])
    return simulate(stages, workers, seconds)
