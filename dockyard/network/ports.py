"""Published ports: docker's ``-p``/``-P`` grammar, and choosing host ports that are really free.

Grammar (docker's ``nat.ParsePortSpec``): ``[ip:][hostPort:]containerPort[/proto]``, where either
port may be a range ``a-b`` (equal lengths, or one container port with a host range to pick from)
and an IPv6 ip is written in brackets. ``-P`` publishes every exposed port on a free host port.
"""
from __future__ import annotations

import errno
import ipaddress
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
        if addr.version == 6:
            raise InvalidArgument(f"publishing on IPv6 address {ip} is not supported")
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


def _ip_clash(a: str, b: str) -> bool:
    return a in ("", "0.0.0.0") or b in ("", "0.0.0.0") or a == b


def _listener_free(proto: str, ip: str, port: int) -> bool:
    """Can ``ip:port`` be bound? (SO_REUSEADDR: TIME_WAIT leftovers do not count as taken.)"""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    if proto == "sctp":
        return True
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"cannot publish on {ip}:{port}: {ip} is not an address of "
                                      "this host") from None
            return False
    return True


def _ephemeral_port(proto: str, ip: str) -> int:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip or "0.0.0.0", 0))
        return int(s.getsockname()[1])


def choose_bindings(specs: list[PortSpec], taken: set[tuple[str, str, int]],
                    endpoint: str) -> list[PortBinding]:
    """Pick host ports for ``specs``; ``taken`` holds (proto, ip, port) already DNATed.

    Raises Conflict, naming the endpoint the way docker does, before anything is programmed.
    """
    chosen: list[PortBinding] = []
    busy = set(taken)

    def is_free(proto: str, ip: str, port: int) -> bool:
        if any(p == proto and hp == port and _ip_clash(hip, ip) for p, hip, hp in busy):
            return False
        return _listener_free(proto, ip, port)

    for spec in specs:
        if spec.host_port and not spec.host_port_end:
            if not is_free(spec.proto, spec.host_ip, spec.host_port):
                raise Conflict(f"driver failed programming external connectivity on endpoint "
                               f"{endpoint}: Bind for {spec.host_ip or '0.0.0.0'}:{spec.host_port} "
                               "failed: port is already allocated")
            port = spec.host_port
        elif spec.host_port:
            port = next((p for p in range(spec.host_port, spec.host_port_end + 1)
                         if is_free(spec.proto, spec.host_ip, p)), 0)
            if not port:
                raise Conflict(f"driver failed programming external connectivity on endpoint "
                               f"{endpoint}: all ports from {spec.host_port} to "
                               f"{spec.host_port_end} are allocated")
        else:
            for _ in range(50):
                port = _ephemeral_port(spec.proto, spec.host_ip)
                if is_free(spec.proto, spec.host_ip, port):
                    break
            else:
                raise Conflict("no free host port could be found")
        chosen.append(PortBinding(spec.proto, spec.host_ip, port, spec.container_port))
        busy.add((spec.proto, spec.host_ip, port))
    return chosen
