"""The content store: blobs addressed by digest, on the containerd model.

Roles (after containerd): a *reader* by digest, an *ingester* that opens a resumable writer
named by a ref, and a *manager* that lists and deletes. One lifecycle for every writer —
write to ``ingest/<ref>/data``, hash as it goes, ``commit`` with the expected size and digest,
fsync, then ``rename`` into ``blobs/<alg>/<hex>``: only a verified, complete blob is ever visible
to readers, and a kill -9 at any point leaves at worst a stale ingest dir that the next ``gc``
or ``abort`` removes. Two processes committing the same digest both succeed (the second rename
replaces an identical file atomically).

Blobs that an operation in progress needs are protected from garbage collection by *leases*:
rows in the metadata DB naming the lease's owner pid and the blobs it holds. A blob's lease row
is written *before* the blob becomes visible, so a concurrent GC that sees the blob also sees
the lease.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

from dockyard.content import digest as dg
from dockyard.content import durability
from dockyard.errors import DigestMismatch, DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.client import Client

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    created REAL NOT NULL,
    expires REAL
);
CREATE TABLE IF NOT EXISTS lease_resources (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (lease_id, kind, key)
);
"""


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    created: float


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Lease:
    """Protects the blobs (and snapshots) an operation creates until it finishes."""

    def __init__(self, store: "ContentStore", lease_id: str) -> None:
        self.store = store
        self.id = lease_id

    def add(self, kind: str, key: str) -> None:
        self.store._db().execute(
            "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
            (self.id, kind, key))

    def release(self) -> None:
        self.store._db().execute("DELETE FROM leases WHERE id = ?", (self.id,))


class _WriteBehind:
    """Writes one file's chunks in a second thread, in order, so that the caller hashes the next
    chunk meanwhile (hashlib and write(2) both release the GIL). At most 4 chunks wait; an error
    is raised by the next ``put`` or by ``finish``."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        import queue  # (here: reading the store, as run and exec do, needs no writer thread)

        self._write = write
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="blob-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # raised in the caller's thread
                    self.error = exc

    def put(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(data)

    def finish(self) -> None:
        """Wait until everything is written (raises the first error)."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class Writer:
    """A resumable writer for one blob. Use as a context manager; ``commit`` makes it visible.

    ``background=True`` writes the file in a second thread while ``write`` hashes (for big
    blobs: the two costs overlap on two cores). Either way the digest is that of exactly the
    bytes passed to ``write``, which are exactly the bytes written."""

    def __init__(self, store: "ContentStore", ref: str, lease: Lease | None,
                 algorithm: str = "sha256", background: bool = False) -> None:
        self.store = store
        self.ref = ref
        self.lease = lease
        key = hashlib.sha256(ref.encode()).hexdigest()[:32]
        self.dir = store.ingest_dir / key
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DockyardError(f"ref {ref!r} is locked: another process is writing it") from None
        (self.dir / "ref").write_text(ref)
        self._hash = hashlib.new(algorithm)
        self.algorithm = algorithm
        data = self.dir / "data"
        self._file: BinaryIO = open(data, "a+b")
        self._file.seek(0)
        while chunk := self._file.read(dg.CHUNK):  # resume: re-hash what is already there
            self._hash.update(chunk)
        self.offset = self._file.tell()
        self._on_file = self.offset  # bytes handed to the file (lags ``offset`` in background)
        self._written_back = self.offset  # bytes already handed to the kernel's writeback
        self._behind = _WriteBehind(self._store_bytes) if background else None
        self._done = False

    def _store_bytes(self, data: bytes | memoryview) -> None:
        """Append to the file; every 8 MiB, start writing it out (the final sync waits less)."""
        self._file.write(data)
        self._on_file += len(data)
        if self.store.fsync and self._on_file - self._written_back >= durability.WRITEBACK_STEP:
            self._file.flush()
            durability.start_writeback(self._file.fileno(), self._written_back, self._on_file - self._written_back)
            self._written_back = self._on_file

    def _failed(self, exc: BaseException) -> None:
        self.abort()
        if isinstance(exc, OSError) and _no_space(exc):
            raise DockyardError("no space left on device while writing to the content store; "
                                "free space and try again") from None
        raise exc

    def _settle(self) -> None:
        """Wait for the background writes (if any); their error is this writer's error."""
        behind, self._behind = self._behind, None
        if behind is not None:
            try:
                behind.finish()
            except OSError as exc:
                self._failed(exc)

    def flush(self) -> None:
        """Wait until every byte passed to ``write`` is in the file (to sync it from outside)."""
        self._settle()
        self._file.flush()

    def write(self, data: bytes | memoryview) -> int:
        try:
            if self._behind is not None:
                if not isinstance(data, bytes):
                    data = bytes(data)  # the caller may reuse its buffer once we return
                self._behind.put(data)
            else:
                self._store_bytes(data)
        except OSError as exc:
            self._failed(exc)
        self._hash.update(data)
        self.offset += len(data)
        return len(data)

    def copy_from(self, stream: BinaryIO, limit: int | None = None) -> int:
        """Copy a stream in (up to ``limit`` bytes); returns the number of bytes written."""
        n = 0
        while limit is None or n < limit:
            want = dg.CHUNK if limit is None else min(dg.CHUNK, limit - n)
            chunk = stream.read(want)
            if not chunk:
                break
            self.write(chunk)
            n += len(chunk)
        return n

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"

    def commit(self, expected_digest: str | None = None, expected_size: int | None = None, *,
               synced: bool = False) -> str:
        """Verify size and digest, then make the blob visible. Returns its digest.

        ``synced=True`` skips this blob's own ``fsync``: the caller has already made its data
        durable, typically with one :meth:`ContentStore.sync` after writing many blobs (see
        :mod:`dockyard.content.durability`), and fsyncs the blob directories after the renames
        (:meth:`ContentStore.sync_names`)."""
        self._settle()
        actual = self.digest
        if expected_size is not None and expected_size != self.offset:
            self.abort()
            raise DigestMismatch(f"size mismatch for {expected_digest or actual}: "
                                 f"expected {expected_size} bytes, got {self.offset}")
        if expected_digest is not None:
            alg, _ = dg.parse(expected_digest)
            if alg != self.algorithm:
                # re-hash with the algorithm the caller asked for
                self._file.flush()
                with open(self.dir / "data", "rb") as f:
                    actual, _ = dg.from_stream(f, alg)
            if actual != expected_digest:
                self.abort()
                raise DigestMismatch(f"digest mismatch: expected {expected_digest}, got {actual}")
        try:
            self._file.flush()
            if self.store.fsync and not synced:
                os.fsync(self._file.fileno())
        except OSError as exc:
            self.abort()
            if _no_space(exc):
                raise DockyardError("no space left on device while writing to the content store") from None
            raise
        self._file.close()
        if self.lease is not None:
            self.lease.add("content", actual)  # before it is visible: GC then always sees the lease
        target = self.store.blob_path(actual)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.dir / "data"
        os.chmod(data, 0o444)
        os.replace(data, target)
        self._cleanup()
        self._done = True
        return actual

    def abort(self) -> None:
        """Forget everything written so far."""
        behind, self._behind = self._behind, None
        if behind is not None:
            try:
                behind.finish()
            except BaseException:
                pass
        try:
            self._file.close()
        except OSError:
            pass
        self._cleanup()
        self._done = True

    def _cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.close(self._lock_fd)
        except OSError:
            pass

    def close(self) -> None:
        """Stop writing but keep the partial data so that the same ref can resume later."""
        if not self._done:
            self._settle()
            self._file.close()
            os.close(self._lock_fd)
            self._done = True

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._done:
            self.abort() if exc_type is not None else self.close()


class VerifyingReader(io.RawIOBase):
    """A blob reader that raises DigestMismatch at the end if the bytes are not what they claim."""

    def __init__(self, path: Path, digest: str) -> None:
        self._f = open(path, "rb")
        self._digest = digest
        alg, _ = dg.parse(digest)
        self._hash = hashlib.new(alg)
        self._alg = alg
        self._pos = 0
        self._verified = False
        self.size = os.fstat(self._f.fileno()).st_size

    @property
    def digest(self) -> str:
        """The digest this reader checks the blob against when it reaches the end."""
        return self._digest

    def readable(self) -> bool:
        return True

    def readinto(self, b: "bytearray | memoryview") -> int:  # type: ignore[override]
        n = self._f.readinto(b)
        if n:
            self._hash.update(memoryview(b)[:n])
            self._pos += n
        elif not self._verified:
            self._verified = True
            actual = f"{self._alg}:{self._hash.hexdigest()}"
            if actual != self._digest:
                raise DigestMismatch(f"content store corrupted: blob {self._digest} hashes to {actual}; "
                                     "remove it with 'dockyard system prune' and fetch it again")
        return n or 0

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()
        super().close()


class ContentStore:
    """Blobs by digest under ``<root>/content``."""

    def __init__(self, client: "Client") -> None:
        self.state = client.state
        self.path = self.state.dir("content")
        self.blobs_dir = self.path / "blobs"
        self.ingest_dir = self.path / "ingest"
        self.ingest_dir.mkdir(exist_ok=True)
        self.fsync = os.environ.get("DOCKYARD_FSYNC", "1") != "0"

    def _db(self):  # noqa: ANN202
        return self.state.db(_SCHEMA)

    # -- reader -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        alg, hex_ = dg.parse(digest)
        return self.blobs_dir / alg / hex_

    def exists(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None
        return BlobInfo(digest, st.st_size, st.st_mtime)

    def open(self, digest: str) -> VerifyingReader:
        """A verifying reader (raises DigestMismatch at EOF if the blob is corrupt)."""
        path = self.blob_path(digest)
        try:
            return VerifyingReader(path, digest)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read_bytes(self, digest: str, max_size: int = 64 << 20) -> bytes:
        """A whole (small) blob, verified: manifests, configs, indexes."""
        with self.open(digest) as r:
            if r.size > max_size:
                raise InvalidArgument(f"blob {digest} is {r.size} bytes, larger than the {max_size} allowed here")
            data = r.read()
            r.read()  # EOF: triggers verification
        if dg.from_bytes(data, digest.split(":")[0]) != digest:
            raise DigestMismatch(f"content store corrupted: blob {digest} does not match its digest")
        return data

    # -- ingester ---------------------------------------------------------------------------
    def writer(self, ref: str | None = None, lease: Lease | None = None,
               algorithm: str = "sha256", *, background: bool = False) -> Writer:
        """Open a writer. The same ``ref`` resumes a previous, unfinished write.
        ``background``: write the file in a second thread while hashing (big blobs)."""
        return Writer(self, ref or f"tmp-{os.urandom(16).hex()}", lease, algorithm, background)

    def write_bytes(self, data: bytes, expected: str | None = None, lease: Lease | None = None) -> str:
        alg = dg.parse(expected)[0] if expected else "sha256"
        d = expected or dg.from_bytes(data, alg)
        if self.exists(d):
            if lease is not None:
                lease.add("content", d)
            return d
        with self.writer(lease=lease, algorithm=alg) as w:
            w.write(data)
            return w.commit(expected_digest=expected, expected_size=len(data))

    def ingest(self, stream: BinaryIO, expected: str | None = None, size: int | None = None,
               lease: Lease | None = None) -> tuple[str, int]:
        """Copy a stream into the store, verifying against ``expected`` when given."""
        alg = dg.parse(expected)[0] if expected else "sha256"
        with self.writer(lease=lease, algorithm=alg) as w:
            n = w.copy_from(stream, size)
            if size is not None and n != size:
                w.abort()
                raise DigestMismatch(f"truncated content for {expected or 'blob'}: expected {size} bytes, got {n}")
            return w.commit(expected_digest=expected, expected_size=size), n

    def sync(self) -> None:
        """Make everything written to unfinished writers durable with one ``syncfs`` (no-op when
        fsync is disabled); then ``commit(..., synced=True)`` each of them."""
        if self.fsync:
            durability.syncfs_paths([self.ingest_dir])

    def sync_names(self, algorithms: "set[str] | None" = None) -> None:
        """Make renames into ``blobs/<alg>`` durable (after commits with ``synced=True``)."""
        if not self.fsync:
            return
        for alg in sorted(algorithms or dg.ALGORITHMS):
            d = self.blobs_dir / alg
            if d.is_dir():
                durability.fsync_dir(d)

    def in_progress(self) -> list[tuple[str, int, float]]:
        """(ref, bytes so far, last modified) of each unfinished ingest."""
        out = []
        for d in self.ingest_dir.iterdir() if self.ingest_dir.is_dir() else []:
            try:
                ref = (d / "ref").read_text()
                st = (d / "data").stat()
                out.append((ref, st.st_size, st.st_mtime))
            except OSError:
                continue
        return out

    # -- manager ----------------------------------------------------------------------------
    def list(self) -> Iterator[BlobInfo]:
        for alg in dg.ALGORITHMS:
            d = self.blobs_dir / alg
            if not d.is_dir():
                continue
            for entry in os.scandir(d):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield BlobInfo(f"{alg}:{entry.name}", st.st_size, st.st_mtime)

    def delete(self, digest: str) -> None:
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    # -- leases -----------------------------------------------------------------------------
    @contextmanager
    def lease(self, expires_in: float | None = 24 * 3600) -> Iterator[Lease]:
        """Hold the blobs this operation writes until it ends (or its process dies)."""
        lease_id = os.urandom(16).hex()  # (not uuid: its import costs every CLI command ~2 ms)
        now = time.time()
        self._db().execute("INSERT INTO leases (id, pid, created, expires) VALUES (?, ?, ?, ?)",
                           (lease_id, os.getpid(), now, now + expires_in if expires_in else None))
        lease = Lease(self, lease_id)
        try:
            yield lease
        finally:
            lease.release()

    def leased(self, kind: str = "content") -> set[str]:
        """Keys held by live leases; leases of dead processes are removed on the way."""
        db = self._db()
        live: set[str] = set()
        now = time.time()
        for row in db.execute("SELECT id, pid, expires FROM leases").fetchall():
            if _pid_alive(row["pid"]) and (row["expires"] is None or row["expires"] > now):
                continue
            db.execute("DELETE FROM leases WHERE id = ?", (row["id"],))
        for row in db.execute("SELECT key FROM lease_resources WHERE kind = ?", (kind,)):
            live.add(row["key"])
        return live

    def clean_ingests(self) -> int:
        """Remove unfinished ingests whose writer is gone (after a kill -9). Returns how many."""
        n = 0
        for d in list(self.ingest_dir.iterdir()) if self.ingest_dir.is_dir() else []:
            try:
                fd = os.open(d / "lock", os.O_RDWR)
            except FileNotFoundError:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            finally:
                os.close(fd)
            shutil.rmtree(d, ignore_errors=True)
            n += 1
        return n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
