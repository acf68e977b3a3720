"""Exec instances: ``POST /containers/{id}/exec``, ``/exec/{id}/start|resize|json``.

docker splits exec in two: *create* records what to run, *start* runs it on a hijacked
connection, and the client then reads the exit code from ``/exec/{id}/json``. The instance
lives here, in the server; the process is started by the container's monitor
(:func:`dockyard.engine.execution.open_exec`), which hands back a pty master (``Tty``) or
runs it on pipes we pass it. Finished instances are forgotten after a while, as dockerd does.
"""
from __future__ import annotations

import os
import secrets
import select
import threading
import time
from typing import Any

from dockyard.api.http import MULTIPLEXED_STREAM, RAW_STREAM, ApiError, Exchange, Hijacked
from dockyard.engine.events import exec_command_text
from dockyard.errors import DockyardError

KEEP_FINISHED = 300.0  # seconds a finished instance stays inspectable


class ExecInstance:
    def __init__(self, cid: str, config: dict[str, Any]) -> None:
        self.id = secrets.token_hex(32)
        self.container_id = cid
        self.config = config
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.master: int | None = None      # pty master while a Tty exec runs
        self.finished_at: float | None = None
        self.lock = threading.Lock()

    def inspect(self) -> dict[str, Any]:
        cmd = list(self.config.get("Cmd") or [])
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": bool(self.config.get("Tty")), "entrypoint": cmd[0] if cmd else "",
                                  "arguments": cmd[1:], "privileged": bool(self.config.get("Privileged")),
                                  **({"user": self.config["User"]} if self.config.get("User") else {})},
                "OpenStdin": bool(self.config.get("AttachStdin")),
                "OpenStderr": bool(self.config.get("AttachStderr")),
                "OpenStdout": bool(self.config.get("AttachStdout")),
                "CanRemove": False, "ContainerID": self.container_id,
                "DetachKeys": self.config.get("DetachKeys") or "", "Pid": self.pid}

    def finish(self, code: int | None) -> None:
        self.exit_code = code
        self.running = False
        self.finished_at = time.monotonic()


class ExecRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, ExecInstance] = {}

    def add(self, inst: ExecInstance) -> None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, v in self._items.items()
                        if v.finished_at is not None and now - v.finished_at > KEEP_FINISHED]:
                del self._items[key]
            self._items[inst.id] = inst

    def get(self, exec_id: str) -> ExecInstance:
        with self._lock:
            inst = self._items.get(exec_id)
        if inst is None:
            from dockyard.errors import NotFound

            raise NotFound(f"No such exec instance: {exec_id}")
        return inst





def create(x: Exchange, id: str) -> None:  # noqa: A002 - docker's parameter name
    body = x.json({}) or {}
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise ApiError(400, "No exec command specified")
    from dockyard.engine.execution import exec_target

    rec = exec_target(x.client, id)
    inst = ExecInstance(rec.id, {**body, "Cmd": list(cmd)})
    x.daemon.execs.add(inst)
    x.daemon.events.container(x.client, rec.id, "exec_create: " + exec_command_text(list(cmd)), execID=inst.id)
    x.reply_json({"Id": inst.id}, 201)


def inspect(x: Exchange, id: str) -> None:  # noqa: A002
    x.reply_json(x.daemon.execs.get(id).inspect())


def resize(x: Exchange, id: str) -> None:  # noqa: A002
    from dockyard.engine.monitor import set_winsize

    inst = x.daemon.execs.get(id)
    h, w = x.int_arg("h", 0) or 0, x.int_arg("w", 0) or 0
    with inst.lock:
        if inst.master is not None and h and w:
            set_winsize(inst.master, h, w)
        elif not inst.running and inst.started:
            from dockyard.errors import Conflict

            raise Conflict(f"Exec {id} is not running")
    x.reply(200, b"", "text/plain; charset=utf-8")


def start(x: Exchange, id: str) -> None:  # noqa: A002
    """Run the instance: detached (200 at once) or on the hijacked connection."""
    from dockyard.engine.execution import exec_target, open_exec
    from dockyard.errors import Conflict

    inst = x.daemon.execs.get(id)
    body = x.json({}) or {}
    cfg = inst.config
    with inst.lock:
        if inst.started:
            raise Conflict(f"Error: Exec command {id} has already run")
        inst.started = True
    exec_target(x.client, inst.container_id)
    tty = bool(body.get("Tty", cfg.get("Tty")))
    size = body.get("ConsoleSize") or cfg.get("ConsoleSize")
    kwargs = {"env": list(cfg.get("Env") or []), "workdir": cfg.get("WorkingDir") or None,
              "user": cfg.get("User") or None, "privileged": bool(cfg.get("Privileged")), "tty": tty,
              "size": (int(size[0]), int(size[1])) if size and size[0] and size[1] else None}
    events = x.daemon.events
    cmd_text = exec_command_text(cfg["Cmd"])
    if body.get("Detach"):
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            conn, pid, master = open_exec(x.client, inst.container_id, cfg["Cmd"], [null, null, null],
                                          detach=True, **kwargs)
        except DockyardError:
            inst.finish(None)
            raise
        finally:
            os.close(null)
        conn.close()
        if master is not None:
            os.close(master)
        inst.pid, inst.running = pid, True
        events.container(x.client, inst.container_id, "exec_start: " + cmd_text, execID=inst.id)
        x.reply(200, b"", "application/json")
        return
    stdin = bool(cfg.get("AttachStdin"))
    # the connection is taken over before the process starts (as dockerd does): clients that
    # read the 101 reply through a buffer (docker-py) must have it before any output comes
    hj = x.hijack(RAW_STREAM if tty else MULTIPLEXED_STREAM)
    pipes = _Pipes(stdin, bool(cfg.get("AttachStdout")), bool(cfg.get("AttachStderr")), tty)
    try:
        try:
            conn, pid, master = open_exec(x.client, inst.container_id, cfg["Cmd"], pipes.child_fds(), **kwargs)
        finally:
            pipes.close_child_ends()
    except DockyardError as exc:
        # dockerd's way: the stream carries the runtime's message, the exit code says the rest
        pipes.close()
        inst.finish(exc.exit_code if exc.exit_code in (126, 127) else 126)
        from dockyard.api.streams import Framer

        try:
            hj.send(Framer(tty).frame(1, (exc.message + "\r\n").encode()))
        except OSError:
            pass
        _shutdown(hj)
        return
    with inst.lock:
        inst.pid, inst.running, inst.master = pid, True, master
    events.container(x.client, inst.container_id, "exec_start: " + cmd_text, execID=inst.id)
    code: int | None = None
    try:
        if master is not None:
            _relay_pty(hj, master, stdin)
        else:
            pipes.relay(hj)
        from dockyard.engine.execution import wait_exit

        code = wait_exit(conn)
    except (DockyardError, OSError):
        code = None
    finally:
        with inst.lock:
            if inst.master is not None:
                os.close(inst.master)
                inst.master = None
        conn.close()
        pipes.close()
        inst.finish(code)
        events.container(x.client, inst.container_id, "exec_die", execID=inst.id, exitCode=str(code))
        _shutdown(hj)


class _Pipes:
    """The stdio of a non-TTY exec: pipes for the attached streams, /dev/null for the rest."""

    def __init__(self, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
        self.tty = tty
        self.fds: list[int] = []
        self.stdin_w: int | None = None
        self.readers: dict[int, int] = {}     # our read end -> stream (1, 2)
        self._child: list[int] = []
        if tty:
            return
        null_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        null_w = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        if stdin:
            r, self.stdin_w = os.pipe2(os.O_CLOEXEC)
            self._child.append(r)
        else:
            self._child.append(null_r)
        for wanted, stream in ((stdout, 1), (stderr, 2)):
            if wanted:
                r, w = os.pipe2(os.O_CLOEXEC)
                self.readers[r] = stream
                self._child.append(w)
            else:
                self._child.append(null_w)
        self._extra = [fd for fd in (null_r, null_w) if fd not in self._child]

    def child_fds(self) -> list[int]:
        return list(self._child)

    def close_child_ends(self) -> None:
        for fd in self._child + getattr(self, "_extra", []):
            _close_fd(fd)
        self._child, self._extra = [], []

    def relay(self, hj: Hijacked) -> None:
        from dockyard.api.streams import Framer, pump_input, write_all

        framer = Framer(False)
        if self.stdin_w is not None:  # the thread owns it from now on, and closes it
            w, self.stdin_w = self.stdin_w, None
            pump_input(hj.recv, lambda data: write_all(w, data), lambda: _close_fd(w))
        open_fds = dict(self.readers)
        while open_fds:
            ready, _, _ = select.select(list(open_fds), [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    _close_fd(fd)
                    del open_fds[fd]
                    continue
                hj.send(framer.frame(open_fds[fd], data))
        self.readers = {}

    def close(self) -> None:
        self.close_child_ends()
        for fd in list(self.readers):
            _close_fd(fd)
        self.readers = {}
        if self.stdin_w is not None:
            _close_fd(self.stdin_w)
            self.stdin_w = None


def _relay_pty(hj: Hijacked, master: int, stdin: bool) -> None:
    """Copy the pty to the client (and the client to the pty) until every holder of the
    terminal's other side is gone."""
    from dockyard.api.streams import pump_input, write_all
    from dockyard.engine.ptyio import read_pty

    if stdin:  # the thread writes to its own descriptor of the pty, and closes it
        wfd = os.dup(master)
        pump_input(hj.recv, lambda data: write_all(wfd, data), lambda: _close_fd(wfd))
    while data := read_pty(master):
        hj.send(data)


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _shutdown(hj: Hijacked) -> None:
    import socket

    try:
        hj.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
