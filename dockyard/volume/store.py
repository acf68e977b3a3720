"""Volume records in the metadata DB: volumes, which containers use them, and each container's mounts.

``vol_refs`` is what makes ``volume rm`` refuse a volume in use; ``vol_active`` counts the
running users of a volume whose local-driver options need a mount (tmpfs, bind device), so the
mount is made on first use and undone after the last.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from dockyard.state import StateRoot

SCHEMA = """
CREATE TABLE IF NOT EXISTS vol_volumes (
  name TEXT PRIMARY KEY, driver TEXT NOT NULL DEFAULT 'local', labels TEXT, options TEXT,
  anonymous INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vol_refs (
  volume TEXT NOT NULL, container_id TEXT NOT NULL, PRIMARY KEY (volume, container_id));
CREATE TABLE IF NOT EXISTS vol_active (
  volume TEXT NOT NULL, container_id TEXT NOT NULL, PRIMARY KEY (volume, container_id));
CREATE TABLE IF NOT EXISTS vol_containers (
  container_id TEXT PRIMARY KEY, specs TEXT NOT NULL, mounts TEXT NOT NULL);
"""


@dataclass
class Volume:
    name: str
    driver: str = "local"
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    anonymous: bool = False
    created: str = ""
    mountpoint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def inspect(self) -> dict[str, Any]:
        return {"CreatedAt": self.created, "Driver": self.driver, "Labels": self.labels,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options,
                "Scope": "local"}


class VolumeStore:
    def __init__(self, state: StateRoot) -> None:
        self.state = state

    @property
    def db(self) -> sqlite3.Connection:
        return self.state.db(SCHEMA)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, with the schema in place."""
        with self.state.transaction(SCHEMA) as conn:
            yield conn

    @staticmethod
    def _volume(r: sqlite3.Row) -> Volume:
        return Volume(r["name"], r["driver"], json.loads(r["labels"]) if r["labels"] else None,
                      json.loads(r["options"]) if r["options"] else None, bool(r["anonymous"]),
                      r["created"])

    def get(self, name: str) -> Volume | None:
        row = self.db.execute("SELECT * FROM vol_volumes WHERE name=?", (name,)).fetchone()
        return self._volume(row) if row else None

    def all(self) -> list[Volume]:
        return [self._volume(r) for r in self.db.execute("SELECT * FROM vol_volumes ORDER BY name")]

    def insert(self, conn: sqlite3.Connection, v: Volume) -> None:
        conn.execute("INSERT INTO vol_volumes (name, driver, labels, options, anonymous, created) "
                     "VALUES (?,?,?,?,?,?)",
                     (v.name, v.driver, json.dumps(v.labels) if v.labels else None,
                      json.dumps(v.options) if v.options else None, int(v.anonymous), v.created))

    def delete(self, conn: sqlite3.Connection, name: str) -> None:
        conn.execute("DELETE FROM vol_volumes WHERE name=?", (name,))
        conn.execute("DELETE FROM vol_refs WHERE volume=?", (name,))
        conn.execute("DELETE FROM vol_active WHERE volume=?", (name,))

    def refs(self, name: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT container_id FROM vol_refs WHERE volume=? ORDER BY rowid", (name,))]

    def referenced(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT volume FROM vol_refs")}

    def active_users(self, name: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT container_id FROM vol_active WHERE volume=?", (name,))]

    def container(self, container_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        row = self.db.execute("SELECT specs, mounts FROM vol_containers WHERE container_id=?",
                              (container_id,)).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def container_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT container_id FROM vol_containers")]
