"""The build cache: which layer each build step produced, and checksums of context files.

A step's key is computed as docker keys it: the chain of layers it starts from, the
instruction with everything that influences its result (the command, environment, working
directory, user, ...), and for COPY/ADD the checksums of the files it copies. A key maps to the
layer the step produced (or to "no change"). Keys live in ``<root>/build/cache.db``, a small
SQLite file of its own, so a fully cached build reads one file and no image metadata.

Context file checksums are cached by (path, size, mtime, inode, ctime), as BuildKit caches
them: an unchanged file is never read twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY,
    parent_chain TEXT,
    diff_id TEXT,              -- NULL: the step left the filesystem as it was
    digest TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    media_type TEXT,
    description TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    usage_count INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS file_sums (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_mounts (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
"""


class StepRecord:
    """One cached step: the layer it made (``diff_id`` None: it changed nothing)."""

    __slots__ = ("key", "parent_chain", "diff_id", "digest", "size", "media_type", "description", "created",
                 "last_used", "usage_count")

    def __init__(self, key: str, parent_chain: str | None, diff_id: str | None, digest: str | None, size: int,
                 media_type: str | None, description: str, created: float, last_used: float,
                 usage_count: int) -> None:
        self.key = key
        self.parent_chain = parent_chain
        self.diff_id = diff_id
        self.digest = digest
        self.size = size
        self.media_type = media_type
        self.description = description
        self.created = created
        self.last_used = last_used
        self.usage_count = usage_count

    @property
    def empty(self) -> bool:
        return self.diff_id is None


def child_chain_id(parent: str | None, diff_id: str) -> str:
    """The OCI chain ID of ``diff_id`` on top of ``parent`` (as dockyard.snapshot.store computes
    it; repeated here so that a fully cached build never imports the snapshot machinery)."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def step_key(parent_chain: str | None, definition: dict[str, Any]) -> str:
    """The cache key of a step on top of ``parent_chain``."""
    doc = json.dumps({"v": 1, "parent": parent_chain, "op": definition}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


class BuildCache:
    """``<root>/build/cache.db``: step results and file checksums. Thread-safe."""

    def __init__(self, build_dir: Path) -> None:
        self.dir = build_dir
        self.path = build_dir / "cache.db"
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._touched: dict[str, float] = {}
        self._sums_pending: list[tuple[str, int, int, int, int, str]] = []
        self._sums: dict[str, tuple[int, int, int, int, str]] | None = None
        self._sums_prefix = ""

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("SELECT 1 FROM steps LIMIT 0")
            except sqlite3.OperationalError:
                conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            self.flush()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- steps ---------------------------------------------------------------------------------
    def get(self, key: str) -> StepRecord | None:
        with self._lock:
            row = self._db().execute("SELECT * FROM steps WHERE key = ?", (key,)).fetchone()
        return StepRecord(**dict(row)) if row is not None else None

    def touch(self, key: str) -> None:
        """Record a cache hit (written with the next flush)."""
        self._touched[key] = time.time()

    def put(self, key: str, parent_chain: str | None, diff_id: str | None, digest: str | None, size: int,
            media_type: str | None, description: str) -> StepRecord:
        now = time.time()
        with self._lock:
            self._db().execute(
                "INSERT INTO steps (key, parent_chain, diff_id, digest, size, media_type, description, created,"
                " last_used, usage_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT(key) DO UPDATE SET"
                " diff_id = excluded.diff_id, digest = excluded.digest, size = excluded.size,"
                " media_type = excluded.media_type, created = excluded.created, last_used = excluded.last_used",
                (key, parent_chain, diff_id, digest, size, media_type, description[:300], now, now))
        rec = self.get(key)
        assert rec is not None
        return rec

    def delete(self, key: str) -> None:
        with self._lock:
            self._db().execute("DELETE FROM steps WHERE key = ?", (key,))

    def records(self) -> list[StepRecord]:
        with self._lock:
            rows = self._db().execute("SELECT * FROM steps ORDER BY last_used DESC").fetchall()
        return [StepRecord(**dict(r)) for r in rows]

    # -- file checksums ------------------------------------------------------------------------
    def file_digest(self, path: str, st: os.stat_result, remember: bool = True) -> str:
        """sha256 of a regular file's content, from the cache when its stat is unchanged.
        ``remember=False`` for files that will not be seen again (an extracted tar context)."""
        if not remember or not path.isprintable() and not _encodable(path):
            return _hash_file(path)
        if self._sums is not None and path.startswith(self._sums_prefix):
            row = self._sums.get(path)
        else:
            with self._lock:
                row = self._db().execute("SELECT size, mtime_ns, ino, ctime_ns, digest FROM file_sums WHERE path = ?",
                                         (path,)).fetchone()
        if row is not None and (row[0], row[1], row[2], row[3]) == (st.st_size, st.st_mtime_ns, st.st_ino,
                                                                    st.st_ctime_ns):
            return row[4]
        digest = _hash_file(path)
        self._sums_pending.append((path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, digest))
        return digest

    def prefetch(self, directory: str) -> None:
        """Load the checksums of every file under ``directory`` at once (a big context then
        costs one query, not one per file)."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            rows = self._db().execute("SELECT path, size, mtime_ns, ino, ctime_ns, digest FROM file_sums"
                                      " WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0")).fetchall()
        self._sums = {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}
        self._sums_prefix = prefix

    # -- cache mounts --------------------------------------------------------------------------
    def cache_mount_dir(self, mount_id: str) -> Path:
        h = hashlib.sha256(mount_id.encode()).hexdigest()[:32]
        d = self.dir / "mounts" / h
        d.mkdir(parents=True, exist_ok=True, mode=0o755)
        now = time.time()
        with self._lock:
            self._db().execute("INSERT INTO cache_mounts (id, created, last_used) VALUES (?, ?, ?)"
                               " ON CONFLICT(id) DO UPDATE SET last_used = excluded.last_used", (mount_id, now, now))
        return d

    def cache_mounts(self) -> list[tuple[str, Path, float]]:
        with self._lock:
            rows = self._db().execute("SELECT id, last_used FROM cache_mounts").fetchall()
        return [(r[0], self.dir / "mounts" / hashlib.sha256(r[0].encode()).hexdigest()[:32], r[1]) for r in rows]

    def forget_cache_mount(self, mount_id: str) -> None:
        with self._lock:
            self._db().execute("DELETE FROM cache_mounts WHERE id = ?", (mount_id,))

    def clear_file_sums(self) -> None:
        with self._lock:
            self._db().execute("DELETE FROM file_sums")

    # -- batching --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the hits and checksums gathered during a build in one transaction."""
        with self._lock:
            if not self._touched and not self._sums_pending:
                return
            db = self._db()
            db.execute("BEGIN")
            try:
                for key, when in self._touched.items():
                    db.execute("UPDATE steps SET last_used = ?, usage_count = usage_count + 1 WHERE key = ?",
                               (when, key))
                db.executemany("INSERT OR REPLACE INTO file_sums VALUES (?, ?, ?, ?, ?, ?)", self._sums_pending)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._touched.clear()
            self._sums_pending.clear()
            self._sums = None


def _encodable(path: str) -> bool:
    """A name with undecodable bytes (surrogate escapes) cannot be a TEXT key in SQLite."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def tree_checksum(entries: Iterable[tuple[str, str, int, str]]) -> str:
    """One digest for a set of copied entries: (name, kind, permission bits, link or content)."""
    h = hashlib.sha256()
    for name, kind, mode, value in entries:
        h.update(f"{name}\0{kind}\0{mode:o}\0{value}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()
