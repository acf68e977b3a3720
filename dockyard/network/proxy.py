"""The userspace proxy for ports published on IPv6: ``[::]:8080`` -> ``<container IPv4>:80``.

A ``-p 8080:80`` is published on IPv4 by kernel DNAT (no copy in userspace: that is the fast
path) and, as dockerd 20.10 does, on ``[::]:8080`` too. ip6tables cannot DNAT to an IPv4
container, so for the IPv6 side docker runs ``docker-proxy``; we run this module: one small
process per container serving all its IPv6 listeners, TCP and UDP.

* The listening sockets are bound by the network service before anything else is made (a taken
  port fails the start with docker's message) and handed to this process as inherited fds, so
  no connection is lost between ``run`` returning and the proxy's loop starting.
* TCP is copied with ``splice(2)`` through a pipe per direction (the bytes never enter Python),
  half-closes are passed on, a reset or refused connect closes both sides.
* UDP: one connected socket to the container per client address, idle ones dropped after
  ``UDP_IDLE`` seconds (docker-proxy's 90 s).
* It dies with the process that started it (``PR_SET_PDEATHSIG``: the container's monitor) and
  is killed by ``release`` when the container stops; ``--root`` in its command line names the
  state root's tag, so a leak check finds any that were left.

Run as ``python -m dockyard.network.proxy --root TAG --container ID --parent PID TARGET_IP
PROTO:FD:PORT...``; it imports nothing but the standard library.
"""
from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

MODULE = "dockyard.network.proxy"
UDP_IDLE = 90.0
CHUNK = 1 << 16
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


# ------------------------------------------------------------------ starting and stopping
def start(root_tag: str, container_id: str, target_ip: str,
          listeners: list[tuple[str, socket.socket, int]]) -> int:
    """Start the proxy for ``listeners`` ((proto, bound socket, container port)); returns its
    pid. The caller's copies of the sockets may be closed once this returns."""
    import subprocess

    argv = [sys.executable, "-m", MODULE, "--root", root_tag, "--container", container_id,
            "--parent", str(os.getpid()), target_ip]
    fds = []
    for proto, sock, port in listeners:
        fds.append(sock.fileno())
        argv.append(f"{proto}:{sock.fileno()}:{port}")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")}
    proc = subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd="/")
    _CHILDREN[proc.pid] = proc  # keeps Popen from warning; reaped by stop()
    return proc.pid


_CHILDREN: dict[int, Any] = {}


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_proxy(pid: int, root_tag: str, container_id: str | None = None) -> bool:
    """Is ``pid`` still a proxy of this root (and container)? Guards against a reused pid."""
    argv = _cmdline(pid)
    if MODULE not in argv or "--root" not in argv:
        return False
    i = argv.index("--root")
    if argv[i + 1:i + 2] != [root_tag]:
        return False
    return container_id is None or container_id in argv


def running(root_tag: str) -> list[int]:
    """Pids of this root's proxies (for cleanup and the leak check)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and is_proxy(int(entry.name), root_tag):
            found.append(int(entry.name))
    return found


def stop(pid: int, root_tag: str, container_id: str | None = None, timeout: float = 5.0) -> None:
    """Kill a proxy and wait until it is gone, so its ports are free when this returns."""
    if not pid or not is_proxy(pid, root_tag, container_id):
        _reap(pid)
        return
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sel = selectors.DefaultSelector()
        sel.register(pidfd, selectors.EVENT_READ)
        sel.select(timeout)  # readable once the process has exited (its sockets are closed)
        sel.close()
    finally:
        os.close(pidfd)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect a proxy this process started; any other pid is left alone (in a monitor, whose
    reaper collects its children, a reused pid could be the container's init)."""
    proc = _CHILDREN.pop(pid, None)
    if proc is None:
        return
    try:
        proc.wait(timeout=1)
    except Exception:  # noqa: BLE001 - already reaped by the monitor's reaper
        pass


# ------------------------------------------------------------------ the proxy itself
class _Flow:
    """One direction of a TCP connection: ``src`` -> pipe -> ``dst``."""

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.pr, self.pw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pending = 0
        self.eof = False
        self.done = False  # eof seen and everything written: dst's write side is shut

    def pump(self) -> None:
        """Move what can be moved now; raises OSError when the connection is broken."""
        while not self.done:
            if self.pending:
                try:
                    n = os.splice(self.pr, self.dst.fileno(), self.pending, flags=SPLICE_FLAGS)
                except BlockingIOError:
                    return
                self.pending -= n
                continue
            if self.eof:
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                self.done = True
                return
            try:
                n = os.splice(self.src.fileno(), self.pw, CHUNK, flags=SPLICE_FLAGS)
            except BlockingIOError:
                return
            if n == 0:
                self.eof = True
            self.pending += n

    @property
    def wants_read(self) -> bool:
        return not self.done and not self.pending and not self.eof

    def close(self) -> None:
        for fd in (self.pr, self.pw):
            try:
                os.close(fd)
            except OSError:
                pass


class _Conn:
    """A client connection and its upstream to the container."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.connecting = True
        self.flows: list[_Flow] = []


class Proxy:
    def __init__(self, target_ip: str) -> None:
        self.target_ip = target_ip
        self.sel = selectors.DefaultSelector()
        self.udp_peers: dict[tuple[int, Any], tuple[socket.socket, float]] = {}
        self.masks: dict[int, int] = {}

    # -- registration -----------------------------------------------------------------------
    def _set(self, sock: socket.socket, mask: int, data: Any) -> None:
        """Register, change or (mask 0) drop interest in ``sock``."""
        fd = sock.fileno()
        old = self.masks.get(fd)
        if old is None:
            if mask:
                self.sel.register(fd, mask, data)
                self.masks[fd] = mask
        elif mask:
            self.sel.modify(fd, mask, data)
            self.masks[fd] = mask
        else:
            self.sel.unregister(fd)
            del self.masks[fd]

    def _drop(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd >= 0 and fd in self.masks:
            self.sel.unregister(fd)
            del self.masks[fd]
        sock.close()

    def add_listener(self, proto: str, sock: socket.socket, port: int) -> None:
        sock.setblocking(False)
        handler: Callable[[], None]
        if proto == "tcp":
            handler = lambda: self._accept(sock, port)  # noqa: E731
        else:
            handler = lambda: self._udp_in(sock, port)  # noqa: E731
        self._set(sock, selectors.EVENT_READ, handler)

    # -- TCP --------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket, port: int) -> None:
        for _ in range(64):
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: leave it queued for later
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return
                continue
            client.setblocking(False)
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setblocking(False)
            rc = up.connect_ex((self.target_ip, port))
            conn = _Conn(client, up)
            if rc not in (0, errno.EINPROGRESS):
                client.close()
                up.close()
                continue
            self._set(up, selectors.EVENT_WRITE, lambda c=conn: self._connected(c))

    def _connected(self, conn: _Conn) -> None:
        err = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop(conn.upstream)
            conn.client.close()  # docker-proxy closes the client when the container refuses
            return
        conn.connecting = False
        conn.flows = [_Flow(conn.client, conn.upstream), _Flow(conn.upstream, conn.client)]
        self._service(conn)

    def _service(self, conn: _Conn) -> None:
        try:
            for f in conn.flows:
                f.pump()
        except OSError:
            self._close(conn)
            return
        if all(f.done for f in conn.flows):
            self._close(conn)
            return
        up, down = conn.flows
        cb = lambda c=conn: self._service(c)  # noqa: E731
        for sock, reader, writer in ((conn.client, up, down), (conn.upstream, down, up)):
            mask = (selectors.EVENT_READ if reader.wants_read else 0) | \
                   (selectors.EVENT_WRITE if writer.pending else 0)
            self._set(sock, mask, cb)

    def _close(self, conn: _Conn) -> None:
        for f in conn.flows:
            f.close()
        self._drop(conn.client)
        self._drop(conn.upstream)

    # -- UDP --------------------------------------------------------------------------------
    def _udp_in(self, listener: socket.socket, port: int) -> None:
        for _ in range(64):
            try:
                data, peer = listener.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            key = (listener.fileno(), peer)
            entry = self.udp_peers.get(key)
            if entry is None:
                up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                up.setblocking(False)
                try:
                    up.connect((self.target_ip, port))
                except OSError:
                    up.close()
                    continue
                self._set(up, selectors.EVENT_READ,
                          lambda u=up, lsn=listener, p=peer: self._udp_back(u, lsn, p))
            else:
                up = entry[0]
            self.udp_peers[key] = (up, time.monotonic())
            try:
                up.send(data)
            except OSError:
                pass

    def _udp_back(self, up: socket.socket, listener: socket.socket, peer: Any) -> None:
        for _ in range(64):
            try:
                data = up.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNREFUSED from an ICMP: nothing listens in the container
                return
            self.udp_peers[(listener.fileno(), peer)] = (up, time.monotonic())
            try:
                listener.sendto(data, peer)
            except OSError:
                pass

    def _expire_udp(self) -> None:
        now = time.monotonic()
        for key, (up, seen) in list(self.udp_peers.items()):
            if now - seen > UDP_IDLE:
                del self.udp_peers[key]
                self._drop(up)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, parent: int) -> None:
        while True:
            timeout = 10.0 if self.udp_peers else 60.0
            for key, _ in self.sel.select(timeout):
                try:
                    key.data()
                except Exception:  # noqa: BLE001 - one connection's failure must not stop the rest
                    pass
            self._expire_udp()
            if parent and os.getppid() != parent:
                return


def _die_with_parent(parent: int) -> None:
    """``PR_SET_PDEATHSIG``: a monitor that dies takes its proxy along (no leaked listener)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent and os.getppid() != parent:
        os._exit(0)


def _raise_nofile() -> None:
    """Each connection holds six fds: use the whole soft limit the hard one allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def main(argv: list[str]) -> int:
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for word in it:
        if word in ("--root", "--container", "--parent"):
            opts[word] = next(it)
        else:
            rest.append(word)
    parent = int(opts.get("--parent", "0"))
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_nofile()
    target, listeners = rest[0], rest[1:]
    proxy = Proxy(target)
    for spec in listeners:
        proto, fd, port = spec.split(":")
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        sock = socket.socket(fileno=int(fd))
        assert sock.type == kind
        proxy.add_listener(proto, sock, int(port))
    proxy.run(parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
