"""One reconcile pass: observe every task, let the scheduler decide, act through the agent,
and point the ingress at the tasks that are ready.

A task is *ready* -- it gets load-balanced connections -- when its container runs, its
healthcheck (if any) says healthy, and it accepts a connection on each published target port.
A task leaving (scale down, rolling update, ``service rm``) is first taken out of the balancer,
keeps serving the connections it has for :data:`DRAIN_GRACE` seconds, then gets its stop
signal, and SIGKILL after the service's stop grace period. Every step is a state recorded in the
task's row, so a pass never blocks on a slow container and a restarted manager carries on.
"""
from __future__ import annotations

import time
from typing import Any

from dockyard.cluster import spec as specs
from dockyard.cluster.agent import Agent
from dockyard.cluster.ingress import Ingress
from dockyard.cluster.scheduler import plan_service
from dockyard.cluster.store import ClusterStore, ServiceRecord, Task, new_id, now
from dockyard.errors import DockyardError

DRAIN_GRACE = 1.5  # seconds a drained task keeps serving its open connections
HISTORY_LIMIT = 5  # tasks kept per slot, the live one included (swarm's default)
UNHEALTHY = "task: non-zero exit (137): dockerexec: unhealthy container"


class Reconciler:
    def __init__(self, client: Any, store: ClusterStore | None = None) -> None:
        self.client = client
        self.store = store or ClusterStore(client.state)
        self.ingress = Ingress(client)
        self._agent: Agent | None = None
        self._passes = 0
        self._newly_ready: list[Task] = []
        self._doomed: list[str] = []  # containers of tasks that ended, removed after _balance

    def agent(self, node_id: str) -> Agent:
        if self._agent is None or self._agent.node_id != node_id:
            self._agent = Agent(self.client, node_id)
        return self._agent

    def reconcile_once(self) -> None:
        swarm = self.store.swarm()
        if swarm is None:
            return
        # images first, outside the lock: a pull may take minutes
        self.agent(swarm.node_id).prefetch([specs.container_spec(s.spec)["Image"] for s in self.store.services()])
        with self.store.lock():
            swarm = self.store.swarm()
            if swarm is None:
                return
            agent = self.agent(swarm.node_id)
            services = {s.id: s for s in self.store.services()}
            tasks = self.store.tasks()
            for t in tasks:
                if not t.terminal:
                    self._observe(agent, t, services.get(t.service_id))
            for t in tasks:
                if t.service_id not in services and t.desired == "running":
                    self._set(t, desired="shutdown")
            refresh = self._passes % 60 == 0  # now and then, rewrite rules someone may have flushed
            # before any task starts: a new task may get the address a failed one just released
            self._balance(services, tasks, refresh)
            for cid in self._doomed:  # only now: no new connection reaches them any more
                agent.remove(cid)
            self._doomed = []
            for svc in services.values():
                mine = [t for t in tasks if t.service_id == svc.id]
                plan = plan_service(svc.spec, mine, svc.update_status)
                for t in plan.shutdown:
                    if t.desired != "shutdown":
                        self._set(t, desired="shutdown")
                for slot in plan.start:
                    tasks.append(self._start(agent, svc, slot))
                if plan.update_status is not None and plan.update_status != svc.update_status:
                    svc.update_status = plan.update_status
                    self.store.save_service(svc)
            self._balance(services, tasks)  # without the tasks now shutting down, with the new ready ones
            for t in tasks:
                if t.desired == "shutdown" and not t.terminal:
                    self._shut_down(agent, t, services.get(t.service_id))
            self._prune_history(tasks)
            if self._passes % 20 == 0:
                self._remove_orphans(agent, tasks)
            self._passes += 1

    # -- steps ------------------------------------------------------------------------------------
    def _balance(self, services: dict[str, ServiceRecord], tasks: list[Task], force: bool = False) -> None:
        """Point each published port at the service's ready tasks (no-op when unchanged)."""
        published = False
        for svc in services.values():  # (a service without ports: takes down ports it no longer has)
            eps = [t.ip for t in tasks if t.service_id == svc.id and t.live and t.ready and t.ip]
            self.ingress.program(svc.id, specs.ports(svc.spec), eps, force=force)
            published = published or bool(specs.ports(svc.spec))
        bridge = self._ingress_bridge() if published else None
        if bridge:
            self.ingress.allow_crossing(bridge, force=force)
        else:
            self.ingress.forbid_crossing()
        for t in self._newly_ready:  # now "ready" is true of the kernel's rules too
            self.store.save_task(t)
        self._newly_ready = []

    def _set(self, t: Task, **changes: Any) -> None:
        if "state" in changes and changes["state"] != t.state:
            changes.setdefault("since", now())
        for key, value in changes.items():
            setattr(t, key, value)
        self.store.save_task(t)

    def _ingress_bridge(self) -> str | None:
        from dockyard.cluster.agent import INGRESS_NETWORK

        try:
            return self.client.networks.get(INGRESS_NETWORK).bridge or None
        except DockyardError:
            return None

    def _observe(self, agent: Agent, t: Task, svc: ServiceRecord | None) -> None:
        if t.container_id is None:
            self._set(t, state="rejected", desired="shutdown", err=t.err or "task has no container")
            return
        obs = agent.observe(t.container_id)
        if obs.status == "running":
            if obs.health == "unhealthy" and t.desired == "running":
                self._doomed.append(t.container_id)
                self._set(t, state="failed", desired="shutdown", ready=False, err=UNHEALTHY, exit_code=137)
                return
            ready = t.ready
            if t.desired == "running" and not t.ready and obs.health in (None, "healthy") and obs.ip:
                ready = all(agent.answers(obs.ip, int(p["TargetPort"]), p.get("Protocol", "tcp"))
                            for p in specs.ports(svc.spec)) if svc else False
            if t.state != "running" or obs.ip != t.ip:
                self._set(t, state="running", ip=obs.ip or t.ip)
            if ready and not t.ready:  # recorded once its address is in the balancer (_balance)
                t.ready = True
                self._newly_ready.append(t)
            return
        if obs.status == "created":
            return  # starting
        if t.desired == "shutdown":
            self._doomed.append(t.container_id)
            self._set(t, state="shutdown", ready=False, exit_code=obs.exit_code)
            return
        code = obs.exit_code
        err = obs.error if obs.status == "missing" else ("" if code == 0 else f"task: non-zero exit ({code})")
        self._doomed.append(t.container_id)
        self._set(t, state="complete" if code == 0 else "failed", desired="shutdown", ready=False,
                  err=err, exit_code=code)

    def _start(self, agent: Agent, svc: ServiceRecord, slot: int) -> Task:
        t = Task(id=new_id(), service_id=svc.id, slot=slot, spec_hash=specs.task_hash(svc.spec),
                 image=specs.container_spec(svc.spec)["Image"], desired="running", state="preparing",
                 created=now(), since=now())
        try:
            t.container_id = agent.start(svc, slot, t.id)
        except DockyardError as exc:
            t.state, t.desired, t.err = "rejected", "shutdown", exc.message
        else:
            t.state = "starting"
        self.store.save_task(t)
        return t

    def _shut_down(self, agent: Agent, t: Task, svc: ServiceRecord | None) -> None:
        """Drain, then the stop signal, then SIGKILL: one step per pass, nothing waits."""
        if t.container_id is None:
            self._set(t, state="shutdown")
            return
        ts = time.time()
        if t.drain_at is None:
            self._set(t, drain_at=ts, ready=False)
            if t.state == "running" and svc and specs.ports(svc.spec):
                return  # the rules without it were written this pass; its open connections finish
        elif ts - t.drain_at < DRAIN_GRACE:
            return
        cs = specs.container_spec(svc.spec) if svc else {}
        if t.term_at is None:
            agent.signal(t.container_id, cs.get("StopSignal") or "SIGTERM")
            self._set(t, term_at=ts)
            return
        grace = int(cs.get("StopGracePeriod", specs.DEFAULT_STOP_GRACE)) / 1e9
        if ts - t.term_at >= grace:
            agent.remove(t.container_id)
            self._set(t, state="shutdown")

    def _prune_history(self, tasks: list[Task]) -> None:
        by_slot: dict[tuple[str, int], list[Task]] = {}
        for t in tasks:
            by_slot.setdefault((t.service_id, t.slot), []).append(t)
        doomed = []
        for group in by_slot.values():
            done = sorted((t for t in group if t.terminal), key=lambda t: t.since, reverse=True)
            keep = max(HISTORY_LIMIT - (len(group) - len(done)), 0)
            doomed += [t.id for t in done[keep:]]
        self.store.delete_tasks(doomed)

    def _remove_orphans(self, agent: Agent, tasks: list[Task]) -> None:
        """Task containers no task record accounts for (a crash between create and save)."""
        known = {t.container_id for t in tasks if not t.terminal}
        for task_id, cid in agent.task_containers().items():
            if cid not in known:
                agent.remove(cid)
