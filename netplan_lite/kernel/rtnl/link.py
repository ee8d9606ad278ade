"""Links (RTM_*LINK, <linux/if_link.h>): dumps, gets and the requests that create, change
and delete bridges and veth pairs."""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from .socket import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    NetlinkError,
    RtnlSocket,
    attr,
    attr_str,
    attr_u8,
    attr_u32,
    mac_of,
    netnsid_of,
    parse_attrs,
    string_of,
    u32_of,
)

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTMGRP_LINK = 0x1  # the multicast group announcing link changes

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_LINK_NETNSID = 37  # s32: the id this namespace gives the namespace of the link's peer
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_AF_SPEC, IFLA_INET6_ADDR_GEN_MODE = 26, 8
IN6_ADDR_GEN_MODE_EUI64, IN6_ADDR_GEN_MODE_NONE = 0, 1
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFLA_BR_MCAST_SNOOPING = 23
IFF_UP = 0x1

LINK_ATTRS = frozenset({IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_LINK_NETNSID})
IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS = 29, 1 << 3

_IFINFOMSG = struct.Struct("=BxHiII")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)


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
    link_netnsid: int | None = None  # a veth whose peer is in another namespace: the id this one gives it


def decode_link(data: bytes, offset: int, end: int) -> LinkMsg:
    _, _, index, flags, _ = _IFINFOMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _IFINFOMSG.size, end, LINK_ATTRS)
    kind, hairpin = None, False
    if IFLA_LINKINFO in attrs:
        info_raw = attrs[IFLA_LINKINFO]
        info = parse_attrs(info_raw, 0, len(info_raw))
        kind = string_of(info.get(IFLA_INFO_KIND))
        slave = info.get(IFLA_INFO_SLAVE_DATA)
        if slave:
            mode = parse_attrs(slave, 0, len(slave)).get(IFLA_BRPORT_MODE)
            hairpin = bool(mode and mode[0])
    return LinkMsg(
        index=index,
        name=string_of(attrs.get(IFLA_IFNAME)) or "",
        kind=kind,
        alias=string_of(attrs.get(IFLA_IFALIAS)) or None,
        master=u32_of(attrs.get(IFLA_MASTER)) or None,
        peer=u32_of(attrs.get(IFLA_LINK)) or None,
        mtu=u32_of(attrs.get(IFLA_MTU)) or 0,
        up=bool(flags & IFF_UP),
        mac=mac_of(attrs.get(IFLA_ADDRESS)),
        hairpin=hairpin,
        link_netnsid=netnsid_of(attrs.get(IFLA_LINK_NETNSID)),
    )


# reads


def dump_links(sock: RtnlSocket, kind: str | None = None) -> list[LinkMsg]:
    """Every link, or only those of `kind` ("bridge"): the kernel filters (strict checking)."""
    skip_stats = attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)  # about half of each message
    only = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, kind)) if kind else b""
    return [decode_link(d, o, e) for d, o, e in sock.dump(RTM_GETLINK, ifinfo() + skip_stats + only)]


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
    """A bridge that floods multicast like a plain switch (multicast snooping off): with snooping
    and no MLD querier on the wire, the bridge forgets the hosts' solicited-node groups after the
    membership interval (260 s) and drops neighbour solicitations, so IPv6 neighbours become
    unreachable a few minutes after apply (measured; the kernel's default is snooping on)."""
    info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge") + attr(IFLA_INFO_DATA, attr_u8(IFLA_BR_MCAST_SNOOPING, 0)))
    sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfo() + attr_str(IFLA_IFNAME, name) + info)


def add_veth(sock: RtnlSocket, host_name: str, peer_name: str, peer_netns_fd: int) -> None:
    """A veth pair: `host_name` in `sock`'s namespace, its peer created directly in `peer_netns_fd`'s."""
    peer = ifinfo() + attr_str(IFLA_IFNAME, peer_name) + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
    data = attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))
    info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth") + data)
    sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfo() + attr_str(IFLA_IFNAME, host_name) + info)


def set_link(
    sock: RtnlSocket,
    index: int,
    *,
    alias: str | None = None,
    mtu: int | None = None,
    master: int | None = None,
    mac: str | None = None,
    up: bool | None = None,
    hairpin: bool | None = None,
    ipv6_link_local: bool | None = None,
) -> None:
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
