"""Network records in the metadata DB: networks, sandboxes (a container's netns), endpoints.

A sandbox row is written *before* the namespace is made and an endpoint row *before* its veth,
so ``release`` can always find and undo what a crashed ``attach`` started.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from dockyard.errors import Conflict, NotFound
from dockyard.state import StateRoot

SCHEMA = """
CREATE TABLE IF NOT EXISTS net_networks (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL,
  subnet TEXT, gateway TEXT, internal INTEGER NOT NULL DEFAULT 0,
  attachable INTEGER NOT NULL DEFAULT 0, builtin INTEGER NOT NULL DEFAULT 0,
  auto_subnet INTEGER NOT NULL DEFAULT 0, bridge TEXT,
  labels TEXT NOT NULL DEFAULT '{}', options TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL,
  ipam TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS net_sandboxes (
  container_id TEXT PRIMARY KEY, name TEXT, hostname TEXT, mode TEXT NOT NULL, netns TEXT,
  owns_netns INTEGER NOT NULL DEFAULT 1, ports TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS net_endpoints (
  container_id TEXT NOT NULL, network_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, name TEXT,
  aliases TEXT NOT NULL DEFAULT '[]', ip TEXT NOT NULL, mac TEXT NOT NULL, veth TEXT NOT NULL,
  ifname TEXT NOT NULL, PRIMARY KEY (container_id, network_id));
CREATE TABLE IF NOT EXISTS net_connections (
  container_id TEXT NOT NULL, network_id TEXT NOT NULL, aliases TEXT NOT NULL DEFAULT '[]',
  ip TEXT, position INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (container_id, network_id));
"""

BUILTIN = (("bridge", "bridge"), ("host", "host"), ("none", "null"))


def now() -> str:
    """docker's ``Created``: RFC 3339 with nanoseconds, trailing zeros dropped."""
    from dockyard.timeutil import now as rfc3339_now

    return rfc3339_now()


def new_id() -> str:
    return os.urandom(32).hex()  # what secrets.token_hex does, without importing secrets


@dataclass
class Network:
    """A network record (bridge networks, and the built-in ``host`` and ``none``)."""

    id: str
    name: str
    driver: str
    subnet: str | None = None
    gateway: str | None = None
    internal: bool = False
    attachable: bool = False
    builtin: bool = False
    auto_subnet: bool = False
    bridge: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    #: what the user asked of IPAM beyond the subnet: ``ip_range``, ``gateway_explicit``
    #: (docker shows a gateway in ``IPAM.Config`` only when it was given or chosen by it)
    ipam: dict[str, Any] = field(default_factory=dict)

    @property
    def ip_range(self) -> str | None:
        return self.ipam.get("ip_range") or None

    @property
    def config_only(self) -> bool:
        """docker's configuration network (``--config-only``): a record, never a bridge."""
        return bool(self.ipam.get("config_only"))

    @property
    def is_default_bridge(self) -> bool:
        return self.builtin and self.name == "bridge"

    @property
    def user_defined(self) -> bool:
        """User networks get the embedded DNS; the default bridge does not (as in docker)."""
        return self.driver in ("bridge", "macvlan") and not self.builtin

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "Network":
        return cls(r["id"], r["name"], r["driver"], r["subnet"], r["gateway"], bool(r["internal"]),
                   bool(r["attachable"]), bool(r["builtin"]), bool(r["auto_subnet"]), r["bridge"],
                   json.loads(r["labels"]), json.loads(r["options"]), r["created"],
                   json.loads(r["ipam"] or "{}"))


@dataclass
class Endpoint:
    """A container's interface on one network: its address, MAC and veth."""

    container_id: str
    network_id: str
    endpoint_id: str
    name: str | None
    aliases: list[str]
    ip: str
    mac: str
    veth: str
    ifname: str

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "Endpoint":
        return cls(r["container_id"], r["network_id"], r["endpoint_id"], r["name"],
                   json.loads(r["aliases"]), r["ip"], r["mac"], r["veth"], r["ifname"])


@dataclass
class Sandbox:
    """A container's network namespace and what was set up in it (ports, extra hosts)."""

    container_id: str
    name: str | None
    hostname: str | None
    mode: str
    netns: str | None
    owns_netns: bool
    ports: list[dict[str, Any]]
    created: str

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "Sandbox":
        return cls(r["container_id"], r["name"], r["hostname"], r["mode"], r["netns"],
                   bool(r["owns_netns"]), json.loads(r["ports"]), r["created"])


class NetworkStore:
    def __init__(self, state: StateRoot) -> None:
        self.state = state
        self._ready = False

    @property
    def db(self) -> sqlite3.Connection:
        conn = self.state.db(SCHEMA)
        if not self._ready:
            self._ready = True
            self._migrate(conn)
            self._ensure_builtins(conn)
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, with the schema in place."""
        self.db  # noqa: B018 - creates the tables on first use
        with self.state.transaction() as conn:
            yield conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Roots made before the ``ipam`` column get it (empty: subnet and gateway only)."""
        cols = {r[1] for r in conn.execute("PRAGMA table_info(net_networks)")}
        if "ipam" not in cols:
            try:
                conn.execute("ALTER TABLE net_networks ADD COLUMN ipam TEXT NOT NULL DEFAULT '{}'")
            except sqlite3.OperationalError:  # another process added it first
                pass

    def _ensure_builtins(self, conn: sqlite3.Connection) -> None:
        have = {r[0] for r in conn.execute("SELECT name FROM net_networks WHERE builtin=1")}
        for name, driver in BUILTIN:
            if name not in have:
                conn.execute("INSERT OR IGNORE INTO net_networks (id, name, driver, builtin, "
                             "auto_subnet, created) VALUES (?, ?, ?, 1, ?, ?)",
                             (new_id(), name, driver, 1 if driver == "bridge" else 0, now()))

    # networks ---------------------------------------------------------------------------------
    def networks(self) -> list[Network]:
        rows = self.db.execute("SELECT * FROM net_networks ORDER BY builtin DESC, created")
        return [Network.from_row(r) for r in rows]

    def find_network(self, ref: str) -> Network:
        """By full ID, exact name, then unique ID prefix (docker's order)."""
        conn = self.db
        row = conn.execute("SELECT * FROM net_networks WHERE id=? OR name=? "
                           "ORDER BY id=? DESC LIMIT 1", (ref, ref, ref)).fetchone()
        if row is None and ref and all(c in "0123456789abcdef" for c in ref):
            rows = conn.execute("SELECT * FROM net_networks WHERE id LIKE ?",
                                (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise Conflict(f"network {ref} is ambiguous ({len(rows)} matches found)")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return Network.from_row(row)

    def insert_network(self, conn: sqlite3.Connection, n: Network) -> None:
        try:
            conn.execute(
                "INSERT INTO net_networks (id, name, driver, subnet, gateway, internal, attachable,"
                " builtin, auto_subnet, bridge, labels, options, created, ipam) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (n.id, n.name, n.driver, n.subnet, n.gateway, int(n.internal), int(n.attachable),
                 int(n.builtin), int(n.auto_subnet), n.bridge, json.dumps(n.labels),
                 json.dumps(n.options), n.created, json.dumps(n.ipam)))
        except sqlite3.IntegrityError:
            raise Conflict(f"network with name {n.name} already exists") from None

    def set_addressing(self, conn: sqlite3.Connection, n: Network) -> None:
        conn.execute("UPDATE net_networks SET subnet=?, gateway=?, bridge=? WHERE id=?",
                     (n.subnet, n.gateway, n.bridge, n.id))

    def delete_network(self, conn: sqlite3.Connection, network_id: str) -> None:
        conn.execute("DELETE FROM net_connections WHERE network_id=?", (network_id,))
        conn.execute("DELETE FROM net_networks WHERE id=?", (network_id,))

    # endpoints ---------------------------------------------------------------------------------
    def endpoints(self, network_id: str | None = None,
                  container_id: str | None = None) -> list[Endpoint]:
        sql, args = "SELECT * FROM net_endpoints WHERE 1=1", []
        if network_id:
            sql += " AND network_id=?"
            args.append(network_id)
        if container_id:
            sql += " AND container_id=?"
            args.append(container_id)
        return [Endpoint.from_row(r) for r in self.db.execute(sql + " ORDER BY rowid", args)]

    def insert_endpoint(self, conn: sqlite3.Connection, e: Endpoint) -> None:
        conn.execute("INSERT INTO net_endpoints (container_id, network_id, endpoint_id, name, "
                     "aliases, ip, mac, veth, ifname) VALUES (?,?,?,?,?,?,?,?,?)",
                     (e.container_id, e.network_id, e.endpoint_id, e.name, json.dumps(e.aliases),
                      e.ip, e.mac, e.veth, e.ifname))

    def delete_endpoint(self, container_id: str, network_id: str) -> None:
        self.db.execute("DELETE FROM net_endpoints WHERE container_id=? AND network_id=?",
                        (container_id, network_id))

    # sandboxes ---------------------------------------------------------------------------------
    def sandbox(self, container_id: str) -> Sandbox | None:
        row = self.db.execute("SELECT * FROM net_sandboxes WHERE container_id=?",
                              (container_id,)).fetchone()
        return Sandbox.from_row(row) if row else None

    def sandboxes(self) -> list[Sandbox]:
        return [Sandbox.from_row(r) for r in self.db.execute("SELECT * FROM net_sandboxes")]

    def insert_sandbox(self, conn: sqlite3.Connection, s: Sandbox) -> None:
        conn.execute("INSERT OR REPLACE INTO net_sandboxes (container_id, name, hostname, mode, "
                     "netns, owns_netns, ports, created) VALUES (?,?,?,?,?,?,?,?)",
                     (s.container_id, s.name, s.hostname, s.mode, s.netns, int(s.owns_netns),
                      json.dumps(s.ports), s.created))

    def set_ports(self, container_id: str, ports: list[dict[str, Any]]) -> None:
        self.db.execute("UPDATE net_sandboxes SET ports=? WHERE container_id=?",
                        (json.dumps(ports), container_id))

    def delete_sandbox(self, container_id: str) -> None:
        self.db.execute("DELETE FROM net_sandboxes WHERE container_id=?", (container_id,))

    # connections (networks a container joins at start) ----------------------------------------
    def connections(self, container_id: str) -> list[tuple[str, list[str], str | None]]:
        rows = self.db.execute("SELECT network_id, aliases, ip FROM net_connections WHERE "
                               "container_id=? ORDER BY position, rowid", (container_id,))
        return [(r[0], json.loads(r[1]), r[2]) for r in rows]

    def connection_positions(self, container_id: str) -> dict[str, int]:
        """network ID -> position: 0 for the network the container was created on, 1 and up
        for those ``network connect`` added."""
        return {r[0]: r[1] for r in self.db.execute(
            "SELECT network_id, position FROM net_connections WHERE container_id=?", (container_id,))}

    def connected_containers(self, network_id: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT container_id FROM net_connections WHERE network_id=?", (network_id,))]

    def put_connection(self, container_id: str, network_id: str, aliases: list[str],
                       ip: str | None, position: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO net_connections (container_id, network_id, "
                        "aliases, ip, position) VALUES (?,?,?,?,?)",
                        (container_id, network_id, json.dumps(aliases), ip, position))

    def delete_connection(self, container_id: str, network_id: str | None = None) -> None:
        if network_id is None:
            self.db.execute("DELETE FROM net_connections WHERE container_id=?", (container_id,))
        else:
            self.db.execute("DELETE FROM net_connections WHERE container_id=? AND network_id=?",
                            (container_id, network_id))
