"""The wire format between the CLI (or the API server) and a container's monitor.

One unix stream socket per container (``<container dir>/monitor.sock``). Every message is a
frame with docker's stdcopy header — 1 byte type, 3 zero bytes, 4 bytes big-endian length —
so the attach stream can be handed to Docker API clients as it is:

* ``STDIN`` (0), ``STDOUT`` (1), ``STDERR`` (2): stream data (stdin goes client → monitor);
* ``CONTROL`` (16): a JSON object — a request (``{"op": "stop", "timeout": 10}``), its reply
  (``{"ok": true}`` or ``{"error": "...", "code": 409}``) or an event (``{"event": "exit",
  "code": 0}``);
* ``STDIN_EOF`` (17): the client closed its stdin.

Unix socket paths are limited to 107 bytes; a long state root is reached through
``/proc/self/fd/<dirfd>/monitor.sock``.
"""
from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any

STDIN, STDOUT, STDERR, CONTROL, STDIN_EOF = 0, 1, 2, 16, 17
HEADER = struct.Struct(">B3xI")
MAX_PATH = 100


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def control(obj: dict[str, Any]) -> bytes:
    return frame(CONTROL, json.dumps(obj, separators=(",", ":")).encode())


class FrameReader:
    """Incremental parser: ``feed(data)`` returns the complete frames as (type, payload)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while len(self.buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self.buf)
            if len(self.buf) < HEADER.size + size:
                break
            out.append((kind, bytes(self.buf[HEADER.size:HEADER.size + size])))
            del self.buf[:HEADER.size + size]
        return out


def _short_path(path: str) -> tuple[str, int | None]:
    """A path usable with bind/connect, opening the directory when the real one is too long."""
    if len(path) <= MAX_PATH:
        return path, None
    dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dirfd}/{os.path.basename(path)}", dirfd


def bind_unix(sock: socket.socket, path: str) -> None:
    short, dirfd = _short_path(path)
    try:
        sock.bind(short)
    finally:
        if dirfd is not None:
            os.close(dirfd)


def connect_unix(path: str, timeout: float | None = None) -> socket.socket:
    """Connect to a unix socket by path; raises OSError (ENOENT/ECONNREFUSED) if nobody listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    short, dirfd = _short_path(path)
    try:
        sock.connect(short)
    except OSError:
        sock.close()
        raise
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return sock


class Connection:
    """A blocking client connection: send frames, read frames one by one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.pending: list[tuple[int, bytes]] = []

    def send(self, kind: int, payload: bytes) -> None:
        self.sock.sendall(frame(kind, payload))

    def send_control(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(control(obj))

    def recv_frame(self) -> tuple[int, bytes] | None:
        """The next frame, or None at end of stream."""
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def recv_control(self) -> dict[str, Any] | None:
        """The next control message, skipping nothing: stream frames here are a protocol error."""
        while True:
            f = self.recv_frame()
            if f is None:
                return None
            if f[0] == CONTROL:
                return json.loads(f[1])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()
