"""A fast, reproducible gzip writer for layers: one gzip member, compressed in parallel blocks.

The uncompressed stream is cut into 1 MiB blocks. Each block is deflated on its own (raw
deflate, ending with a sync flush so that it stops on a byte boundary), and the blocks are
concatenated into a single deflate stream, closed by an empty final block: the pigz technique.
Blocks are compressed on a thread pool (zlib releases the GIL), and a block that does not
compress (random data, already compressed files) is written as stored deflate blocks instead,
which costs only a copy. The output depends only on the input bytes, so equal layers get equal
digests. Any gzip reader reads the result: it is one ordinary gzip member.
"""
from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from typing import Callable

BLOCK = 1 << 20
LEVEL = 3
_SAMPLE = 64 << 10
_STORED_MAX = 65535
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown (as Go writes)
_FINAL_EMPTY_BLOCK = b"\x03\x00"                       # BFINAL=1, fixed Huffman, end-of-block


def _stored(data: bytes | memoryview) -> bytes:
    """Non-final stored deflate blocks holding ``data`` as-is (we are on a byte boundary)."""
    out = bytearray()
    mv = memoryview(data)
    for i in range(0, len(mv), _STORED_MAX):
        chunk = mv[i:i + _STORED_MAX]
        n = len(chunk)
        out += b"\x00" + struct.pack("<HH", n, n ^ 0xFFFF)
        out += chunk
    return bytes(out)


def deflate_block(data: bytes, level: int = LEVEL) -> bytes:
    """One block: deflated and sync-flushed, or stored when deflate would not gain 3%."""
    sample = data[:_SAMPLE]
    if len(zlib.compress(sample, 1)) > len(sample) * 0.97:
        return _stored(data)
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 8)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    if len(out) >= len(data) + 5 * (len(data) // _STORED_MAX + 1):
        return _stored(data)
    return out


class _Block(threading.Thread):
    """One block compressed on its own thread (zlib releases the GIL while it works). Plain
    threads rather than concurrent.futures: that module's import (logging, ...) would cost a
    cached build more than the threads themselves."""

    def __init__(self, data: bytes, level: int) -> None:
        super().__init__(daemon=True)
        self.data = data
        self.level = level
        self.out = b""
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.out = deflate_block(self.data, self.level)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer thread
            self.error = exc
        self.data = b""

    def result(self) -> bytes:
        self.join()
        if self.error is not None:
            raise self.error
        return self.out


class GzipWriter:
    """Write uncompressed bytes; the gzip stream goes to ``sink``. ``close`` returns the
    sha256 of the uncompressed data (the layer's diff ID) and its length."""

    def __init__(self, sink: Callable[[bytes], object], level: int = LEVEL, workers: int = 2) -> None:
        self._sink = sink
        self._level = level
        self._buf = bytearray()
        self._crc = 0
        self._size = 0
        self._sha = hashlib.sha256()
        self._pending: list[_Block] = []
        self._workers = workers
        self._sink(_HEADER)
        self._closed = False

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        if not n:
            return 0
        self._sha.update(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += n
        self._buf += data
        while len(self._buf) >= BLOCK:
            block = bytes(self._buf[:BLOCK])
            del self._buf[:BLOCK]
            self._submit(block)
        return n

    def _submit(self, block: bytes) -> None:
        if self._workers <= 1:
            self._sink(deflate_block(block, self._level))
            return
        self._pending.append(_Block(block, self._level))
        # keep at most a few blocks in flight, writing finished ones in order
        while len(self._pending) > self._workers or (self._pending and not self._pending[0].is_alive()):
            self._sink(self._pending.pop(0).result())

    def close(self) -> tuple[str, int]:
        if self._closed:
            raise ValueError("GzipWriter already closed")
        self._closed = True
        if self._buf:
            self._submit(bytes(self._buf))
            self._buf.clear()
        for blk in self._pending:
            self._sink(blk.result())
        self._pending.clear()
        self._sink(_FINAL_EMPTY_BLOCK + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        return "sha256:" + self._sha.hexdigest(), self._size

    def abort(self) -> None:
        self._closed = True
        for blk in self._pending:
            blk.join()
        self._pending.clear()
