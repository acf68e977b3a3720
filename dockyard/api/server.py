"""The threaded unix-socket server and the state its requests share.

One thread per connection (the docker CLI opens one or two per command; attach, exec, logs
and events hold theirs for as long as they stream). :class:`Daemon` holds what outlives a
request: the library client, the event bus, exec instances, and attach requests that wait for
their container to start (``docker run`` attaches *before* it starts the container).
"""
from __future__ import annotations

import os
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import dockyard
from dockyard.api.http import ApiError, Exchange, status_for

SOCKET_MODE = 0o660


class Daemon:
    """Shared state of one server: the client and the registries requests meet in."""

    def __init__(self, client: Any, debug: bool = False) -> None:
        from dockyard.api.attach import PendingAttaches
        from dockyard.api.events import EventBus
        from dockyard.api.execs import ExecRegistry

        self.client = client
        self.debug = debug
        self.api_version = dockyard.API_VERSION
        self.events = EventBus(client)
        self.execs = ExecRegistry()
        self.attaches = PendingAttaches()
        self.busy = 0              # requests in flight (the idle timeout waits for 0)
        self.last_activity = time.monotonic()
        self._lock = threading.Lock()
        self._watched: dict[str, threading.Event] = {}
        # services are made on first use; make them now so that threads never race to
        for name in ("images", "containers", "volumes", "networks", "system", "distribution"):
            try:
                getattr(client, name)
            except (ImportError, AttributeError):
                pass

    def enter(self) -> None:
        with self._lock:
            self.busy += 1
            self.last_activity = time.monotonic()

    def leave(self) -> None:
        with self._lock:
            self.busy -= 1
            self.last_activity = time.monotonic()

    def watch_exit(self, cid: str) -> None:
        """Note when a container the server started stops (its monitor records ``die`` and, for
        ``--rm``, ``destroy`` in the journal): :meth:`settle` waits for that."""
        with self._lock:
            if cid in self._watched:
                return
            done = self._watched[cid] = threading.Event()

        def wait() -> None:
            from dockyard.errors import DockyardError

            try:
                self.client.containers.wait(cid, "not-running")
            except DockyardError:
                pass
            finally:
                with self._lock:
                    self._watched.pop(cid, None)
                done.set()

        threading.Thread(target=wait, name=f"watch-{cid[:12]}", daemon=True).start()

    def settle(self, cid: str, timeout: float = 2.0) -> None:
        """Let the exit watcher of ``cid`` report first (``die`` comes before ``destroy``)."""
        with self._lock:
            done = self._watched.get(cid)
        if done is not None:
            done.wait(timeout)

    def log(self, text: str) -> None:
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every method goes through :meth:`dispatch`."""

    protocol_version = "HTTP/1.1"
    server_version = f"Dockyard/{dockyard.__version__}"
    sys_version = ""
    server: "Server"

    def version_string(self) -> str:
        return f"{self.server_version} (linux)"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        if self.server.daemon_state.debug:
            self.server.daemon_state.log("api: " + format % args)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Requests are logged once, with their duration, by :meth:`dispatch`."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests get docker's JSON error too (never an HTML page)."""
        body = ('{"message":%s}\n' % _json_str(message or self.responses.get(code, ("",))[0])).encode()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def dispatch(self) -> None:
        from dockyard.api import routes

        daemon = self.server.daemon_state
        started = time.perf_counter()
        path, _, query = self.path.partition("?")
        x = Exchange(self, daemon, self.command, path, daemon.api_version, parse_qs(query, keep_blank_values=True))
        daemon.enter()
        try:
            try:
                x.version, x.path = routes.split_version(path, daemon.api_version)
                handler, params = routes.resolve(self.command, x.path)
                handler(x, **params)
                x.finish()
            except Exception as exc:  # noqa: BLE001 - every failure becomes docker's error reply
                self._fail(x, exc)
            if not x.responded:
                x.no_content()
            if not x.hijacked and x.body_pending():
                self.close_connection = True  # an unread body would be taken for the next request
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            daemon.leave()
            if daemon.debug:
                daemon.log(f"api: {self.command} {self.path} {x.status} {(time.perf_counter() - started) * 1000:.1f}ms")

    def _fail(self, x: Exchange, exc: Exception) -> None:
        from dockyard.errors import DockyardError

        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            raise exc
        status = status_for(exc)
        if isinstance(exc, (ApiError, DockyardError)):
            message = exc.message
        else:
            import traceback

            message = f"{type(exc).__name__}: {exc}"
            self.server.daemon_state.log(f"api: {self.command} {self.path} failed:\n{traceback.format_exc()}")
        if self.server.daemon_state.debug and status >= 500:
            import traceback

            self.server.daemon_state.log(traceback.format_exc())
        _discard_unread_body(x)
        try:
            x.error(status, message)
        except OSError:
            self.close_connection = True


def _discard_unread_body(x: Exchange, limit: int = 64 << 20, wait: float = 2.0) -> None:
    """Read (up to ``limit``) the body of a request refused before it was read, as dockerd's server
    does: the client is still writing it (``docker cp`` into a missing container), and a
    connection closed under it makes the docker CLI log "read/write on closed pipe" errors."""
    if x.responded or x.hijacked or not x.body_pending():
        return
    old = x.sock.gettimeout()
    read = 0
    try:
        x.sock.settimeout(wait)
        while read < limit:
            chunk = x.body.read(1 << 16)
            if not chunk:
                return
            read += len(chunk)
    except (ApiError, OSError, ValueError):
        pass
    finally:
        try:
            x.sock.settimeout(old)
        except OSError:
            pass


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, path: str, daemon: Daemon) -> None:
        self.daemon_state = daemon
        super().__init__(path, Handler, bind_and_activate=False)

    def server_bind(self) -> None:
        """Bind with mode 0660 from the first instant (no window where others could connect)."""
        try:
            if os.path.exists(self.server_address) and not _socket_alive(str(self.server_address)):
                os.unlink(self.server_address)  # a stale socket from a server that died
        except OSError:
            pass
        old = os.umask(0o117)
        try:
            self.socket.bind(self.server_address)
        finally:
            os.umask(old)
        os.chmod(self.server_address, SOCKET_MODE)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is normal; anything else is logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            return
        import traceback

        self.daemon_state.log("api: connection failed:\n" + traceback.format_exc())

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        return conn, addr or "unix"


def _socket_alive(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def parse_host(host: str | None, root: str) -> str:
    """``-H unix:///path`` (or a bare path) → the socket path; the default is ``<root>/dockyard.sock``."""
    from dockyard.errors import InvalidArgument, Unsupported

    if not host:
        return os.path.join(root, "dockyard.sock")
    if host.startswith("unix://"):
        path = host[len("unix://"):]
    elif host.startswith(("tcp://", "fd://", "ssh://", "npipe://")):
        raise Unsupported(f"only unix sockets are served (unix:///path): {host}")
    elif "://" in host:
        raise InvalidArgument(f"invalid host: {host}: expected unix:///path")
    else:
        path = host
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid host: {host}: the socket path must be absolute")
    return path


def make_server(client: Any, socket_path: str, debug: bool = False) -> Server:
    """A bound, listening server (not yet serving) for ``client`` on ``socket_path``."""
    from dockyard.errors import Conflict

    daemon = Daemon(client, debug=debug)
    if os.path.exists(socket_path) and _socket_alive(socket_path):
        raise Conflict(f"another server is listening on {socket_path}")
    os.makedirs(os.path.dirname(socket_path) or "/", exist_ok=True)
    server = Server(socket_path, daemon)
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    return server
