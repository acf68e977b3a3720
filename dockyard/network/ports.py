"""Published ports: docker's ``-p``/``-P`` grammar, and choosing host ports that are really free.

Grammar (docker's ``nat.ParsePortSpec``): ``[ip:][hostPort:]containerPort[/proto]``, where either
port may be a range ``a-b`` (equal lengths, or one container port with a host range to pick from)
and an IPv6 ip is written in brackets. ``-P`` publishes every exposed port on a free host port.

A spec without a host IP is published on both families, as dockerd 20.10 does: ``0.0.0.0`` (kernel
DNAT) and, when the host has IPv6, ``[::]`` on the same port (a userspace proxy, see
:mod:`dockyard.network.proxy`). Each family's binding is its own ``PortBinding``.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Iterable

from dockyard.errors import Conflict, InvalidArgument

PROTOS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortSpec:
    """One container port to publish; ``host_port`` 0 means "any free port"."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0  # with host_port: pick a free port in [host_port, host_port_end]

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def to_dict(self) -> dict[str, object]:
        return {"container_port": self.container_port, "proto": self.proto,
                "host_ip": self.host_ip, "host_port": self.host_port,
                "host_port_end": self.host_port_end}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "PortSpec":
        return cls(int(d["container_port"]), str(d.get("proto", "tcp")), str(d.get("host_ip", "")),
                   int(d.get("host_port", 0)), int(d.get("host_port_end", 0)))


@dataclass(frozen=True)
class PortBinding:
    """A published port as programmed: the host side chosen, the container side fixed."""

    proto: str
    host_ip: str
    host_port: int
    container_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    @property
    def shown_ip(self) -> str:
        return self.host_ip or "0.0.0.0"

    @property
    def family(self) -> int:
        """4 or 6: 6 is served by the userspace proxy, 4 by kernel DNAT."""
        return 6 if ":" in self.host_ip else 4

    @property
    def host_address(self) -> str:
        """``0.0.0.0:8080`` or ``[::]:8080``, as Go's ``net.JoinHostPort`` writes it."""
        return join_host_port(self.shown_ip, self.host_port)

    def to_dict(self) -> dict[str, object]:
        return {"proto": self.proto, "host_ip": self.host_ip, "host_port": self.host_port,
                "container_port": self.container_port}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "PortBinding":
        return cls(str(d["proto"]), str(d["host_ip"]), int(d["host_port"]), int(d["container_port"]))


def _port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        raise ValueError(text)
    start, end = int(lo), int(hi) if sep else int(lo)
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise ValueError(text)
    return start, end


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def parse_port_spec(raw: str) -> list[PortSpec]:
    """One ``-p`` value; raises InvalidArgument with docker's wording."""
    ip, host_port, container = _split_parts(raw)
    container, _, proto = container.partition("/")
    if not container:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {ip}") from None
        ip = str(addr) if addr.version == 6 else ip
    try:
        start, end = _port_range(container)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = _port_range(host_port)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument("invalid ranges specified for container and host Ports: "
                                  f"{container} and {host_port}")
    count = end - start + 1
    specs = []
    for i in range(count):
        if not host_port:
            specs.append(PortSpec(start + i, proto, ip))
        elif count == 1 and host_start != host_end:
            specs.append(PortSpec(start, proto, ip, host_start, host_end))
        else:
            specs.append(PortSpec(start + i, proto, ip, host_start + i))
    return specs


def parse_exposed(raw: str) -> list[tuple[int, str]]:
    """An EXPOSE / ``--expose`` value (``80``, ``80/udp``, ``8000-8010``) as (port, proto)."""
    port, _, proto = raw.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        start, end = _port_range(port)
    except ValueError:
        raise InvalidArgument(f"invalid range format for --expose: {raw}") from None
    return [(p, proto) for p in range(start, end + 1)]


def parse_port_specs(publish: Iterable[str] = (), publish_all: bool = False,
                     exposed: Iterable[str] = ()) -> list[PortSpec]:
    """``-p`` values, plus with ``-P`` every exposed port not already published."""
    specs: list[PortSpec] = []
    for raw in publish:
        specs.extend(parse_port_spec(raw))
    if publish_all:
        have = {s.key for s in specs}
        for raw in exposed:
            for port, proto in parse_exposed(raw):
                if f"{port}/{proto}" not in have:
                    specs.append(PortSpec(port, proto))
                    have.add(f"{port}/{proto}")
    return specs


def join_host_port(ip: str, port: int | str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _ip_clash(a: str, b: str) -> bool:
    """Do two host IPs of one proto and port overlap? Only within a family: ``0.0.0.0`` and
    ``[::]`` (a V6ONLY listener) coexist, as docker's two bindings of one ``-p`` do."""
    if _family(a) != _family(b):
        return False
    return a in ("", "0.0.0.0", "::") or b in ("", "0.0.0.0", "::") or a == b


_IPV6: list[bool] = []


def ipv6_available() -> bool:
    """Can this host listen on IPv6 at all (kernel support, not disabled)? Then a ``-p`` without
    a host IP is published on ``[::]`` too."""
    if not _IPV6:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
            _IPV6.append(True)
        except OSError:
            _IPV6.append(False)
    return _IPV6[0]


def listen_socket(proto: str, ip: str, port: int) -> socket.socket:
    """A socket bound to ``ip:port`` (listening, for TCP): IPv6 ones are V6ONLY, so the IPv4
    side stays with the kernel's DNAT. Raises OSError as ``bind`` does."""
    fam = socket.AF_INET6 if _family(ip) == 6 else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    s = socket.socket(fam, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((ip or "0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            s.listen(socket.SOMAXCONN)
    except BaseException:
        s.close()
        raise
    return s


def bind_error(endpoint: str, proto: str, ip: str, port: int, exc: OSError) -> Conflict:
    """docker's words when the host refuses a bind (another program has the port, or the IP is
    not the host's): ``Error starting userland proxy: listen tcp6 [::]:80: bind: ...``."""
    why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    where = join_host_port(ip or "0.0.0.0", port)
    return Conflict(f"driver failed programming external connectivity on endpoint {endpoint}: "
                    f"Error starting userland proxy: listen {proto}{_family(ip)} {where}: bind: {why}")


def _listener_free(proto: str, ip: str, port: int, endpoint: str) -> bool:
    """Can ``ip:port`` be bound? (SO_REUSEADDR: TIME_WAIT leftovers do not count as taken.)
    An address that is not the host's is refused with docker's message."""
    if proto == "sctp":
        return True
    try:
        listen_socket(proto, ip, port).close()
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise bind_error(endpoint, proto, ip, port, exc) from None
        return False
    return True


def _ephemeral_port(proto: str, ip: str) -> int:
    with listen_socket(proto, ip, 0) as s:
        return int(s.getsockname()[1])


def _families(spec: PortSpec, ipv6: bool) -> list[str]:
    """The host IPs one spec is published on: its own, or ``0.0.0.0`` and ``::``."""
    if spec.host_ip:
        return [spec.host_ip]
    return ["", "::"] if ipv6 and spec.proto in ("tcp", "udp") else [""]


def choose_bindings(specs: list[PortSpec], taken: set[tuple[str, str, int]],
                    endpoint: str, ipv6: bool = False) -> list[PortBinding]:
    """Pick host ports for ``specs``; ``taken`` holds (proto, ip, port) already published.

    With ``ipv6``, a spec without a host IP gets a second binding on ``::`` with the same host
    port. Raises Conflict with docker's words (``endpoint`` is docker's ``name (endpoint ID)``)
    before anything is programmed: ``Bind for ... port is already allocated`` when a container
    has the port, ``Error starting userland proxy ...`` when another program has it.
    """
    chosen: list[PortBinding] = []
    busy = set(taken)
    prefix = f"driver failed programming external connectivity on endpoint {endpoint}: "

    def claimed(proto: str, ip: str, port: int) -> bool:
        return any(p == proto and hp == port and _ip_clash(hip, ip) for p, hip, hp in busy)

    def is_free(proto: str, ips: list[str], port: int) -> bool:
        return not any(claimed(proto, ip, port) for ip in ips) and \
            all(_listener_free(proto, ip, port, endpoint) for ip in ips)

    for spec in specs:
        ips = _families(spec, ipv6)
        if spec.host_port and not spec.host_port_end:
            port = spec.host_port
            for ip in ips:
                if claimed(spec.proto, ip, port):
                    raise Conflict(f"{prefix}Bind for {ip or '0.0.0.0'}:{port} failed: "
                                   "port is already allocated")
                if not _listener_free(spec.proto, ip, port, endpoint):
                    raise bind_error(endpoint, spec.proto, ip, port,
                                     OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)))
        elif spec.host_port:
            port = next((p for p in range(spec.host_port, spec.host_port_end + 1)
                         if is_free(spec.proto, ips, p)), 0)
            if not port:
                raise Conflict(f"{prefix}all ports from {spec.host_port} to "
                               f"{spec.host_port_end} are allocated")
        else:
            for _ in range(50):
                port = _ephemeral_port(spec.proto, ips[0])
                if is_free(spec.proto, ips, port):
                    break
            else:
                raise Conflict("no free host port could be found")
        for ip in ips:
            chosen.append(PortBinding(spec.proto, ip, port, spec.container_port))
            busy.add((spec.proto, ip, port))
    return chosen


def natural_key(text: str) -> list[tuple[int, int, str]]:
    """Sort key of docker's ``sortorder.NaturalLess``: runs of digits compare as numbers
    (``port`` sorts its lines with it: ``80/tcp`` before ``443/tcp``, ``0.0.0.0`` before ``[::]``)."""
    import re

    return [(0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk)
            for chunk in re.findall(r"\d+|\D+", text)]
