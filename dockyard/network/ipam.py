"""IP address management: picking subnets that collide with nothing, and addresses within them.

Defaults stay clear of docker (172.17.0.0/16 and its 172.18+ pools) and podman (10.88.0.0/16):
the ``bridge`` network takes 10.200.0.0/16 and user networks take /24 slices of 10.201.0.0/16.
Both are configurable (``<root>/networks/config.json`` or the environment, see ``NetworkConfig``).
A subnet is free when no route on the host and no network of this root overlaps it; the choice
and the creation of the bridge happen under a host-wide lock so that two state roots never pick
the same subnet.
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from dockyard.errors import Conflict, InvalidArgument, Unsupported

IPv4Network = ipaddress.IPv4Network
DEFAULT_BRIDGE_SUBNET = "10.200.0.0/16"
DEFAULT_POOL = "10.201.0.0/16"
DEFAULT_POOL_PREFIX = 24
HOST_LOCK = "/run/lock/dockyard-ipam.lock"


@dataclass
class NetworkConfig:
    """Address settings of a state root.

    ``default_subnet`` is the ``bridge`` network's subnet; when it was not set explicitly and
    10.200.0.0/16 is taken (by another state root, say), a free pool slice is used instead.
    Environment: ``DOCKYARD_BRIDGE_SUBNET``, ``DOCKYARD_NETWORK_POOL`` (e.g. ``10.201.0.0/16``),
    ``DOCKYARD_NETWORK_POOL_PREFIX`` (e.g. ``24``); file: the same keys in lower case in
    ``<root>/networks/config.json`` (``bridge_subnet``, ``network_pool``, ``network_pool_prefix``).
    """

    default_subnet: str = DEFAULT_BRIDGE_SUBNET
    default_subnet_explicit: bool = False
    pool: str = DEFAULT_POOL
    pool_prefix: int = DEFAULT_POOL_PREFIX

    @classmethod
    def load(cls, network_dir: Path) -> "NetworkConfig":
        data: dict[str, object] = {}
        path = network_dir / "config.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise InvalidArgument(f"{path}: invalid JSON: {exc}") from exc
        cfg = cls()
        subnet = os.environ.get("DOCKYARD_BRIDGE_SUBNET") or data.get("bridge_subnet")
        if subnet:
            cfg.default_subnet = str(parse_subnet(str(subnet)))
            cfg.default_subnet_explicit = True
        pool = os.environ.get("DOCKYARD_NETWORK_POOL") or data.get("network_pool")
        if pool:
            cfg.pool = str(parse_subnet(str(pool)))
        prefix = os.environ.get("DOCKYARD_NETWORK_POOL_PREFIX") or data.get("network_pool_prefix")
        if prefix:
            cfg.pool_prefix = int(str(prefix))
        if cfg.pool_prefix < ipaddress.ip_network(cfg.pool).prefixlen or cfg.pool_prefix > 30:
            raise InvalidArgument(f"network pool prefix /{cfg.pool_prefix} does not fit {cfg.pool}")
        return cfg

    def pool_slices(self) -> Iterator[IPv4Network]:
        yield from IPv4Network(self.pool).subnets(new_prefix=self.pool_prefix)


def parse_subnet(text: str) -> IPv4Network:
    """A CIDR subnet for the configuration (pools, the default bridge): host bits must be zero."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"IPv6 subnets are not supported: {text}")
    if str(net) != text and ipaddress.ip_interface(text).ip != net.network_address:
        raise InvalidArgument(f"invalid subnet {text}: it should be {net}")
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {text} is too small: at least a /30 is needed")
    return net


def parse_network_subnet(text: str) -> IPv4Network:
    """``network create --subnet``, checked as docker's daemon does: host bits are ignored
    (docker keeps the text as given), and the pool must leave room for a gateway."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"Invalid subnet {text} : invalid CIDR address: {text}") from None
    if not isinstance(net, IPv4Network):
        raise Unsupported("IPv6 networks are not supported")
    if net.prefixlen > 30:
        raise InvalidArgument("failed to allocate gateway (): No available addresses on this pool")
    return net


def pool_hosts(subnet: IPv4Network, ip_range: IPv4Network | None = None) -> Iterator[str]:
    """Addresses docker's IPAM hands out, in order: the range's (or the subnet's) addresses
    but the subnet's network and broadcast addresses."""
    reserved = (subnet.network_address, subnet.broadcast_address)
    for addr in (ip_range or subnet):
        if addr not in reserved:
            yield str(addr)


def parse_ip(text: str, what: str = "IP address") -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None


def host_routes() -> list[tuple[IPv4Network, str]]:
    """(destination, interface) of every IPv4 route in the main table but the default route."""
    from dockyard.network.links import host_routes as routes

    return [(IPv4Network(f"{dst}/{plen}", strict=False), dev) for dst, plen, dev in routes()
            if plen != 0]


def first_overlap(candidate: IPv4Network, taken: Iterable[tuple[IPv4Network, str]]) -> str | None:
    """The owner of the first taken subnet that overlaps ``candidate``, or None."""
    for net, owner in taken:
        if candidate.overlaps(net):
            return owner
    return None


def choose_subnet(candidates: Iterable[IPv4Network],
                  taken: list[tuple[IPv4Network, str]]) -> IPv4Network:
    for cand in candidates:
        if first_overlap(cand, taken) is None:
            return cand
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the "
                   "defaults to assign to the network")


def default_gateway(subnet: IPv4Network, ip_range: IPv4Network | None = None) -> str:
    """docker's choice: the first address of the pool (of the ``--ip-range`` when given)."""
    return next(pool_hosts(subnet, ip_range))


def allocate_ip(subnet: IPv4Network, gateway: str, used: set[str],
                ip_range: IPv4Network | None = None) -> str:
    """The lowest free address of the pool (docker hands them out in order too)."""
    for ip in pool_hosts(subnet, ip_range):
        if ip != gateway and ip not in used:
            return ip
    raise Conflict(f"no available IPv4 addresses on this network's address pools: "
                   f"{ip_range or subnet}")


def mac_for(ip: str) -> str:
    """docker's scheme: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


@contextmanager
def host_lock() -> Iterator[None]:
    """Serialise subnet choice and bridge creation across every state root on this host."""
    Path(HOST_LOCK).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ip6_for(subnet: str | None, gateway: str | None, v6: dict[str, Any] | None,
            ip4: str | None) -> str | None:
    """A container's IPv6 address on a dual-stack network, with no record of its own: the
    n-th address of the IPv6 subnet (its gateway skipped) for the n-th of the IPv4 one, which
    is what dockerd's two sequential allocations give. ``v6``: the network's ``ipam["v6"]``
    when IPv6 is enabled on it, else None."""
    if v6 is None or not ip4 or not subnet:
        return None
    sub4 = IPv4Network(subnet)
    offset4 = int(ipaddress.IPv4Address(ip4)) - int(sub4.network_address)
    gw4 = int(ipaddress.IPv4Address(gateway)) - int(sub4.network_address) if gateway else 0
    rank = offset4 - 1 - (1 if 0 < gw4 < offset4 else 0)
    sub6 = ipaddress.IPv6Network(v6["subnet"])
    gw6 = int(ipaddress.IPv6Address(v6["gateway"])) - int(sub6.network_address)
    offset6 = rank + 1 if rank + 1 < gw6 else rank + 2
    if offset6 >= sub6.num_addresses - 1:
        return None
    return str(sub6.network_address + offset6)
