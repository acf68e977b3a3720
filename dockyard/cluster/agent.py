"""The agent: runs and observes tasks on one host by driving the local engine (the library).

A task is an ordinary dockyard container named as swarm names it (``NAME.SLOT.TASKID``) and
labelled as swarm labels it (``com.docker.swarm.service.name``...), so ``dockyard ps``, ``logs``,
``exec`` and ``inspect`` work on it. The manager talks to an agent only through
:meth:`Agent.start`, :meth:`Agent.observe`, :meth:`Agent.signal` and :meth:`Agent.remove`: an
agent on another host would answer the same four calls over the network.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from dockyard.errors import DockyardError, NotFound

INGRESS_NETWORK = "ingress"
INGRESS_LABEL = "com.docker.swarm.internal"  # marks the ingress network as the cluster's own


@dataclass
class Observation:
    """What a task's container is doing now."""

    status: str  # "running", "exited", "created", "missing"
    exit_code: int | None = None
    health: str | None = None  # None (no healthcheck), "starting", "healthy", "unhealthy"
    ip: str | None = None
    error: str = ""


def task_name(service_name: str, slot: int, task_id: str) -> str:
    return f"{service_name}.{slot}.{task_id}"


def task_labels(service: Any, node_id: str, slot: int, task_id: str) -> dict[str, str]:
    """swarm's labels on a task container (plus the service's ``--container-label``s)."""
    labels = dict(service.spec["TaskTemplate"]["ContainerSpec"].get("Labels") or {})
    labels.update({
        "com.docker.swarm.node.id": node_id,
        "com.docker.swarm.service.id": service.id,
        "com.docker.swarm.service.name": service.name,
        "com.docker.swarm.task": "",
        "com.docker.swarm.task.id": task_id,
        "com.docker.swarm.task.name": task_name(service.name, slot, task_id),
    })
    stack = (service.spec.get("Labels") or {}).get("com.docker.stack.namespace")
    if stack:
        labels["com.docker.stack.namespace"] = stack
    return labels


class Agent:
    """Tasks on this host, through ``client.containers``."""

    def __init__(self, client: Any, node_id: str) -> None:
        self.client = client
        self.node_id = node_id
        self._pull_failed: dict[str, tuple[str, float]] = {}  # image -> (error, retry at)

    def start(self, service: Any, slot: int, task_id: str) -> str:
        """Create and start a task's container; returns its ID. Raises DockyardError with the
        engine's message when it cannot (the task is then *rejected*/*failed*)."""
        from dockyard.engine.options import RunOptions, build_body

        cs = service.spec["TaskTemplate"]["ContainerSpec"]
        self._ensure_image(cs["Image"])
        self.ensure_network()
        o = RunOptions(image=cs["Image"], command=list(cs.get("Args") or []), env=list(cs.get("Env") or []),
                       labels=[f"{k}={v}" for k, v in task_labels(service, self.node_id, slot, task_id).items()],
                       name=task_name(service.name, slot, task_id), detach=True, network=INGRESS_NETWORK,
                       workdir=cs.get("Dir") or None, user=cs.get("User") or None,
                       hostname=cs.get("Hostname") or None, stop_signal=cs.get("StopSignal") or None)
        body = build_body(o)
        if cs.get("Command"):
            body["Entrypoint"] = list(cs["Command"])
        if cs.get("Healthcheck"):
            body["Healthcheck"] = dict(cs["Healthcheck"])
        host = body.setdefault("HostConfig", {})
        for key, field in (("Init", "Init"), ("ReadOnly", "ReadonlyRootfs")):
            if cs.get(key):
                host[field] = True
        if cs.get("TTY"):
            body["Tty"] = True
        for key, field in (("CapabilityAdd", "CapAdd"), ("CapabilityDrop", "CapDrop"), ("Mounts", "Mounts")):
            if cs.get(key):
                host[field] = list(cs[key])
        limits = (service.spec["TaskTemplate"].get("Resources") or {}).get("Limits") or {}
        for key, field in (("NanoCPUs", "NanoCpus"), ("MemoryBytes", "Memory"), ("Pids", "PidsLimit")):
            if limits.get(key):
                host[field] = int(limits[key])
        grace = cs.get("StopGracePeriod")
        if grace is not None:
            body["StopTimeout"] = max(int(grace) // 1_000_000_000, 0)
        container = self.client.containers.create(body, name=o.name)
        try:
            self.client.containers.start(container.id)
        except DockyardError:
            self.remove(container.id)
            raise
        return str(container.id)

    def ensure_network(self) -> None:
        """The ingress network every task joins (made again if a prune took it away)."""
        try:
            self.client.networks.get(INGRESS_NETWORK)
        except NotFound:
            self.client.networks.create(INGRESS_NETWORK, labels={INGRESS_LABEL: "true"})

    def prefetch(self, refs: list[str], retry_after: float = 5.0) -> None:
        """Pull the images that are not here (as a swarm node does). Called *outside* the
        cluster lock: a slow pull must not hold up the CLI or the other services. A failed pull
        is remembered (the tasks are rejected with its message) and tried again later."""
        import time

        for ref in dict.fromkeys(refs):
            if self._has(ref) or time.monotonic() < self._pull_failed.get(ref, ("", 0.0))[1]:
                continue
            try:
                self.client.distribution.pull(ref)
                self._pull_failed.pop(ref, None)
            except DockyardError as exc:
                self._pull_failed[ref] = (exc.message, time.monotonic() + retry_after)

    def _has(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except NotFound:
            return False

    def _ensure_image(self, ref: str) -> None:
        if not self._has(ref):
            error = self._pull_failed.get(ref, ("",))[0]
            raise NotFound(error or f"No such image: {ref}")

    def observe(self, container_id: str) -> Observation:
        try:
            rec = self.client.containers.load(container_id)
        except NotFound:
            return Observation("missing", error="task container removed")
        status = rec.status
        health = (rec.state.get("Health") or {}).get("Status") or None
        if health is None:  # no probe has run yet: a container with a healthcheck is starting
            from dockyard.engine.health import effective_config

            if effective_config(rec.cfg.get("Healthcheck")) is not None:
                health = "starting"
        if status in ("running", "paused", "restarting"):
            return Observation("running", health=health, ip=self._ip(container_id))
        code = int(rec.state.get("ExitCode", 0) or 0)
        return Observation(status if status == "created" else "exited", exit_code=code,
                           error=str(rec.state.get("Error") or ""))

    def _ip(self, container_id: str) -> str | None:
        try:
            nets = self.client.networks.settings(container_id).get("Networks") or {}
        except DockyardError:
            return None
        for net in nets.values():
            if net.get("IPAddress"):
                return str(net["IPAddress"])
        return None

    @staticmethod
    def answers(ip: str, port: int, proto: str = "tcp", timeout: float = 0.5) -> bool:
        """Does the task accept a connection on its target port? (what makes a task without a
        healthcheck *ready*: running is not listening yet)."""
        if proto != "tcp":
            return True
        try:
            with socket.create_connection((ip, port), timeout=timeout):
                return True
        except OSError:
            return False

    def signal(self, container_id: str, sig: str) -> None:
        try:
            self.client.containers.kill(container_id, sig)
        except DockyardError:
            pass  # already gone: the next observation says so

    def remove(self, container_id: str) -> None:
        try:
            self.client.containers.remove(container_id, force=True)
        except NotFound:
            pass

    def task_containers(self) -> dict[str, str]:
        """task ID -> container ID of every task container on this host (to find orphans)."""
        found = {}
        for c in self.client.containers.list(all=True, filters={"label": ["com.docker.swarm.task.id"]}):
            found[c.labels.get("com.docker.swarm.task.id", "")] = c.id
        return found
