"""TTY containers: a pty from the container's own devpts, its master sent over the console socket.

runc's ``--console-socket`` protocol: the runtime connects to a unix stream socket the caller
listens on and sends the pty master with SCM_RIGHTS (the message text is the pty's name). The
slave becomes the process's controlling terminal and its stdio, and is bind-mounted over
/dev/console, as runc does.
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from dockyard.runtime import linux


def connect(path: str) -> socket.socket:
    """Connect to the caller's console socket (done before pivot_root: it is a host path)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def setup(sock: socket.socket, console_size: dict[str, int] | None, mount_console: bool) -> None:
    """Open a pty in the container (after pivot_root), send the master, adopt the slave."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    if console_size:
        fcntl.ioctl(master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", console_size.get("height", 0), console_size.get("width", 0), 0, 0))
    slave_name = os.ttyname(slave)
    if mount_console:
        try:
            fd = os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
            os.close(fd)
            linux.mount(slave_name, "/dev/console", None, linux.MS_BIND)
        except OSError:
            pass  # /dev is not ours (bind-mounted from the host): no console node to replace
    socket.send_fds(sock, [slave_name.encode()], [master])
    os.close(master)
    sock.close()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target, inheritable=True)
    if slave > 2:
        os.close(slave)


def receive_master(listener: socket.socket, timeout: float | None = 30) -> int:
    """The caller's side: accept one connection on a listening console socket, return the master fd."""
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    finally:
        conn.close()
    if not fds:
        raise OSError("no pty master received on the console socket")
    return fds[0]
