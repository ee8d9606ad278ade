"""A minimal rtnetlink codec: the few requests and dumps nsnet needs, nothing more.

Why not pyroute2 here: its full decoder costs ~3 ms per namespace dump and
its sync API runs an asyncio loop per call; at 1000 namespaces that is
seconds of plan time. This module encodes requests with struct and decodes
only the attributes nsnet reads (~0.2 ms per namespace). Message layouts are
those of <linux/rtnetlink.h>, <linux/if_link.h> and <linux/if_addr.h>.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator

# message types and flags
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNSID, RTM_DELNSID, RTM_GETNSID = 88, 89, 90
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400

# attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_AF_SPEC, IFLA_INET6_ADDR_GEN_MODE = 26, 8
IN6_ADDR_GEN_MODE_EUI64, IN6_ADDR_GEN_MODE_NONE = 0, 1
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL, IFA_PROTO = 1, 2, 11
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
NETNSA_NSID, NETNSA_FD = 1, 3

# multicast groups: every change to what a Snapshot holds is announced in one of these
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
RTMGRP_NSID = 1 << 27  # RTNLGRP_NSID (28): ids given to and taken from other namespaces
NETLINK_LISTEN_ALL_NSID = 8
SO_RCVBUFFORCE = 33

SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """The kernel refused a request (errno set)."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)


def ifaddr(prefixlen: int, index: int) -> bytes:
    return _IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)


def rtmsg(dst_len: int, proto: int) -> bytes:
    return _RTMSG.pack(socket.AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)


def route_body(to: str, via: str, proto: int) -> bytes:
    """An IPv4 main-table route to `to` ("default" or CIDR) via a gateway."""
    address, _, prefix = ("0.0.0.0/0" if to == "default" else to).partition("/")
    attrs = attr(RTA_GATEWAY, socket.inet_aton(via)) + attr_u32(RTA_TABLE, RT_TABLE_MAIN)
    if int(prefix):
        attrs = attr(RTA_DST, socket.inet_aton(address)) + attrs
    return rtmsg(int(prefix), proto) + attrs


def parse_attrs(data: bytes, offset: int, end: int, wanted: frozenset[int] | None = None) -> dict[int, bytes]:
    """Top-level attributes of a message body (only `wanted` kinds are copied out)."""
    found = {}
    unpack = _RTATTR.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= 0x3FFF
        if wanted is None or kind in wanted:
            found[kind] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


LINK_ATTRS = frozenset({IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS})
IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS = 29, 1 << 3


def _string(raw: bytes | None) -> str | None:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else None


def _u32(raw: bytes | None) -> int | None:
    return struct.unpack("=I", raw[:4])[0] if raw else None


def _mac(raw: bytes | None) -> str | None:
    return ":".join(f"{b:02x}" for b in raw) if raw else None


def _ipv4(raw: bytes | None) -> str | None:
    return socket.inet_ntoa(raw[:4]) if raw else None


@dataclass(frozen=True)
class LinkMsg:
    index: int
    name: str
    kind: str | None
    alias: str | None
    master: int | None
    peer: int | None
    mtu: int
    up: bool
    mac: str | None
    hairpin: bool = False  # bridge port flag: frames may leave by the port they came in


@dataclass(frozen=True)
class AddrMsg:
    index: int
    cidr: str
    proto: int


@dataclass(frozen=True)
class RouteMsg:
    to: str
    via: str
    proto: int


def decode_link(data: bytes, offset: int, end: int) -> LinkMsg:
    _, _, index, flags, _ = _IFINFOMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _IFINFOMSG.size, end, LINK_ATTRS)
    kind, hairpin = None, False
    if IFLA_LINKINFO in attrs:
        info_raw = attrs[IFLA_LINKINFO]
        info = parse_attrs(info_raw, 0, len(info_raw))
        kind = _string(info.get(IFLA_INFO_KIND))
        slave = info.get(IFLA_INFO_SLAVE_DATA)
        if slave:
            mode = parse_attrs(slave, 0, len(slave)).get(IFLA_BRPORT_MODE)
            hairpin = bool(mode and mode[0])
    return LinkMsg(
        index=index,
        name=_string(attrs.get(IFLA_IFNAME)) or "",
        kind=kind,
        alias=_string(attrs.get(IFLA_IFALIAS)) or None,
        master=_u32(attrs.get(IFLA_MASTER)) or None,
        peer=_u32(attrs.get(IFLA_LINK)) or None,
        mtu=_u32(attrs.get(IFLA_MTU)) or 0,
        up=bool(flags & IFF_UP),
        mac=_mac(attrs.get(IFLA_ADDRESS)),
        hairpin=hairpin,
    )


def decode_addr(data: bytes, offset: int, end: int) -> AddrMsg:
    _, prefixlen, _, _, index = _IFADDRMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _IFADDRMSG.size, end)
    local = _ipv4(attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS))
    proto = attrs.get(IFA_PROTO)
    return AddrMsg(index, f"{local}/{prefixlen}", proto[0] if proto else 0)


def decode_route(data: bytes, offset: int, end: int) -> RouteMsg | None:
    _, dst_len, _, _, table, proto, _, kind, _ = _RTMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _RTMSG.size, end)
    table = _u32(attrs.get(RTA_TABLE)) or table
    gateway = _ipv4(attrs.get(RTA_GATEWAY))
    if table != RT_TABLE_MAIN or kind != RTN_UNICAST or gateway is None:
        return None
    to = "default" if dst_len == 0 else f"{_ipv4(attrs.get(RTA_DST))}/{dst_len}"
    return RouteMsg(to, gateway, proto)


class RtnlSocket:
    """One NETLINK_ROUTE socket, bound to the network namespace it was opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)  # lets the kernel filter route dumps by table
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST, self.seq, 0) + body)
        return self.seq

    def _messages(self) -> Iterator[tuple[int, int, bytes, int, int]]:
        """(type, seq, buffer, body offset, end) of each message received, until the caller stops."""
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, offset)
                yield kind, seq, data, offset + _NLMSGHDR.size, offset + length
                offset += _align(length)

    def request(self, kind: int, flags: int, body: bytes) -> None:
        """Send one request and wait for its acknowledgement; raise NetlinkError on refusal."""
        seq = self._send(kind, flags | NLM_F_ACK, body)
        for msg_kind, msg_seq, data, offset, _ in self._messages():
            if msg_seq == seq and msg_kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset)[0]
                if code:
                    raise NetlinkError(code, os.strerror(code))
                return

    def dump(self, kind: int, body: bytes) -> Iterator[tuple[bytes, int, int]]:
        """(buffer, body offset, end) of each message of a dump."""
        seq = self._send(kind, NLM_F_DUMP, body)
        for msg_kind, msg_seq, data, offset, end in self._messages():
            if msg_seq != seq:
                continue
            if msg_kind == NLMSG_DONE:
                return
            if msg_kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset)[0]
                if code == errno.EINTR:  # the dump was interrupted by a change: ask again
                    yield from self.dump(kind, body)
                    return
                raise NetlinkError(code, os.strerror(code))
            yield data, offset, end

    def get(self, kind: int, body: bytes) -> tuple[bytes, int, int]:
        """(buffer, body offset, end) of the one answer to a get request; NetlinkError on refusal."""
        seq = self._send(kind, 0, body)
        for msg_kind, msg_seq, data, offset, end in self._messages():
            if msg_seq != seq:
                continue
            if msg_kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset)[0]
                raise NetlinkError(code, os.strerror(code))
            return data, offset, end
        raise NetlinkError(errno.EIO, "no answer")  # unreachable: _messages only ends by raising


# reads (each family's requests are functions over the socket, so a family is added without touching it)


def dump_links(sock: RtnlSocket, kind: str | None = None) -> list[LinkMsg]:
    """Every link, or only those of `kind` ("bridge"): the kernel filters (strict checking)."""
    skip_stats = attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)  # about half of each message
    only = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, kind)) if kind else b""
    return [decode_link(d, o, e) for d, o, e in sock.dump(RTM_GETLINK, ifinfo() + skip_stats + only)]


def dump_addresses(sock: RtnlSocket) -> list[AddrMsg]:
    body = _IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)
    return [decode_addr(d, o, e) for d, o, e in sock.dump(RTM_GETADDR, body)]


def dump_routes(sock: RtnlSocket) -> list[RouteMsg]:
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)  # the local table is the kernel's
    return [r for d, o, e in sock.dump(RTM_GETROUTE, body) if (r := decode_route(d, o, e))]


def nsid_of(sock: RtnlSocket, netns_fd: int) -> int | None:
    """The id `sock`'s namespace gives the namespace `netns_fd` (None: it has none yet).
    The kernel assigns one when a veth spans the two, so every namespace of ours has one."""
    return decode_nsid(*sock.get(RTM_GETNSID, struct.pack("=Bxxx", socket.AF_UNSPEC) + attr_u32(NETNSA_FD, netns_fd)))


def index_of(sock: RtnlSocket, name: str) -> int | None:
    try:
        msg = _get_link(sock, name)
    except NetlinkError as err:
        if err.errno == errno.ENODEV:
            return None
        raise
    return msg.index


def link_by_index(sock: RtnlSocket, index: int) -> LinkMsg:
    return _get_link(sock, None, index)


def _get_link(sock: RtnlSocket, name: str | None, index: int = 0) -> LinkMsg:
    name_attr = attr_str(IFLA_IFNAME, name) if name is not None else b""
    skip_stats = attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
    return decode_link(*sock.get(RTM_GETLINK, ifinfo(index) + name_attr + skip_stats))


# writes


def add_bridge(sock: RtnlSocket, name: str) -> None:
    info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"))
    sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfo() + attr_str(IFLA_IFNAME, name) + info)


def add_veth(sock: RtnlSocket, host_name: str, peer_name: str, peer_netns_fd: int) -> None:
    peer = ifinfo() + attr_str(IFLA_IFNAME, peer_name) + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
    data = attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))
    info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth") + data)
    sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfo() + attr_str(IFLA_IFNAME, host_name) + info)


def set_link(sock: RtnlSocket, index: int, *, alias: str | None = None, mtu: int | None = None,
             master: int | None = None, mac: str | None = None, up: bool | None = None,
             hairpin: bool | None = None, ipv6_link_local: bool | None = None) -> None:
    """Change a link in one request. `ipv6_link_local=False` sets addrgenmode none: no
    IPv6 address, so no autoconfiguration traffic; `hairpin` is the bridge-port flag."""
    attrs = b""
    if alias is not None:
        attrs += attr_str(IFLA_IFALIAS, alias)
    if mtu is not None:
        attrs += attr_u32(IFLA_MTU, mtu)
    if master is not None:
        attrs += attr_u32(IFLA_MASTER, master)
    if mac is not None:
        attrs += attr(IFLA_ADDRESS, bytes(int(b, 16) for b in mac.split(":")))
    if hairpin is not None:
        port = attr(IFLA_INFO_SLAVE_DATA, attr_u8(IFLA_BRPORT_MODE, int(hairpin)))
        attrs += attr(IFLA_LINKINFO, attr_str(IFLA_INFO_SLAVE_KIND, "bridge") + port)
    if ipv6_link_local is not None:
        mode = IN6_ADDR_GEN_MODE_EUI64 if ipv6_link_local else IN6_ADDR_GEN_MODE_NONE
        attrs += attr(IFLA_AF_SPEC, attr(socket.AF_INET6, attr_u8(IFLA_INET6_ADDR_GEN_MODE, mode)))
    flags, change = (0, 0) if up is None else (IFF_UP if up else 0, IFF_UP)
    sock.request(RTM_NEWLINK, 0, ifinfo(index, flags, change) + attrs)


def delete_link(sock: RtnlSocket, index: int) -> None:
    sock.request(RTM_DELLINK, 0, ifinfo(index))


def add_address(sock: RtnlSocket, index: int, cidr: str, proto: int) -> None:
    address, prefix = cidr.split("/")
    packed = socket.inet_aton(address)
    attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed) + attr_u8(IFA_PROTO, proto)
    sock.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddr(int(prefix), index) + attrs)


def delete_address(sock: RtnlSocket, index: int, cidr: str) -> None:
    address, prefix = cidr.split("/")
    packed = socket.inet_aton(address)
    sock.request(RTM_DELADDR, 0, ifaddr(int(prefix), index) + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))


def replace_route(sock: RtnlSocket, to: str, via: str, proto: int) -> None:
    sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route_body(to, via, proto))


def delete_route(sock: RtnlSocket, to: str, via: str) -> None:
    sock.request(RTM_DELROUTE, 0, route_body(to, via, 0))


class ChangeListener:
    """Announcements of link, IPv4 address and route changes in this namespace and in every
    namespace it has an id for (NETLINK_LISTEN_ALL_NSID), and of ids given and taken back (a
    namespace's id is taken back when it dies, before its inode number can be reused): one
    socket, which, unlike a socket opened inside each namespace, keeps none of them alive."""

    def __init__(self, buffer_bytes: int = 32 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                                  socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        self.sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_NSID))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> tuple[set[int | None], bool]:
        """(ids of the namespaces that announced a change, None for this one; whether some
        announcements were lost because the buffer overflowed), without waiting."""
        changed: set[int | None] = set()
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(4))
            except BlockingIOError:
                return changed, False
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    return changed, True
                raise
            source = next((struct.unpack("=i", raw[:4])[0] for level, kind, raw in ancillary
                           if level == SOL_NETLINK and kind == NETLINK_LISTEN_ALL_NSID), None)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
                ours = source is None and kind in (RTM_NEWNSID, RTM_DELNSID)  # ids in our own id space
                changed.add(decode_nsid(data, offset + _NLMSGHDR.size, offset + length) if ours else source)
                offset += _align(max(length, _NLMSGHDR.size))


def decode_nsid(data: bytes, offset: int, end: int) -> int | None:
    """The namespace id an RTM_NEWNSID/RTM_DELNSID body (rtgenmsg, then attributes) is about;
    None for none (-1)."""
    raw = parse_attrs(data, offset + 4, end).get(NETNSA_NSID)
    value = struct.unpack("=i", raw[:4])[0] if raw else -1
    return value if value >= 0 else None
