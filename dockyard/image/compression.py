"""Streaming (de)compression of layers: gzip, zstd or none, detected from the first bytes."""
from __future__ import annotations

import io
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Peekable(io.RawIOBase):
    """A stream wrapper that lets us look at the first bytes and still read them."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, b: "bytearray | memoryview") -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def detect(head: bytes) -> str | None:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_decompressed(stream: BinaryIO) -> tuple[BinaryIO, str | None]:
    """Wrap ``stream`` so that reads return the uncompressed bytes; returns (reader, compression)."""
    head = stream.read(4)
    kind = detect(head)
    raw = io.BufferedReader(_Peekable(stream, head), buffer_size=1 << 20)
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb"), kind  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), kind  # type: ignore[return-value]
    return raw, None  # type: ignore[return-value]
