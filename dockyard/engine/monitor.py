"""The per-container monitor: a small daemon that outlives the CLI (docker's shim, podman's conmon).

One monitor runs while a container runs (including restart back-offs). It

* holds the container's stdio — pipes, or the pty master the runtime hands over on a console
  socket — and copies output to the json-file log and to attached clients;
* reaps the container's init (it is a child subreaper, so whichever runtime started the
  container, the init ends up as its child) and records the exit code, OOM kill and times;
* applies the restart policy with docker's back-off;
* runs HEALTHCHECK probes;
* serves ``monitor.sock`` (see :mod:`dockyard.engine.protocol`): attach, wait, stop, kill,
  pause, resize, state.

It holds ``monitor.lock`` for its whole life, which is how every other command knows it is
alive. It is started by forking the CLI (``spawn``: no interpreter start-up, no imports) or, from
a multi-threaded process, as ``python -m dockyard.engine.monitor ROOT ID``. It imports little
else than the runtime, so a restart or a health probe costs no import time either.
"""
from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from dockyard.engine import events
from dockyard.engine import protocol as proto
from dockyard.engine.store import ContainerRecord, ContainerStore
from dockyard.engine.timeutil import rfc3339nano

MAX_CLIENT_BACKLOG = 1 << 20  # stop reading the container's output while a client lags this much
DRAIN_TIMEOUT = 2.0           # after the init exits, wait at most this long for its output to end
KILL_WAIT = 2.0
POLL_MAX = 1.0                # the event loop's longest sleep


def shim_message(message: str, runtime: str) -> str:
    """A start failure as dockerd words it: containerd's shim and runc wrap the runtime's
    error (``failed to create shim task: OCI runtime create failed: runc create failed: ...``)."""
    head = "OCI runtime create failed: "
    if not message.startswith(head):
        return message
    rest = message[len(head):]
    if runtime in ("builtin", "runc") and not rest.startswith("runc create failed: "):
        rest = "runc create failed: " + rest
    return "failed to create shim task: " + head + rest


class Peer:
    """One connection to the monitor: a CLI attached to the container, waiting, or asking."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = proto.FrameReader()
        self.out = bytearray()
        self.request: dict[str, Any] | None = None
        self.attached = False
        self.streams: set[int] = set()
        self.stdin = False
        self.waiting: str | None = None  # "exit" | "removed" | "stopped"
        self.closing = False
        self.fds: list[int] = []  # received with SCM_RIGHTS, owned until used


class Monitor:
    def __init__(self, root: str, cid: str, lock_fd: int) -> None:
        from dockyard.client import Client

        self.client = Client(root)
        self.store = ContainerStore(self.client.state.dir("containers"))
        self.rec: ContainerRecord = self.store.load(cid)
        self.cid = cid
        self.lock_fd = lock_fd
        self.sel = selectors.DefaultSelector()
        self.peers: dict[int, Peer] = {}
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.runtime = None
        self.init_pid = 0
        self.exit_status: int | None = None
        self.outputs: dict[int, int] = {}  # fd -> STDOUT/STDERR (pty master: STDOUT)
        self.stdin_fd: int | None = None
        self.stdin_buf = bytearray()
        self.pty_fd: int | None = None
        self.logger = None
        self.manual_stop = False
        self.shutdown_stop = False
        self.remove_requested = False
        self.started_mono = 0.0
        self.health = None
        self.health_cfg: dict[str, Any] | None = None
        self.probe: dict[str, Any] | None = None
        self.exec_pids: dict[int, Callable[[int], None]] = {}
        self.stop_deadline_timer: Any = None
        self.console_size: tuple[int, int] | None = None
        self.listener: socket.socket | None = None
        self.wake_r = self.wake_w = -1
        self.restart = None
        self.spec: dict[str, Any] | None = None

    # ================================================================== setup
    def setup(self) -> None:
        from dockyard.engine.runtimes import runtime_for
        from dockyard.runtime.linux import set_child_subreaper

        set_child_subreaper()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for s in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGTTOU, signal.SIGTTIN):
            signal.signal(s, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        path = str(self.rec.socket_path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        proto.bind_unix(self.listener, path)
        self.listener.listen(64)
        self.sel.register(self.listener, selectors.EVENT_READ, ("listen", None))
        self.runtime = runtime_for(self.client, self.rec.config.get("Runtime"))
        from dockyard.engine.restart import RestartManager

        self.restart = RestartManager.from_policy(self.rec.host_config.get("RestartPolicy"),
                                                  int(self.rec.state.get("RestartCount") or 0))

    def _reread_restart_policy(self) -> None:
        """``update --restart`` changes the record while the container runs: the policy in
        force at an exit is the record's."""
        try:
            policy = self.store.load(self.cid).host_config.get("RestartPolicy") or {}
        except Exception:  # noqa: BLE001 - being removed: no restart anyway
            return
        self.restart.name = policy.get("Name") or "no"
        self.restart.maximum_retry_count = int(policy.get("MaximumRetryCount") or 0)

    def _on_sigterm(self, *_: Any) -> None:
        """Being asked to go (host shutdown): stop the container as ``stop`` would, then exit —
        without counting as a manual stop, so ``unless-stopped`` comes back with the service."""
        self.add_timer(0, lambda: self.stop(None, manual=False))

    # ================================================================== main
    def run(self, first: Peer | None, attach: dict[str, Any] | None) -> None:
        if first is not None:
            self._add_peer(first)
            if attach:
                self._attach(first, attach, reply=False)
            else:
                first.waiting = "started"
        first_start = True
        try:
            while True:
                ok = self.start_container(first_start)
                first_start = False
                if not ok:
                    break
                self.loop(lambda: self.exit_status is not None and not self.outputs)
                code = self.finish_run()
                self._reread_restart_policy()
                again, delay = self.restart.should_restart(code, self.manual_stop,
                                                           time.monotonic() - self.started_mono)
                if not again:
                    break
                self.set_state(Status="restarting", Running=True, Restarting=True,
                               RestartCount=self.restart.restart_count)
                self._notify_exit(code)
                resume_at = time.monotonic() + delay
                self.loop(lambda: self.manual_stop or time.monotonic() >= resume_at, until=resume_at)
                if self.manual_stop:
                    self.set_state(Status="exited", Running=False, Restarting=False)
                    break
        finally:
            self.finalize()

    # ================================================================== starting
    def start_container(self, initial: bool) -> bool:
        """Prepare the bundle and start the process; on failure record it and report it."""
        from dockyard.engine import bundle
        from dockyard.runtime.base import Stdio
        from dockyard.runtime.spec import generate_spec, write_bundle

        rec = self.rec = self.store.load(self.cid)
        cfg = rec.cfg
        tty = bool(cfg.get("Tty"))
        child_fds: list[int] = []
        console = None
        try:
            from dockyard.engine.attachments import Attachments

            att = Attachments(self.client)
            net = att.network_up(rec)
            bundle.write_etc_files(rec, cfg.get("Hostname") or rec.id[:12], net.hosts, net.resolv_conf)
            self.client.snapshots.mount(rec.id, rec.rootfs)
            mounts = att.start_mounts(rec)
            opts = bundle.spec_options(rec, rec.rootfs, netns_path=net.netns_path, network_mode=net.mode,
                                       mounts=mounts, console_size=self.console_size)
            if net.ipv6:  # a dual-stack network: IPv6 stays on in the container, as docker's
                from dockyard.engine.bundle import NO_IPV6

                for key in set(NO_IPV6) - set(rec.host_config.get("Sysctls") or {}):
                    opts.sysctls.pop(key, None)
            if net.env:  # --link variables: the container's own Env wins, as docker's
                from dockyard.engine.options import merge_env

                opts.env = merge_env(list(net.env), opts.env)
            spec = self.spec = generate_spec(opts)
            write_bundle(rec.bundle, spec)
            stdio = Stdio()
            if tty:
                console = ConsoleSocket(rec.id)
                stdio.console_socket = console.path
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                stdio.stdout, stdio.stderr = out_w, err_w
                child_fds += [out_w, err_w]
                self.outputs = {out_r: proto.STDOUT, err_r: proto.STDERR}
                if cfg.get("OpenStdin"):
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    stdio.stdin = in_r
                    child_fds.append(in_r)
                    self.stdin_fd = in_w
            self.open_logger()
            self.init_pid = self.runtime.run(rec.id, rec.bundle, stdio)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the user
            for fd in child_fds:
                _close(fd)
            for fd in list(self.outputs):
                _close(fd)
            self.outputs = {}
            if self.stdin_fd is not None:
                _close(self.stdin_fd)
                self.stdin_fd = None
            if console is not None:
                console.close()
            self._cleanup_runtime()
            self._release_attachments()
            from dockyard.errors import DockyardError

            if isinstance(exc, DockyardError):
                message, code = exc.message, exc.exit_code if exc.exit_code in (126, 127) else 125
                message = shim_message(message, getattr(self.runtime, "name", ""))
            else:
                message, code = f"{type(exc).__name__}: {exc}", 125
                self.log_error()
            never_started = str(self.rec.state.get("StartedAt") or "").startswith("0001")
            self.set_state(Error=message, ExitCode=code, Status="created" if never_started else "exited",
                           Running=False, Restarting=False, Pid=0)
            self._broadcast_control({"event": "error", "message": message, "code": code},
                                    lambda p: p.attached or p.waiting == "started")
            return False
        for fd in child_fds:
            _close(fd)
        if console is not None:
            try:
                self.pty_fd = console.receive()
            finally:
                console.close()
            if self.console_size:
                set_winsize(self.pty_fd, *self.console_size)
            self.outputs = {self.pty_fd: proto.STDOUT}
            self.stdin_fd = self.pty_fd if cfg.get("OpenStdin") else None
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, ("output", fd))
        if self.stdin_fd is not None and self.stdin_fd != self.pty_fd:
            os.set_blocking(self.stdin_fd, False)
        self.exit_status = None
        self.started_mono = time.monotonic()
        self.manual_stop = False
        self.setup_health()
        if self.health is None:
            self.rec.state.pop("Health", None)
        self.set_state(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                       Dead=False, Pid=self.init_pid, ExitCode=0, Error="", MonitorPid=os.getpid(),
                       ManuallyStopped=False,
                       StartedAt=rfc3339nano(time.time_ns()),
                       **({"Health": self.health.to_json()} if self.health else {}))
        # in the journal before anyone hears of the start: a command run next sees them
        events.emit_attachments(self.client, self.rec, starting=True)
        events.emit_container(self.client, self.rec, "start")
        self._broadcast_control({"event": "started", "pid": self.init_pid},
                                lambda p: p.attached or p.waiting == "started")
        for p in list(self.peers.values()):
            if p.waiting == "started":
                p.waiting = None
                p.closing = True
        if self.stdin_buf:
            self._flush_stdin()
        return True

    def open_logger(self) -> None:
        from dockyard.engine.logs import JsonFileWriter, parse_size

        if self.logger is not None:
            return
        log_cfg = self.rec.host_config.get("LogConfig") or {}
        if (log_cfg.get("Type") or "json-file") not in ("json-file", "local"):
            return
        opts = log_cfg.get("Config") or {}
        try:  # dockerd checks these when the container starts, not when it is created
            max_size = parse_size(opts["max-size"]) if opts.get("max-size") else -1
            raw_files = opts.get("max-file") or "1"
            try:
                max_file = int(raw_files)
            except ValueError:
                raise ValueError(f'strconv.Atoi: parsing "{raw_files}": invalid syntax') from None
            if max_file < 1:
                raise ValueError("max-file cannot be less than 1")
        except ValueError as exc:
            from dockyard.errors import DockyardError

            raise DockyardError(f"failed to initialize logging driver: {exc}") from None
        self.logger = JsonFileWriter(self.rec.log_path, max_size, max_file)

    # ================================================================== the loop
    def add_timer(self, delay: float, fn: Callable[[], None]) -> tuple[float, Callable[[], None]]:
        t = (time.monotonic() + delay, fn)
        self.timers.append(t)
        return t

    def cancel_timer(self, t: Any) -> None:
        if t in self.timers:
            self.timers.remove(t)

    def loop(self, done: Callable[[], bool], until: float | None = None) -> None:
        drain_deadline: float | None = None
        while not done():
            now = time.monotonic()
            lagging = self._update_interest()
            if lagging:
                drain_deadline = None
            elif self.exit_status is not None and self.outputs:
                # the init is gone; its output pipes close when its last process does (while a
                # client lags behind we read nothing, so the clock does not run)
                drain_deadline = drain_deadline or now + DRAIN_TIMEOUT
                if now >= drain_deadline:
                    for fd in list(self.outputs):
                        self._close_output(fd)
                    continue
            due = [t for t in self.timers if t[0] <= now]
            for t in due:
                self.timers.remove(t)
                t[1]()
            if due:
                continue
            wakeups = [t[0] for t in self.timers]
            if until is not None:
                wakeups.append(until)
            if drain_deadline is not None:
                wakeups.append(drain_deadline)
            # wake at least every second: a lost SIGCHLD must not leave an exited init unreaped
            timeout = min(max(0.0, min(wakeups) - now), POLL_MAX) if wakeups else POLL_MAX
            events = self.sel.select(timeout)
            if not events:
                self.reap()
            for key, mask in events:
                kind, data = key.data
                if kind == "wake":
                    self._on_wake()
                elif kind == "listen":
                    self._accept()
                elif kind == "output":
                    self._read_output(data)
                elif kind == "peer":
                    self._on_peer(data, mask)
                elif kind == "probe":
                    self._read_probe()
                elif kind == "stdin":
                    self._flush_stdin()

    def _update_interest(self) -> bool:
        """Back-pressure: stop reading the container's output while a client lags behind."""
        lagging = any(len(p.out) > MAX_CLIENT_BACKLOG for p in self.peers.values())
        for fd in self.outputs:
            want = 0 if lagging else selectors.EVENT_READ
            try:
                key = self.sel.get_key(fd)
                if want == 0:
                    self.sel.unregister(fd)
            except KeyError:
                if want:
                    self.sel.register(fd, selectors.EVENT_READ, ("output", fd))
            else:
                del key
        return lagging

    def _on_wake(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                code = 128 - code
            if pid == self.init_pid and self.exit_status is None:
                self.exit_status = code
            cb = self.exec_pids.pop(pid, None)
            if cb is not None:
                cb(code)

    # ================================================================== output
    def _read_output(self, fd: int) -> None:
        from dockyard.engine.ptyio import read_pty

        try:
            data = read_pty(fd)
        except BlockingIOError:
            return
        kind = self.outputs.get(fd)
        if kind is None:
            return
        if not data:
            self._close_output(fd)
            return
        if self.logger is not None:
            self._log(self.logger.write, "stdout" if kind == proto.STDOUT else "stderr", data)
        frame = proto.frame(kind, data)
        for p in self.peers.values():
            if p.attached and kind in p.streams:
                self._send(p, frame)

    def _log(self, fn: Callable[..., None], *args: Any) -> None:
        """Write to the log; a full disk loses log lines (as with docker), never the container."""
        try:
            fn(*args)
        except OSError:
            if not getattr(self, "_log_failed", False):
                self._log_failed = True
                self.log_error()

    def _close_output(self, fd: int) -> None:
        kind = self.outputs.pop(fd, None)
        try:
            self.sel.unregister(fd)
        except KeyError:
            pass
        if self.logger is not None and kind is not None:
            self._log(self.logger.close_stream, "stdout" if kind == proto.STDOUT else "stderr")
        if fd == self.pty_fd:
            self.pty_fd = None
            if self.stdin_fd == fd:
                self.stdin_fd = None
        _close(fd)

    def _flush_stdin(self) -> None:
        if self.stdin_fd is None:
            self.stdin_buf.clear()
            return
        while self.stdin_buf:
            try:
                n = os.write(self.stdin_fd, self.stdin_buf)
            except BlockingIOError:
                break
            except OSError:  # the container closed its stdin
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        fd = self.stdin_fd
        if fd != self.pty_fd:
            try:
                self.sel.unregister(fd)
            except KeyError:
                pass
            if self.stdin_buf:
                self.sel.register(fd, selectors.EVENT_WRITE, ("stdin", fd))
            elif getattr(self, "_stdin_eof", False):
                self._close_stdin()

    def _close_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        if fd == self.pty_fd:
            return  # a terminal has no end of input; docker leaves it open too
        try:
            self.sel.unregister(fd)
        except KeyError:
            pass
        _close(fd)
        self.stdin_fd = None

    # ================================================================== peers
    def _add_peer(self, p: Peer) -> None:
        p.sock.setblocking(False)
        self.peers[p.sock.fileno()] = p
        self.sel.register(p.sock, selectors.EVENT_READ, ("peer", p.sock.fileno()))

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            uid = int.from_bytes(creds[4:8], sys.byteorder)
            if uid not in (0, os.getuid()):
                sock.close()
                continue
            self._add_peer(Peer(sock))

    def _drop(self, p: Peer) -> None:
        for received in p.fds:
            _close(received)
        p.fds.clear()
        fd = p.sock.fileno()
        self.peers.pop(fd, None)
        try:
            self.sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass
        p.sock.close()

    def _send(self, p: Peer, data: bytes) -> None:
        if not p.out:
            try:
                n = p.sock.send(data)
            except BlockingIOError:
                n = 0
            except OSError:
                self._drop(p)
                return
            data = data[n:]
        p.out += data
        self._watch_write(p)

    def _watch_write(self, p: Peer) -> None:
        if p.sock.fileno() < 0:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if p.out else 0)
        try:
            self.sel.modify(p.sock, events, ("peer", p.sock.fileno()))
        except (KeyError, ValueError):
            pass
        if not p.out and p.closing:
            self._drop(p)

    def _reply(self, p: Peer, obj: dict[str, Any], close: bool = True) -> None:
        if p.sock.fileno() < 0:
            return
        self._send(p, proto.control(obj))
        if close and p.sock.fileno() >= 0:
            p.closing = True
            if not p.out:
                self._drop(p)

    def _broadcast_control(self, obj: dict[str, Any], who: Callable[[Peer], bool]) -> None:
        data = proto.control(obj)
        for p in list(self.peers.values()):
            if who(p):
                self._send(p, data)

    def _on_peer(self, fd: int, mask: int) -> None:
        p = self.peers.get(fd)
        if p is None:
            return
        if mask & selectors.EVENT_WRITE and p.out:
            try:
                n = p.sock.send(p.out)
                del p.out[:n]
            except BlockingIOError:
                pass
            except OSError:
                self._drop(p)
                return
            self._watch_write(p)
            if fd not in self.peers:
                return
        if not mask & selectors.EVENT_READ:
            return
        try:
            data, fds, _flags, _addr = socket.recv_fds(p.sock, 65536, 4)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        p.fds.extend(fds)  # file descriptors sent with a request (exec's stdio)
        if not data:
            self._drop(p)
            return
        for kind, payload in p.reader.feed(data):
            if fd not in self.peers:
                return
            if kind == proto.CONTROL:
                try:
                    self._handle(p, json.loads(payload))
                except Exception as exc:  # noqa: BLE001 - a bad request must not kill the monitor
                    self.log_error()
                    self._reply(p, {"error": str(exc), "code": 500})
            elif kind == proto.STDIN and p.stdin:
                self.stdin_buf += payload
                self._flush_stdin()
            elif kind == proto.STDIN_EOF and p.stdin:
                if self.rec.cfg.get("StdinOnce"):
                    self._stdin_eof = True
                    if not self.stdin_buf:
                        self._close_stdin()

    # ================================================================== requests
    def _running(self) -> bool:
        return self.exit_status is None and self.init_pid > 0

    def _handle(self, p: Peer, req: dict[str, Any]) -> None:
        op = req.get("op")
        if p.attached and op == "kill":  # the signal proxy of an attached CLI: no reply, stay attached
            if self._running():
                self._signal(int(req.get("signal") or signal.SIGKILL))
            return
        if op == "attach":
            self._attach(p, req)
        elif op == "resize":
            h, w = int(req.get("h") or 0), int(req.get("w") or 0)
            if h and w:
                self.console_size = (h, w)
                if self.pty_fd is not None:
                    set_winsize(self.pty_fd, h, w)
            if p.attached:
                return
            self._reply(p, {"ok": True})
        elif op == "state":
            self._reply(p, {"ok": True, "state": self.rec.state, "pid": os.getpid()})
        elif op == "wait":
            # "next-exit": the next time the process ends (restarts included); "not-running":
            # until the container is stopped for good; "removed": until it is gone
            cond = req.get("condition") or "not-running"
            if cond == "not-running" and not self.init_pid and self.rec.status != "restarting":
                self._reply(p, {"event": "exit", "code": int(self.rec.state.get("ExitCode", 0))})
            else:
                p.waiting = {"removed": "removed", "next-exit": "exit"}.get(cond, "not-running")
        elif op == "stop":
            p.waiting = "stopped"
            self.stop(req.get("timeout"), req.get("signal"))
        elif op == "kill":
            self._kill(p, req)
        elif op == "exec":
            self._exec(p, req)
        elif op in ("pause", "unpause"):
            self._pause(p, op == "pause")
        elif op == "detach":
            self._drop(p)
        else:
            self._reply(p, {"error": f"unknown request {op!r}", "code": 400})

    def _spec(self) -> dict[str, Any]:
        if self.spec is None:
            self.spec = json.loads((self.rec.bundle / "config.json").read_text())
        return self.spec

    def _exec(self, p: Peer, req: dict[str, Any]) -> None:
        """``exec``: start a process in the container with the stdio the client sent (its own
        terminal or pipes, passed with SCM_RIGHTS), or a new pty whose master goes back to the
        client. The process is our child: we reap it and report its exit code."""
        from dockyard.engine.execution import EXEC_START_FAILED, exec_spec
        from dockyard.errors import DockyardError
        from dockyard.runtime.base import Stdio

        fds, p.fds = p.fds, []
        console = None
        try:
            if self.rec.state.get("Paused"):
                raise DockyardError(f"Container {req.get('ref') or self.cid} is paused, unpause the container "
                                    "before exec", 409)
            if not self._running():
                if self.rec.status == "restarting":  # a restart back-off (the CLI's own words)
                    raise DockyardError(f"Container {self.cid} is restarting, wait until the container is "
                                        "running", 409)
                raise DockyardError(f"Container {self.cid} is not running", 409)
            tty = bool(req.get("tty"))
            size = (int(req["h"]), int(req["w"])) if req.get("h") and req.get("w") else None
            process = exec_spec(self._spec(), self.rec, list(req.get("cmd") or []), env=req.get("env"),
                                workdir=req.get("workdir"), user=req.get("user"), tty=tty,
                                privileged=bool(req.get("privileged")), console_size=size)
            if tty:
                console = ConsoleSocket(self.cid)
                stdio = Stdio(console_socket=console.path)
            else:
                stdio = Stdio(*(fds + [None, None, None])[:3])
            try:
                pid = self.runtime.exec(self.cid, process, stdio)
            except DockyardError as exc:
                raise DockyardError(exc.message, EXEC_START_FAILED) from None
            master = console.receive() if console is not None else None
        except Exception as exc:  # noqa: BLE001 - reported to the client, the container goes on
            from dockyard.errors import DockyardError as _E

            code = exc.exit_code if isinstance(exc, _E) else 500
            message = exc.message if isinstance(exc, _E) else f"{type(exc).__name__}: {exc}"
            self._reply(p, {"error": message, "code": code})
            return
        finally:
            for fd in fds:
                _close(fd)
            if console is not None:
                console.close()
        started = proto.control({"event": "started", "pid": pid})
        if master is not None:
            try:
                socket.send_fds(p.sock, [started], [master])
            except OSError:
                pass
            _close(master)
        else:
            self._send(p, started)
        died = self._exec_events(req)
        if req.get("detach"):
            self.exec_pids[pid] = died
            self._reply(p, {"event": "exit", "code": 0})
            return

        def exited(code: int) -> None:
            died(code)
            self._reply(p, {"event": "exit", "code": code})

        self.exec_pids[pid] = exited
        self.reap()  # it may be gone already

    def _exec_events(self, req: dict[str, Any]) -> Callable[[int], None]:
        """``exec_create``/``exec_start`` now and the ``exec_die`` to report at the exit, as
        dockerd's (``"events": false``: the API server reports its exec instances itself)."""
        if req.get("events") is False:
            return lambda code: None
        text = events.exec_command_text(list(req.get("cmd") or []))
        exec_id = os.urandom(32).hex()
        self._event("exec_create: " + text, execID=exec_id)
        self._event("exec_start: " + text, execID=exec_id)
        return lambda code: self._event("exec_die", execID=exec_id, exitCode=code)

    def _attach(self, p: Peer, req: dict[str, Any], reply: bool = True) -> None:
        p.attached = True
        p.streams = {s for s, key in ((proto.STDOUT, "stdout"), (proto.STDERR, "stderr")) if req.get(key)}
        if self.rec.cfg.get("Tty") and p.streams:
            p.streams = {proto.STDOUT}
        p.stdin = bool(req.get("stdin")) and bool(self.rec.cfg.get("OpenStdin"))
        h, w = int(req.get("h") or 0), int(req.get("w") or 0)
        if h and w:
            self.console_size = (h, w)
            if self.pty_fd is not None:
                set_winsize(self.pty_fd, h, w)
        if reply:
            self._reply(p, {"ok": True}, close=False)

    def stop(self, timeout: Any, sig: Any = None, manual: bool = True) -> None:
        """docker stop: the stop signal (or ``sig``), then SIGKILL after ``timeout`` s (-1: never)."""
        self.manual_stop = True
        self.shutdown_stop = not manual
        self.restart.cancel()
        if not self._running():
            self._wake_stoppers()
            return
        if timeout is None:
            timeout = self.rec.cfg.get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        self._signal(int(sig) if sig else stop_signal(self.rec.cfg.get("StopSignal")), report=True)
        if int(timeout) >= 0:
            self.cancel_timer(self.stop_deadline_timer)
            self.stop_deadline_timer = self.add_timer(float(timeout),
                                                      lambda: self._signal(signal.SIGKILL, True, report=True))

    def _wake_stoppers(self) -> None:
        for p in list(self.peers.values()):
            if p.waiting == "stopped":
                p.waiting = None
                self._reply(p, {"ok": True})

    def _signal(self, sig: int, all_processes: bool = False, report: bool = False) -> None:
        """Send ``sig`` to the container; ``report``: as a ``kill`` event (docker's stop and kill)."""
        if not self._running():
            return
        if report:
            self._event("kill", signal=sig)
        try:
            self.runtime.kill(self.cid, sig, all_processes=all_processes)
        except Exception:  # noqa: BLE001 - the process may be exiting right now
            try:
                os.kill(self.init_pid, sig)
            except ProcessLookupError:
                pass
        if self.rec.state.get("Paused") and sig in (signal.SIGKILL, signal.SIGTERM) or \
                (self.rec.state.get("Paused") and self.manual_stop):
            try:
                self.runtime.resume(self.cid)
            except Exception:  # noqa: BLE001
                pass
            self.set_state(Paused=False, Status="running")

    def _kill(self, p: Peer, req: dict[str, Any]) -> None:
        sig = int(req.get("signal") or signal.SIGKILL)
        if req.get("remove"):
            self.remove_requested = True
            self.remove_volumes = bool(req.get("volumes"))
        if not self._running():
            if req.get("remove"):
                self.manual_stop = True
                self.restart.cancel()
                p.waiting = "removed"
                return
            self._reply(p, {"error": f"Container {self.cid} is not running", "code": 409})
            return
        if sig == signal.SIGKILL or sig == stop_signal(self.rec.cfg.get("StopSignal")) or req.get("remove"):
            self.manual_stop = True
            self.restart.cancel()
        self._signal(sig, report=True)
        if req.get("remove"):
            p.waiting = "removed"
        elif sig == signal.SIGKILL:
            p.waiting = "stopped"  # docker kill returns once the container is gone
            self.add_timer(KILL_WAIT, lambda: p.waiting == "stopped" and self._reply(p, {"ok": True}))
        else:
            self._reply(p, {"ok": True})

    def _pause(self, p: Peer, pause: bool) -> None:
        paused = bool(self.rec.state.get("Paused"))
        if not self._running():
            self._reply(p, {"error": f"Container {self.cid} is not running", "code": 409})
        elif pause and paused:
            self._reply(p, {"error": f"Container {self.cid} is already paused", "code": 409})
        elif not pause and not paused:
            self._reply(p, {"error": f"Container {self.cid} is not paused", "code": 409})
        else:
            try:
                (self.runtime.pause if pause else self.runtime.resume)(self.cid)
            except Exception as exc:  # noqa: BLE001
                self._reply(p, {"error": str(exc), "code": 500})
                return
            self.set_state(Paused=pause, Status="paused" if pause else "running")
            self._reply(p, {"ok": True})

    # ================================================================== exit
    def finish_run(self) -> int:
        """The init has exited and its output is drained: record it and release the runtime."""
        from dockyard.runtime import cgroups

        code = int(self.exit_status or 0)
        self.cancel_timer(self.stop_deadline_timer)
        self.stop_health()
        oom = False
        try:
            from dockyard.engine.bundle import cgroups_path

            oom = cgroups.oom_killed(cgroups_path(self.rec))
        except Exception:  # noqa: BLE001
            pass
        if oom:
            self._event("oom")
        self._event("die", exitCode=code)
        for fd in list(self.outputs):
            self._close_output(fd)
        self._close_stdin()
        self._stdin_eof = False
        self.stdin_buf.clear()
        self._cleanup_runtime()
        self._release_attachments()
        events.emit_attachments(self.client, self.rec, starting=False)
        self.init_pid = 0
        self.set_state(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=code,
                       OOMKilled=oom, FinishedAt=rfc3339nano(time.time_ns()))
        return code

    def _notify_exit(self, code: int) -> None:
        """Between restarts: attached clients and ``wait``-ers hear of this exit."""
        for p in list(self.peers.values()):
            if p.attached or p.waiting == "exit":
                p.attached = False
                p.waiting = None
                self._reply(p, {"event": "exit", "code": code})

    def _release_attachments(self) -> None:
        from dockyard.engine.attachments import Attachments

        att = Attachments(self.client)
        for step in (att.network_down, att.stop_mounts):
            try:
                step(self.rec)
            except Exception:  # noqa: BLE001 - logged; the container is stopped either way
                self.log_error()

    def _cleanup_runtime(self) -> None:
        try:
            self.runtime.delete(self.cid, force=True)
        except Exception:  # noqa: BLE001 - not created, or already gone
            pass

    def finalize(self) -> None:
        """The container will not run again under this monitor: unmount, maybe remove, tell
        everyone waiting (once a removed container is out of sight, so ``run --rm`` returns when
        it is gone; deleting its files comes after), exit."""
        try:
            if self.init_pid and self.exit_status is None:  # an error in the loop: leave nothing running
                try:
                    self.runtime.kill(self.cid, signal.SIGKILL, all_processes=True)
                except Exception:  # noqa: BLE001
                    pass
                self._cleanup_runtime()
                self._release_attachments()
                self.set_state(Status="exited", Running=False, Pid=0, ExitCode=137,
                               FinishedAt=rfc3339nano(time.time_ns()))
            if self.logger is not None:
                self._log(self.logger.close)
                self.logger = None
            if self.rec.state.get("Status") in ("running", "paused", "restarting"):
                self.set_state(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0)
            if self.manual_stop and not self.shutdown_stop:
                self.set_state(ManuallyStopped=True)
            code = int(self.rec.state.get("ExitCode", 0))
            removing = bool(self.rec.host_config.get("AutoRemove") or self.remove_requested)
            hidden = False
            try:
                self.client.snapshots.unmount(self.rec.rootfs)
                if removing:  # out of sight and its name free: for everyone, it is gone
                    self.store.begin_remove(self.rec)
                    hidden = True
                    self._event("destroy")
            except Exception:  # noqa: BLE001
                self.log_error()
            for p in list(self.peers.values()):
                if p.sock.fileno() < 0:
                    continue
                if p.waiting == "stopped":
                    self._send(p, proto.control({"ok": True, "code": code}))
                elif p.attached or p.waiting in ("exit", "not-running", "removed", "started"):
                    self._send(p, proto.control({"event": "exit", "code": code}))
            if hidden:  # the rest of the removal happens after the news: nobody waits for it
                from dockyard.engine.containers import finish_remove

                try:
                    finish_remove(self.client, self.rec, unmounted=True, remove_volumes=bool(
                        self.rec.host_config.get("AutoRemove")) or self.remove_volumes)
                except Exception:  # noqa: BLE001
                    self.log_error()
        finally:
            self._close_listener()
            _close(self.lock_fd)  # the container is free: start/rm need not wait for slow readers
            self._flush_peers()

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        try:
            self.sel.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()
        self.listener = None
        try:
            if self.rec.socket_path.parent.exists():
                os.unlink(self.rec.socket_path)
        except OSError:
            pass

    remove_volumes = False

    def _flush_peers(self, stall: float = 30.0) -> None:
        """Deliver what is queued for clients before exiting: a slow reader gets all of its
        output; one that reads nothing for ``stall`` seconds is dropped."""
        for p in list(self.peers.values()):
            try:
                p.sock.setblocking(True)
                p.sock.settimeout(stall)
                if p.out:
                    p.sock.sendall(p.out)
            except OSError:
                pass
            p.sock.close()
        self.peers.clear()

    # ================================================================== health
    def setup_health(self) -> None:
        self.stop_health()
        if not self.rec.cfg.get("Healthcheck"):  # the usual case: no import (a dataclass module)
            self.health_cfg = self.health = None
            return
        from dockyard.engine.health import HealthState, effective_config

        self.health_cfg = effective_config(self.rec.cfg.get("Healthcheck"))
        if self.health_cfg is None:
            self.health = None
            return
        self.health = HealthState()
        self.health_timer = self.add_timer(self.health_cfg["interval"], self.run_probe)

    def stop_health(self) -> None:
        self.cancel_timer(getattr(self, "health_timer", None))
        if self.probe is not None:
            self._finish_probe(-1, killed=True)

    def run_probe(self) -> None:
        """Start one probe with ``exec``; its output is read by the loop, its exit reaped."""
        from dockyard.runtime.base import Stdio
        from dockyard.runtime.spec import exec_process

        if not self._running() or self.health_cfg is None:
            return
        if self.rec.state.get("Paused"):
            self.health_timer = self.add_timer(self.health_cfg["interval"], self.run_probe)
            return
        start = time.time_ns()
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            process = exec_process(self._spec()["process"], self.health_cfg["argv"])
            pid = self.runtime.exec(self.cid, process, Stdio(stdin=None, stdout=w, stderr=w))
        except Exception as exc:  # noqa: BLE001 - a probe that cannot start is a failed probe
            _close(r)
            _close(w)
            self._record_probe(start, 1 if "not found" not in str(exc) else 127, str(exc))
            return
        _close(w)
        os.set_blocking(r, False)
        self.probe = {"pid": pid, "fd": r, "out": bytearray(), "start": start}
        self.sel.register(r, selectors.EVENT_READ, ("probe", r))
        died = self._exec_events({"cmd": self.health_cfg["argv"]})  # dockerd reports probes as execs

        def exited(code: int) -> None:
            died(code)
            self._finish_probe(code)

        self.exec_pids[pid] = exited
        self.probe["timer"] = self.add_timer(self.health_cfg["timeout"], self._probe_timeout)
        self.reap()  # it may have exited already (reparented to us while the runtime ran)

    def _read_probe(self) -> None:
        pr = self.probe
        if pr is None:
            return
        try:
            data = os.read(pr["fd"], 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            try:
                self.sel.unregister(pr["fd"])
            except KeyError:
                pass
            return
        from dockyard.engine.health import MAX_OUTPUT

        if len(pr["out"]) < MAX_OUTPUT:
            pr["out"] += data[:MAX_OUTPUT - len(pr["out"])]

    def _probe_timeout(self) -> None:
        pr = self.probe
        if pr is None:
            return
        try:
            os.kill(pr["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.exec_pids.pop(pr["pid"], None)
        from dockyard.engine.timeutil import go_duration

        pr["timed_out"] = f"Health check exceeded timeout ({go_duration(int(self.health_cfg['timeout'] * 1e9))})"
        self._finish_probe(-1)

    def _finish_probe(self, code: int, killed: bool = False) -> None:
        pr, self.probe = self.probe, None
        if pr is None:
            return
        self.cancel_timer(pr.get("timer"))
        self.exec_pids.pop(pr["pid"], None)
        try:
            while True:
                chunk = os.read(pr["fd"], 65536)
                if not chunk:
                    break
                pr["out"] += chunk
        except OSError:
            pass
        try:
            self.sel.unregister(pr["fd"])
        except KeyError:
            pass
        _close(pr["fd"])
        if killed:
            return
        from dockyard.engine.health import MAX_OUTPUT

        output = pr.get("timed_out") or bytes(pr["out"][:MAX_OUTPUT]).decode("utf-8", "replace")
        self._record_probe(pr["start"], code, output)

    def _record_probe(self, start: int, code: int, output: str) -> None:
        if self.health is None or self.health_cfg is None:
            return
        since_start = (start / 1e9) - (time.time() - (time.monotonic() - self.started_mono))
        before = self.health.to_json().get("Status")
        self.health.record(rfc3339nano(start), rfc3339nano(time.time_ns()), code, output, since_start,
                           self.health_cfg)
        health = self.health.to_json()
        self.set_state(Health=health)
        if health.get("Status") != before:  # dockerd reports each change of the status
            self._event("health_status: " + str(health.get("Status")))
        if self._running():
            self.health_timer = self.add_timer(self.health_cfg["interval"], self.run_probe)

    # ================================================================== state
    def _event(self, action: str, **extra: Any) -> None:
        """A container event with its current name and labels (a ``rename`` since the start
        shows, as dockerd's do)."""
        try:
            rec = self.store.load(self.cid)
            self.rec.config["Name"] = rec.config.get("Name", self.rec.config.get("Name"))
        except Exception:  # noqa: BLE001 - being removed: the record as the monitor knows it last
            rec = self.rec
        events.emit_container(self.client, rec, action, **extra)

    def set_state(self, **changes: Any) -> None:
        self.rec.state.update(changes)
        try:
            self.store.write_state(self.rec)
        except FileNotFoundError:
            pass  # removed under us (rm -f while stopping)
        except OSError:
            self.log_error()  # a full disk: keep minding the container

    def log_error(self) -> None:
        try:
            with open(self.rec.dir / "monitor.log", "a") as f:
                import traceback  # only when something went wrong (textwrap, linecache behind it)

                f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + traceback.format_exc() + "\n")
        except OSError:
            pass


# ====================================================================== helpers
def _close(fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass


def stop_signal(name: Any) -> int:
    """``STOPSIGNAL`` (``SIGTERM``, ``TERM``, ``15``) as a number; SIGTERM by default."""
    if not name:
        return int(signal.SIGTERM)
    text = str(name).strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(signal, text))
    except AttributeError:
        return int(signal.SIGTERM)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass


class ConsoleSocket:
    """runc's ``--console-socket``: a unix socket on which the runtime sends the pty master.

    Unix socket paths are short, so it lives in a private directory under /tmp, not in the
    (possibly deep) state root."""

    def __init__(self, cid: str) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix=f"dy-{cid[:12]}-")
        self.path = os.path.join(self.dir, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self, timeout: float = 10.0) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(timeout)
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise OSError(errno.EPROTO, "the runtime sent no terminal on the console socket")
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass


# ====================================================================== starting a monitor
def _warm_cgroup_moves() -> None:
    """Make the container init's move into its cgroup cheap (one of the slowest steps of a start).

    Moving a process between cgroups takes the kernel's global cgroup_threadgroup_rwsem for
    writing, which first waits for an RCU grace period (5-15 ms) — unless another move happened
    a moment before. So the monitor's short-lived parent moves itself (to the cgroup it is
    already in: nothing changes) while the monitor prepares the bundle; the init's moves a few
    milliseconds later find the way clear. Best effort: any error is ignored.

    Only for runc/crun: the built-in runtime forks the init into its cgroups without that lock
    (``dockyard.runtime.builtin.forking``), and a move in flight would hold up its cgroup mkdirs
    (the move waits for the grace period holding cgroup_mutex)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
        for line in lines:
            _, ctrls, path = line.split(":", 2)
            if ctrls == "":
                base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            elif "memory" in ctrls.split(",") or "pids" in ctrls.split(","):
                base = f"/sys/fs/cgroup/{ctrls}"
            else:
                continue
            procs = f"{base}{path.rstrip('/')}/cgroup.procs"
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
            return
    except (OSError, ValueError):
        pass


def _daemon_stdio() -> None:
    """The monitor keeps none of the CLI's stdio (a pipe left open would hang the CLI's caller)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _serve(root: str, cid: str, lock_fd: int, sock: socket.socket | None, attach: dict[str, Any] | None) -> int:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, b"dockyard-mon", 0, 0, 0)  # PR_SET_NAME: visible in ps/top
    except Exception:  # noqa: BLE001
        pass
    m = None
    try:
        m = Monitor(root, cid, lock_fd)
        m.setup()
        m.run(Peer(sock) if sock is not None else None, attach)
        return 0
    except BaseException:  # noqa: BLE001
        if m is not None:
            m.log_error()
        else:
            try:
                with open(Path(root, "containers", cid, "monitor.log"), "a") as f:
                    import traceback

                    f.write(traceback.format_exc())
            except OSError:
                pass
        return 1


def spawn(root: str, cid: str, lock_fd: int, attach: dict[str, Any] | None = None,
          warm_cgroups: bool = False) -> socket.socket:
    """Start the monitor of ``cid`` as a daemon and return the caller's end of its first
    connection (the start result, then the attach stream if ``attach`` was given).

    ``lock_fd`` is the container's locked ``monitor.lock``: the monitor inherits the lock, so
    there is no moment when the container is starting and nobody holds it. ``warm_cgroups``:
    see :func:`_warm_cgroup_moves` (for the external runtimes)."""
    import threading

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    from dockyard.engine import prefork

    if prefork.hand_over(root, cid, lock_fd, theirs.fileno(), attach, warm_cgroups):
        theirs.close()  # a monitor started ahead of need has it (see dockyard.engine.prefork)
        return ours
    os.set_inheritable(theirs.fileno(), True)
    if threading.active_count() > 1:  # forking a threaded process is unsafe: start a fresh one
        import subprocess

        args = [sys.executable, "-m", "dockyard.engine.monitor", root, cid, str(lock_fd), str(theirs.fileno()),
                "warm" if warm_cgroups else "-"]
        if attach:
            args.append(json.dumps(attach))
        os.set_inheritable(lock_fd, True)
        from dockyard.engine.reaping import not_subreaper

        with not_subreaper():
            proc = subprocess.Popen(args, pass_fds=(lock_fd, theirs.fileno()), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            proc.wait()  # the first process only forks the daemon and exits
        theirs.close()
        ours.setblocking(True)
        return ours
    from dockyard.engine.reaping import not_subreaper

    with not_subreaper():  # the monitor must be init's child, not ours
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                ours.close()
                os.setsid()
                if os.fork() != 0:
                    if warm_cgroups:
                        _warm_cgroup_moves()
                    os._exit(0)
                _daemon_stdio()
                code = _serve(root, cid, lock_fd, theirs, attach)
            finally:
                os._exit(code)
        theirs.close()
        os.waitpid(pid, 0)
    return ours


def main(argv: list[str] | None = None) -> int:
    """``python -m dockyard.engine.monitor ROOT ID LOCK_FD SOCK_FD warm|- [ATTACH_JSON]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    root, cid, lock_fd, sock_fd = argv[0], argv[1], int(argv[2]), int(argv[3])
    attach = json.loads(argv[5]) if len(argv) > 5 else None
    if os.fork() != 0:
        if argv[4] == "warm":
            _warm_cgroup_moves()
        os._exit(0)
    os.setsid()
    _daemon_stdio()
    sock = socket.socket(fileno=sock_fd)
    os.set_inheritable(lock_fd, False)
    return _serve(root, cid, lock_fd, sock, attach)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
