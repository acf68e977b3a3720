"""``RegistryServer``: storage + API + HTTP server + background jobs, started and stopped as one.

Used by ``dockyard registry serve`` and by tests and programs that embed a registry::

    from dockyard.registry import RegistryServer, config
    server = RegistryServer(config.from_dict({"storage": {"filesystem": {"rootdirectory": "/tmp/r"}},
                                              "http": {"addr": "127.0.0.1:0"}}))
    server.start()            # serves in a background thread
    print(server.url)         # http://127.0.0.1:40123
    server.stop()             # finishes requests in flight, then returns
"""
from __future__ import annotations

import signal
import ssl
import threading
from typing import Callable

from dockyard.errors import InvalidArgument
from dockyard.registry.api import RegistryApp
from dockyard.registry.config import Config, is_loopback, split_addr
from dockyard.registry.observability import AccessLog, Metrics
from dockyard.registry.storage import open_driver
from dockyard.registry.store import RegistryStore


def open_store(config: Config) -> RegistryStore:
    return RegistryStore(open_driver(config.storage), max_blob_size=config.storage.max_blob_size)


def check_exposure(config: Config) -> None:
    """Refuse to serve an unauthenticated registry beyond loopback unless asked explicitly."""
    host, _ = split_addr(config.addr)
    if config.open_access and config.auth.open is None and not is_loopback(host):
        raise InvalidArgument(f"refusing to serve an open registry on {config.addr}: add users "
                              "(auth.users or auth.htpasswd) or set 'auth: {open: true}' in the config")
    if not config.open_access and not config.auth.users and not config.auth.htpasswd:
        raise InvalidArgument("authentication is on but no users are configured: add auth.users "
                              "or auth.htpasswd (see 'dockyard registry user add')")


class RegistryServer:
    def __init__(self, config: Config) -> None:
        from dockyard.registry.http import RegistryHTTPServer

        check_exposure(config)
        self.config = config
        self.store = open_store(config)
        self.log = AccessLog(config.access_log)
        self.metrics = Metrics()
        self.app = RegistryApp(config, self.store, access_log=self.log, metrics=self.metrics)
        context = None
        if config.tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(config.tls_cert, config.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidArgument(f"cannot load TLS certificate {config.tls_cert} / key "
                                      f"{config.tls_key}: {exc}") from None
        host, port = split_addr(config.addr)
        try:
            self.http = RegistryHTTPServer((host, port), self.app, context, config.max_connections)
        except OSError as exc:
            raise InvalidArgument(f"cannot listen on {config.addr}: {exc.strerror}") from None
        self._thread: threading.Thread | None = None
        self._stop_jobs = threading.Event()
        self._jobs: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    @property
    def url(self) -> str:
        host = self.http.server_address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.config.tls_cert else 'http'}://{host}:{self.port}"

    def _start_jobs(self) -> None:
        from dockyard.registry import gc, retention

        def every(seconds: float, name: str, job: Callable[[], None]) -> None:
            def loop() -> None:
                while not self._stop_jobs.wait(seconds):
                    try:
                        job()
                    except Exception as exc:  # a failed run must not stop the schedule
                        self.log.event(f"{name} failed", error=str(exc))
            t = threading.Thread(target=loop, name=f"registry-{name}", daemon=True)
            t.start()
            self._jobs.append(t)

        def run_gc() -> None:
            report = gc.collect(self.store, upload_max_age=self.config.storage.upload_max_age,
                                grace=self.config.gc_upload_grace)
            self.metrics.inc("registry_gc_runs_total")
            self.metrics.inc("registry_gc_blobs_deleted_total", len(report.blobs))
            self.metrics.inc("registry_gc_bytes_freed_total", report.bytes_freed)
            self.log.event("garbage collection", blobs_deleted=len(report.blobs),
                           bytes_freed=report.bytes_freed, uploads_deleted=len(report.uploads))

        def run_retention() -> None:
            actions = retention.plan(self.store, self.config)
            retention.apply(self.store, self.config, actions)
            self.log.event("retention", deleted=len(actions))

        if self.config.gc_interval > 0:
            every(self.config.gc_interval, "gc", run_gc)
        if self.config.retention_interval > 0:
            every(self.config.retention_interval, "retention", run_retention)

    def start(self) -> "RegistryServer":
        """Serve in a background thread (for embedding and tests)."""
        self._thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="registry-http", daemon=True)
        self._thread.start()
        self._start_jobs()
        self.log.event("serving", addr=self.url, storage=self.store.driver.describe(),
                       auth="open" if self.config.open_access else self.config.auth.scheme)
        return self

    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        stopping = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            stopping.set()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            stopping.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.stop()

    def stop(self) -> bool:
        """Stop accepting, finish requests in flight (up to ``http.shutdown_timeout``)."""
        self._stop_jobs.set()
        clean = self.http.stop(self.config.shutdown_timeout)
        self.log.event("stopped", clean=clean)
        self.store.driver.close()
        self.log.close()
        return clean
