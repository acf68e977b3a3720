"""Bridges, veth pairs, addresses and routes, through netlink (``rtnl``), never parsed ``ip`` output.

A container's veth is made in one request with its peer created directly inside the container's
namespace under its final name (``eth0``) with its MAC; bringing it and ``lo`` up, the address and
the default route then go in one batch on a socket inside the namespace. Nothing here deletes a container's
veth on release: unpinning the namespace makes the kernel destroy its interfaces, the veth pair
included, asynchronously, whereas deleting a veth synchronously waits for an RCU grace period
(10-40 ms).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable, TypeVar

from dockyard.errors import DockyardError
from dockyard.network import netns as _netns
from dockyard.network.rtnl import Rtnl, RtnlError, host

T = TypeVar("T")


def _inside(path: str | Path, fn: Callable[[Rtnl], T]) -> T:
    """Run ``fn`` with a netlink socket inside the namespace pinned at ``path``."""
    def body() -> T:
        with Rtnl() as nl:
            return fn(nl)

    return _netns.run_in(path, body)


def link_names(netns: str | Path | None = None) -> list[str]:
    if netns:
        return _inside(netns, lambda nl: [link.name for link in nl.links()])
    return [link.name for link in host().links()]


def link_exists(ifname: str) -> bool:
    return host().link(ifname) is not None


def delete_link(ifname: str) -> bool:
    """Delete a host interface if it exists (a veth's peer goes with it)."""
    nl = host()
    idx = nl.link_index(ifname)
    if idx is None:
        return False
    try:
        return nl.delete_link(idx)
    except RtnlError as exc:
        raise DockyardError(f"cannot delete interface {ifname}: {exc.strerror}") from exc


def _sysctl(path: str, value: str) -> None:
    try:
        Path("/proc/sys", path).write_text(value)
    except OSError as exc:
        raise DockyardError(f"cannot set {path.replace('/', '.')}={value}: {exc.strerror}") from exc


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> bool:
    """Create the bridge with the gateway address (idempotent); True if it was created now.

    ``route_localnet`` lets 127.0.0.1:<published port> be DNATed out of this bridge.
    """
    nl = host()
    try:
        link = nl.link(name)
        created = link is None
        if link is None:
            try:
                nl.add_bridge(name, mtu)
            except RtnlError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            link = nl.link(name)
            if link is None:
                raise DockyardError(f"bridge {name} vanished while it was being set up")
        if (gateway, prefixlen) not in nl.addrs(link.index):
            nl.request(nl.add_addr_msg(link.index, gateway, prefixlen))
        if not link.up:
            nl.set_link(link.index, up=True)
    except RtnlError as exc:
        raise DockyardError(f"cannot set up bridge {name}: {exc.strerror}") from exc
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        _sysctl("net/ipv4/ip_forward", "1")
    return created


def ensure_bridge_addr6(name: str, gateway: str, prefixlen: int) -> None:
    """The IPv6 gateway address of a dual-stack network on its bridge (idempotent)."""
    nl = host()
    index = nl.link_index(name)
    if index is None:
        raise DockyardError(f"bridge {name} does not exist")
    try:
        nl.request(nl.add_addr6_msg(index, gateway, prefixlen))
    except RtnlError as exc:
        if exc.errno != errno.EEXIST:
            raise DockyardError(f"cannot set up bridge {name}: {exc.strerror}") from exc


def bridge_marked(name: str, marker: str) -> bool:
    """Is ``name`` up and carrying ``marker`` as its alias (set once its rules were made)?

    One netlink request: how a container start knows its network is ready without a look at
    the firewall. The alias lives and dies with the bridge, so a bridge deleted or recreated
    behind our back is never mistaken for a ready one."""
    link = host().link(name)
    return link is not None and link.up and link.alias == marker


def mark_bridge(name: str, marker: str) -> None:
    nl = host()
    idx = nl.link_index(name)
    if idx is not None:
        nl.set_link(idx, alias=marker)


def aliased_links(prefix: str) -> list[tuple[str, str]]:
    """(name, alias) of the host's interfaces whose alias starts with ``prefix``."""
    return [(link.name, link.alias) for link in host().links() if link.alias.startswith(prefix)]


def loopback_up(netns: str | Path) -> None:
    _inside(netns, lambda nl: nl.request(nl.set_link_msg(1, up=True)))  # lo is always index 1


def plug(netns: str | Path, bridge: str, host_veth: str, ifname: str, ip: str, prefixlen: int,
         mac: str, gateway: str | None, mtu: int = 1500,
         ip6: tuple[str, int, str | None] | None = None) -> None:
    """A veth pair: ``host_veth`` in ``bridge``, its peer ``ifname`` in the namespace with ``ip``.

    Also brings the namespace's ``lo`` up. Two requests on the host's socket, two inside."""
    nl = host()
    br = nl.link_index(bridge)
    if br is None:
        raise DockyardError(f"bridge {bridge} does not exist")
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            nl.add_veth(host_veth, br, mtu, ifname, fd, mac)
        except RtnlError as exc:
            stale = nl.link_index(host_veth) if exc.errno == errno.EEXIST else None
            if stale is None:
                raise
            nl.delete_link(stale)  # left over by a crash: start clean
            nl.add_veth(host_veth, br, mtu, ifname, fd, mac)
    except RtnlError as exc:
        raise DockyardError(f"cannot create interface {host_veth} for {ifname}: {exc.strerror}") from exc
    finally:
        os.close(fd)

    configure_inside(netns, ifname, ip, prefixlen, gateway, ip6)


def configure_inside(netns: str | Path, ifname: str, ip: str, prefixlen: int,
                     gateway: str | None, ip6: tuple[str, int, str | None] | None = None) -> None:
    """Inside the namespace: ``lo`` and ``ifname`` up, the address, the default route (and the
    IPv6 ones on a dual-stack network), in one batch."""
    def configure(nsl: Rtnl) -> None:
        idx = nsl.link_index(ifname)
        if idx is None:
            raise DockyardError(f"interface {ifname} did not appear in {netns}")
        batch = [nsl.set_link_msg(1, up=True), nsl.set_link_msg(idx, up=True),
                 nsl.add_addr_msg(idx, ip, prefixlen)]
        if gateway:
            batch.append(nsl.add_default_route_msg(gateway, idx))
        try:
            nsl.request(*batch)
        except RtnlError as exc:
            # EEXIST from the route: an earlier network already gives the default route
            if exc.errno != errno.EEXIST or (ip, prefixlen) not in nsl.addrs(idx):
                raise DockyardError(f"cannot configure {ifname} in {netns}: {exc.strerror}") from exc
        if ip6 is not None:  # a dual-stack network: (address, prefix length, gateway)
            try:  # (a container started on IPv4 networks has IPv6 off: on for this interface)
                with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
                    f.write("0")
            except OSError:
                pass
            batch6 = [nsl.add_addr6_msg(idx, ip6[0], ip6[1])]
            if ip6[2]:
                batch6.append(nsl.add_default_route6_msg(ip6[2], idx))
            try:
                nsl.request(*batch6)
            except RtnlError as exc:
                if exc.errno != errno.EEXIST:
                    raise DockyardError(f"cannot configure {ifname} in {netns}: {exc.strerror}") from exc

    _inside(netns, configure)


def plug_macvlan(netns: str | Path, parent: str, ifname: str, ip: str, prefixlen: int, mac: str,
                 gateway: str | None, mtu: int | None = None) -> None:
    """A macvlan network's interface: a bridge-mode macvlan of ``parent`` made directly in
    the namespace as ``ifname``, then configured like a veth's peer."""
    nl = host()
    index = nl.link_index(parent)
    if index is None:
        raise DockyardError(f"parent interface {parent} does not exist")
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        nl.add_macvlan(ifname, index, mtu, fd, mac)
    except RtnlError as exc:
        raise DockyardError(f"cannot create interface {ifname} on {parent}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    configure_inside(netns, ifname, ip, prefixlen, gateway)


def add_dummy(name: str) -> None:
    """A dummy link (a macvlan network's parent when none is given, as dockerd makes)."""
    try:
        host().add_simple(name, "dummy")
    except RtnlError as exc:
        raise DockyardError(os.strerror(exc.errno).lower() if exc.errno else str(exc)) from exc


def unplug_in_netns(netns: str | Path, ifname: str) -> None:
    """Remove ``ifname`` from inside a namespace (``network disconnect`` of a running container)."""
    def unplug(nl: Rtnl) -> None:
        idx = nl.link_index(ifname)
        if idx is not None:
            nl.delete_link(idx)

    _inside(netns, unplug)


def interfaces_in(netns: str | Path) -> list[str]:
    return link_names(netns)


def host_routes() -> list[tuple[str, int, str]]:
    """(destination, prefix length, interface name) of the host's main-table IPv4 routes."""
    nl = host()
    names = {link.index: link.name for link in nl.links()}
    return [(dst, plen, names.get(oif, "?")) for dst, plen, oif in nl.routes()]
