"""Interactive use in a real terminal: ``run -it``, ``exec -it``, window size, Ctrl-C, detach keys, attach.

The CLI runs on the slave side of a pty we own, exactly as in a terminal emulator.
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest


class Terminal:
    """A dockyard command running in a pseudo-terminal."""

    def __init__(self, root: Path, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - child
            os.environ["DOCKYARD_ROOT"] = str(root)
            os.execv(sys.executable, [sys.executable, "-m", "dockyard", *args])
        self.resize(rows, cols, signal_child=False)
        self.out = b""

    def resize(self, rows: int, cols: int, signal_child: bool = True) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if signal_child:
            os.kill(self.pid, signal.SIGWINCH)

    def read_until(self, needle: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.out!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"terminal closed before {needle!r}: {self.out!r}")
                self.out += data
        return self.out

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"still running: {self.out!r}")


@pytest.fixture
def term(root, busybox):
    made: list[Terminal] = []

    def start(*args: str, **kw: int) -> Terminal:
        t = Terminal(root, *args, **kw)
        made.append(t)
        return t

    yield start
    for t in made:
        try:
            os.kill(t.pid, signal.SIGKILL)
            os.waitpid(t.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_run_it_size_resize_ctrl_c_and_exit_code(term, runtime):
    t = term("run", "-it", "--rm", "--network", "none", "busybox", "sh", rows=33, cols=111)
    t.read_until(b"# ")
    t.send(b"stty size; echo $TERM\r")
    t.read_until(b"33 111\r\nxterm\r\n")
    t.resize(40, 100)
    time.sleep(0.2)
    t.send(b"stty size\r")
    t.read_until(b"40 100\r\n")
    t.send(b"sleep 30\r")
    time.sleep(0.3)
    t.send(b"\x03")  # Ctrl-C reaches the shell through the pty
    t.send(b"echo after-$((40+2))\r")
    t.read_until(b"after-42")
    t.send(b"exit 3\r")
    assert t.wait() == 3


def test_detach_keys_then_attach(term, dy):
    t = term("run", "-it", "--name", "det", "--network", "none", "busybox", "sh")
    t.read_until(b"# ")
    t.send(b"echo one\r")
    t.read_until(b"one\r\n")
    t.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert t.wait() == 0
    assert dy.state("det")["Running"]
    a = term("attach", "det")
    time.sleep(0.3)
    a.send(b"echo two\r")
    a.read_until(b"two\r\n")
    a.send(b"exit 4\r")
    assert a.wait() == 4
    assert dy.state("det")["ExitCode"] == 4


def test_custom_detach_keys(term, dy):
    t = term("run", "-it", "--detach-keys", "ctrl-x,x", "--name", "dk", "--network", "none", "busybox", "sh")
    t.read_until(b"# ")
    t.send(b"\x18x")
    assert t.wait() == 0
    assert dy.state("dk")["Running"]


def test_exec_it(term, dy, runtime):
    dy.run_d("--name", "ei", "busybox", "sleep", "60")
    t = term("exec", "-it", "ei", "sh", rows=20, cols=70)
    t.read_until(b"# ")
    t.send(b"tty; stty size\r")
    t.read_until(b"/dev/pts/")
    t.read_until(b"20 70\r\n")
    t.send(b"exit 5\r")
    assert t.wait() == 5
    p = dy("exec", "-it", "ei", "true")  # stdin is not a terminal here
    assert p.returncode == 1 and "the input device is not a TTY" in p.stderr
