"""The library API of the orchestrator: ``Swarm``, ``Services`` and ``Nodes`` (docker-py's
``client.swarm``, ``client.services``, ``client.nodes``). The CLI is a thin layer on these.

Changes are written to the cluster store under the cluster lock, then the manager is woken to
act on them; only ``Services.remove`` and ``Swarm.leave`` act directly (they must leave nothing
behind even if no manager runs).
"""
from __future__ import annotations

import copy
import socket
import time
from typing import Any, Iterator

from dockyard.cluster import manager, spec as specs
from dockyard.cluster.agent import INGRESS_LABEL, INGRESS_NETWORK, Agent
from dockyard.cluster.store import ClusterStore, NotInSwarm, ServiceRecord, Task, new_id, now
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

ALREADY_IN_SWARM = ('This node is already part of a swarm. Use "docker swarm leave" to leave this '
                    "swarm and join another one.")
NOT_IN_SWARM = "This node is not part of a swarm"
LEAVE_AS_MANAGER = ("You are attempting to leave the swarm on a node that is participating as a manager. "
                    "Removing the last manager erases all current state of the swarm. Use `--force` to "
                    "ignore this message.")


class Swarm:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.store = ClusterStore(client.state)

    def init(self) -> Any:
        """Make this host a single-node swarm (manager and agent) and start the manager."""
        with self.store.lock():
            if self.store.swarm() is not None:
                raise Conflict(ALREADY_IN_SWARM)
            Agent(self.client, "").ensure_network()
            info = self.store.create_swarm(socket.gethostname())
        manager.start(self.client)
        return info

    def leave(self, force: bool = False) -> None:
        """Stop the manager, remove every service (tasks, published ports) and the ingress."""
        if self.store.swarm() is None:
            raise Conflict(NOT_IN_SWARM)
        if not force:
            raise Conflict(LEAVE_AS_MANAGER)
        manager.stop(self.client)
        services = Services(self.client)
        with self.store.lock():
            for svc in self.store.services():
                services._remove_locked(svc)
            services.ingress.remove_all()
            for cid in services.agent.task_containers().values():
                services.agent.remove(cid)
            self.store.delete_swarm()
        try:
            net = self.client.networks.get(INGRESS_NETWORK)
            if (net.labels or {}).get(INGRESS_LABEL) == "true":
                self.client.networks.remove(INGRESS_NETWORK)
        except DockyardError:
            pass

    def inspect(self) -> dict[str, Any]:
        info = self.store.swarm()
        if info is None:
            raise NotInSwarm(NOT_IN_SWARM)
        return {"ID": info.id, "Version": {"Index": 1}, "CreatedAt": info.created, "UpdatedAt": info.updated,
                "Spec": {"Name": "default", "Labels": {}, "Orchestration": {"TaskHistoryRetentionLimit": 5}}}


class Nodes:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.store = ClusterStore(client.state)

    def list(self) -> list[dict[str, Any]]:
        """This cluster's nodes as docker's Node objects (one: the manager is the agent)."""
        from dockyard import __version__

        info = self.store.require_swarm()
        alive = manager.running(self.client) is not None
        return [{
            "ID": info.node_id, "Version": {"Index": 1}, "CreatedAt": info.created, "UpdatedAt": info.updated,
            "Spec": {"Role": "manager", "Availability": "active", "Labels": {}},
            "Description": {"Hostname": info.hostname, "Engine": {"EngineVersion": __version__}},
            "Status": {"State": "ready" if alive else "down", "Addr": "127.0.0.1"},
            "ManagerStatus": {"Leader": True, "Reachability": "reachable" if alive else "unreachable",
                              "Addr": "127.0.0.1:2377"},
        }]


class Services:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.store = ClusterStore(client.state)

    @property
    def ingress(self) -> Any:
        from dockyard.cluster.ingress import Ingress

        return Ingress(self.client)

    @property
    def agent(self) -> Agent:
        info = self.store.swarm()
        return Agent(self.client, info.node_id if info else "")

    # -- reading ----------------------------------------------------------------------------------
    def list(self, labels: dict[str, str] | None = None) -> list[ServiceRecord]:
        self.store.require_swarm()
        manager.ensure(self.client)  # (after a reboot: the first look brings the cluster back)
        out = self.store.services()
        for key, value in (labels or {}).items():
            out = [s for s in out if (s.spec.get("Labels") or {}).get(key) == value]
        return out

    def get(self, ref: str) -> ServiceRecord:
        self.store.require_swarm()
        manager.ensure(self.client)
        return self.store.find_service(ref)

    def tasks(self, service: ServiceRecord) -> list[Task]:
        return self.store.tasks(service.id)

    def running_count(self, service: ServiceRecord) -> int:
        return sum(1 for t in self.store.tasks(service.id) if t.live and t.state == "running")

    def inspect(self, service: ServiceRecord) -> dict[str, Any]:
        """docker's Service object."""
        ports = specs.ports(service.spec)
        doc: dict[str, Any] = {
            "ID": service.id, "Version": {"Index": service.version}, "CreatedAt": service.created,
            "UpdatedAt": service.updated, "Spec": service.spec}
        if service.previous_spec:
            doc["PreviousSpec"] = service.previous_spec
        doc["Endpoint"] = {"Spec": service.spec.get("EndpointSpec") or {"Mode": "vip"}}
        if ports:
            doc["Endpoint"]["Ports"] = ports
        if service.update_status:
            doc["UpdateStatus"] = {k: v for k, v in service.update_status.items() if not k.startswith("_")}
        return doc

    # -- changing ---------------------------------------------------------------------------------
    def create(self, spec: dict[str, Any]) -> ServiceRecord:
        """Add a service (docker's ServiceSpec); the manager starts its tasks."""
        self.store.require_swarm()
        spec = copy.deepcopy(spec)
        name = spec.get("Name") or _random_name()
        spec["Name"] = name
        specs.check_name(name)
        _check_image(spec)
        with self.store.lock():
            self._check_ports(spec, None)
            stamp = now()
            rec = ServiceRecord(id=new_id(), name=name, spec=spec, version=1, created=stamp, updated=stamp)
            self.store.add_service(rec)
        manager.wake(self.client)
        return rec

    def update(self, ref: str, spec: dict[str, Any]) -> ServiceRecord:
        """Replace a service's spec. A changed task template starts a rolling update."""
        self.store.require_swarm()
        with self.store.lock():
            rec = self.store.find_service(ref)
            if spec.get("Name", rec.name) != rec.name:
                raise InvalidArgument("rpc error: code = Unimplemented desc = renaming services is not supported")
            spec = copy.deepcopy(spec)
            spec["Name"] = rec.name
            _check_image(spec)
            self._check_ports(spec, rec.id)
            if specs.task_hash(spec) != specs.task_hash(rec.spec):
                rec.update_status = {"State": "updating", "StartedAt": now(), "Message": "update in progress"}
            rec.previous_spec, rec.spec = rec.spec, spec
            rec.version += 1
            rec.updated = now()
            self.store.save_service(rec)  # (the manager rewrites the published ports)
        manager.wake(self.client)
        return rec

    def rollback(self, ref: str) -> ServiceRecord:
        """Go back to the spec before the last update (docker's ``service rollback``)."""
        rec = self.get(ref)
        if not rec.previous_spec:
            raise InvalidArgument(f"service {rec.name} does not have a previous spec")
        return self.update(rec.id, rec.previous_spec)

    def scale(self, ref: str, replicas: int) -> ServiceRecord:
        rec = self.get(ref)
        if specs.mode_name(rec.spec) != "replicated":
            raise InvalidArgument("scale can only be used with replicated or replicated-job mode")
        spec = copy.deepcopy(rec.spec)
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        return self.update(rec.id, spec)

    def remove(self, ref: str) -> None:
        """Remove a service now: its published ports, its task containers, its records."""
        self.store.require_swarm()
        with self.store.lock():
            self._remove_locked(self.store.find_service(ref))

    def _remove_locked(self, rec: ServiceRecord) -> None:
        self.ingress.remove(rec.id)  # first: no new connection reaches a task being removed
        agent = self.agent
        for t in self.store.tasks(rec.id):
            if t.container_id:
                agent.remove(t.container_id)
        self.store.delete_service(rec.id)

    def _check_ports(self, spec: dict[str, Any], own_id: str | None) -> None:
        """A published port is the cluster's: refuse one another service (or another dockyard
        container, any state root) already has."""
        from dockyard.network.firewall import published_host_ports

        wanted = [(p.get("Protocol", "tcp"), int(p["PublishedPort"])) for p in specs.ports(spec)]
        seen = set()
        for proto, port in wanted:
            if (proto, port) in seen:
                raise InvalidArgument("rpc error: code = InvalidArgument desc = EndpointSpec: duplicate published ports provided")
            seen.add((proto, port))
        for other in self.store.services():
            if other.id == own_id:
                continue
            for p in specs.ports(other.spec):
                if (p.get("Protocol", "tcp"), int(p["PublishedPort"])) in seen:
                    raise InvalidArgument(f"rpc error: code = InvalidArgument desc = port '{p['PublishedPort']}' is already "
                                          f"in use by service '{other.name}' ({other.id}) as an ingress port")
        own = {(p.get("Protocol", "tcp"), int(p["PublishedPort"])) for p in specs.ports(
            self.store.find_service(own_id).spec)} if own_id else set()
        taken = {(proto, port) for proto, _, port in published_host_ports()}
        for proto, port in wanted:
            if (proto, port) in taken and (proto, port) not in own:
                raise InvalidArgument(f"rpc error: code = InvalidArgument desc = port '{port}' is already in use")

    # -- waiting ----------------------------------------------------------------------------------
    def converged(self, rec: ServiceRecord) -> tuple[int, int, bool, bool]:
        """(tasks running, replicas wanted, converged?, every running task behind the balancer?)

        Converged is docker's meaning: the wanted number of tasks of the current spec run and
        nothing else is left. "Ready" is ours: they also answer on the published ports."""
        rec = self.store.find_service(rec.id)
        tasks = self.store.tasks(rec.id)
        want = specs.replicas(rec.spec)
        current = specs.task_hash(rec.spec)
        has_ports = bool(specs.ports(rec.spec))
        running = [t for t in tasks if t.live and t.state == "running" and t.spec_hash == current]
        leftovers = [t for t in tasks if not t.terminal and (t.spec_hash != current or t.slot > want)]
        updating = (rec.update_status or {}).get("State") == "updating"
        done = len(running) == want and not leftovers and not updating
        return len(running), want, done, all(t.ready for t in running) or not has_ports

    def wait_converged(self, rec: ServiceRecord, timeout: float = 120.0,
                       ready_grace: float = 15.0) -> tuple[int, int, bool]:
        """Wait until the service converges, ``timeout`` passes, or one of its current tasks
        could not even be created (a missing image...: see :meth:`task_error`). Once converged,
        waits up to ``ready_grace`` more for the tasks to be behind the published ports, so
        that a connection made right after this returns reaches them."""
        deadline = time.monotonic() + timeout
        converged_at = None
        while True:
            running, want, done, ready = self.converged(rec)
            now_ = time.monotonic()
            if done:
                converged_at = converged_at or now_
                if ready or now_ - converged_at > ready_grace:
                    return running, want, True
            else:
                converged_at = None
            if now_ > deadline or self.task_error(rec):
                return running, want, done
            time.sleep(0.1)

    def task_error(self, rec: ServiceRecord) -> str:
        """The error of the newest rejected task of the service's current spec ("" if none)."""
        rec = self.store.find_service(rec.id)
        current = specs.task_hash(rec.spec)
        rejected = [t for t in self.store.tasks(rec.id) if t.state == "rejected" and t.spec_hash == current]
        return max(rejected, key=lambda t: t.since).err if rejected else ""

    # -- logs -------------------------------------------------------------------------------------
    def logs(self, rec: ServiceRecord, timestamps: bool = False, tail: str = "all",
             follow: bool = False, poll: float = 0.5) -> Iterator[tuple[Task, int, bytes]]:
        """(task, stream, line) for every line of every task whose container still exists,
        oldest first across tasks (lines keep their timestamps when ``timestamps``). With
        ``follow``, goes on with new lines, and new tasks, until the service is removed."""
        printed: dict[str, str] = {}  # container -> timestamp of the last line given
        while True:
            batch: list[tuple[str, Task, int, bytes]] = []
            try:
                tasks = self.store.tasks(rec.id)
                self.store.find_service(rec.id)
            except NotFound:
                return
            for t in tasks:
                if t.container_id:
                    batch += self._new_lines(t, tail if t.container_id not in printed else "all", printed)
            batch.sort(key=lambda x: x[0])
            for stamp, t, stream, line in batch:
                yield t, stream, line if timestamps else line.partition(b" ")[2]
            if not follow:
                return
            time.sleep(poll)

    def _new_lines(self, t: Task, tail: str, printed: dict[str, str]) -> list[tuple[str, Task, int, bytes]]:
        cid = str(t.container_id)
        try:
            entries = list(self.client.containers.logs(cid, timestamps=True, tail=tail))
        except NotFound:
            printed.setdefault(cid, "")
            return []
        last = printed.get(cid, "")
        out = []
        for stream, data in entries:
            for line in data.splitlines(keepends=True):
                stamp = line.partition(b" ")[0].decode(errors="replace")
                if stamp > last:
                    out.append((stamp, t, stream, line))
        printed[cid] = max([last, *(o[0] for o in out)])
        return out


def _check_image(spec: dict[str, Any]) -> None:
    from dockyard.image.reference import parse

    image = specs.container_spec(spec).get("Image")
    if not image:
        raise InvalidArgument("rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided")
    parse(image)  # a malformed reference is refused now, not by every task


_ADJ = ("admiring", "brave", "calm", "eager", "gifted", "happy", "jolly", "keen", "nifty", "quirky")
_NOUN = ("babbage", "curie", "darwin", "euler", "hopper", "lovelace", "noether", "turing", "wright")


def _random_name() -> str:
    import random

    return f"{random.choice(_ADJ)}_{random.choice(_NOUN)}"
