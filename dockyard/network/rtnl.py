"""A small rtnetlink client: the few requests container networking needs, written by hand.

Why not pyroute2 here: importing it costs ~85 ms (its package pulls in NDB, IPDB, conntrack...),
more than everything else a container start does on the network, and every ``run`` pays it in a
fresh process. The messages we need are few and stable (rtnetlink(7), ``linux/if_link.h``):
get/dump/add/set/delete links, add/dump addresses, add/dump routes. One socket per network
namespace; several requests can go out in one ``send`` (the kernel handles each message of a
datagram in turn and acknowledges each), so configuring a container's side is one round trip.

A socket belongs to the namespace of the thread that created it: ``netns.run_in(path, Rtnl)``
gives a socket inside a container's namespace.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
from dataclasses import dataclass

# message types (linux/rtnetlink.h, linux/netlink.h)
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
# flags
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
NLM_F_ACK_TLVS = 0x200  # on an NLMSG_ERROR: extended-ack attributes follow
# socket options (SOL_NETLINK)
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
NLMSGERR_ATTR_MSG = 1
# link attributes (linux/if_link.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_LINK, IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE = 5, 1, 4
IFF_UP = 0x1
# address and route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HDR = struct.Struct("=IHHII")       # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")   # ifinfomsg
_IFADDR = struct.Struct("=BBBBI")    # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ATTR = struct.Struct("=HH")         # rtattr / nlattr


class RtnlError(OSError):
    """A request the kernel refused: ``errno`` and, when the kernel says more, its reason."""


@dataclass(frozen=True)
class Link:
    """An interface as RTM_GETLINK reports it (the fields we use)."""

    index: int
    name: str
    flags: int
    master: int
    alias: str

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


def attr(kind: int, data: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    size = _ATTR.size + len(data)
    return _ATTR.pack(size, kind) + data + b"\0" * (-size % 4)


def _str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def parse_attrs(buf: bytes | memoryview, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Attributes at ``buf[offset:end]`` by type (nesting and byte-order flags stripped)."""
    end = len(buf) if end is None else end
    out: dict[int, bytes] = {}
    while offset + _ATTR.size <= end:
        size, kind = _ATTR.unpack_from(buf, offset)
        if size < _ATTR.size:
            break
        out[kind & 0x3FFF] = bytes(buf[offset + _ATTR.size:offset + size])
        offset += (size + 3) & ~3
    return out


def _cstr(data: bytes | None) -> str:
    return data.split(b"\0", 1)[0].decode(errors="replace") if data else ""


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


class Rtnl:
    """One NETLINK_ROUTE socket (in the creating thread's network namespace)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            try:
                self.sock.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:  # older kernels: plain errors only
                pass
        self._seq = 0
        self._mutex = threading.Lock()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocol ---------------------------------------------------------------------------
    def _message(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        self._seq += 1
        return self._seq, _HDR.pack(_HDR.size + len(body), kind, flags, self._seq, 0) + body

    def request(self, *requests: tuple[int, int, bytes]) -> list[list[tuple[int, bytes]]]:
        """Send ``(type, flags, body)`` requests in one datagram; wait for each one's end.

        Returns, per request, its reply messages as ``(type, payload)``. The first refused
        request raises ``RtnlError`` (after every answer has been read, so the socket stays
        usable)."""
        with self._mutex:
            seqs, data = [], b""
            for kind, flags, body in requests:
                seq, msg = self._message(kind, flags | NLM_F_REQUEST, body)
                seqs.append(seq)
                data += msg
            self.sock.send(data)
            replies: dict[int, list[tuple[int, bytes]]] = {s: [] for s in seqs}
            pending = set(seqs)
            failure: RtnlError | None = None
            while pending:
                buf = self.sock.recv(1 << 17)
                offset = 0
                while offset + _HDR.size <= len(buf):
                    size, kind, flags, seq, _ = _HDR.unpack_from(buf, offset)
                    if size < _HDR.size:
                        break
                    payload = buf[offset + _HDR.size:offset + size]
                    offset += (size + 3) & ~3
                    if seq not in pending:
                        continue
                    if kind == NLMSG_ERROR:
                        pending.discard(seq)
                        code = -struct.unpack_from("=i", payload)[0]
                        if code and failure is None:
                            failure = _error(code, payload, flags)
                    elif kind == NLMSG_DONE:
                        pending.discard(seq)
                    else:
                        replies[seq].append((kind, payload))
            if failure is not None:
                raise failure
            return [replies[s] for s in seqs]

    def _one(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        return self.request((kind, flags, body))[0]

    # -- links ----------------------------------------------------------------------------------
    def link(self, name: str) -> Link | None:
        """The interface called ``name``, or None."""
        try:
            msgs = self._one(RTM_GETLINK, NLM_F_ACK, _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name))
        except RtnlError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link(msgs[0][1]) if msgs else None

    def link_index(self, name: str) -> int | None:
        found = self.link(name)
        return found.index if found else None

    def links(self) -> list[Link]:
        msgs = self._one(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(0, 0, 0, 0, 0))
        return [_link(p) for k, p in msgs if k == RTM_NEWLINK]

    def add_bridge(self, name: str, mtu: int = 1500) -> None:
        info = attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "bridge"))
        self._one(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                  _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name) + _u32(IFLA_MTU, mtu) + info)

    def add_simple(self, name: str, kind: str) -> None:
        """A link of a kind without options (``dummy``)."""
        info = attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, kind))
        self._one(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                  _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name) + info)

    def add_macvlan(self, name: str, parent: int, mtu: int | None, netns_fd: int, mac: str) -> None:
        """A macvlan (bridge mode) on ``parent``, created directly in another namespace;
        ``mtu`` None: the parent's."""
        info = attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "macvlan")
                    + attr(IFLA_INFO_DATA, _u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE)))
        self._one(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                  _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name) + _u32(IFLA_LINK, parent)
                  + (_u32(IFLA_MTU, mtu) if mtu else b"") + attr(IFLA_ADDRESS, _mac(mac))
                  + _u32(IFLA_NET_NS_FD, netns_fd) + info)

    def add_veth(self, name: str, master: int, mtu: int, peer: str, peer_netns_fd: int,
                 peer_mac: str) -> None:
        """A veth pair in one request: ``name`` up in bridge ``master``, its peer created
        directly in another namespace as ``peer`` (e.g. ``eth0``) with ``peer_mac``. The peer
        cannot be created up (the kernel refuses with ENOTCONN): set it up from inside."""
        peer_msg = (_IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, peer)
                    + _u32(IFLA_MTU, mtu) + attr(IFLA_ADDRESS, _mac(peer_mac))
                    + _u32(IFLA_NET_NS_FD, peer_netns_fd))
        info = attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "veth")
                    + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
        self._one(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                  _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _str(IFLA_IFNAME, name)
                  + _u32(IFLA_MTU, mtu) + _u32(IFLA_MASTER, master) + info)

    @staticmethod
    def set_link_msg(index: int, up: bool | None = None, alias: str | None = None,
                     name: str | None = None, mac: str | None = None,
                     mtu: int | None = None) -> tuple[int, int, bytes]:
        """An RTM_NEWLINK that changes an existing link (for ``request``)."""
        flags = IFF_UP if up else 0
        body = _IFINFO.pack(0, 0, index, flags, IFF_UP if up is not None else 0)
        if alias is not None:
            body += _str(IFLA_IFALIAS, alias)
        if name is not None:
            body += _str(IFLA_IFNAME, name)
        if mac is not None:
            body += attr(IFLA_ADDRESS, _mac(mac))
        if mtu is not None:
            body += _u32(IFLA_MTU, mtu)
        return RTM_NEWLINK, NLM_F_ACK, body

    def set_link(self, index: int, **changes: object) -> None:
        self.request(self.set_link_msg(index, **changes))  # type: ignore[arg-type]

    def delete_link(self, index: int) -> bool:
        """Delete a link (a veth's peer goes with it); False if it was already gone."""
        try:
            self._one(RTM_DELLINK, NLM_F_ACK, _IFINFO.pack(0, 0, index, 0, 0))
        except RtnlError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses and routes -------------------------------------------------------------------
    @staticmethod
    def add_addr_msg(index: int, ip: str, prefixlen: int) -> tuple[int, int, bytes]:
        """IPv4 ``ip/prefixlen`` on ``index`` with the subnet's broadcast (``ip addr add ... brd +``)."""
        packed = socket.inet_aton(ip)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        if prefixlen < 31:
            net = ipaddress.IPv4Network(f"{ip}/{prefixlen}", strict=False)
            body += attr(IFA_BROADCAST, net.broadcast_address.packed)
        return RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body

    @staticmethod
    def add_addr6_msg(index: int, ip: str, prefixlen: int) -> tuple[int, int, bytes]:
        """IPv6 ``ip/prefixlen`` on ``index``, usable at once (``nodad``: no duplicate address
        detection delay, as a container's address must answer when it starts)."""
        packed = socket.inet_pton(socket.AF_INET6, ip)
        body = _IFADDR.pack(socket.AF_INET6, prefixlen, IFA_F_NODAD, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        return RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body

    @staticmethod
    def add_default_route6_msg(gateway: str, oif: int) -> tuple[int, int, bytes]:
        body = _RTMSG.pack(socket.AF_INET6, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                           RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, socket.inet_pton(socket.AF_INET6, gateway)) + _u32(RTA_OIF, oif)
        return RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body

    def addrs(self, index: int) -> list[tuple[str, int]]:
        """IPv4 (address, prefixlen) pairs on one link."""
        msgs = self._one(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0))
        out = []
        for kind, payload in msgs:
            family, prefixlen, _, _, idx = _IFADDR.unpack_from(payload)
            if kind != RTM_NEWADDR or family != socket.AF_INET or idx != index:
                continue
            attrs = parse_attrs(payload, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append((socket.inet_ntoa(raw), prefixlen))
        return out

    @staticmethod
    def add_default_route_msg(gateway: str, oif: int) -> tuple[int, int, bytes]:
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                           RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, socket.inet_aton(gateway)) + _u32(RTA_OIF, oif)
        return RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body

    def routes(self) -> list[tuple[str, int, int]]:
        """(destination, prefix length, output interface index) of the main table's IPv4 routes."""
        msgs = self._one(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))
        out = []
        for kind, payload in msgs:
            family, dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(payload)
            attrs = parse_attrs(payload, _RTMSG.size)
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if kind != RTM_NEWROUTE or family != socket.AF_INET or table != RT_TABLE_MAIN:
                continue
            dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
            oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            out.append((dst, dst_len, oif))
        return out


def _link(payload: bytes) -> Link:
    _, _, index, flags, _ = _IFINFO.unpack_from(payload)
    attrs = parse_attrs(payload, _IFINFO.size)
    master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
    return Link(index, _cstr(attrs.get(IFLA_IFNAME)), flags, master, _cstr(attrs.get(IFLA_IFALIAS)))


def _error(code: int, payload: bytes, flags: int) -> RtnlError:
    reason = ""
    if flags & NLM_F_ACK_TLVS:
        # error code, then the request's header (NETLINK_CAP_ACK: without its payload)
        orig_len = _HDR.unpack_from(payload, 4)[0]
        start = 4 + (_HDR.size if flags & 0x100 else orig_len)  # NLM_F_CAPPED = 0x100
        reason = _cstr(parse_attrs(payload, (start + 3) & ~3).get(NLMSGERR_ATTR_MSG))
    text = os.strerror(code) + (f" ({reason})" if reason else "")
    return RtnlError(code, text)


_HOST: dict[int, Rtnl] = {}


def host() -> Rtnl:
    """This process's socket in the host namespace (made once; a forked child makes its own)."""
    sock = _HOST.get(os.getpid())
    if sock is None:
        _HOST.clear()
        sock = _HOST[os.getpid()] = Rtnl()
    return sock


