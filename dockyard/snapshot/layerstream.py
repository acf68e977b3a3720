"""The uncompressed bytes of a layer blob, hashed as they stream past.

A layer's diff_id is the digest of its *uncompressed* tar, so the hash sits after the
decompressor. Compression is detected from the first bytes, as docker's ``DecompressStream``
does, so that a mislabelled media type (an uncompressed ``layer.tar`` called ``+gzip``, or the
reverse) still unpacks; the media type only fills in what the magic bytes cannot say.

Everything is streamed in 1 MiB chunks and every decompressor's output is bounded per call,
so neither a multi-GB layer nor a decompression bomb is ever held in memory.
"""
from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from typing import BinaryIO, Callable

from dockyard.errors import InvalidContent, Unsupported

CHUNK = 1 << 20

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
]


def detect(head: bytes, media_type: str = "") -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none`` for a stream starting with ``head``."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if not head:  # an empty blob: let the media type say what it should have been
        if media_type.endswith("+gzip") or media_type.endswith(".gzip"):
            return "gzip"
        if media_type.endswith("+zstd"):
            return "zstd"
    return "none"


class _Prepend:
    """A reader that first returns bytes already read (for magic detection), then the blob."""

    def __init__(self, head: bytes, blob: BinaryIO) -> None:
        self._head = head
        self._blob = blob

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                out, self._head = self._head, b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._blob.read(n if n >= 0 else CHUNK)


class _Gunzip:
    """Multi-member gzip (as pigz and concatenating tools write it) with bounded output.

    zlib checks each member's CRC32 and length trailer itself; a stream that ends inside a
    member is reported as truncated.
    """

    def __init__(self, src: _Prepend, label: str) -> None:
        self._src = src
        self._label = label
        self._d = zlib.decompressobj(31)
        self._tail = b""
        self._in_member = True
        self._done = False

    def read(self, n: int) -> bytes:
        while not self._done:
            if not self._tail:
                self._tail = self._src.read(CHUNK)
                if not self._tail:
                    if self._in_member:
                        raise InvalidContent(f"{self._label}: truncated gzip data (unexpected end of stream)")
                    self._done = True
                    break
            try:
                out = self._d.decompress(self._tail, n)
            except zlib.error as exc:
                raise InvalidContent(f"{self._label}: corrupt gzip data ({exc})") from None
            self._tail = self._d.unconsumed_tail
            self._in_member = True
            if self._d.eof:
                rest = self._d.unused_data + self._tail
                self._tail = b""
                self._in_member = False
                if rest.strip(b"\0"):  # another member follows; zero padding after the last is ignored
                    self._d = zlib.decompressobj(31)
                    self._tail = rest
                    self._in_member = True
                elif not rest:
                    self._d = zlib.decompressobj(31)  # the next read may still bring a member
                else:
                    self._drain_padding()
            if out:
                return out
        return b""

    def _drain_padding(self) -> None:
        while chunk := self._src.read(CHUNK):
            if chunk.strip(b"\0"):
                raise InvalidContent(f"{self._label}: corrupt gzip data (garbage after the last member)")
        self._done = True


def _error_reader(read: Callable[[int], bytes], label: str, kind: str,
                  errors: tuple[type[BaseException], ...]) -> Callable[[int], bytes]:
    """Wrap a library decompressor's read so that its exceptions become one clear line."""

    def wrapped(n: int) -> bytes:
        try:
            return read(n)
        except EOFError:
            raise InvalidContent(f"{label}: truncated {kind} data (unexpected end of stream)") from None
        except errors as exc:
            raise InvalidContent(f"{label}: corrupt {kind} data ({exc})") from None

    return wrapped


class LayerStream:
    """``read_chunk()`` returns the next piece of the uncompressed layer (``b""`` at the end);
    ``digest`` and ``size`` describe everything read so far.

    With ``prefetch`` a background thread reads and decompresses the next chunks while the
    caller writes files: zlib, zstd and hashlib release the GIL, so on two cores the digests
    (the blob's and the diff_id's) cost almost no wall time. The uncompressed bytes are hashed
    by whichever side has less to do (see ``_hash_on_read``). Call ``close()`` when done.
    """

    def __init__(self, blob: BinaryIO, media_type: str = "", label: str = "layer",
                 algorithm: str | None = "sha256", prefetch: bool = False, owns_blob: bool = False,
                 blob_digest: str | None = None) -> None:
        self._blob = blob if owns_blob else None  # closed by close()
        head = b""
        while len(head) < 8:  # enough for every magic, even from a reader with short reads
            more = blob.read(CHUNK)
            if not more:
                break
            head += more
        self.compression = detect(head, media_type)
        self.label = label
        src = _Prepend(head, blob)
        self._read: Callable[[int], bytes]
        if self.compression == "gzip":
            self._read = _Gunzip(src, label).read
        elif self.compression == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(src, read_size=CHUNK,
                                                                read_across_frames=True)
            self._read = _error_reader(reader.read, label, "zstd", (zstandard.ZstdError,))
        elif self.compression == "bzip2":
            import bz2

            self._read = _error_reader(bz2.BZ2File(src).read, label, "bzip2", (OSError, ValueError))
        elif self.compression == "xz":
            import lzma

            self._read = _error_reader(lzma.LZMAFile(src).read, label, "xz", (lzma.LZMAError, OSError))
        elif self.compression == "none":
            self._read = src.read
        else:  # pragma: no cover - detect() returns only the names above
            raise Unsupported(f"{label}: unsupported compression {self.compression}")
        # algorithm=None: no hashing here, the caller hashes these very bytes itself (an
        # uncompressed layer whose blob digest it is computing: that digest is the diff_id).
        # blob_digest: the blob reader verifies itself against it at its end (a content-store
        # VerifyingReader); for an uncompressed blob that *is* the digest of this stream.
        self._known = blob_digest if self.compression == "none" and blob_digest else None
        if self._known:
            algorithm = None
        self._hash = hashlib.new(algorithm) if algorithm else None
        self._algorithm = algorithm
        self.size = 0
        self._queue: queue.Queue[bytes | BaseException] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Who hashes: the prefetch thread when it only reads (the caller is busy writing files),
        # the caller when the prefetch thread decompresses (inflate alone fills one core).
        self._hash_on_read = prefetch and self.compression != "none"
        if prefetch:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._produce, name="layer-prefetch", daemon=True)
            self._thread.start()

    def _next(self) -> bytes:
        chunk = self._read(CHUNK)
        if chunk and not self._hash_on_read:
            self._count(chunk)
        return chunk

    def _count(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)
        self.size += len(chunk)

    def _produce(self) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                item: bytes | BaseException = self._next()
            except BaseException as exc:  # handed to the reading thread, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read_chunk(self) -> bytes:
        if self._queue is None:
            return self._next()
        if self._thread is None:  # the producer already reported the end or an error
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._thread = None
            raise item
        if not item:
            self._thread = None
        elif self._hash_on_read:
            self._count(item)
        return item

    def close(self) -> None:
        """Stop the prefetch thread (if any) and wait for it; close the blob if it was handed over."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        blob, self._blob = self._blob, None
        if blob is not None:
            blob.close()

    def drain(self) -> None:
        """Read (and hash) to the end: bytes after the tar's end blocks count in the diff_id."""
        while self.read_chunk():
            pass

    @property
    def digest(self) -> str | None:
        """The digest of the uncompressed bytes read so far (None when not hashing)."""
        if self._known:
            return self._known  # valid once read to the end: the blob reader raised otherwise
        if self._hash is None:
            return None
        return f"{self._algorithm}:{self._hash.hexdigest()}"
