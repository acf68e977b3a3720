"""``dockyard system service``: serve the Engine API in the foreground, as dockerd would.

At start, before the first request is answered, it does what dockerd does when it starts:
containers whose monitors are gone (killed, or the host rebooted) are reconciled (shown
Exited with the reason), and those whose restart policy asks for it come back (``always``;
``unless-stopped`` unless a user stopped them). SIGTERM or SIGINT stop the server gracefully;
running containers go on (each has its own monitor). ``timeout`` ends an idle server.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable


def restore_containers(daemon: Any) -> list[str]:
    """Reconcile every container and start the ones whose restart policy says so; every
    running container is watched from now on (its ``die`` event)."""
    client = daemon.client
    started = client.containers.restore()  # their monitors record the ``start`` events
    for c in client.containers.list():
        daemon.watch_exit(c.id)
    return started


def serve(client: Any, socket_path: str, timeout: float = 0, debug: bool = False,
          on_ready: Callable[[str], Any] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``timeout`` idle seconds); returns the exit code."""
    from dockyard.api.server import make_server

    server = make_server(client, socket_path, debug=debug)
    daemon = server.daemon_state
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="api-shutdown", daemon=True).start()

    in_main = threading.current_thread() is threading.main_thread()  # signals can only be caught there
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        started = restore_containers(daemon)
        if started:
            daemon.log(f"restored {len(started)} container(s): " + " ".join(c[:12] for c in started))
        if timeout and timeout > 0:
            _idle_watch(daemon, timeout, stop, stopping)
        daemon.log(f"API listen on {socket_path}")
        if on_ready is not None:
            on_ready(socket_path)
        server.serve_forever(poll_interval=0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.server_close()
        try:
            os.unlink(socket_path)
        except OSError:
            pass
    return 0


def _idle_watch(daemon: Any, timeout: float, stop: Callable[[], Any], stopping: threading.Event) -> None:
    def run() -> None:
        while not stopping.wait(min(1.0, timeout)):
            if daemon.busy == 0 and time.monotonic() - daemon.last_activity >= timeout:
                daemon.log(f"no request for {timeout:g}s: stopping")
                stop()
                return

    threading.Thread(target=run, name="api-idle", daemon=True).start()
