"""The HTTP/1.1 layer: a threaded server with keep-alive, streaming bodies and graceful shutdown.

Why the standard library and threads: a registry's work is moving large bodies, and every step of
that (``recv_into``, ``os.write``, ``hashlib.update`` on >2 KiB, ``os.sendfile``) releases the
GIL, so one thread per connection keeps several transfers busy at once with memory flat in the
blob size (one 1 MiB buffer per connection). Request bodies are read in place — with
``Content-Length`` or ``Transfer-Encoding: chunked``, as docker and skopeo send uploads — and blob
responses go out with ``socket.sendfile`` (zero copy) unless TLS is on.

Shutdown: ``stop()`` stops accepting, closes idle keep-alive connections, lets requests in flight
finish (up to a timeout), then returns.
"""
from __future__ import annotations

import http.client
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from dockyard.registry.storage.base import RangeReader

MAX_CHUNK_LINE = 4096
TLS_SEND_BLOCK = 256 * 1024


class ClientGone(Exception):
    """The client closed the connection in the middle of a request body."""


class ContentLengthBody:
    """A body of known length; raises :class:`ClientGone` if the connection ends early."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.length = length
        self.remaining = length
        self.received = 0

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def readinto(self, buf: memoryview) -> int:
        if self.remaining <= 0:
            return 0
        want = min(len(buf), self.remaining)
        try:
            n = self._rfile.readinto(buf[:want])
        except (OSError, ValueError) as exc:
            raise ClientGone(f"connection lost after {self.received} of {self.length} bytes: {exc}") from None
        if not n:
            raise ClientGone(f"connection closed after {self.received} of {self.length} bytes")
        self.remaining -= n
        self.received += n
        return n


class ChunkedBody:
    """A ``Transfer-Encoding: chunked`` body, decoded straight into the caller's buffer.

    One ``readinto`` fills the buffer across as many chunks as needed, so the small chunks Go
    clients send (a few KiB each) still become 1 MiB disk writes and hash updates.
    """

    length = None

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0
        self.done = False
        self.received = 0

    def _next_chunk(self) -> None:
        line = self._rfile.readline(MAX_CHUNK_LINE)
        if not line:
            raise ClientGone(f"connection closed after {self.received} bytes of a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ClientGone(f"invalid chunk size line {line[:40]!r}") from None
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = self._rfile.readline(MAX_CHUNK_LINE)
                if not trailer or trailer in (b"\r\n", b"\n"):
                    break
            self.done = True
        self._left = size

    def readinto(self, buf: memoryview) -> int:
        filled = 0
        total = len(buf)
        try:
            while filled < total and not self.done:
                if self._left == 0:
                    self._next_chunk()
                    if self.done:
                        break
                want = min(total - filled, self._left)
                n = self._rfile.readinto(buf[filled:filled + want])
                if not n:
                    raise ClientGone(f"connection closed after {self.received} bytes of a chunked body")
                filled += n
                self._left -= n
                self.received += n
                if self._left == 0:
                    self._rfile.readline(MAX_CHUNK_LINE)  # the CRLF after the chunk data
        except (OSError, ValueError) as exc:
            if filled:
                return filled  # hand over what arrived; the next call reports the loss
            raise ClientGone(f"connection lost after {self.received} bytes: {exc}") from None
        return filled


class Request:
    """One HTTP request as the registry's handlers see it, with ways to answer it."""

    def __init__(self, handler: "RequestHandler") -> None:
        self.handler = handler
        self.method = handler.command
        split = urlsplit(handler.path)
        self.path = split.path
        self.raw_query = split.query
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers = handler.headers
        self.status = 0
        self.sent = 0
        self.route = "unknown"
        self.repo: str | None = None
        self.user: str | None = None
        self.error: str | None = None
        self.body: ContentLengthBody | ChunkedBody | None = None
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            self.body = ChunkedBody(handler.rfile)
        else:
            cl = self.headers.get("Content-Length")
            if cl is not None:
                try:
                    length = int(cl)
                except ValueError:
                    length = -1
                if length < 0:
                    raise ValueError(f"invalid Content-Length {cl!r}")
                if length:
                    self.body = ContentLengthBody(handler.rfile, length)

    # ---- request helpers --------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def absolute_url(self, path: str) -> str:
        """``path`` as an absolute URL the client can reach, as the CNCF registry's Location headers.

        Built from the request (X-Forwarded-Proto/-Host first, for a registry behind a proxy),
        so it names the host and scheme the client used, not the address the server bound.
        """
        proto = (self.header("X-Forwarded-Proto") or "").split(",")[0].strip()
        if not proto:
            proto = "https" if isinstance(self.handler.connection, ssl.SSLSocket) else "http"
        host = (self.header("X-Forwarded-Host") or "").split(",")[0].strip() or self.header("Host")
        if not host:
            host, port = self.handler.server.server_address[:2]
            host = f"{host}:{port}"
        return f"{proto}://{host}{path}"

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def content_length(self) -> int | None:
        if self.body is None:
            return 0
        return self.body.length

    def read_body(self, limit: int) -> bytes:
        """The whole (small) body; raises OverflowError past ``limit`` bytes."""
        if self.body is None:
            return b""
        if self.body.length is not None and self.body.length > limit:
            raise OverflowError(self.body.length)
        out = bytearray()
        buf = memoryview(bytearray(64 * 1024))
        while True:
            n = self.body.readinto(buf)
            if not n:
                break
            out += buf[:n]
            if len(out) > limit:
                raise OverflowError(len(out))
        return bytes(out)

    def finish_body(self) -> None:
        """Make the connection reusable: drain a small unread body, or close it after replying."""
        body = self.body
        if body is None or body.done:
            return
        if body.length is not None and body.length - body.received <= 1 << 20:
            buf = memoryview(bytearray(64 * 1024))
            try:
                while body.readinto(buf):
                    pass
                return
            except ClientGone:
                pass
        self.handler.close_connection = True

    # ---- responses ---------------------------------------------------------------------------
    def _head(self, status: int, headers: dict[str, str], length: int | None) -> bytes:
        reason = http.client.responses.get(status, "")
        lines = [f"HTTP/1.1 {status} {reason}",
                 "Docker-Distribution-API-Version: registry/2.0"]
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        if length is not None and "Content-Length" not in headers and status not in (204, 304):
            lines.append(f"Content-Length: {length}")
        if self.handler.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        """Answer in one write (headers and small body together: no Nagle stall)."""
        self.finish_body()
        self.status = status
        head = self._head(status, headers or {}, len(body))
        payload = head if self.method == "HEAD" else head + body
        self.handler.connection.sendall(payload)
        self.sent += 0 if self.method == "HEAD" else len(body)

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None, *,
                  newline: bool = True) -> None:
        """JSON as Go's ``json.Encoder`` writes it (trailing newline), as the CNCF registry does."""
        import json

        data = json.dumps(obj, separators=(",", ":")).encode() + (b"\n" if newline else b"")
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        self.send(status, h, data)

    def send_range(self, status: int, headers: dict[str, str], reader: RangeReader,
                   on_progress: Callable[[int], None] | None = None) -> None:
        """Send a stored byte range: ``sendfile`` from the page cache when possible."""
        self.finish_body()
        self.status = status
        conn = self.handler.connection
        conn.sendall(self._head(status, headers, reader.length))
        if self.method == "HEAD" or reader.length == 0:
            return
        if reader.fd is not None and not isinstance(conn, ssl.SSLSocket):
            with os.fdopen(os.dup(reader.fd), "rb") as f:
                sent = conn.sendfile(f, reader.offset, reader.length)
        else:
            sent = 0
            while sent < reader.length:
                chunk = reader.read(min(TLS_SEND_BLOCK, reader.length - sent))
                if not chunk:
                    break
                conn.sendall(chunk)
                sent += len(chunk)
        self.sent += sent
        if sent != reader.length:  # storage shrank under us: the client must not trust this
            self.handler.close_connection = True


class RequestHandler(BaseHTTPRequestHandler):
    """Reads requests off one connection and hands each to the server's ``app``."""

    protocol_version = "HTTP/1.1"
    server_version = "dockyard-registry"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 300
    server: "RegistryHTTPServer"

    def setup(self) -> None:
        super().setup()
        self.busy = False
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self) -> None:
        """As the standard library's, but records busy/idle for graceful shutdown."""
        try:
            self.busy = False
            if self.server.stopping:
                self.close_connection = True
                return
            self.raw_requestline = self.rfile.readline(65537)
            self.busy = True
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.server.app(self)
            if self.server.stopping:
                self.close_connection = True
        except (TimeoutError, socket.timeout, ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            self.busy = False

    def log_message(self, format: str, *args: Any) -> None:  # access logs are the app's
        pass


class RegistryHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer plus TLS (handshake in the connection's thread) and drain-on-stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], app: Callable[[RequestHandler], None],
                 ssl_context: ssl.SSLContext | None = None, max_connections: int = 1000) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.stopping = False
        self._conns: set[RequestHandler] = set()
        self._conns_lock = threading.Lock()
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, up to ``max_connections``; past that, 429 and close."""
        with self._conns_lock:
            full = len(self._conns) >= self.max_connections
        if full:
            try:
                if not isinstance(request, ssl.SSLSocket):
                    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"too many connections"}]}'
                    request.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                                    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                                    + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, OSError)):
            return
        super().handle_error(request, client_address)

    def track(self, handler: RequestHandler, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(handler)
            else:
                self._conns.discard(handler)

    def in_flight(self) -> int:
        with self._conns_lock:
            return sum(1 for h in self._conns if h.busy)

    def stop(self, timeout: float) -> bool:
        """Stop accepting, close idle connections, wait for busy ones; True if all finished."""
        self.stopping = True
        self.shutdown()
        deadline = time.monotonic() + timeout
        while True:
            with self._conns_lock:
                conns = list(self._conns)
            for h in conns:
                if not h.busy:
                    try:
                        h.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            if not conns:
                break
            if time.monotonic() > deadline:
                self.server_close()
                return False
            time.sleep(0.05)
        self.server_close()
        return True

