"""Bridges, veth pairs, addresses and routes, through netlink (pyroute2), never parsed ``ip`` output."""
from __future__ import annotations

import os
from pathlib import Path

from dockyard.errors import DockyardError


def _ipr(netns: str | Path | None = None):  # noqa: ANN202 - pyroute2 type
    from pyroute2 import IPRoute

    return IPRoute(netns=str(netns)) if netns else IPRoute()


def _index(ipr, ifname: str) -> int | None:  # noqa: ANN001
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_names(netns: str | Path | None = None) -> list[str]:
    with _ipr(netns) as ipr:
        return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]


def link_exists(ifname: str) -> bool:
    with _ipr() as ipr:
        return _index(ipr, ifname) is not None


def delete_link(ifname: str) -> bool:
    """Delete an interface if it exists (a veth's peer goes with it)."""
    from pyroute2.netlink.exceptions import NetlinkError

    with _ipr() as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            return False
        try:
            ipr.link("del", index=idx)
        except NetlinkError as exc:
            if exc.code != 19:  # ENODEV: gone meanwhile
                raise DockyardError(f"cannot delete interface {ifname}: {exc}") from exc
        return True


def _sysctl(path: str, value: str) -> None:
    try:
        Path("/proc/sys", path).write_text(value)
    except OSError as exc:
        raise DockyardError(f"cannot set {path.replace('/', '.')}={value}: {exc.strerror}") from exc


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> bool:
    """Create the bridge with the gateway address (idempotent); True if it was created now.

    ``route_localnet`` lets 127.0.0.1:<published port> be DNATed out of this bridge.
    """
    with _ipr() as ipr:
        idx = _index(ipr, name)
        created = idx is None
        if created:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            idx = _index(ipr, name)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
        if (gateway, prefixlen) not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        _sysctl("net/ipv4/ip_forward", "1")
    return created


def loopback_up(netns: str | Path) -> None:
    with _ipr(netns) as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")


def plug(netns: str | Path, bridge: str, host_veth: str, peer_tmp: str, ifname: str, ip: str,
         prefixlen: int, mac: str, gateway: str | None, mtu: int = 1500) -> None:
    """A veth pair: one end in ``bridge``, the other in the namespace as ``ifname`` with ``ip``.

    The caller deletes ``host_veth`` if this fails part-way (that removes both ends).
    """
    with _ipr() as ipr:
        br = _index(ipr, bridge)
        if br is None:
            raise DockyardError(f"bridge {bridge} does not exist")
        if _index(ipr, host_veth) is not None:  # left over by a crash: start clean
            ipr.link("del", index=_index(ipr, host_veth))
        ipr.link("add", ifname=host_veth, kind="veth", peer={"ifname": peer_tmp}, mtu=mtu)
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("set", index=_index(ipr, peer_tmp), net_ns_fd=fd)
        finally:
            os.close(fd)
        host = _index(ipr, host_veth)
        ipr.link("set", index=host, master=br)
        ipr.link("set", index=host, state="up")
    with _ipr(netns) as nsr:
        idx = _index(nsr, peer_tmp)
        nsr.link("set", index=idx, ifname=ifname, address=mac, mtu=mtu)
        nsr.addr("add", index=idx, address=ip, prefixlen=prefixlen)
        nsr.link("set", index=idx, state="up")
        lo = _index(nsr, "lo")
        nsr.link("set", index=lo, state="up")
        if gateway:
            from pyroute2.netlink.exceptions import NetlinkError

            try:
                nsr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=idx)
            except NetlinkError as exc:
                if exc.code != 17:  # EEXIST: an earlier network already gives the default route
                    raise


def unplug_in_netns(netns: str | Path, ifname: str) -> None:
    """Remove ``ifname`` from inside a namespace (``network disconnect`` of a running container)."""
    with _ipr(netns) as nsr:
        idx = _index(nsr, ifname)
        if idx is not None:
            nsr.link("del", index=idx)


def interfaces_in(netns: str | Path) -> list[str]:
    return link_names(netns)
