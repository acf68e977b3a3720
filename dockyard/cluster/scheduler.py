"""Pure decisions for one service: which slots need a task now, which tasks must go, and how
far a rolling update may go in this pass. No I/O here: the reconciler observes, this module
decides, the reconciler acts -- so every rule can be read (and tested) in one place.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dockyard.cluster import spec as specs
from dockyard.cluster.store import Task, now as timestamp


@dataclass
class Plan:
    start: list[int] = field(default_factory=list)  # slots that get a new task (current spec)
    shutdown: list[Task] = field(default_factory=list)  # tasks to drain and stop
    update_status: dict[str, Any] | None = None  # the service's new UpdateStatus (None: unchanged)


def epoch(stamp: str) -> float:
    """Seconds since the epoch of one of our RFC 3339 (nanosecond) timestamps."""
    base = stamp.rstrip("Z").split(".")[0]
    return datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _may_restart(policy: dict[str, Any], history: list[Task], current: str, now: float) -> bool:
    """Swarm's restart policy for a slot whose last task ended by itself."""
    ended = [t for t in history if t.state in ("complete", "failed", "rejected")]
    if not ended:
        return True
    last = max(ended, key=lambda t: t.since)
    condition = policy.get("Condition", "any")
    if last.spec_hash == current:
        if condition == "none" or (condition == "on-failure" and last.state == "complete"):
            return False
        attempts = int(policy.get("MaxAttempts") or 0)
        if attempts and sum(1 for t in ended if t.spec_hash == current) > attempts:
            return False
    # attempts of one slot are at least the delay apart, counted from the failed task's start:
    # a crash loop is slowed down, a task that ran for a while is replaced at once
    delay = int(policy.get("Delay", specs.DEFAULT_RESTART_DELAY)) / 1e9
    return now >= epoch(last.created) + delay


def plan_service(spec: dict[str, Any], tasks: list[Task], update_status: dict[str, Any] | None,
                 now: float | None = None) -> Plan:
    """Decide one pass for a service. ``tasks``: every task record of the service."""
    now = time.time() if now is None else now
    plan = Plan()
    current = specs.task_hash(spec)
    n = specs.replicas(spec)
    order = specs.update_order(spec)
    policy = spec["TaskTemplate"].get("RestartPolicy") or {}
    live = [t for t in tasks if t.live]
    stopping = [t for t in tasks if t.desired == "shutdown" and not t.terminal]

    plan.shutdown += [t for t in live if t.slot > n]  # scale down
    candidates: list[int] = []
    in_flight = 0
    for slot in range(1, n + 1):
        here = [t for t in live if t.slot == slot]
        old = [t for t in here if t.spec_hash != current]
        new = [t for t in here if t.spec_hash == current]
        if not here:
            if any(t.slot == slot for t in stopping) and order == "stop-first":
                in_flight += 1  # stop-first: the old task goes before the new one starts
            elif _may_restart(policy, [t for t in tasks if t.slot == slot], current, now):
                plan.start.append(slot)
                in_flight += 1  # (an update waits for it as for any slot it replaces)
            continue
        if old and new:  # start-first in progress: the old task goes once a new one is ready
            if any(t.ready for t in new):
                plan.shutdown += old
            else:
                in_flight += 1
        elif old:
            candidates.append(slot)
        elif not any(t.ready for t in new) and (update_status or {}).get("State") == "updating":
            in_flight += 1
        plan.shutdown += new[1:] if not old else []  # never two current tasks in one slot

    status = dict(update_status or {})
    if status.get("State") == "updating":
        plan.update_status = _advance_update(spec, tasks, status, candidates, in_flight, order, now, plan)
    return plan


def _advance_update(spec: dict[str, Any], tasks: list[Task], status: dict[str, Any],
                    candidates: list[int], in_flight: int, order: str, now: float, plan: Plan) -> dict[str, Any]:
    """The rolling update: ``Parallelism`` slots at a time, ``Delay`` between batches, the
    old task of a slot drained from the balancer before it stops."""
    cfg = spec.get("UpdateConfig") or {}
    current = specs.task_hash(spec)
    started = status.get("StartedAt", "")
    failed = [t for t in tasks if t.spec_hash == current and t.state in ("failed", "rejected")
              and t.since >= started]
    if failed and cfg.get("FailureAction", "pause") == "pause":
        status.update({"State": "paused", "Message": f"update paused due to failure or early termination of task {failed[0].id}"})
        return status
    if not candidates and not in_flight:
        status.update({"State": "completed", "CompletedAt": timestamp(),
                       "Message": "update completed"})
        status.pop("_next_at", None)
        status.pop("_batches", None)
        return status
    if not candidates:
        return status
    delay = int(cfg.get("Delay") or 0) / 1e9
    if in_flight == 0:
        if status.get("_next_at") is None and status.get("_batches", 0) and delay:
            status["_next_at"] = now + delay
        if status.get("_next_at") is not None and now < status["_next_at"]:
            return status
    parallelism = int(cfg.get("Parallelism", 1))
    room = len(candidates) if parallelism == 0 else max(parallelism - in_flight, 0)
    batch = candidates[:room]
    if batch and in_flight == 0:
        status["_batches"] = status.get("_batches", 0) + 1
        status["_next_at"] = None
    live = [t for t in tasks if t.live]
    for slot in batch:
        if order == "start-first":
            plan.start.append(slot)
        else:
            plan.shutdown += [t for t in live if t.slot == slot]
    return status
