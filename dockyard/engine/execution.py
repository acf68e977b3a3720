"""``exec``: another process in a running container's namespaces and cgroup.

The CLI runs it itself, without asking the monitor: the runtime starts the process (joining
every namespace and the cgroup of the container's init), the CLI is a child subreaper so the
process ends up as its child whichever runtime started it, and without a terminal the process
gets the CLI's own stdin/stdout/stderr — no copying at all. That is what keeps ``exec`` fast.

The process is docker's: the container's environment plus ``-e``, its user and working dir
unless ``-u``/``-w`` say otherwise, all capabilities with ``--privileged``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from dockyard.engine.store import ContainerRecord
from dockyard.errors import Conflict, DockyardError, InvalidArgument

EXEC_START_FAILED = 126  # docker 20.10: any failure to start the exec'd process


@dataclass
class ExecResult:
    """docker-py's ``exec_run`` result."""

    exit_code: int | None
    output: Any


def _running_record(client: Any, ref: str) -> ContainerRecord:
    svc = client.containers
    rec = svc.load(ref)
    if rec.state.get("Paused"):
        raise Conflict(f"Container {ref} is paused, unpause the container before exec")
    if rec.status == "restarting":
        raise Conflict(f"Container {rec.id} is restarting, wait until the container is running")
    if rec.status != "running" or not svc.store.monitor_alive(rec):
        raise Conflict(f"Container {rec.id} is not running")
    return rec


def build_process(rec: ContainerRecord, cmd: list[str], *, env: list[str] | None = None,
                  workdir: str | None = None, user: str | None = None, tty: bool = False,
                  privileged: bool = False, console_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI ``process`` of an exec, from the running container's spec."""
    from dockyard.runtime.spec import exec_process

    if not cmd:
        raise InvalidArgument("No exec command specified")
    spec = json.loads((rec.bundle / "config.json").read_text())
    resolved = None
    if user:
        from dockyard.runtime.users import resolve_exec_user

        try:
            resolved = resolve_exec_user(rec.rootfs, user)
        except InvalidArgument as exc:
            raise DockyardError(exc.message, EXEC_START_FAILED) from None
    extra = list(env or [])
    if tty and not any(e.startswith("TERM=") for e in extra):
        extra.append("TERM=xterm")
    proc = exec_process(spec["process"], list(cmd), env=extra, user=resolved, cwd=workdir or None, tty=tty,
                        privileged=privileged, console_size=console_size)
    if resolved is not None:
        proc["env"] = [e for e in proc["env"] if not e.startswith("HOME=")] + [f"HOME={resolved.home}"]
    if spec["process"].get("args", [""])[0] == "/sbin/docker-init":
        pass  # exec never goes through the container's init
    return proc


def _runtime(client: Any, rec: ContainerRecord) -> Any:
    from dockyard.engine.runtimes import runtime_for

    return runtime_for(client, rec.config.get("Runtime"))


def _start(client: Any, rec: ContainerRecord, process: dict[str, Any], stdio: Any) -> int:
    """Start the process; the caller must be a subreaper (runc/crun hand the process over to
    the nearest one) and wait for it."""
    from dockyard.runtime.base import ProcessStartError

    try:
        return _runtime(client, rec).exec(rec.id, process, stdio)
    except ProcessStartError as exc:
        raise DockyardError(exc.message, EXEC_START_FAILED) from None


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code


def exec_attached(client: Any, ref: str, cmd: list[str], *, interactive: bool = False, tty: bool = False,
                  env: list[str] | None = None, workdir: str | None = None, user: str | None = None,
                  privileged: bool = False, detach: bool = False, detach_keys: str | None = None) -> int:
    """``dockyard exec``: the process's exit code (0 at once with ``detach``)."""
    from dockyard.engine.reaping import set_subreaper
    from dockyard.runtime.base import Stdio

    rec = _running_record(client, ref)
    set_subreaper(True)  # the CLI exits after this command: it may stay one
    size = None
    if tty and not detach:
        from dockyard.engine import terminal

        keys = terminal.parse_detach_keys(detach_keys)
        size = terminal.terminal_size(1) or terminal.terminal_size(0)
    process = build_process(rec, cmd, env=env, workdir=workdir, user=user, tty=tty and not detach,
                            privileged=privileged, console_size=size)
    if detach:
        _start(client, rec, process, Stdio())  # init reaps it once this CLI has exited
        return 0
    if not tty:
        pid = _start(client, rec, process, Stdio(stdin=0 if interactive else None, stdout=1, stderr=2))
        try:
            return _wait(pid)
        except KeyboardInterrupt:
            return 130
    from dockyard.engine.monitor import ConsoleSocket

    console = ConsoleSocket(rec.id)
    try:
        pid = _start(client, rec, process, Stdio(console_socket=console.path))
        master = console.receive()
    finally:
        console.close()
    try:
        code = terminal.relay_pty(master, pid, stdin=interactive, detach_keys=keys)
    finally:
        os.close(master)
    return 0 if code is None else code


def exec_run(client: Any, ref: str, cmd: str | list[str], stdout: bool = True, stderr: bool = True,
             stdin: bool = False, tty: bool = False, privileged: bool = False, user: str = "",
             detach: bool = False, stream: bool = False, socket: bool = False,
             environment: dict[str, str] | list[str] | None = None, workdir: str | None = None,
             demux: bool = False) -> ExecResult:
    """docker-py's ``Container.exec_run``: run and collect the output."""
    import select
    import shlex

    from dockyard.runtime.base import Stdio

    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    env = [f"{k}={v}" for k, v in environment.items()] if isinstance(environment, dict) else list(environment or [])
    rec = _running_record(client, ref)
    process = build_process(rec, argv, env=env, workdir=workdir, user=user or None, tty=False,
                            privileged=privileged)
    from dockyard.engine.reaping import subreaper

    if detach:
        import threading

        with subreaper():
            pid = _start(client, rec, process, Stdio())
        threading.Thread(target=_wait, args=(pid,), daemon=True).start()  # no zombie left behind
        return ExecResult(None, b"")
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        with subreaper():
            pid = _start(client, rec, process, Stdio(stdout=out_w, stderr=err_w))
    finally:
        os.close(out_w)
        os.close(err_w)
    chunks: list[tuple[int, bytes]] = []
    open_fds = {out_r: 1, err_r: 2}
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [])
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                os.close(fd)
                del open_fds[fd]
            else:
                chunks.append((open_fds[fd], data))
    code = _wait(pid)
    if demux:
        o = b"".join(d for k, d in chunks if k == 1) if stdout else None
        e = b"".join(d for k, d in chunks if k == 2) if stderr else None
        return ExecResult(code, (o, e))
    return ExecResult(code, b"".join(d for k, d in chunks if (k == 1 and stdout) or (k == 2 and stderr)))
