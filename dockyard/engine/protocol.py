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

import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import socket
    from typing import Any

STDIN, STDOUT, STDERR, CONTROL, STDIN_EOF = 0, 1, 2, 16, 17
HEADER = struct.Struct(">B3xI")
MAX_PATH = 100

# ``exec`` is timed against docker: this module is on its path, so it imports neither ``json``
# nor ``socket`` (with ``re`` and ``enum`` behind them, ~10 ms of a 20 ms command). Control
# messages go through the json module's own C encoder and scanner; anything they do not cover
# (another interpreter, a value json.dumps would reject) takes the json module itself.
try:
    from _json import encode_basestring_ascii as _c_quote
    from _json import make_encoder as _c_make_encoder
    from _json import make_scanner as _c_make_scanner
except ImportError:  # pragma: no cover - not CPython
    _c_make_encoder = _c_make_scanner = _c_quote = None

_WS = " \t\n\r"


def _not_serializable(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


class _ScanContext:
    """What ``_json.make_scanner`` reads from a JSONDecoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan = None


def dumps(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"))``."""
    if _c_make_encoder is not None:
        try:
            if isinstance(obj, str):
                return _c_quote(obj)
            enc = _c_make_encoder({}, _not_serializable, _c_quote, None, ":", ",", False, False, True)
            return "".join(enc(obj, 0))
        except TypeError:
            pass
    import json

    return json.dumps(obj, separators=(",", ":"))


def loads(data: bytes | str) -> Any:
    """``json.loads(data)`` (its errors too: a malformed document goes to json itself)."""
    global _scan
    if _c_make_scanner is not None:
        try:
            text = data.decode() if isinstance(data, (bytes, bytearray)) else data
            if _scan is None:
                _scan = _c_make_scanner(_ScanContext())
            start = len(text) - len(text.lstrip(_WS))
            obj, end = _scan(text, start)
            if not text[end:].strip(_WS):
                return obj
        except (StopIteration, UnicodeDecodeError, TypeError):
            pass
    import json

    return json.loads(data)


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def control(obj: dict[str, Any]) -> bytes:
    return frame(CONTROL, dumps(obj).encode())


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
    import socket

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
                return loads(f[1])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()
