"""The snapshot store (``client.snapshots``): unpacked layers by chain ID, writable layers by key.

Layout under ``<root>/snapshots``::

    <chain hex>/fs/          one committed layer, as overlayfs reads a lower dir
    <chain hex>/meta.json    its parent, diff_id and size (lets the DB index be rebuilt)
    active/<key hash>/upper  an active (writable) snapshot: overlay upper and work dirs
    active/<key hash>/work
    l/<16 hex>               short symlinks to fs dirs, for overlay mounts of many layers
    .tmp/                    unpacks in progress and removals; never read by anyone else
    .locks/<chain hex>       serialises unpacks of the same layer across processes

The same lifecycle as the content store: a layer is unpacked into ``.tmp``, its uncompressed
digest checked against the diff_id, and only then renamed into place, so a reader never sees
half a layer and a crash leaves only a ``.tmp`` dir that ``gc`` removes. Metadata lives in the
state DB (tables ``snapshot_layers``, ``snapshot_active``, ``snapshot_mounts``); the directory is
the source of truth for "is it complete", the DB for relations and sizes.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import time
import contextlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from dockyard.content import digest as dg
from dockyard.content import durability
from dockyard.content.store import VerifyingReader, _pid_alive
from dockyard.errors import Conflict, DigestMismatch, DockyardError, NotFound
from dockyard.snapshot import mounts

if TYPE_CHECKING:  # pragma: no cover - unpacking (tarfile...) is imported by the methods that unpack
    from dockyard.client import Client
    from dockyard.content.store import Lease
    from dockyard.snapshot.staging import StagingArea
    from dockyard.snapshot.unpack import UnpackPolicy

def unpack_layer(*args: Any, **kwargs: Any) -> Any:
    """:func:`dockyard.snapshot.unpack.unpack_layer`, imported on first use: tarfile and the
    rest are not needed to run a container, only to unpack one."""
    from dockyard.snapshot.unpack import unpack_layer as unpack

    return unpack(*args, **kwargs)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_layers (
    chain_id TEXT PRIMARY KEY,
    parent TEXT,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshot_layers_parent ON snapshot_layers (parent);
CREATE TABLE IF NOT EXISTS snapshot_active (
    key TEXT PRIMARY KEY,
    parent TEXT,
    dir TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot_mounts (
    key TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (key, target)
);
"""


def chain_id(diff_ids: list[str]) -> str:
    """The OCI ChainID of a stack of layers: the first diff_id, then
    ``sha256(parent_chain + " " + diff_id)`` for each layer above it."""
    if not diff_ids:
        raise ValueError("chain_id of an empty layer list")
    chain = dg.validate(diff_ids[0])
    for diff_id in diff_ids[1:]:
        chain = dg.from_bytes(f"{chain} {dg.validate(diff_id)}".encode())
    return chain


def child_chain_id(parent: str | None, diff_id: str) -> str:
    """The chain ID of layer ``diff_id`` applied on top of chain ``parent``."""
    return dg.validate(diff_id) if parent is None else dg.from_bytes(f"{dg.validate(parent)} {diff_id}".encode())


@dataclass
class ActiveSnapshot:
    """A writable layer (container rootfs or build step) on top of a committed chain."""

    key: str
    parent: str | None
    upper: Path
    work: Path
    lowerdirs: list[Path]


@dataclass
class SnapshotInfo:
    """One row of :meth:`SnapshotStore.list`. ``chain_id``/``diff_id`` are None for an active
    snapshot and ``key`` for a committed one; an active snapshot's ``size`` is 0 (its upper dir
    changes while it runs: ask :meth:`SnapshotStore.usage`)."""

    chain_id: str | None
    parent: str | None
    diff_id: str | None
    size: int
    kind: str  # "committed" | "active"
    key: str | None
    created: float


def _hex(digest: str) -> str:
    return dg.parse(digest)[1]


def dir_usage(path: Path) -> int:
    """Bytes a directory tree holds, as docker reports a layer's or container's size: the
    apparent size of every non-directory, each hard-linked inode counted once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if st.st_nlink > 1:
                    ino = (st.st_dev, st.st_ino)
                    if ino in seen:
                        continue
                    seen.add(ino)
                total += st.st_size
    return total


class SnapshotStore:
    """Unpacked layers (committed, shared, read-only) and active writable layers."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.state = client.state
        self.root = self.state.dir("snapshots")
        self.tmp_dir = self.root / ".tmp"
        self.locks_dir = self.root / ".locks"
        self.active_dir = self.root / "active"
        self.links_dir = self.root / "l"
        for d in (self.tmp_dir, self.locks_dir, self.active_dir, self.links_dir):
            d.mkdir(mode=0o700, exist_ok=True)
        self.fsync = os.environ.get("DOCKYARD_FSYNC", "1") != "0"
        self._staging: list[StagingArea] = []

    # -- database ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        return self.state.db(_SCHEMA)

    def _tx(self) -> "contextlib.AbstractContextManager[sqlite3.Connection]":
        """A write transaction: checks and changes in it see one consistent state."""
        return self.state.transaction(_SCHEMA)

    def _layer_row(self, cid: str) -> sqlite3.Row | None:
        return self._db().execute("SELECT * FROM snapshot_layers WHERE chain_id = ?", (cid,)).fetchone()

    def _active_row(self, key: str) -> sqlite3.Row | None:
        return self._db().execute("SELECT * FROM snapshot_active WHERE key = ?", (key,)).fetchone()

    # -- paths ------------------------------------------------------------------------------
    def layer_dir(self, cid: str) -> Path:
        return self.root / _hex(cid)

    def fs_dir(self, cid: str) -> Path:
        """The directory holding the files of committed layer ``cid``."""
        return self.layer_dir(cid) / "fs"

    @contextmanager
    def _lock(self, cid: str) -> Iterator[None]:
        """Serialise work on one chain across processes. Only saves duplicate work: correctness
        comes from the atomic rename, so a lock file removed under us does no harm."""
        fd = os.open(self.locks_dir / _hex(cid), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- committed layers -------------------------------------------------------------------
    def has(self, chain_id: str) -> bool:
        """Whether the committed layer ``chain_id`` is present and complete."""
        present = self.fs_dir(chain_id).is_dir()
        if self._layer_row(chain_id) is not None:
            return present
        return present and self._reindex(chain_id)

    def _reindex(self, cid: str) -> bool:
        """A complete layer dir whose DB row is missing (a crash between rename and insert):
        its meta.json says everything the row needs."""
        try:
            meta = json.loads((self.layer_dir(cid) / "meta.json").read_text())
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO snapshot_layers VALUES (?, ?, ?, ?, ?)",
                           (cid, meta["parent"], meta["diff_id"], int(meta["size"]), float(meta["created"])))
        except (OSError, ValueError, KeyError):
            return False
        return True

    def unpack(self, parent: str | None, diff_id: str, blob: BinaryIO, media_type: str = "",
               lease: "Lease | None" = None, policy: UnpackPolicy | None = None) -> tuple[str, int]:
        """Unpack one layer blob on top of chain ``parent``; returns ``(chain_id, size)``.

        Compression (gzip, zstd, bzip2, xz or none) is detected from the blob; the uncompressed
        stream must hash to ``diff_id`` (else DigestMismatch and nothing is kept). Idempotent and
        safe to run from several processes at once. ``lease`` (if given) holds the snapshot from
        before it becomes visible, so that a concurrent ``gc`` never removes it.
        """
        dg.validate(diff_id)
        cid = child_chain_id(parent, diff_id)
        if not self.has(cid):
            if parent is not None and not self.has(parent):
                raise NotFound(f"parent snapshot {parent} not found: unpack the layers below "
                               f"{diff_id} first")
            with self._lock(cid):
                if not self.has(cid):
                    if policy is None:
                        from dockyard.snapshot.unpack import UnpackPolicy

                        policy = UnpackPolicy()
                    self._unpack_new(cid, parent, diff_id, blob, media_type, lease, policy)
        row = self._layer_row(cid)
        if lease is not None:
            lease.add("snapshot", cid)
        return cid, int(row["size"]) if row is not None else 0

    def staging(self) -> StagingArea:
        """``with store.staging() as area``: layers unpacked while their blobs stream in, which
        :meth:`unpack` publishes instead of unpacking again (see :mod:`dockyard.snapshot.staging`)."""
        from dockyard.snapshot.staging import StagingArea

        return StagingArea(self)

    def _take_staged(self, diff_id: str, policy: UnpackPolicy):  # noqa: ANN202
        for area in list(self._staging):
            staged = area.take(diff_id, policy)
            if staged is not None:
                return staged
        return None

    def _unpack_new(self, cid: str, parent: str | None, diff_id: str, blob: BinaryIO, media_type: str,
                    lease: "Lease | None", policy: UnpackPolicy) -> None:
        staged = self._take_staged(diff_id, policy)
        if staged is not None:  # unpacked (and its diff_id verified) while the blob arrived
            tmp, size, synced = staged.dir, staged.size, staged.synced
        else:
            tmp = self.tmp_dir / f"{_hex(cid)}.{os.getpid()}.{os.urandom(4).hex()}"
            tmp.mkdir(mode=0o700)
            synced = False
        try:
            if staged is None:
                fs = tmp / "fs"
                fs.mkdir(mode=0o755)
                label = f"layer {diff_id}"
                # a content-store reader verifies the blob itself: an uncompressed one is hashed once
                verified = blob.digest if isinstance(blob, VerifyingReader) else None
                actual, size, _ = unpack_layer(blob, fs, media_type, policy, label, writeback=self.fsync,
                                               blob_digest=verified)
                if actual != diff_id:
                    raise DigestMismatch(f"{label}: the uncompressed layer hashes to {actual}; "
                                         "the blob does not match the image's diff_id")
            meta = {"chain_id": cid, "parent": parent, "diff_id": diff_id, "size": size, "created": time.time()}
            meta_path = tmp / "meta.json"
            meta_path.write_text(json.dumps(meta))
            if self.fsync:
                # the tree must be on disk before the rename publishes it: either all of it now,
                # or (a staged tree, already flushed by the operation's one syncfs) only meta.json
                if synced:
                    fd = os.open(meta_path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    durability.fsync_dir(tmp)
                else:
                    durability.syncfs_paths([tmp])
            if lease is not None:
                lease.add("snapshot", cid)  # before it is visible: gc then always sees the lease
            final = self.layer_dir(cid)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process committed it first
            if self.fsync:
                durability.fsync_dir(self.root)  # the rename is durable before the DB row says so
            with self._tx() as db:
                if parent is not None and db.execute("SELECT 1 FROM snapshot_layers WHERE chain_id = ?",
                                                     (parent,)).fetchone() is None:
                    self._discard(final)
                    raise NotFound(f"parent snapshot {parent} was removed while {diff_id} was unpacked")
                db.execute("INSERT OR IGNORE INTO snapshot_layers VALUES (?, ?, ?, ?, ?)",
                           (cid, parent, diff_id, size, meta["created"]))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _discard(self, path: Path) -> None:
        """Remove a directory tree without it ever being seen half-deleted: move it to .tmp first."""
        trash = self.tmp_dir / f"rm.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def lowerdirs(self, chain_id: str) -> list[Path]:
        """The fs dirs of the chain, top-most first, as overlayfs's ``lowerdir`` wants them."""
        return [self.fs_dir(c) for c in [chain_id, *self.parents(chain_id)]]

    def parents(self, chain_id: str) -> list[str]:
        """The chain IDs below ``chain_id``, nearest first (``chain_id`` itself not included)."""
        out: list[str] = []
        row = self._layer_row(chain_id)
        if row is None:
            if not self.has(chain_id):
                raise NotFound(f"snapshot {chain_id} not found")
            row = self._layer_row(chain_id)
        while row is not None and row["parent"] is not None:
            out.append(row["parent"])
            row = self._layer_row(row["parent"])
            if row is None:
                raise NotFound(f"snapshot {out[-1]}, a parent of {chain_id}, is missing")
        return out

    def remove_chain(self, chain_id: str) -> None:
        """Remove a committed layer; refused while a child layer or an active snapshot uses it."""
        with self._lock(chain_id):
            with self._tx() as db:
                if db.execute("SELECT 1 FROM snapshot_layers WHERE chain_id = ?", (chain_id,)).fetchone() is None \
                        and not self.fs_dir(chain_id).is_dir():
                    raise NotFound(f"snapshot {chain_id} not found")
                child = db.execute("SELECT chain_id FROM snapshot_layers WHERE parent = ? LIMIT 1",
                                   (chain_id,)).fetchone()
                if child is not None:
                    raise Conflict(f"snapshot {chain_id} is in use: layer {child['chain_id']} is built on it")
                active = db.execute("SELECT key FROM snapshot_active WHERE parent = ? LIMIT 1",
                                    (chain_id,)).fetchone()
                if active is not None:
                    raise Conflict(f"snapshot {chain_id} is in use by active snapshot {active['key']!r}")
                db.execute("DELETE FROM snapshot_layers WHERE chain_id = ?", (chain_id,))
                mounts.remove_short_link(self.links_dir, self.fs_dir(chain_id))
                self._discard(self.layer_dir(chain_id))
            try:  # tidy: a process that still opens the old lock file only loses the dedup
                os.unlink(self.locks_dir / _hex(chain_id))
            except FileNotFoundError:
                pass

    # -- active snapshots -------------------------------------------------------------------
    def _active_paths(self, key: str) -> Path:
        return self.active_dir / hashlib.sha256(key.encode()).hexdigest()[:32]

    def prepare(self, key: str, parent: str | None) -> ActiveSnapshot:
        """A new writable layer named ``key`` on top of chain ``parent`` (None: empty rootfs)."""
        if not key:
            raise ValueError("an active snapshot needs a key")
        base = self._active_paths(key)
        if parent is not None and not self.has(parent):
            raise NotFound(f"snapshot {parent} not found")
        with self._tx() as db:
            if parent is not None and db.execute("SELECT 1 FROM snapshot_layers WHERE chain_id = ?",
                                                 (parent,)).fetchone() is None:
                raise NotFound(f"snapshot {parent} not found")
            try:
                db.execute("INSERT INTO snapshot_active VALUES (?, ?, ?, ?)", (key, parent, base.name, time.time()))
            except sqlite3.IntegrityError:
                raise Conflict(f"snapshot {key!r} already exists") from None
            base.mkdir(mode=0o700, exist_ok=True)
            (base / "upper").mkdir(mode=0o755, exist_ok=True)
            (base / "work").mkdir(mode=0o700, exist_ok=True)
        return self.active(key)

    def active(self, key: str) -> ActiveSnapshot:
        """The active snapshot ``key`` (NotFound if there is none)."""
        row = self._active_row(key)
        if row is None:
            raise NotFound(f"snapshot {key!r} not found")
        base = self.active_dir / row["dir"]
        lower = self.lowerdirs(row["parent"]) if row["parent"] is not None else []
        return ActiveSnapshot(key=key, parent=row["parent"], upper=base / "upper", work=base / "work",
                              lowerdirs=lower)

    def mount(self, key: str, target: Path, readonly: bool = False) -> None:
        """Mount the active snapshot ``key`` on ``target``: an overlay of its parent chain and its
        upper dir, or a bind mount of the upper dir when there are no layers."""
        snap = self.active(key)
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        if not snap.lowerdirs:
            try:
                mounts.bind_mount(snap.upper, target, readonly=readonly)
            except OSError as exc:
                raise DockyardError(f"cannot mount snapshot {key!r} at {target}: {exc.strerror}") from None
        elif readonly:
            mounts.mount_overlay([snap.upper, *snap.lowerdirs], target, readonly=True, links_dir=self.links_dir)
        else:
            mounts.mount_overlay(snap.lowerdirs, target, snap.upper, snap.work, links_dir=self.links_dir)
        self._db().execute("INSERT OR IGNORE INTO snapshot_mounts VALUES (?, ?)",
                           (key, os.path.realpath(target)))

    def unmount(self, target: Path) -> None:
        """Unmount ``target`` (detaching lazily if busy); not mounted is not an error."""
        path = os.path.realpath(target)
        mounts.unmount(path)
        self._db().execute("DELETE FROM snapshot_mounts WHERE target = ?", (path,))

    def drop_files(self, key: str) -> None:
        """Delete the files of active snapshot ``key`` (unmounted by the caller) without touching
        the metadata DB: on a full disk they are what fills it, and SQLite cannot even open its
        journal until they are gone. ``remove`` then clears the record."""
        self._discard(self._active_paths(key))

    def remove(self, key: str) -> None:
        """Remove the active snapshot ``key``, unmounting it wherever this store mounted it."""
        row = self._active_row(key)
        if row is None:
            raise NotFound(f"snapshot {key!r} not found")
        for m in self._db().execute("SELECT target FROM snapshot_mounts WHERE key = ?", (key,)).fetchall():
            mounts.unmount(os.path.realpath(m["target"]))
        # the files go first, as in drop_files (a crash in between leaves a record without
        # files, which removing it again clears)
        self._discard(self.active_dir / row["dir"])
        with self._tx() as db:
            db.execute("DELETE FROM snapshot_active WHERE key = ?", (key,))
            db.execute("DELETE FROM snapshot_mounts WHERE key = ?", (key,))

    # -- inventory --------------------------------------------------------------------------
    def list(self) -> list[SnapshotInfo]:
        db = self._db()
        out = [SnapshotInfo(r["chain_id"], r["parent"], r["diff_id"], r["size"], "committed", None, r["created"])
               for r in db.execute("SELECT * FROM snapshot_layers ORDER BY created")]
        out += [SnapshotInfo(None, r["parent"], None, 0, "active", r["key"], r["created"])
                for r in db.execute("SELECT * FROM snapshot_active ORDER BY created")]
        return out

    def usage(self, key_or_chain: str) -> int:
        """Bytes held, as docker counts them: for an active snapshot its upper dir walked now
        (apparent sizes, hard links once); for a committed layer the file data recorded when it
        was unpacked (docker's layer size; a layer never changes, so no walk is needed)."""
        row = self._active_row(key_or_chain)
        if row is not None:
            return dir_usage(self.active_dir / row["dir"] / "upper")
        if dg.is_digest(key_or_chain) and self.has(key_or_chain):
            layer = self._layer_row(key_or_chain)
            return int(layer["size"]) if layer is not None else dir_usage(self.fs_dir(key_or_chain))
        raise NotFound(f"snapshot {key_or_chain!r} not found")

    def gc(self, keep: set[str]) -> list[str]:
        """Remove committed layers that nothing needs: not in ``keep``, not below a kept, active
        or leased layer. Also clears what crashed unpacks left in ``.tmp``. Returns removed IDs."""
        self._clean_tmp()
        db = self._db()
        parent_of = {r["chain_id"]: r["parent"] for r in db.execute("SELECT chain_id, parent FROM snapshot_layers")}
        roots = set(keep) | self.client.content.leased("snapshot")
        roots |= {r["parent"] for r in db.execute("SELECT parent FROM snapshot_active") if r["parent"]}
        protected: set[str] = set()
        for cid in roots:
            while cid is not None and cid in parent_of and cid not in protected:
                protected.add(cid)
                cid = parent_of[cid]

        def depth(cid: str) -> int:
            n = 0
            while parent_of.get(cid) is not None:
                cid, n = parent_of[cid], n + 1
            return n

        removed: list[str] = []
        for cid in sorted((c for c in parent_of if c not in protected), key=depth, reverse=True):
            try:
                self.remove_chain(cid)
            except (Conflict, NotFound):
                continue  # a new child, active snapshot or another gc got there first
            removed.append(cid)
        return removed

    def _clean_tmp(self) -> None:
        for d in self.tmp_dir.iterdir():
            parts = d.name.split(".")
            try:
                pid = int(parts[1])
            except (IndexError, ValueError):
                pid = -1
            if pid == os.getpid() or (pid > 0 and _pid_alive(pid)):
                continue
            shutil.rmtree(d, ignore_errors=True)
