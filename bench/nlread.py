"""What a namespace has, read in-process over rtnetlink (standard library only), for the ring's checks.

`ip -j -n NS` costs a process and a mount namespace per read, and JSON of
~1000 routes per router; the checks read every router of a 500-router ring
after every build, so they dump links, addresses and main-table routes on one
netlink socket opened inside the namespace, and decode only what they compare.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from ipaddress import ip_address

import netkit

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_GET_STRICT_CHK = 12
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 16, 18, 20, 22, 24, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
AF_UNSPEC = 0
RT_TABLE_MAIN = 254
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
IFLA_IFNAME, IFLA_MTU, IFLA_LINK_NETNSID = 3, 4, 37
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x02, 0x08, 0x40
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE, RTA_MULTIPATH = 1, 4, 5, 6, 15, 9
RTN_UNICAST = 1
NDA_DST = 1
NUD_PERMANENT = 0x80


@dataclass(frozen=True)
class Link:
    name: str
    up: bool  # IFF_UP and IFF_LOWER_UP (its peer is up too)
    mtu: int
    peer_elsewhere: bool  # IFLA_LINK_NETNSID: the veth's peer is in another namespace


@dataclass(frozen=True)
class Address:
    dev: str
    cidr: str
    flags: int  # IFA_F_*

    @property
    def usable(self) -> bool:
        return not self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)


@dataclass(frozen=True)
class Route:
    dst: str  # network/prefix
    gateway: str | None
    dev: str | None
    type: int
    protocol: int
    metric: int | None
    multipath: bool


@dataclass
class Namespace:
    links: list[Link]
    addresses: list[Address]
    routes: list[Route]  # main table, both families


def read(ns: str) -> Namespace:
    """Links, addresses and main-table routes of namespace NS."""
    with netkit.entered(ns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    with sock:
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, 0))
        links = {index: link for index, link in _links(sock)}
        names = {index: link.name for index, link in links.items()}
        addresses = list(_addresses(sock, names))
        routes = list(_routes(sock, names))
    return Namespace(list(links.values()), addresses, routes)


def flush_neighbours(ns: str, family: int) -> int:
    """Delete namespace NS's neighbour entries of FAMILY (4: ARP, 6: neighbour discovery) that are not permanent;
    returns how many. They are a cache, not configuration, and the kernel keeps them in one table for every
    namespace (gc_thresh3: 1024 entries by default): a ring of 500 routers leaves ~2000 IPv6 ones there after
    the build (the multicast groups of duplicate address detection and MLD), and one probe 249 hops long
    makes ~1000 more (each router's next hop both ways and the link-local of its solicitor), which the
    kernel may collect only 5 s later. Without making room the probes' packets are dropped."""
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    with netkit.entered(ns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    with sock:
        sock.bind((0, 0))
        doomed = []
        for mtype, p in _dump(sock, RTM_GETNEIGH, struct.pack("=BxxxiHBB", af, 0, 0, 0, 0), 4):
            _, index, state, _, _ = struct.unpack_from("=BxxxiHBB", p)
            dst = _attrs(p, 12).get(NDA_DST)
            if mtype == RTM_NEWNEIGH and not state & NUD_PERMANENT and dst:
                doomed.append(struct.pack("=BxxxiHBB", af, index, 0, 0, 0) + struct.pack("=HH", 4 + len(dst), NDA_DST) + dst)
        for seq, body in enumerate(doomed, 5):
            sock.send(struct.pack("=IHHII", 16 + len(body), RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
            sock.recv(4096)  # the ack (an entry gone meanwhile answers ENOENT: as good)
    return len(doomed)


def _dump(sock: socket.socket, kind: int, body: bytes, seq: int):
    """Yield (message type, payload) of one dump."""
    sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset < len(data):
            length, mtype = struct.unpack_from("=IH", data, offset)
            if mtype == NLMSG_DONE:
                return
            if mtype == NLMSG_ERROR:
                code = struct.unpack_from("=i", data, offset + 16)[0]
                if code:
                    raise OSError(-code, f"netlink dump {kind}: error {code}")
            else:
                yield mtype, data[offset + 16:offset + length]
            offset += (length + 3) & ~3


def _attrs(payload: bytes, start: int) -> dict[int, bytes]:
    found = {}
    offset = start
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = payload[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def _links(sock: socket.socket):
    for mtype, p in _dump(sock, RTM_GETLINK, struct.pack("=BxHiII", AF_UNSPEC, 0, 0, 0, 0), 1):
        if mtype != RTM_NEWLINK:
            continue
        _, _, index, flags, _ = struct.unpack_from("=BxHiII", p)
        a = _attrs(p, 16)
        name = a.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
        mtu = struct.unpack("=I", a[IFLA_MTU])[0] if IFLA_MTU in a else 0
        up = bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
        yield index, Link(name, up, mtu, IFLA_LINK_NETNSID in a)


def _addresses(sock: socket.socket, names: dict[int, str]):
    for mtype, p in _dump(sock, RTM_GETADDR, struct.pack("=BBBBi", AF_UNSPEC, 0, 0, 0, 0), 2):
        if mtype != RTM_NEWADDR:
            continue
        _, prefixlen, flags, _, index = struct.unpack_from("=BBBBi", p)
        a = _attrs(p, 8)
        raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
        if raw is None:
            continue
        if IFA_FLAGS in a:
            flags = struct.unpack("=I", a[IFA_FLAGS])[0]
        yield Address(names.get(index, str(index)), f"{ip_address(raw)}/{prefixlen}", flags)


def _routes(sock: socket.socket, names: dict[int, str]):
    body = struct.pack("=BBBBBBBBI", AF_UNSPEC, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)
    for mtype, p in _dump(sock, RTM_GETROUTE, body, 3):
        if mtype != RTM_NEWROUTE:
            continue
        family, dst_len, _, _, table, protocol, _, rtype, _ = struct.unpack_from("=BBBBBBBBI", p)
        a = _attrs(p, 12)
        if (struct.unpack("=I", a[RTA_TABLE])[0] if RTA_TABLE in a else table) != RT_TABLE_MAIN:
            continue
        if RTA_DST in a:
            dst = f"{ip_address(a[RTA_DST])}/{dst_len}"
        else:
            dst = "0.0.0.0/0" if family == socket.AF_INET else "::/0"
        gateway = str(ip_address(a[RTA_GATEWAY])) if RTA_GATEWAY in a else None
        dev = names.get(struct.unpack("=i", a[RTA_OIF])[0]) if RTA_OIF in a else None
        metric = struct.unpack("=I", a[RTA_PRIORITY])[0] if RTA_PRIORITY in a else None
        yield Route(dst, gateway, dev, rtype, protocol, metric, RTA_MULTIPATH in a)
