"""Unpacking a layer while its blob is still arriving, before its place in a chain is known.

A layer directory's *contents* depend only on the layer's own tar, not on its parent (only its
chain ID does). So a reader of an archive (``image load``) can hand each blob's bytes, as it
copies them into the content store, to a :class:`StagedLayer`: a thread unpacks them into
``snapshots/.tmp`` at the same time, with the same safe extractor as any unpack. When the
archive's manifest says where the layer goes, :meth:`SnapshotStore.unpack` finds the staged
tree by diff_id and only has to publish it (rename into ``<chain>/``), instead of reading the
blob back, hashing it again and unpacking it.

Verification is never skipped, only not repeated. A staged layer's diff_id comes either from
its own hash of the uncompressed stream (compressed blobs), or, for an uncompressed blob, from
the caller: the caller passes the digest of *exactly the bytes it fed* (``finish(fed_digest)``),
which it computed anyway for the content store — for an uncompressed layer the blob digest is
the diff_id. ``SnapshotStore.unpack`` still compares that diff_id with the one it is asked for.

A blob that turns out not to be a layer (a tar that is not one, a hostile entry, bad
compression) does not fail the feed: the staged layer is marked failed and its bytes are
drained. If the image does use it, the normal unpack from the content store runs and reports
the error exactly as it always does.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from dockyard.content import durability
from dockyard.snapshot.layerstream import LayerStream, detect
from dockyard.snapshot.unpack import UnpackPolicy, extract_stream

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.snapshot.store import SnapshotStore

_QUEUE_CHUNKS = 4  # at most this many chunks (≤ 1 MiB each) wait for the unpacking thread
_END = None


class _QueueReader:
    """``read()`` over chunks another thread ``put``s, ``None`` marking the end."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._head: bytes = b""
        self._eof = False

    def _load(self) -> bool:
        while not self._head:
            if self._eof:
                return False
            item = self.queue.get()
            if item is _END:
                self._eof = True
                return False
            self._head = item
        return True

    def peek(self) -> bytes:
        """The next bytes, left in place (b"" at the end)."""
        self._load()
        return self._head

    def read(self, n: int = -1) -> bytes:
        if not self._load():
            return b""
        if n < 0 or n >= len(self._head):
            out, self._head = self._head, b""
            return out
        out, self._head = self._head[:n], self._head[n:]
        return out

    def drain(self) -> None:
        """Discard everything up to the end marker (the feeder never blocks on a dead reader)."""
        self._head = b""
        while not self._eof:
            if self.queue.get() is _END:
                self._eof = True


class StagedLayer:
    """One layer being (or already) unpacked into ``snapshots/.tmp`` from bytes fed to it."""

    def __init__(self, store: "SnapshotStore", media_type: str = "", policy: UnpackPolicy | None = None,
                 label: str = "layer", caller_hashes: bool = False) -> None:
        self.store = store
        self.media_type = media_type
        self.policy = policy or UnpackPolicy()
        self.label = label
        self.caller_hashes = caller_hashes
        self.dir = store.tmp_dir / f"staged.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        self.dir.mkdir(mode=0o700)
        (self.dir / "fs").mkdir(mode=0o755)
        self.diff_id: str | None = None
        self.size = 0  # bytes of regular-file data, as a layer's size is counted
        self.stream_size = 0  # bytes of the uncompressed tar (what ``image save`` writes)
        self.compression = ""
        self.error: BaseException | None = None
        self.synced = False
        self._reader = _QueueReader()
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="layer-stage", daemon=True)
        self._thread.start()

    # -- the unpacking thread -------------------------------------------------------------
    def _run(self) -> None:
        stream = None
        try:
            compression = detect(self._reader.peek(), self.media_type)
            own_hash = not (self.caller_hashes and compression == "none")
            # a compressed blob is decompressed (and the result hashed) in one more thread
            stream = LayerStream(self._reader, self.media_type, self.label,
                                 algorithm="sha256" if own_hash else None, prefetch=compression != "none")
            self.size = extract_stream(stream, self.dir / "fs", self.policy, self.label, self.store.fsync)
            self.diff_id, self.stream_size, self.compression = stream.digest, stream.size, stream.compression
        except BaseException as exc:  # kept: the normal unpack reports it if the layer is used
            self.error = exc
        finally:
            if stream is not None:
                stream.close()
            self._reader.drain()

    # -- the feeding thread ---------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.error is not None

    def feed(self, data: bytes) -> None:
        """Hand the next bytes of the blob over (blocks while the unpacker is 4 chunks behind)."""
        if self.error is None:
            self._reader.queue.put(data)

    def finish(self, fed_digest: str | None = None) -> None:
        """The blob is complete. ``fed_digest`` is the caller's digest of every byte it fed;
        it becomes the diff_id when the blob is uncompressed and ``caller_hashes`` was set."""
        if self._finished:
            return
        self._finished = True
        self._reader.queue.put(_END)
        self._thread.join()
        if self.error is not None:
            return
        if self.diff_id is None:
            if not (self.caller_hashes and fed_digest):
                self.error = ValueError("no digest for an uncompressed staged layer")
                return
            self.diff_id = fed_digest

    def abort(self) -> None:
        """Stop unpacking (the feed was abandoned) and remove what was written."""
        if not self._finished:
            self.error = self.error or RuntimeError("abandoned")
            self.finish()
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class StagingArea:
    """The staged layers of one operation, offered to :meth:`SnapshotStore.unpack` by diff_id.

    Use as a context manager (``with store.staging() as area``): on exit every staged layer
    that no unpack took is removed."""

    def __init__(self, store: "SnapshotStore") -> None:
        self.store = store
        self._ready: dict[str, StagedLayer] = {}
        self._all: list[StagedLayer] = []
        self._lock = threading.Lock()

    def start(self, media_type: str = "", policy: UnpackPolicy | None = None, label: str = "layer",
              caller_hashes: bool = False) -> StagedLayer:
        """Begin unpacking a blob that is about to be fed (see :class:`StagedLayer`)."""
        staged = StagedLayer(self.store, media_type, policy, label, caller_hashes)
        self._all.append(staged)
        return staged

    def ready(self, staged: StagedLayer) -> None:
        """A finished staged layer: offer it by its diff_id, or drop it if it failed or a
        layer with the same diff_id is already offered."""
        with self._lock:
            if staged.failed or staged.diff_id is None or staged.diff_id in self._ready:
                staged.discard()
                return
            self._ready[staged.diff_id] = staged

    def sync(self, also: "Iterable[Path | str]" = ()) -> None:
        """Make every finished staged tree durable with one ``syncfs`` (instead of one per layer
        when each is published). ``also``: directories whose filesystems need the same (the
        content store's ingest dir), flushed by the same call when they share the filesystem."""
        with self._lock:
            done = [s for s in self._ready.values() if not s.synced]
        paths = [*([self.store.tmp_dir] if done else []), *also]
        if self.store.fsync and paths:
            durability.syncfs_paths(paths)
        for staged in done:
            staged.synced = True

    def take(self, diff_id: str, policy: UnpackPolicy) -> StagedLayer | None:
        """The staged layer for ``diff_id`` unpacked under ``policy``, removed from the offer."""
        with self._lock:
            staged = self._ready.get(diff_id)
            if staged is None or staged.policy != policy:
                return None
            del self._ready[diff_id]
            return staged

    def __iter__(self) -> Iterator[StagedLayer]:
        return iter(list(self._ready.values()))

    def close(self) -> None:
        for staged in self._all:
            if not staged._finished:
                staged.abort()
        with self._lock:
            left = list(self._ready.values())
            self._ready.clear()
        for staged in left:
            staged.discard()

    def __enter__(self) -> "StagingArea":
        self.store._staging.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.store._staging.remove(self)
        finally:
            self.close()
