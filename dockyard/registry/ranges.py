"""HTTP ``Range`` requests on blobs, answered as Go's ``http.ServeContent`` answers them.

The CNCF registry serves blobs through ``http.ServeContent``; clients (and the side-by-side checks)
see its exact rules: a malformed range is ``416`` "invalid range", ranges that all start past the
end are ``416`` "invalid range: failed to overlap" with ``Content-Range: bytes */<size>``, ranges
asking for more bytes in total than the blob has are ignored (``200``, the whole blob), one range is
``206`` with ``Content-Range``, several are ``206 multipart/byteranges``.
"""
from __future__ import annotations

import os
import secrets
from typing import Callable

from dockyard.registry.storage.base import RangeReader

INVALID = "invalid range"
NO_OVERLAP = "invalid range: failed to overlap"
MULTIPART_LIMIT = 64 << 20  # multipart answers are built in memory: past this, the whole blob


def parse_ranges(value: str, size: int) -> list[tuple[int, int]] | str:
    """``Range`` header -> inclusive ``(start, end)`` pairs, or :data:`INVALID`/:data:`NO_OVERLAP`.

    An empty list means "no usable range" (serve the whole blob), as Go does for ``bytes=``.
    """
    value = value.strip()
    if not value.startswith("bytes="):
        return INVALID
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for item in value[len("bytes="):].split(","):
        item = item.strip()
        if not item:
            continue
        start_s, sep, end_s = item.partition("-")
        if not sep:
            return INVALID
        start_s, end_s = start_s.strip(), end_s.strip()
        if not start_s:  # a suffix: the last N bytes
            if not end_s.isdigit():
                return INVALID
            n = min(int(end_s), size)
            if n == 0:
                continue  # Go keeps a zero-length range; it contributes nothing
            ranges.append((size - n, size - 1))
            continue
        if not start_s.isdigit():
            return INVALID
        start = int(start_s)
        if start >= size:
            no_overlap = True
            continue
        if not end_s:
            ranges.append((start, size - 1))
            continue
        if not end_s.isdigit() or start > int(end_s):
            return INVALID
        ranges.append((start, min(int(end_s), size - 1)))
    if no_overlap and not ranges:
        return NO_OVERLAP
    if sum(e - s + 1 for s, e in ranges) > size:
        return []  # Go: more bytes asked for than the content has, so send it all
    return ranges


def read_range(open_range: Callable[[int, int], RangeReader], start: int, length: int) -> bytes:
    """The bytes of one range (for multipart answers, which are built in memory)."""
    with open_range(start, length) as reader:
        if reader.fd is not None:
            return os.pread(reader.fd, length, reader.offset)
        out = bytearray()
        while len(out) < length:
            chunk = reader.read(min(1 << 20, length - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)


def multipart(ranges: list[tuple[int, int]], size: int, content_type: str,
              open_range: Callable[[int, int], RangeReader]) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of a ``multipart/byteranges`` answer, as Go's mime/multipart writes it."""
    boundary = secrets.token_hex(30)
    parts = []
    for i, (start, end) in enumerate(ranges):
        head = (f"{'' if i == 0 else chr(13) + chr(10)}--{boundary}\r\n"
                f"Content-Range: bytes {start}-{end}/{size}\r\n"
                f"Content-Type: {content_type}\r\n\r\n")
        parts.append(head.encode() + read_range(open_range, start, end - start + 1))
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/byteranges; boundary={boundary}", b"".join(parts)
