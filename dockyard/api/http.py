"""One request and its response, as the Docker Engine API speaks them over HTTP/1.1.

The docker CLI and docker-py send bodies with a length or chunked (build contexts, ``cp``
archives, ``load`` tars are streamed); replies are JSON with docker's ``{"message": ...}``
errors, chunked streams (pull progress, logs, events: headers go out with the first byte, so
an error before it is still a plain error reply with its status), or a *hijacked* connection:
``101 UPGRADED`` and then raw bytes both ways (attach, exec).
"""
from __future__ import annotations

import io
import json
import select
import socket
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # pragma: no cover
    from http.server import BaseHTTPRequestHandler

    from dockyard.api.server import Daemon

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
FALSE_VALUES = ("", "0", "no", "false", "none")


class ApiError(Exception):
    """A failure answered with docker's ``{"message": ...}`` and an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_for(exc: BaseException) -> int:
    """docker's status for a library error: 404 not found, 409 conflict, 400 bad input, 500."""
    from dockyard import errors

    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, errors.NotFound):
        return 404
    if isinstance(exc, errors.Conflict):
        return 409
    if isinstance(exc, (errors.InvalidArgument, errors.InvalidContent)):
        return 400
    if isinstance(exc, errors.Unsupported):
        return 501
    status = getattr(exc, "status", None)  # registry errors carry the registry's answer
    if isinstance(status, int) and status in (401, 403):
        return status
    return 500


def client_gone(sock: socket.socket) -> bool:
    """True once the client closed its end (a reply that waits has nobody to answer)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _await_read(sock: socket.socket, timeout: float = 1.0) -> None:
    """Wait until the client has read what we sent (the kernel's unread count is 0).

    Clients that parse the ``101`` reply through a buffered reader and then read the raw socket
    (docker-py, anything on Python's http.client) lose whatever arrived with the headers; so
    the stream starts only once the headers are taken."""
    import fcntl
    import struct
    import termios
    import time

    deadline = time.monotonic() + timeout
    buf = bytearray(4)
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        time.sleep(0.0005)


class Body(io.RawIOBase):
    """The request body as a stream: ``Content-Length`` bytes, or chunked transfer decoded."""

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool) -> None:
        super().__init__()
        self._rfile = rfile
        self._chunked = chunked
        self._left = 0 if chunked else (length or 0)  # bytes left in this chunk / the body
        self._eof = not chunked and not length

    def readable(self) -> bool:
        return True

    @property
    def finished(self) -> bool:
        return self._eof

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        if not line:
            raise ApiError(400, "unexpected EOF in chunked request body")
        try:
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise ApiError(400, "malformed chunked request body") from None
        if size == 0:
            while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._eof = True
        self._left = size

    def readinto(self, buf: Any) -> int:
        if self._eof:
            return 0
        if self._left == 0:
            if not self._chunked:
                self._eof = True
                return 0
            self._next_chunk()
            if self._eof:
                return 0
        want = min(len(buf), self._left)
        data = self._rfile.read1(want) if hasattr(self._rfile, "read1") else self._rfile.read(want)
        if not data:
            raise ApiError(400, "unexpected EOF in request body")
        n = len(data)
        buf[:n] = data
        self._left -= n
        if self._chunked and self._left == 0:
            self._rfile.readline(16)  # the CRLF after the chunk's data
        elif not self._chunked and self._left == 0:
            self._eof = True
        return n

    def read_all(self) -> bytes:
        out = bytearray()
        while True:
            chunk = self.read(1 << 16)
            if not chunk:
                return bytes(out)
            out += chunk

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


class Stream:
    """A chunked response whose headers are sent with its first write."""

    def __init__(self, x: "Exchange", content_type: str, status: int, headers: dict[str, str] | None) -> None:
        self._x = x
        self.content_type = content_type
        self.status = status
        self.headers = headers or {}
        self.started = False
        self.closed = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self._x.send_head(self.status, {"Content-Type": self.content_type, "Transfer-Encoding": "chunked",
                                            **self.headers})

    def write(self, data: bytes) -> None:
        self.start()
        if data:
            self._x.sock.sendall(b"%x\r\n%b\r\n" % (len(data), data))

    def json(self, obj: Any) -> None:
        """One message of a JSON stream, as docker frames them (compact, then CRLF)."""
        self.write(json.dumps(obj, separators=(",", ":")).encode() + b"\r\n")

    def close(self) -> None:
        if not self.closed:
            self.start()
            self.closed = True
            self._x.sock.sendall(b"0\r\n\r\n")


class Hijacked:
    """The raw connection after ``101 UPGRADED``: what the client sends (stdin) and the
    socket to write the container's output to."""

    def __init__(self, x: "Exchange") -> None:
        self.sock: socket.socket = x.sock
        self._rfile = x.rfile

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, n: int = 65536) -> bytes:
        """What the client sent (already-buffered bytes first); b"" once it closed its side."""
        try:
            return self._rfile.read1(n)
        except (ConnectionResetError, OSError, ValueError):
            return b""

    def fileno(self) -> int:
        return self.sock.fileno()

    def close_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Exchange:
    """One request (method, path, query, headers, body) and the means to answer it."""

    def __init__(self, handler: "BaseHTTPRequestHandler", daemon: "Daemon", method: str, path: str,
                 version: str, query: dict[str, list[str]]) -> None:
        self.handler = handler
        self.daemon = daemon
        self.method = method
        self.path = path
        self.version = version
        self.query = query
        self.headers = handler.headers
        self.sock: socket.socket = handler.connection
        self.rfile = handler.rfile
        self.responded = False
        self.hijacked = False
        self.status = 0
        self._body: Body | None = None
        self._stream: Stream | None = None

    # ------------------------------------------------------------------ request
    @property
    def client(self) -> Any:
        return self.daemon.client

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name) or [])

    def flag(self, name: str, default: bool = False) -> bool:
        """docker's ``httputils.BoolValue``: absent → default; "", 0, no, false, none → False."""
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in FALSE_VALUES

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f'strconv.Atoi: parsing "{value}": invalid syntax') from None

    def json_arg(self, name: str) -> Any:
        value = self.arg(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"invalid JSON in parameter {name}: {value}") from None

    def filters(self) -> dict[str, list[str]]:
        """docker's ``filters`` parameter: ``{"key": ["v", ...]}`` or the old ``{"key": {"v": true}}``."""
        raw = self.json_arg("filters") or {}
        if not isinstance(raw, dict):
            raise ApiError(400, "invalid filter: expected a JSON object")
        out: dict[str, list[str]] = {}
        for key, values in raw.items():
            if isinstance(values, dict):
                out[key] = [v for v, on in values.items() if on]
            elif isinstance(values, list):
                out[key] = [str(v) for v in values]
            else:
                out[key] = [str(values)]
        return out

    @property
    def body(self) -> Body:
        if self._body is None:
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            length = self.headers.get("Content-Length")
            try:
                n = int(length) if length else None
            except ValueError:
                raise ApiError(400, "bad Content-Length") from None
            self._body = Body(self.rfile, n, chunked)
        return self._body

    def json(self, default: Any = None) -> Any:
        data = self.body.read_all()
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ApiError(400, f"invalid JSON: {exc}") from None

    def body_pending(self) -> bool:
        """True if the client sent a body nobody read (the connection cannot be reused then)."""
        if self._body is not None:
            return not self._body.finished
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return True
        return bool(int(self.headers.get("Content-Length") or 0))

    # ------------------------------------------------------------------ response
    def send_head(self, status: int, headers: dict[str, str]) -> None:
        h = self.handler
        self.status = status
        h.send_response(status)
        h.send_header("Api-Version", self.daemon.api_version)
        h.send_header("Docker-Experimental", "false")
        h.send_header("Ostype", "linux")
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        self.responded = True

    def reply(self, status: int, body: bytes = b"", content_type: str | None = None,
              headers: dict[str, str] | None = None) -> None:
        hdrs = dict(headers or {})
        if content_type:
            hdrs["Content-Type"] = content_type
        if status not in (204, 304) and self.method != "HEAD":
            hdrs["Content-Length"] = str(len(body))
        elif self.method == "HEAD" and status not in (204, 304):
            hdrs.setdefault("Content-Length", str(len(body)))
        self.send_head(status, hdrs)
        if body and self.method != "HEAD" and status not in (204, 304):
            self.sock.sendall(body)

    def reply_json(self, obj: Any, status: int = 200) -> None:
        self.reply(status, json.dumps(obj, separators=(",", ":")).encode() + b"\n", "application/json")

    def no_content(self) -> None:
        self.reply(204)

    def error(self, status: int, message: str) -> None:
        """docker's error reply; inside a started stream, a ``{"error": ...}`` message instead."""
        if self._stream is not None and self._stream.started:
            if not self._stream.closed and self._stream.content_type == "application/json":
                self._stream.json({"errorDetail": {"message": message}, "error": message})
            if not self._stream.closed:
                self._stream.close()
            return
        if self.hijacked or self.responded:
            return
        self.reply_json({"message": message}, status)

    def stream(self, content_type: str = "application/json", status: int = 200,
               headers: dict[str, str] | None = None) -> Stream:
        self._stream = Stream(self, content_type, status, headers)
        return self._stream

    def finish(self) -> None:
        """Close an open stream (handlers that return early leave it to us)."""
        if self._stream is not None and not self._stream.closed:
            self._stream.close()

    def hijack(self, content_type: str = RAW_STREAM) -> Hijacked:
        """Take over the connection: ``101 UPGRADED`` when the client asked for ``Upgrade: tcp``
        (docker CLI, docker-py), else ``200 OK`` and the raw stream until we close it."""
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower() or bool(self.headers.get("Upgrade"))
        if self.body_pending():
            self.body.drain()
        h = self.handler
        if upgrade:
            h.send_response_only(101, "UPGRADED")
            h.send_header("Content-Type", content_type)
            h.send_header("Connection", "Upgrade")
            h.send_header("Upgrade", "tcp")
        else:
            h.send_response_only(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Connection", "close")
        h.send_header("Api-Version", self.daemon.api_version)
        h.end_headers()
        h.wfile.flush()
        _await_read(self.sock)
        h.close_connection = True
        self.status = 101 if upgrade else 200
        self.responded = self.hijacked = True
        return Hijacked(self)
