"""The CLI side of a container's stdio: raw terminal, window size, detach keys, signal proxy.

``relay_attach`` joins the user's terminal (or pipes) to a monitor connection (``run``,
``start -a``, ``attach``); ``relay_pty`` joins it to a pty master for ``exec -t``. Both read
the user's input unbuffered, watch for the detach sequence (``ctrl-p,ctrl-q`` by default),
forward window-size changes and, without a terminal, forward signals sent to the CLI to the
container (docker's ``--sig-proxy``).
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
from typing import Any

from dockyard.engine import protocol as proto
from dockyard.engine.ptyio import read_pty
from dockyard.errors import InvalidArgument

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
PROXIED_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                                    signal.SIGUSR2, signal.SIGALRM, signal.SIGCONT, signal.SIGTSTP))


def parse_detach_keys(spec: str | None) -> bytes:
    """docker's ``--detach-keys``: comma-separated ``ctrl-<x>`` or single characters."""
    spec = DEFAULT_DETACH_KEYS if spec is None else spec
    if spec == "":
        return b""
    out = bytearray()
    for key in spec.split(","):
        k = key.strip()
        if len(k) == 1:
            out.append(ord(k))
            continue
        if k.lower().startswith("ctrl-") and len(k) == 6:
            c = k[5].lower()
            table = "@abcdefghijklmnopqrstuvwxyz[\\]^_"
            if c in table:
                out.append(table.index(c))
                continue
        raise InvalidArgument(f"Unrecognized input sequence: {k}")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in the user's input; bytes of a partial match are held back."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, whether the user detached). A broken partial match is forwarded."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            self.held += bytes([b])
            if self.keys.startswith(self.held):
                if self.held == self.keys:
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
        return bytes(out), False


def terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


class RawTerminal:
    """Put a terminal in raw mode for the duration (docker's ``term.SetRawTerminal``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> "RawTerminal":
        import termios
        import tty

        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: Any) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class _SignalPipe:
    """Signals as bytes on a pipe, so the relay loop can select on them."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.signals = signals
        self.old: dict[int, Any] = {}
        self.old_fd = -1

    def __enter__(self) -> "_SignalPipe":
        self.old_fd = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        for s in self.signals:
            self.old[s] = signal.signal(s, lambda *_: None)
        return self

    def read(self) -> list[int]:
        try:
            return list(os.read(self.r, 512))
        except BlockingIOError:
            return []

    def __exit__(self, *exc: Any) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self.old_fd)
        os.close(self.r)
        os.close(self.w)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def relay_attach(conn: proto.Connection, *, stdin: bool, tty: bool, detach_keys: bytes = b"\x10\x11",
                 sig_proxy: bool = True, stdout_fd: int = 1, stderr_fd: int = 2,
                 stdin_fd: int = 0) -> dict[str, Any]:
    """Stream a monitor connection until the container exits (``{"event": "exit", "code": N}``),
    fails to start (``{"event": "error", ...}``), the user detaches (``{"event": "detached"}``)
    or the monitor goes away (``{"event": "eof"}``)."""
    result: dict[str, Any] = {"event": "eof"}
    reader = proto.FrameReader()
    scanner = DetachScanner(detach_keys if stdin else b"")
    stdin_open = stdin
    sock = conn.sock
    sock.setblocking(True)
    watch = (signal.SIGWINCH,) if tty else (PROXIED_SIGNALS if sig_proxy else ())
    raw = RawTerminal(stdin_fd) if (tty and stdin and os.isatty(stdin_fd)) else None
    with _SignalPipe(watch) as sigs:
        if raw is not None:
            raw.__enter__()
        try:
            if tty:
                size = terminal_size(stdout_fd) or terminal_size(stdin_fd)
                if size:
                    conn.send_control({"op": "resize", "h": size[0], "w": size[1]})
            # whatever already arrived with the first reply
            for kind, payload in conn.pending:
                result = _deliver(kind, payload, result, stdout_fd, stderr_fd)
            conn.pending.clear()
            while True:
                rlist = [sock, sigs.r] + ([stdin_fd] if stdin_open else [])
                try:
                    ready, _, _ = select.select(rlist, [], [])
                except InterruptedError:
                    continue
                if sigs.r in ready:
                    for s in sigs.read():
                        if s == signal.SIGWINCH:
                            size = terminal_size(stdout_fd) or terminal_size(stdin_fd)
                            if size:
                                conn.send_control({"op": "resize", "h": size[0], "w": size[1]})
                        elif sig_proxy and not tty:
                            conn.send_control({"op": "kill", "signal": s})
                if stdin_open and stdin_fd in ready:
                    try:
                        data = os.read(stdin_fd, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        stdin_open = False
                        conn.send(proto.STDIN_EOF, b"")
                    else:
                        data, detached = scanner.feed(data)
                        if data:
                            conn.send(proto.STDIN, data)
                        if detached:
                            return {"event": "detached"}
                if sock in ready:
                    try:
                        data = sock.recv(65536)
                    except (ConnectionResetError, OSError):
                        data = b""
                    if not data:
                        return result
                    for kind, payload in reader.feed(data):
                        result = _deliver(kind, payload, result, stdout_fd, stderr_fd)
                        if kind == proto.CONTROL and json.loads(payload).get("event") == "exit":
                            return result  # the last word: everything before it is delivered
        finally:
            if raw is not None:
                raw.__exit__()


def _deliver(kind: int, payload: bytes, result: dict[str, Any], out: int, err: int) -> dict[str, Any]:
    if kind == proto.STDOUT:
        _write_all(out, payload)
    elif kind == proto.STDERR:
        _write_all(err, payload)
    elif kind == proto.CONTROL:
        msg = json.loads(payload)
        if msg.get("event") in ("exit", "error"):
            if result.get("event") == "error":
                return result  # the start error is what the user needs to see
            return msg
    return result


def relay_pty(master: int, *, stdin: bool, detach_keys: bytes = b"\x10\x11", stdin_fd: int = 0,
              stdout_fd: int = 1) -> bool:
    """``exec -t``: copy between the user's terminal and the pty until the process has closed
    it; True if the user detached instead (the process goes on)."""
    from dockyard.engine.monitor import set_winsize

    scanner = DetachScanner(detach_keys if stdin else b"")
    stdin_open = stdin
    size = terminal_size(stdout_fd) or terminal_size(stdin_fd)
    if size:
        set_winsize(master, *size)
    raw = RawTerminal(stdin_fd) if (stdin and os.isatty(stdin_fd)) else None
    with _SignalPipe((signal.SIGWINCH,)) as sigs:
        if raw is not None:
            raw.__enter__()
        try:
            while True:
                rlist = [master, sigs.r] + ([stdin_fd] if stdin_open else [])
                try:
                    ready, _, _ = select.select(rlist, [], [])
                except InterruptedError:
                    continue
                if sigs.r in ready:
                    for s in sigs.read():
                        if s == signal.SIGWINCH:
                            size = terminal_size(stdout_fd) or terminal_size(stdin_fd)
                            if size:
                                set_winsize(master, *size)
                if stdin_open and stdin_fd in ready:
                    data = os.read(stdin_fd, 65536)
                    if not data:
                        stdin_open = False
                    else:
                        data, detached = scanner.feed(data)
                        if data:
                            _write_all(master, data)
                        if detached:
                            return True
                if master in ready:
                    data = read_pty(master)
                    if not data:
                        return False  # every holder of the terminal's other side is gone
                    _write_all(stdout_fd, data)
        finally:
            if raw is not None:
                raw.__exit__()


def stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (ValueError, OSError):
        return False
