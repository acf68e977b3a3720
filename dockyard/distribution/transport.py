"""HTTP/1.1 for the registry client: keep-alive connections per host, redirects, file uploads.

The stdlib's ``http.client`` is enough and keeps the client dependency-free: each worker thread
takes an idle connection for its host from a small pool (or opens one), and gives it back once
the response is fully read, so that a pull of many blobs reuses a few TCP/TLS connections.
Uploads of files go through ``socket.sendfile`` (zero-copy on plain connections), downloads are
read into large buffers by the caller.

Redirects (registries send blob GETs to their storage) are followed for GET and HEAD; the
``Authorization`` header is never forwarded to another host. A connection that an idle server
closed is retried once on a fresh one; every other network failure becomes a ``TransferError``
naming the request, e.g. ``Get "http://localhost:5000/v2/": connection refused``.
"""
from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit

from dockyard.distribution.errors import TransferError
from dockyard.distribution.hosts import RegistrySettings

USER_AGENT = "dockyard/0.1.0"
_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 10
_MAX_IDLE_PER_HOST = 8
_SEND_PIECE = 8 << 20
_DRAIN_LIMIT = 1 << 20
_CONNECT_TIMEOUT = 10.0  # TCP connect + TLS handshake, as Go's TLSHandshakeTimeout


@dataclass
class FileBody:
    """A byte range of a file to send as a request body (``sendfile`` when the socket allows)."""

    path: str
    offset: int
    length: int
    on_progress: Callable[[int], None] | None = None
    sent: int = 0  # bytes of the last attempt that reached the socket


def _timeout() -> float:
    try:
        return float(os.environ.get("DOCKYARD_REGISTRY_TIMEOUT", "60"))
    except ValueError:
        return 60.0


class Response:
    """A response whose connection goes back to the pool once the body has been read or closed."""

    def __init__(self, transport: "Transport", key: tuple[str, str], conn: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse, method: str, url: str) -> None:
        self._transport = transport
        self._key = key
        self._conn: http.client.HTTPConnection | None = conn
        self._raw = raw
        self.method = method
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def length(self) -> int | None:
        """Content-Length, when the server sent one."""
        value = self.headers.get("Content-Length")
        return int(value) if value and value.isdigit() else None

    def readinto(self, buf: memoryview) -> int:
        try:
            return self._raw.readinto(buf)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransferError(f"{self.method.title()} {quote_url(self.url)}: {describe_os_error(exc)}") from None

    def read(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes (a registry cannot make us hoard memory)."""
        length = self.length
        if length is not None and length > limit:
            self.close()
            raise TransferError(f"{self.method.title()} {quote_url(self.url)}: response of {length} bytes "
                                f"is larger than the {limit} allowed")
        try:
            data = self._raw.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransferError(f"{self.method.title()} {quote_url(self.url)}: {describe_os_error(exc)}") from None
        if len(data) > limit:
            self.close()
            raise TransferError(f"{self.method.title()} {quote_url(self.url)}: response is larger than "
                                f"the {limit} bytes allowed")
        self.close()
        return data

    def close(self) -> None:
        """Give the connection back when the body is consumed (or small enough to drain)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        raw = self._raw
        remaining = raw.length  # what is left of the body (0 for HEAD, None when unknown)
        if not raw.isclosed() and remaining is not None and remaining <= _DRAIN_LIMIT:
            try:
                raw.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                return
        if raw.isclosed() and not raw.will_close:
            self._transport._release(self._key, conn)
        else:
            raw.close()
            conn.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quote_url(url: str) -> str:
    return f'"{url}"'


def _dialed(host: str, port: int | None) -> str:
    """The address Go's error names for a failed dial: the host resolved (IPv4 first)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return f"{host}:{port}"
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    addr = infos[0][4][0] if infos else host
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def describe_os_error(exc: BaseException, dialing: str | None = None) -> str:
    """A short, docker-like reason for a network failure; ``dialing`` (``host:port``) when it
    happened while connecting: Go's ``dial tcp 127.0.0.1:5999: connect: connection refused``."""
    if dialing is not None and isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {dialing}: connect: connection refused"
    if dialing is not None and isinstance(exc, (socket.timeout, TimeoutError)):
        return f"dial tcp {dialing}: i/o timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":
        return "http: server gave HTTP response to HTTPS client"  # Go's words for TLS to plain HTTP
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "i/o timeout"
    if isinstance(exc, socket.gaierror):
        return f"no such host ({exc.strerror})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"unexpected EOF after {len(exc.partial)} bytes"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed by the server"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or exc.__class__.__name__


class Transport:
    """Keep-alive HTTP connections shared by threads, one small idle pool per (scheme, host)."""

    def __init__(self, settings: RegistrySettings, timeout: float | None = None) -> None:
        self.settings = settings
        self.timeout = timeout if timeout is not None else _timeout()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._insecure: dict[str, bool] = {}

    # -- connections --------------------------------------------------------------------------
    def is_insecure(self, netloc: str) -> bool:
        if netloc not in self._insecure:
            self._insecure[netloc] = self.settings.is_insecure(netloc)
        return self._insecure[netloc]

    def _context(self, netloc: str) -> ssl.SSLContext:
        with self._lock:
            ctx = self._contexts.get(netloc)
        if ctx is None:
            ctx = self.settings.tls_context(netloc, verify=not self.is_insecure(netloc))
            with self._lock:
                self._contexts[netloc] = ctx
        return ctx

    def _acquire(self, key: tuple[str, str]) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        scheme, netloc = key
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                netloc, timeout=self.timeout, context=self._context(netloc), blocksize=1 << 20)
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=1 << 20)
        return conn, False

    def _release(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()

    # -- requests -----------------------------------------------------------------------------
    def request(self, method: str, url: str, headers: dict[str, str] | None = None,
                body: "bytes | FileBody | None" = None, follow_redirects: bool = True) -> Response:
        """Send one request (following GET/HEAD redirects); the caller closes the response."""
        headers = dict(headers or {})
        for _ in range(_MAX_REDIRECTS + 1):
            resp = self._send(method, url, headers, body)
            if not (follow_redirects and resp.status in _REDIRECTS and method in ("GET", "HEAD")):
                return resp
            location = resp.header("Location")
            resp.close()
            if not location:
                return resp
            new_url = urljoin(url, location)
            if urlsplit(new_url).scheme not in ("http", "https"):
                raise TransferError(f"{method.title()} {quote_url(url)}: redirect to an unsupported URL {new_url!r}")
            if urlsplit(new_url).netloc != urlsplit(url).netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = new_url
        raise TransferError(f"{method.title()} {quote_url(url)}: stopped after {_MAX_REDIRECTS} redirects")

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: "bytes | FileBody | None") -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TransferError(f"{method.title()} {quote_url(url)}: not an http(s) URL")
        key = (parts.scheme, parts.netloc)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        for attempt in range(2):
            conn, reused = self._acquire(key)
            try:
                if not reused:
                    # a short limit for connecting (a server that never answers a TLS hello),
                    # the full one for the transfer itself
                    conn.timeout = min(_CONNECT_TIMEOUT, self.timeout)
                    try:
                        conn.connect()
                    except (ConnectionRefusedError, socket.timeout, TimeoutError) as exc:
                        conn.close()
                        raise TransferError(f"{method.title()} {quote_url(url)}: "
                                            f"{describe_os_error(exc, _dialed(conn.host, conn.port))}") from None
                    assert conn.sock is not None
                    conn.sock.settimeout(self.timeout)
                conn.putrequest(method, path, skip_accept_encoding=True)
                conn.putheader("User-Agent", USER_AGENT)
                conn.putheader("Accept-Encoding", "identity")
                for k, v in headers.items():
                    conn.putheader(k, v)
                if body is not None or method in ("PUT", "POST", "PATCH"):
                    size = 0 if body is None else (body.length if isinstance(body, FileBody) else len(body))
                    conn.putheader("Content-Length", str(size))
                conn.endheaders()
                if isinstance(body, FileBody):
                    _send_file(conn, body)
                elif body:
                    conn.send(body)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0 and not _progressed(body):
                    continue  # the server closed an idle keep-alive connection: try a fresh one
                raise TransferError(f"{method.title()} {quote_url(url)}: {describe_os_error(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TransferError(f"{method.title()} {quote_url(url)}: {describe_os_error(exc)}") from exc
            return Response(self, key, conn, raw, method, url)
        raise AssertionError("unreachable")


def _progressed(body: "bytes | FileBody | None") -> bool:
    """Whether a failed attempt already reported progress (then it must not be silently resent)."""
    return isinstance(body, FileBody) and body.sent > 0


def _send_file(conn: http.client.HTTPConnection, body: FileBody) -> None:
    sock = conn.sock
    assert sock is not None
    sent = body.sent = 0
    with open(body.path, "rb") as f:
        while sent < body.length:
            n = min(_SEND_PIECE, body.length - sent)
            done = sock.sendfile(f, body.offset + sent, n)
            if done <= 0:
                raise ConnectionResetError("file ended before the announced length")
            sent += done
            body.sent = sent
            if body.on_progress is not None:
                body.on_progress(done)
