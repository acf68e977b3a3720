"""The state root: where every piece of dockyard keeps its files, and the shared metadata DB.

One directory (default ``/var/lib/dockyard``; ``--root`` or ``DOCKYARD_ROOT`` override it) holds
everything, so that tests and parallel users can each have their own. Each subsystem gets a
sub-directory named after it; metadata that needs transactions across processes lives in one
SQLite database in WAL mode (readers never block the writer; a crash loses no committed row).
"""
from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEFAULT_ROOT = "/var/lib/dockyard"


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. On a brand-new database two processes may race for the switch and SQLite
    reports "database is locked" without waiting on the busy timeout: retry for a while."""
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The state root chosen by argument, then ``DOCKYARD_ROOT``, then the default."""
    if root is None:
        root = os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT
    return Path(root).absolute()


_OPEN_ROOTS: "weakref.WeakSet[StateRoot]" = weakref.WeakSet()


def _close_before_fork() -> None:
    """SQLite forbids carrying an open connection across fork(): the child's *new* connections
    to the same file inherit its lock bookkeeping and can lose committed writes. Close the
    forking thread's connections; they reopen on next use."""
    for state in list(_OPEN_ROOTS):
        state.close()


os.register_at_fork(before=_close_before_fork)


class StateRoot:
    """Paths under the state root and a per-thread connection to the metadata database."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_root(root)
        self._local = threading.local()
        self._schemas: set[str] = set()
        _OPEN_ROOTS.add(self)

    def dir(self, *parts: str, create: bool = True) -> Path:
        """A sub-directory of the root (created on first use, mode 0700 like docker's)."""
        p = self.path.joinpath(*parts)
        if create and not p.is_dir():
            p.mkdir(parents=True, exist_ok=True, mode=0o700)
        return p

    @property
    def db_path(self) -> Path:
        return self.path / "metadata.db"

    def db(self, schema: str | None = None) -> sqlite3.Connection:
        """This thread's connection to the metadata DB (WAL, autocommit, 30 s busy timeout).

        ``schema`` (a script of ``CREATE ... IF NOT EXISTS``) is run the first time this process
        asks for it: each subsystem passes its own tables and never thinks about it again."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o711)
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        if schema is not None and schema not in self._schemas:
            conn.executescript(schema)
            self._schemas.add(schema)
        return conn

    @contextmanager
    def transaction(self, schema: str | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction on this thread's connection (BEGIN IMMEDIATE: concurrent
        writers queue up on the busy timeout instead of failing half-way)."""
        conn = self.db(schema)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
