"""rnnlens.reproduce.schedule: the critical-path start order and the replay of it on N workers."""

from __future__ import annotations

import itertools
import random
import time
from concurrent.futures import Future

import pytest

from rnnlens.reproduce.executor import run_plan
from rnnlens.reproduce.plan import PRESETS, Stage, format_plan
from rnnlens.reproduce.schedule import critical_path, simulate, start_order
from rnnlens.reproduce.stages import Context


def _plan():
    return [Stage("data", "data", "x", est_seconds=1.0),
            Stage("quick", "train", "x", deps=("data",), est_seconds=10.0),
            Stage("slow", "train", "x", deps=("data",), est_seconds=100.0),
            Stage("mid", "train", "x", deps=("data",), est_seconds=50.0),
            Stage("tie", "train", "x", deps=("data",), est_seconds=50.0),
            Stage("select", "select", "x", soft_deps=("quick", "slow", "mid", "tie"), est_seconds=0.5),
            Stage("gates", "gates", "x", deps=("select",), est_seconds=5.0),
            Stage("baselines", "baselines", "x", deps=("data",), est_seconds=20.0)]


def _random_plan(rng: random.Random, n: int) -> list[Stage]:
    stages = []
    for i in range(n):
        earlier = [s.id for s in stages]
        deps = tuple(d for d in earlier if rng.random() < 0.25)
        soft = tuple(d for d in earlier if d not in deps and rng.random() < 0.1)
        stages.append(Stage(f"s{i}", "train", "x", deps=deps, soft_deps=soft, est_seconds=float(rng.randint(1, 9))))
    return stages


def test_the_critical_path_is_a_stage_own_time_plus_the_longest_chain_waiting_for_it():
    assert critical_path(_plan()) == {"gates": 5.0, "select": 5.5, "baselines": 20.0, "quick": 15.5, "slow": 105.5,
                                      "mid": 55.5, "tie": 55.5, "data": 106.5}
    # recorded times replace the estimates where given
    path = critical_path(_plan(), {"quick": 200.0})
    assert path["quick"] == 205.5 and path["data"] == 206.5 and path["slow"] == 105.5


def test_the_critical_path_equals_the_longest_chain_found_by_brute_force():
    rng = random.Random(3)
    for _ in range(30):
        plan = _random_plan(rng, 7)
        by_id = {s.id: s for s in plan}

        def chains(sid):  # every chain of stages that starts at sid and follows "waits for me"
            after = [s.id for s in plan if sid in s.all_deps]
            return [[sid]] + [[sid] + c for a in after for c in chains(a)]

        for s in plan:
            want = max(sum(by_id[x].est_seconds for x in c) for c in chains(s.id))
            assert critical_path(plan)[s.id] == pytest.approx(want)


def test_two_workers_run_the_longest_chain_first_and_finish_when_it_does():
    sched = simulate(_plan(), workers=2)
    # data, then slow (1-101) on one worker beside mid (1-51) and tie (51-101); at 101 baselines (to 121) and
    # quick (to 111), then select and gates (111-116.5) after the last training
    assert sched.start["slow"] == 1.0 and sched.start["mid"] == 1.0
    assert sched.start["tie"] == 51.0 and sched.start["baselines"] == 101.0 and sched.start["quick"] == 101.0
    assert sched.end["select"] == 111.5 and sched.end["gates"] == 116.5 and sched.wall == 121.0
    assert sched.compute == pytest.approx(sum(s.est_seconds for s in _plan()))


def test_the_replay_respects_dependencies_and_the_worker_count_and_is_bounded():
    rng = random.Random(7)
    for workers, _ in itertools.product((1, 2, 3), range(20)):
        plan = _random_plan(rng, 9)
        sched = simulate(plan, workers)
        for s in plan:
            assert all(sched.start[s.id] >= sched.end[d] for d in s.all_deps)
            assert sched.end[s.id] - sched.start[s.id] == s.est_seconds
        for t in set(sched.start.values()):
            assert sum(sched.start[k] <= t < sched.end[k] for k in sched.start) <= workers
        total = sum(s.est_seconds for s in plan)
        assert max(total / workers, max(critical_path(plan).values())) <= sched.wall + 1e-9
        if workers == 1:
            assert sched.wall == pytest.approx(total)


class InstantBackend:
    """One worker that finishes each stage the moment it is submitted: what it records is the executor's order."""

    workers = 1

    def __init__(self):
        self.ran = []

    def submit(self, stage, ctx):
        self.ran.append(stage.id)
        fut, now = Future(), time.time()
        fut.set_result({"id": stage.id, "kind": stage.kind, "dataset": "x", "started": now, "finished": now,
                        "wall_s": 0.0, "result": {}})
        return fut

    def restart(self):
        pass

    def close(self):
        pass


def test_the_ready_stage_with_the_longest_chain_after_it_starts_first(tmp_path):
    """Of the stages ready at once, the executor submits the one with the longest critical path first (plan order
    among equals), so a slow training does not start last and leave one worker busy at the end."""
    backend = InstantBackend()
    outcome = run_plan(_plan(), Context(str(tmp_path), PRESETS["smoke"]), backend)
    assert set(outcome.status.values()) == {"done"}
    assert backend.ran == ["data", "slow", "mid", "tie", "baselines", "quick", "select", "gates"]


def test_the_replay_starts_stages_in_the_order_the_executor_submits_them(tmp_path):
    rng = random.Random(11)
    for i in range(5):
        plan = _random_plan(rng, 8)
        backend = InstantBackend()
        run_plan(plan, Context(str(tmp_path / str(i)), PRESETS["smoke"]), backend)
        sched = simulate(plan, 1)
        assert backend.ran == sorted(sched.start, key=lambda k: sched.start[k])
        assert critical_path(plan)[start_order(plan)[0].id] == max(critical_path(plan).values())


def test_a_plan_whose_dependencies_cannot_be_met_is_an_error():
    with pytest.raises(ValueError, match="cannot all be met"):
        simulate([Stage("a", "train", "x", deps=("a",), est_seconds=1.0)], 2)


def test_the_dry_run_listing_gives_the_replayed_wall_time_and_the_precision():
    preset = PRESETS["cpu"]
    lines = format_plan(preset, _plan(), 2, "cpu")
    assert lines[-1].startswith("estimated compute 4 min; wall about 2 min with 2 worker(s)")
    assert any(line.startswith("precision auto: ") and " on cpu (" in line for line in lines)
    assert not any(line.startswith("precision") for line in format_plan(PRESETS["smoke"], _plan(), 2, "cpu"))


def _write_run(root, plan, seconds):
    from rnnlens.fsutil import atomic_write_json
    from rnnlens.reproduce.stages import RECORD, stage_dir

    atomic_write_json(root / "plan.json", {"preset": "smoke", "stages": [s.to_dict() for s in plan]})
    for sid, sec in seconds.items():
        stage_dir(root, sid).mkdir(parents=True, exist_ok=True)
        atomic_write_json(stage_dir(root, sid) / RECORD, {"id": sid, "started": 0.0, "finished": sec, "wall_s": sec,
                                                          "result": {}})


def test_a_replay_of_a_finished_run_lasts_its_recorded_times_in_the_order_of_the_estimates(tmp_path):
    from rnnlens.exceptions import RnnlensError
    from rnnlens.reproduce.schedule import replay

    plan = _plan()
    # the run took far longer than estimated for "quick": the order still follows the estimates
    recorded = {s.id: s.est_seconds for s in plan if s.id != "gates"} | {"quick": 300.0}
    _write_run(tmp_path, plan, recorded)
    sched = replay(tmp_path, 2)
    assert sched.start["quick"] == 101.0 and sched.end["quick"] == 401.0  # started after slow/mid/tie as planned
    assert sched.end["gates"] - sched.start["gates"] == 5.0  # no record: its estimate
    assert sched == simulate(plan, 2, recorded)
    # ordered by the estimates of a newer plan: quick first after data, as it is now estimated the slowest
    newer = [Stage(**{**s.to_dict(), "est_seconds": 300.0}) if s.id == "quick" else s for s in plan]
    assert replay(tmp_path, 2, newer).start["quick"] == 1.0
    with pytest.raises(RnnlensError, match="other stages"):
        replay(tmp_path, 2, plan[:-1])
    with pytest.raises(RnnlensError, match="no plan.json"):
        replay(tmp_path / "nothing", 2)
