"""The cluster state in the state root's SQLite DB: the swarm, its services and their tasks.

The CLI (through :mod:`dockyard.cluster.service`) writes what is *wanted* (services and their
specs); the manager writes what *is* (tasks and their observed state). Both take
:meth:`ClusterStore.lock` around a change, so a reconcile pass never sees a half-applied
``service rm`` and a CLI command never races a pass that is creating a task's container.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import string
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from dockyard.errors import DockyardError, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_swarm (
    id TEXT PRIMARY KEY, node_id TEXT NOT NULL, hostname TEXT NOT NULL,
    created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cluster_services (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, previous_spec TEXT,
    version INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    update_status TEXT);
CREATE TABLE IF NOT EXISTS cluster_tasks (
    id TEXT PRIMARY KEY, service_id TEXT NOT NULL, slot INTEGER NOT NULL,
    spec_hash TEXT NOT NULL, image TEXT NOT NULL, desired TEXT NOT NULL, state TEXT NOT NULL,
    err TEXT NOT NULL DEFAULT '', container_id TEXT, ip TEXT, ready INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER, created TEXT NOT NULL, since TEXT NOT NULL,
    drain_at REAL, term_at REAL);
CREATE INDEX IF NOT EXISTS cluster_tasks_service ON cluster_tasks(service_id);
"""

#: task states after which a task never runs again (swarm's)
TERMINAL = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                 "to connect this node to swarm and try again.")


class NotInSwarm(DockyardError):
    """A cluster command on a node that is not part of a swarm (docker's words)."""

    def __init__(self, message: str = NOT_A_MANAGER) -> None:
        super().__init__(message)


def new_id() -> str:
    """A swarm object ID: 25 characters of [a-z0-9], as swarmkit's identity.NewID."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(25))


def now() -> str:
    """RFC 3339 with nanoseconds, UTC (docker's timestamps)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


@dataclass
class SwarmInfo:
    id: str
    node_id: str
    hostname: str
    created: str
    updated: str


@dataclass
class ServiceRecord:
    id: str
    name: str
    spec: dict[str, Any]
    version: int
    created: str
    updated: str
    previous_spec: dict[str, Any] | None = None
    update_status: dict[str, Any] | None = None


@dataclass
class Task:
    id: str
    service_id: str
    slot: int
    spec_hash: str
    image: str
    desired: str  # "running" or "shutdown"
    state: str  # swarm's task states: new, starting, running, complete, failed, shutdown, ...
    created: str
    since: str  # when ``state`` was entered
    err: str = ""
    container_id: str | None = None
    ip: str | None = None
    ready: bool = False  # running, healthy and answering: gets load-balanced traffic
    exit_code: int | None = None
    drain_at: float | None = None  # taken out of the balancer at (time.time())
    term_at: float | None = None  # stop signal sent at
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def live(self) -> bool:
        """Wanted running and not finished: what counts toward the replica count."""
        return self.desired == "running" and not self.terminal


_TASK_COLUMNS = ("id", "service_id", "slot", "spec_hash", "image", "desired", "state", "err",
                 "container_id", "ip", "ready", "exit_code", "created", "since", "drain_at",
                 "term_at")


class ClusterStore:
    """Rows of the cluster tables, and the cluster lock."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def _db(self) -> Any:
        return self.state.db(SCHEMA)

    @property
    def dir(self) -> Any:
        return self.state.dir("cluster")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer of the cluster at a time: the manager's pass or a CLI change.

        A POSIX record lock: a container monitor forked while it is held must not inherit it
        (an ``flock`` would be shared with the child). Never nest it in one process."""
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- the swarm ------------------------------------------------------------------------------
    def swarm(self) -> SwarmInfo | None:
        row = self._db().execute("SELECT * FROM cluster_swarm").fetchone()
        return SwarmInfo(**dict(row)) if row else None

    def require_swarm(self) -> SwarmInfo:
        info = self.swarm()
        if info is None:
            raise NotInSwarm()
        return info

    def create_swarm(self, hostname: str) -> SwarmInfo:
        info = SwarmInfo(id=new_id(), node_id=new_id(), hostname=hostname, created=now(), updated=now())
        with self.state.transaction(SCHEMA) as db:
            db.execute("INSERT INTO cluster_swarm VALUES (?,?,?,?,?)",
                       (info.id, info.node_id, info.hostname, info.created, info.updated))
        return info

    def delete_swarm(self) -> None:
        with self.state.transaction(SCHEMA) as db:
            db.execute("DELETE FROM cluster_tasks")
            db.execute("DELETE FROM cluster_services")
            db.execute("DELETE FROM cluster_swarm")

    # -- services -------------------------------------------------------------------------------
    @staticmethod
    def _service(row: Any) -> ServiceRecord:
        return ServiceRecord(id=row["id"], name=row["name"], spec=json.loads(row["spec"]),
                             version=row["version"], created=row["created"], updated=row["updated"],
                             previous_spec=json.loads(row["previous_spec"]) if row["previous_spec"] else None,
                             update_status=json.loads(row["update_status"]) if row["update_status"] else None)

    def services(self) -> list[ServiceRecord]:
        rows = self._db().execute("SELECT * FROM cluster_services ORDER BY name").fetchall()
        return [self._service(r) for r in rows]

    def find_service(self, ref: str) -> ServiceRecord:
        """By full ID, name, or unique ID prefix (docker's lookup order)."""
        db = self._db()
        row = db.execute("SELECT * FROM cluster_services WHERE id=?", (ref,)).fetchone() or \
            db.execute("SELECT * FROM cluster_services WHERE name=?", (ref,)).fetchone()
        if row is None and ref:
            rows = db.execute("SELECT * FROM cluster_services WHERE id LIKE ?", (ref + "%",)).fetchall()
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NotFound(f"service {ref} not found")
        return self._service(row)

    def add_service(self, rec: ServiceRecord) -> None:
        from dockyard.errors import Conflict

        with self.state.transaction(SCHEMA) as db:
            if db.execute("SELECT 1 FROM cluster_services WHERE name=?", (rec.name,)).fetchone():
                raise Conflict(f"rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {rec.name} already exists")
            db.execute("INSERT INTO cluster_services VALUES (?,?,?,?,?,?,?,?)",
                       (rec.id, rec.name, json.dumps(rec.spec), None, rec.version, rec.created,
                        rec.updated, None))

    def save_service(self, rec: ServiceRecord) -> None:
        with self.state.transaction(SCHEMA) as db:
            db.execute("UPDATE cluster_services SET spec=?, previous_spec=?, version=?, updated=?, "
                       "update_status=? WHERE id=?",
                       (json.dumps(rec.spec), json.dumps(rec.previous_spec) if rec.previous_spec else None,
                        rec.version, rec.updated,
                        json.dumps(rec.update_status) if rec.update_status else None, rec.id))

    def delete_service(self, service_id: str) -> None:
        with self.state.transaction(SCHEMA) as db:
            db.execute("DELETE FROM cluster_tasks WHERE service_id=?", (service_id,))
            db.execute("DELETE FROM cluster_services WHERE id=?", (service_id,))

    # -- tasks ----------------------------------------------------------------------------------
    def tasks(self, service_id: str | None = None) -> list[Task]:
        db = self._db()
        cols = ", ".join(_TASK_COLUMNS)
        if service_id is None:
            rows = db.execute(f"SELECT {cols} FROM cluster_tasks ORDER BY slot, created").fetchall()
        else:
            rows = db.execute(f"SELECT {cols} FROM cluster_tasks WHERE service_id=? ORDER BY slot, created",
                              (service_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["ready"] = bool(d["ready"])
            out.append(Task(**d))
        return out

    def save_task(self, task: Task) -> None:
        values = [getattr(task, c) for c in _TASK_COLUMNS]
        values[_TASK_COLUMNS.index("ready")] = int(task.ready)
        with self.state.transaction(SCHEMA) as db:
            db.execute(f"INSERT OR REPLACE INTO cluster_tasks ({', '.join(_TASK_COLUMNS)}) "
                       f"VALUES ({', '.join('?' for _ in _TASK_COLUMNS)})", values)

    def delete_tasks(self, ids: list[str]) -> None:
        if not ids:
            return
        with self.state.transaction(SCHEMA) as db:
            db.executemany("DELETE FROM cluster_tasks WHERE id=?", [(i,) for i in ids])
