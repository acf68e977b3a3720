"""The embedded DNS resolver: containers on user networks find each other by name at 127.0.0.11.

One small daemon per state root (``python -m dockyard.network.dns ROOT``) holds, for every
container on a user-defined network, a UDP and a TCP socket bound to 127.0.0.11:53 *inside that
container's network namespace* (created after a ``setns``; a socket keeps the namespace it was
made in). It answers A (and PTR) queries for the names, aliases and short IDs of the containers
sharing a network with the asking container, and forwards every other query, from the host's
namespace, to the host's resolvers (``DOCKYARD_DNS_UPSTREAM=ip[:port],...`` overrides them).
Containers only on ``--internal`` networks get no forwarding.

The daemon reads endpoints from the metadata DB. ``NetworkService`` tells it to re-read with
``sync()`` (a line on its unix socket) after every attach and release; it starts it on demand
and the daemon exits by itself once no container needs it. It re-reads every few seconds too,
so a crashed CLI leaves nothing stale for long.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dockyard.network.naming import Names

DNS_IP = "127.0.0.11"
TTL = 600
TICK = 5.0


# -- client side (used by NetworkService; no dnslib import here) -----------------------------
def _socket_path(names: Names) -> Path:
    return names.run_dir / "dns.sock"


def _request(path: Path, line: str, timeout: float = 10.0) -> str | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode().strip()
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except OSError:
        return None


@contextmanager
def _spawn_lock(root: Path, wait: bool = True) -> Iterator[bool]:
    """Serialises starting, syncing and stopping the daemon; yields False if ``wait`` is off
    and someone else holds it (the daemon's own periodic re-read must never wait for a client
    that is itself waiting for the daemon's answer)."""
    lock_dir = root / "networks"
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_dir / "dns.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def sync(root: Path, names: Names, needed: bool) -> None:
    """Make the daemon match the DB: start it if ``needed`` and not running, else ask it to
    re-read (it exits by itself when nothing needs it any more)."""
    path = _socket_path(names)
    with _spawn_lock(root):
        answer = _request(path, "sync")
        if answer is not None or not needed:
            return
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        log = open(root / "networks" / "dns.log", "ab")
        try:
            # the first process forks the daemon and exits at once: the daemon is never a
            # child of the caller (a container's monitor reaps its children)
            subprocess.run([sys.executable, "-m", "dockyard.network.dns", str(root)],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                           start_new_session=True, close_fds=True, timeout=30)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _request(path, "sync") is not None:
                return
            time.sleep(0.02)
        from dockyard.errors import DockyardError

        raise DockyardError(f"the embedded DNS server did not start; see {root}/networks/dns.log")


def stop(names: Names) -> None:
    _request(_socket_path(names), "stop")


def running(names: Names) -> bool:
    return _request(_socket_path(names), "ping", timeout=2) == "pong"


# -- the daemon ------------------------------------------------------------------------------
@dataclass
class View:
    """What one container may resolve: its networks and their records."""

    netns: str
    networks: list[str]  # network IDs
    forward: bool  # False when every network of the container is internal
    upstream: list[tuple[str, int]] = field(default_factory=list)  # --dns servers, if any


@dataclass
class Tables:
    views: dict[str, View] = field(default_factory=dict)  # container ID -> view
    names: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # net -> name -> IPs
    network_names: dict[str, str] = field(default_factory=dict)  # net ID -> net name
    ptr: dict[str, dict[str, str]] = field(default_factory=dict)  # net -> IP -> "name.net"


def load_tables(db_path: Path) -> Tables:
    """Read endpoints of user-defined networks from the metadata DB."""
    import sqlite3

    t = Tables()
    if not db_path.exists():
        return t
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        try:
            nets = {r["id"]: r for r in conn.execute(
                "SELECT id, name, internal, subnet, gateway, ipam FROM net_networks "
                "WHERE driver IN ('bridge', 'macvlan') AND builtin=0")}
            eps = conn.execute(
                "SELECT e.container_id, e.network_id, e.name, e.aliases, e.ip, s.netns, s.mode, "
                "s.hostname, s.ports "
                "FROM net_endpoints e JOIN net_sandboxes s ON s.container_id = e.container_id "
                "ORDER BY e.rowid").fetchall()
        except sqlite3.OperationalError:  # tables not created yet
            return t
    finally:
        conn.close()
    for net_id, row in nets.items():
        t.network_names[net_id] = row["name"]
        t.names[net_id] = {}
        t.ptr[net_id] = {}
    for e in eps:
        net = nets.get(e["network_id"])
        if net is None:
            continue
        cid = e["container_id"]
        # docker's names: the container's, its aliases, its short ID and its hostname
        labels = [e["name"], *json.loads(e["aliases"] or "[]"), cid[:12], e["hostname"]]
        addresses = [e["ip"], *_ip6(net, e["ip"])]  # AAAA too on a dual-stack network
        for label in labels:
            if label:
                ips = t.names[net["id"]].setdefault(label.lower().rstrip("."), [])
                ips.extend(a for a in addresses if a not in ips)
        if e["name"]:
            t.ptr[net["id"]][e["ip"]] = f"{e['name']}.{net['name']}"
        if e["netns"] and not str(e["mode"]).startswith("container:"):
            view = t.views.setdefault(cid, View(e["netns"], [], False, _dns_servers(e["ports"])))
            view.networks.append(net["id"])
            view.forward = view.forward or not net["internal"]
    return t


def _ip6(net: Any, ip4: str) -> list[str]:
    """The IPv6 address of an endpoint on a dual-stack network (none elsewhere)."""
    try:
        cfg = json.loads(net["ipam"] or "{}")
    except ValueError:
        return []
    if not cfg.get("enable_ipv6") or not cfg.get("v6"):
        return []
    from dockyard.network.ipam import ip6_for

    ip6 = ip6_for(net["subnet"], net["gateway"], cfg["v6"], ip4)
    return [ip6] if ip6 else []


def _dns_servers(ports_json: str | None) -> list[tuple[str, int]]:
    """A container's ``--dns`` servers (kept in its sandbox record): its upstreams, as docker's
    embedded server forwards to them instead of the host's."""
    try:
        servers = json.loads(ports_json or "{}").get("dns", [])
    except (ValueError, AttributeError):
        return []
    return [(str(s), 53) for s in servers if s]


def upstream_servers() -> list[tuple[str, int]]:
    env = os.environ.get("DOCKYARD_DNS_UPSTREAM")
    servers: list[tuple[str, int]] = []
    if env:
        for item in env.split(","):
            host, _, port = item.strip().partition(":")
            if host:
                servers.append((host, int(port or 53)))
        return servers
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return servers
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and ":" not in words[1]:
            servers.append((words[1], 53))
    return servers


class Resolver:
    """The daemon: one selector loop; forwarding and TCP clients run in a small thread pool."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names = Names(root)
        self.db_path = root / "metadata.db"
        self.tables = Tables()
        self.sel = selectors.DefaultSelector()
        self.listeners: dict[str, tuple[socket.socket, socket.socket]] = {}
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")
        self.upstream = upstream_servers()
        self.control: socket.socket | None = None
        self.stopping = False

    # setup ------------------------------------------------------------------------------
    def _open_control(self) -> None:
        path = _socket_path(self.names)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        s.bind(str(path))
        s.listen(16)
        self.control = s
        self.sel.register(s, selectors.EVENT_READ, ("control", None))

    def _bind_in(self, netns: str) -> tuple[socket.socket, socket.socket]:
        from dockyard.network import netns as ns

        def make() -> tuple[socket.socket, socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((DNS_IP, 53))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((DNS_IP, 53))
                tcp.listen(32)
            except OSError:
                udp.close()
                tcp.close()
                raise
            return udp, tcp

        return ns.run_in(netns, make)

    def reload(self) -> None:
        self.tables = load_tables(self.db_path)
        from dockyard.network import netns as ns

        wanted = {cid: v for cid, v in self.tables.views.items() if ns.is_netns(v.netns)}
        for cid in list(self.listeners):
            if cid not in wanted:
                for s in self.listeners.pop(cid):
                    self.sel.unregister(s)
                    s.close()
        for cid, view in wanted.items():
            if cid in self.listeners:
                continue
            try:
                udp, tcp = self._bind_in(view.netns)
            except OSError as exc:
                print(f"dns: cannot listen in {view.netns}: {exc}", file=sys.stderr, flush=True)
                continue
            self.listeners[cid] = (udp, tcp)
            self.sel.register(udp, selectors.EVENT_READ, ("udp", cid))
            self.sel.register(tcp, selectors.EVENT_READ, ("tcp", cid))

    # answering ----------------------------------------------------------------------------
    def lookup(self, cid: str, qname: str) -> list[str] | None:
        view = self.tables.views.get(cid)
        if view is None:
            return None
        name = qname.lower().rstrip(".")
        found: list[str] = []
        for net in view.networks:
            records = self.tables.names.get(net, {})
            candidates = [name]
            suffix = "." + self.tables.network_names.get(net, "").lower()
            if name.endswith(suffix):
                candidates.append(name[: -len(suffix)])
            for cand in candidates:
                for ip in records.get(cand, []):
                    if ip not in found:
                        found.append(ip)
        return found or None

    def reverse(self, cid: str, qname: str) -> str | None:
        view = self.tables.views.get(cid)
        name = qname.lower().rstrip(".")
        if view is None or not name.endswith(".in-addr.arpa"):
            return None
        parts = name[: -len(".in-addr.arpa")].split(".")
        ip = ".".join(reversed(parts))
        for net in view.networks:
            hit = self.tables.ptr.get(net, {}).get(ip)
            if hit:
                return hit
        return None

    def answer(self, cid: str, data: bytes, tcp: bool) -> bytes | None:
        """The reply to one query, forwarding it if the name is not ours."""
        from dnslib import AAAA, A, DNSRecord, PTR, QTYPE, RCODE, RR

        try:
            query = DNSRecord.parse(data)
        except Exception:  # malformed packet: ignore, as resolvers do
            return None
        if not query.questions:
            return None
        q = query.q
        qname = str(q.qname)
        reply = query.reply(ra=1, aa=0)  # docker's resolver answers non-authoritatively
        if q.qtype == QTYPE.PTR:
            target = self.reverse(cid, qname)
            if target:
                reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=TTL))
                return reply.pack()
        else:
            ips = self.lookup(cid, qname)
            if ips is not None:
                for ip in ips:
                    if ":" not in ip and q.qtype in (QTYPE.A, QTYPE.ANY):
                        reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
                    elif ":" in ip and q.qtype in (QTYPE.AAAA, QTYPE.ANY):
                        reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=TTL))
                return reply.pack()  # a name we own: NOERROR even with no AAAA record
        view = self.tables.views.get(cid)
        upstream = (view.upstream if view is not None else []) or self.upstream
        if view is None or not view.forward or not upstream:
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        forwarded = self.forward(data, tcp, upstream)
        if forwarded is None:
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        return forwarded

    def forward(self, data: bytes, tcp: bool,
                upstream: list[tuple[str, int]] | None = None) -> bytes | None:
        for host, port in upstream or self.upstream:
            try:
                if tcp:
                    with socket.create_connection((host, port), timeout=3) as s:
                        s.sendall(len(data).to_bytes(2, "big") + data)
                        return _read_tcp_message(s)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(3)
                    s.sendto(data, (host, port))
                    reply, _ = s.recvfrom(65535)
                    return reply
            except OSError:
                continue
        return None

    def _serve_udp(self, cid: str, sock: socket.socket, data: bytes, addr: tuple) -> None:
        reply = self.answer(cid, data, tcp=False)
        if reply is not None:
            try:
                sock.sendto(reply, addr)
            except OSError:
                pass

    def _serve_tcp(self, cid: str, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    data = _read_tcp_message(conn)
                    if data is None:
                        return
                    reply = self.answer(cid, data, tcp=True)
                    if reply is None:
                        return
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                return

    def _control(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                line = conn.recv(256).decode().strip()
            except OSError:
                return
            if line == "ping":
                conn.sendall(b"pong\n")
                return
            if line == "sync":
                self.reload()
            if line == "stop" or not self.listeners:
                self.shutdown_listener()
                conn.sendall(b"ok exit\n")
                self.stopping = True
                return
            conn.sendall(b"ok\n")

    def shutdown_listener(self) -> None:
        """Remove the control socket before replying, so the next client starts a new daemon."""
        if self.control is not None:
            self.sel.unregister(self.control)
            self.control.close()
            self.control = None
            try:
                _socket_path(self.names).unlink()
            except FileNotFoundError:
                pass

    def run(self) -> None:
        self._open_control()
        self.reload()
        last = time.monotonic()
        while not self.stopping:
            for key, _ in self.sel.select(timeout=TICK):
                kind, cid = key.data
                sock = key.fileobj
                if kind == "control":
                    try:
                        conn, _ = sock.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    self._control(conn)
                    if self.stopping:
                        break
                elif kind == "udp":
                    try:
                        data, addr = sock.recvfrom(65535)  # type: ignore[union-attr]
                    except OSError:
                        continue
                    self.pool.submit(self._serve_udp, cid, sock, data, addr)
                elif kind == "tcp":
                    try:
                        conn, _ = sock.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    self.pool.submit(self._serve_tcp, cid, conn)
            if self.stopping:
                break
            if time.monotonic() - last >= TICK:
                last = time.monotonic()
                if not self.root.is_dir():
                    break
                with _spawn_lock(self.root, wait=False) as locked:
                    if locked:
                        self.reload()
                        if not self.listeners:
                            self.shutdown_listener()
                            break
        self.shutdown_listener()
        for pair in self.listeners.values():
            for s in pair:
                s.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _read_tcp_message(s: socket.socket) -> bytes | None:
    def read(n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    head = read(2)
    if head is None:
        return None
    return read(int.from_bytes(head, "big"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dockyard.network.dns ROOT", file=sys.stderr)
        return 2
    if os.fork() != 0:
        os._exit(0)
    try:
        Resolver(Path(args[0])).run()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"dns: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
