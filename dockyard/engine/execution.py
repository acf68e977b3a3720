"""``exec``: another process in a running container's namespaces and cgroup.

The container's monitor starts it (it already has the runtime loaded and the container's spec
in memory) and is its parent, so it reaps it and reports its exit code, whichever runtime ran
it. The CLI only connects to the monitor's socket and hands over its own stdin/stdout/stderr
with SCM_RIGHTS: without a terminal the process writes straight to the user's terminal or
pipes, with no copying; with ``-t`` the monitor hands back the pty master and the CLI joins it
to the user's terminal. So ``exec`` costs the CLI no runtime import at all.

The process is docker's: the container's environment plus ``-e``, its user and working dir
unless ``-u``/``-w`` say otherwise, all capabilities with ``--privileged``.
"""
from __future__ import annotations

import os
import socket
from typing import Any, NamedTuple

from dockyard.engine.store import ContainerRecord
from dockyard.errors import Conflict, DockyardError, InvalidArgument

EXEC_START_FAILED = 126  # docker 20.10: any failure to start the exec'd process


class ExecResult(NamedTuple):
    """docker-py's ``exec_run`` result."""

    exit_code: int | None
    output: Any


def exec_spec(spec: dict[str, Any], rec: ContainerRecord, cmd: list[str], *, env: list[str] | None = None,
              workdir: str | None = None, user: str | None = None, tty: bool = False,
              privileged: bool = False, console_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI ``process`` of an exec, from the running container's spec (docker's rules)."""
    from dockyard.runtime.spec import exec_process

    if not cmd:
        raise InvalidArgument("No exec command specified")
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
    if spec["process"].get("args", [""])[0] == "/sbin/docker-init":
        proc["args"] = list(cmd)  # exec never goes through the container's init
    if resolved is not None:
        proc["env"] = [e for e in proc["env"] if not e.startswith("HOME=")] + [f"HOME={resolved.home}"]
    return proc


def exec_target(client: Any, ref: str) -> ContainerRecord:
    """The record of a container exec can run in now (docker's 409 messages otherwise)."""
    rec = client.containers.load(ref)
    if rec.state.get("Paused"):
        raise Conflict(f"Container {ref} is paused, unpause the container before exec")
    if rec.status == "restarting":
        raise Conflict(f"Container {rec.id} is restarting, wait until the container is running")
    if rec.status != "running":
        raise Conflict(f"Container {rec.id} is not running")
    return rec


def _connect(client: Any, ref: str) -> Any:
    """A connection to a running container's monitor (docker's errors otherwise)."""
    from dockyard.engine.protocol import Connection, connect_unix

    rec = exec_target(client, ref)
    try:
        return Connection(connect_unix(str(rec.socket_path)))
    except OSError:
        raise Conflict(f"Container {rec.id} is not running") from None


def _request(conn: Any, req: dict[str, Any], fds: list[int]) -> tuple[dict[str, Any], list[int]]:
    """Send the exec request with our stdio; the monitor's first answer (and any fd with it)."""
    from dockyard.engine.protocol import FrameReader, control

    socket.send_fds(conn.sock, [control(req)], fds)
    reader = FrameReader()
    got: list[int] = []
    while True:
        data, more, _flags, _addr = socket.recv_fds(conn.sock, 65536, 1)
        got.extend(more)
        if not data:
            raise DockyardError("the container's monitor went away", EXEC_START_FAILED)
        frames = reader.feed(data)
        if frames:
            import json

            conn.pending.extend(frames[1:])
            msg = json.loads(frames[0][1])
            if "error" in msg:
                code = int(msg.get("code") or 1)
                raise DockyardError(msg["error"], 1 if code == 409 else code)
            return msg, got


def open_exec(client: Any, ref: str, cmd: list[str], fds: list[int], *, env: list[str] | None = None,
              workdir: str | None = None, user: str | None = None, privileged: bool = False, tty: bool = False,
              detach: bool = False, size: tuple[int, int] | None = None) -> tuple[Any, int, int | None]:
    """Start an exec'd process (for the Docker API's exec instances): ``fds`` are its stdin,
    stdout, stderr (ignored with ``tty``). Returns (the monitor connection — read its exit with
    :func:`wait_exit` —, the process's pid, the pty master with ``tty``)."""
    conn = _connect(client, ref)
    req: dict[str, Any] = {"op": "exec", "ref": ref, "cmd": list(cmd), "env": env or [], "workdir": workdir,
                           "user": user, "privileged": privileged, "detach": detach, "tty": tty,
                           "events": False}  # the API reports its exec instances' events itself
    if size:
        req.update(h=size[0], w=size[1])
    try:
        msg, got = _request(conn, req, [] if tty else fds)
    except BaseException:
        conn.close()
        raise
    return conn, int(msg.get("pid") or 0), (got[0] if got else None)


def wait_exit(conn: Any) -> int:
    """The exit code an exec connection reports (blocks until the process ends)."""
    return _wait_exit(conn)


def _wait_exit(conn: Any) -> int:
    msg = conn.recv_control()
    if msg is None:
        raise DockyardError("the container's monitor went away while the process ran", 1)
    return int(msg.get("code", 0))


def exec_attached(client: Any, ref: str, cmd: list[str], *, interactive: bool = False, tty: bool = False,
                  env: list[str] | None = None, workdir: str | None = None, user: str | None = None,
                  privileged: bool = False, detach: bool = False, detach_keys: str | None = None) -> int:
    """``dockyard exec``: the process's exit code (0 at once with ``detach``)."""
    if not cmd:
        raise InvalidArgument("No exec command specified")
    conn = _connect(client, ref)
    req: dict[str, Any] = {"op": "exec", "ref": ref, "cmd": list(cmd), "env": env or [], "workdir": workdir,
                           "user": user, "privileged": privileged, "detach": detach}
    try:
        if detach:
            _request(conn, req, [])
            return 0
        if not tty:
            null = None if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _request(conn, req, [0 if interactive else null, 1, 2])
            finally:
                if null is not None:
                    os.close(null)
            try:
                return _wait_exit(conn)
            except KeyboardInterrupt:
                return 130
        from dockyard.engine import terminal

        keys = terminal.parse_detach_keys(detach_keys)
        size = terminal.terminal_size(1) or terminal.terminal_size(0)
        if size:
            req.update(h=size[0], w=size[1])
        _, fds = _request(conn, {**req, "tty": True}, [])
        if not fds:
            raise DockyardError("the container's monitor sent no terminal", EXEC_START_FAILED)
        master = fds[0]
        try:
            detached = terminal.relay_pty(master, stdin=interactive, detach_keys=keys)
        finally:
            os.close(master)
        return 0 if detached else _wait_exit(conn)
    finally:
        conn.close()


def exec_run(client: Any, ref: str, cmd: str | list[str], stdout: bool = True, stderr: bool = True,
             stdin: bool = False, tty: bool = False, privileged: bool = False, user: str = "",
             detach: bool = False, stream: bool = False, socket: bool = False,
             environment: dict[str, str] | list[str] | None = None, workdir: str | None = None,
             demux: bool = False) -> ExecResult:
    """docker-py's ``Container.exec_run``: run and collect the output."""
    import select
    import shlex

    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    env = [f"{k}={v}" for k, v in environment.items()] if isinstance(environment, dict) else list(environment or [])
    conn = _connect(client, ref)
    req = {"op": "exec", "ref": ref, "cmd": argv, "env": env, "workdir": workdir, "user": user or None,
           "privileged": privileged, "detach": detach}
    try:
        if detach:
            _request(conn, req, [])
            return ExecResult(None, b"")
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _request(conn, req, [null, out_w, err_w])
        finally:
            for fd in (out_w, err_w, null):
                os.close(fd)
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
        code = _wait_exit(conn)
    finally:
        conn.close()
    if demux:
        o = b"".join(d for k, d in chunks if k == 1) if stdout else None
        e = b"".join(d for k, d in chunks if k == 2) if stderr else None
        return ExecResult(code, (o, e))
    return ExecResult(code, b"".join(d for k, d in chunks if (k == 1 and stdout) or (k == 2 and stderr)))
