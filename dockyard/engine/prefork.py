"""A container monitor started ahead of need, so that ``run`` pays for its imports on another CPU.

A monitor forked from the CLI once the container exists would import most of the runtime
(spec generation, seccomp, cgroups, the built-in runtime, the snapshot store) *after* the
fork: milliseconds on ``run``'s critical path, while the machine's other CPU sits idle. So the
CLI calls :func:`start` first thing (``dockyard.cli.main``, for ``run``/``start``): a child
forks off the small process the CLI still is, imports what a monitor needs (:data:`PRELOAD`)
while the CLI parses, finds the image and creates the container, then waits. The CLI's
``monitor.spawn`` calls :func:`hand_over`: the container, its locked ``monitor.lock`` and the
monitor's end of the first connection go over a unix socket (SCM_RIGHTS), and the child forks
the monitor exactly as ``spawn`` would have (a daemon, init's child, holding the lock).

A CLI that ends without a container (an error, ``--help``) closes the socket: the child exits.
If the child is gone, ``hand_over`` says so and ``spawn`` forks a monitor the ordinary way.
This module imports nothing heavy: :func:`start` runs before the CLI has imported anything.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

# what a monitor imports to start a container, in the order it needs them (then to remove one)
PRELOAD = ("dockyard.engine.monitor", "dockyard.client", "dockyard.engine.restart", "dockyard.engine.runtimes",
           "dockyard.runtime.builtin", "dockyard.engine.attachments", "dockyard.engine.bundle", "dockyard.snapshot.store",
           "dockyard.runtime.spec", "dockyard.engine.logs", "dockyard.engine.containers")

_waiting: tuple[int, Any] | None = None  # (pid, our end of its control socket)


def start() -> None:
    """Fork the next monitor now; it waits for :func:`hand_over`. Not in a threaded process
    (forking one is unsafe), and once per process. For the CLI, which is never a child
    subreaper: the monitor, orphaned by the waiting process, must not become the caller's."""
    global _waiting
    threading = sys.modules.get("threading")
    if _waiting is not None or (threading is not None and threading.active_count() > 1):
        return
    import _socket  # the C module: ``socket`` would cost the CLI its enums before the fork

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            ours.close()
            os.setsid()  # out of the terminal's process group: a ^C meant for the CLI is not ours
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # keep none of the CLI's stdio (a pipe held open hangs its reader)
                os.dup2(null, fd)
            os.close(null)
            code = _await_container(theirs.detach())
        finally:
            os._exit(code)
    theirs.close()
    _waiting = (pid, ours)


def _await_container(ctl_fd: int) -> int:
    """The waiting child: import, receive the container, fork its monitor, exit."""
    import importlib
    import select

    poll = select.poll()
    poll.register(ctl_fd, select.POLLIN)
    for name in PRELOAD:
        if poll.poll(0):  # the container is here (or the CLI gone): the monitor imports the rest
            break
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - it fails again, and is reported, where it is used
            pass
    import json
    import socket

    ctl = socket.socket(fileno=ctl_fd)
    data, fds, _flags, _addr = socket.recv_fds(ctl, 65536, 2)
    while data and not data.endswith(b"\n"):
        more = ctl.recv(65536)
        if not more:
            break
        data += more
    if len(fds) != 2 or not data.endswith(b"\n"):
        return 0  # the CLI went away without a container: nothing to mind
    req = json.loads(data)
    lock_fd, conn_fd = fds
    from dockyard.engine import monitor

    if os.fork() != 0:  # as monitor.spawn: the monitor is this process's orphan, adopted by init
        if req.get("warm"):
            monitor._warm_cgroup_moves()
        return 0
    ctl.close()
    code = monitor._serve(req["root"], req["cid"], lock_fd, socket.socket(fileno=conn_fd), req.get("attach"))
    os._exit(code)


def hand_over(root: str, cid: str, lock_fd: int, conn_fd: int, attach: dict[str, Any] | None,
              warm_cgroups: bool) -> bool:
    """Give container ``cid`` to the waiting monitor (``monitor.spawn``'s arguments; ``conn_fd``
    is the monitor's end of the first connection). False when there is none, or it is gone."""
    global _waiting
    if _waiting is None:
        return False
    pid, ctl = _waiting
    _waiting = None
    import json
    import socket

    sent = False
    try:
        msg = json.dumps({"root": root, "cid": cid, "attach": attach, "warm": warm_cgroups}) + "\n"
        ctl.sendmsg([msg.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      b"".join(fd.to_bytes(4, sys.byteorder) for fd in (lock_fd, conn_fd)))])
        sent = True
    except OSError:
        pass  # it is gone: the caller forks a monitor the ordinary way
    finally:
        ctl.close()
    _, status = os.waitpid(pid, 0)
    return sent and os.waitstatus_to_exitcode(status) == 0
