"""The manager: one small long-running process per state root that runs reconcile passes.

Why a process of its own (and not ``dockyard system service``): the API server is optional and
dockyard is daemonless by default, but a replica count can only be *kept* by something that
outlives the CLI -- as each container's monitor does for its container. ``swarm init`` starts it
detached (``python -m dockyard.cluster.manager ROOT``, its own session, output in
``<root>/cluster/manager.log``), ``swarm leave`` stops it, and any cluster command restarts it
if it died. It holds ``<root>/cluster/manager.lock`` while alive (the liveness test: no PID
guessing) and runs a pass every :data:`INTERVAL` seconds, or at once on SIGUSR1, which every
CLI change sends.

Locks are POSIX record locks (``lockf``), not ``flock``: the container monitors this process
forks would inherit an ``flock`` and hold it after the manager is gone.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError

INTERVAL = 0.5


def _paths(client: Any) -> tuple[Path, Path, Path]:
    d = client.state.dir("cluster")
    return d / "manager.lock", d / "manager.pid", d / "manager.log"


def running(client: Any) -> int | None:
    """The manager's PID if one holds the lock, else None."""
    lock, pidfile, _ = _paths(client)
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            return int(pidfile.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None
    finally:
        os.close(fd)  # (releases the lock if we took it)
    return None


def start(client: Any, timeout: float = 15.0) -> int:
    """Start the manager unless one runs; returns its PID."""
    pid = running(client)
    if pid:
        return pid
    _, _, log = _paths(client)
    with open(log, "ab") as out:
        subprocess.Popen([sys.executable, "-m", "dockyard.cluster.manager", str(client.state.path)],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                         close_fds=True, cwd="/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = running(client)
        if pid:
            return pid
        time.sleep(0.02)
    raise DockyardError(f"the cluster manager did not start; see {log}")


def ensure(client: Any) -> None:
    """Start the manager if the swarm exists but no manager runs (it crashed, the host rebooted)."""
    from dockyard.cluster.store import ClusterStore

    if running(client) is None and ClusterStore(client.state).swarm() is not None:
        start(client)


def wake(client: Any) -> None:
    """Ask for a pass now (after a change), restarting the manager if it died."""
    pid = running(client)
    if pid is None:
        start(client)
        return
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        pass


def stop(client: Any, timeout: float = 15.0) -> None:
    """Stop the manager (SIGTERM; SIGKILL if it does not go). Tasks keep running."""
    pid = running(client)
    if pid is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if running(client) is None and not _alive(pid):
                return
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Is the process still there (a zombie waiting for its parent counts as gone)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def serve(root: str) -> int:
    """The manager's main loop."""
    from dockyard.client import Client
    from dockyard.cluster.reconciler import Reconciler

    client = Client(root)
    lock, pidfile, _ = _paths(client)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + 1.0  # a liveness probe may hold the lock for an instant
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() > deadline:
                return 0  # another manager runs
            time.sleep(0.01)
    pidfile.write_text(f"{os.getpid()}\n")
    wakeup = threading.Event()
    stopping = threading.Event()

    def on_stop(signum: int, frame: Any) -> None:
        stopping.set()
        wakeup.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, lambda s, f: wakeup.set())
    reconciler = Reconciler(client)
    while not stopping.is_set():
        wakeup.clear()
        try:
            reconciler.reconcile_once()
        except Exception:  # a bad pass must not end the cluster: log it, try again
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        if reconciler.store.swarm() is None:
            break
        wakeup.wait(INTERVAL)
    pidfile.unlink(missing_ok=True)
    client.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve(sys.argv[1]))
