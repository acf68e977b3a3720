"""The scheduler's rules, decided on task records alone (no containers: fast and exact)."""
from __future__ import annotations

import time

from dockyard.cluster import spec as specs
from dockyard.cluster.scheduler import plan_service
from dockyard.cluster.store import Task, new_id, now


def make_spec(replicas: int = 2, image: str = "busybox", order: str = "stop-first", parallelism: int = 1,
              condition: str = "any", delay_s: float = 0) -> dict:
    return {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": image},
                                            "RestartPolicy": specs.restart_policy(condition, f"{delay_s}s")},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "UpdateConfig": specs.update_config(parallelism, None, order)}


def task(spec: dict, slot: int, state: str = "running", desired: str = "running", ready: bool = True) -> Task:
    return Task(id=new_id(), service_id="s", slot=slot, spec_hash=specs.task_hash(spec), image="busybox",
                desired=desired, state=state, created=now(), since=now(), ready=ready)


def test_fills_missing_slots_and_scales_down():
    spec = make_spec(replicas=3)
    tasks = [task(spec, 1), task(spec, 4), task(spec, 5)]
    plan = plan_service(spec, tasks, None)
    assert plan.start == [2, 3]
    assert sorted(t.slot for t in plan.shutdown) == [4, 5]


def test_restart_conditions_and_delay():
    for condition, state, restarts in (("any", "complete", True), ("any", "failed", True),
                                       ("on-failure", "complete", False), ("on-failure", "failed", True),
                                       ("none", "failed", False)):
        spec = make_spec(replicas=1, condition=condition)
        ended = task(spec, 1, state=state, desired="shutdown")
        assert plan_service(spec, [ended], None).start == ([1] if restarts else []), (condition, state)
    spec = make_spec(replicas=1, delay_s=30)
    ended = task(spec, 1, state="failed", desired="shutdown")
    assert plan_service(spec, [ended], None).start == []  # within the restart delay
    assert plan_service(spec, [ended], None, now=time.time() + 31).start == [1]


def test_rolling_update_start_first_one_slot_at_a_time():
    old_spec = make_spec(replicas=2, order="start-first")
    new_spec = make_spec(replicas=2, image="busybox:2", order="start-first")
    tasks = [task(old_spec, 1), task(old_spec, 2)]
    updating = {"State": "updating", "StartedAt": now()}
    plan = plan_service(new_spec, tasks, updating)
    assert plan.start == [1] and plan.shutdown == []  # parallelism 1: one new task, nothing stops yet
    fresh = task(new_spec, 1, state="starting", ready=False)
    plan = plan_service(new_spec, tasks + [fresh], plan.update_status)
    assert plan.start == [] and plan.shutdown == []  # the new task is not ready: wait
    fresh.ready = True
    plan = plan_service(new_spec, tasks + [fresh], plan.update_status)
    assert [t.slot for t in plan.shutdown] == [1] and plan.start == [2]


def test_rolling_update_stop_first_drains_before_starting():
    old_spec = make_spec(replicas=2)
    new_spec = make_spec(replicas=2, image="busybox:2")
    tasks = [task(old_spec, 1), task(old_spec, 2)]
    plan = plan_service(new_spec, tasks, {"State": "updating", "StartedAt": now()})
    assert plan.start == [] and [t.slot for t in plan.shutdown] == [1]
    tasks[0].desired = "shutdown"  # stopping, not gone yet: the slot waits
    plan = plan_service(new_spec, tasks, plan.update_status)
    assert plan.start == [] and plan.shutdown == []
    tasks[0].state = "shutdown"
    plan = plan_service(new_spec, tasks, plan.update_status)
    assert plan.start == [1]


def test_update_completes_and_pauses_on_failure():
    spec = make_spec(replicas=1)
    plan = plan_service(spec, [task(spec, 1)], {"State": "updating", "StartedAt": now()})
    assert plan.update_status["State"] == "completed"
    new_spec = make_spec(replicas=1, image="nope")
    started = now()
    failed = task(new_spec, 1, state="rejected", desired="shutdown")
    plan = plan_service(new_spec, [task(spec, 1), failed], {"State": "updating", "StartedAt": started})
    assert plan.update_status["State"] == "paused" and failed.id in plan.update_status["Message"]


def test_stop_first_waits_for_the_restarted_slot_before_the_next():
    old_spec = make_spec(replicas=2)
    new_spec = make_spec(replicas=2, image="busybox:2")
    gone = task(old_spec, 1, state="shutdown", desired="shutdown")
    plan = plan_service(new_spec, [gone, task(old_spec, 2)], {"State": "updating", "StartedAt": now()})
    assert plan.start == [1] and plan.shutdown == []  # slot 2 keeps serving until slot 1's new task is ready
