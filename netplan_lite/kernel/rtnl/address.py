"""Addresses of both families (RTM_*ADDR, <linux/if_addr.h>): the dump and the add and delete requests."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .socket import NLM_F_CREATE, NLM_F_EXCL, RT_SCOPE_UNIVERSE, RtnlSocket, attr, attr_u8, attr_u32, parse_attrs, u32_of

RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTMGRP_IPV4_IFADDR = 0x10  # the multicast groups announcing address changes
RTMGRP_IPV6_IFADDR = 0x100

IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_PROTO = 1, 2, 8, 11
IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x02, 0x08, 0x40
ADDR_ATTRS = frozenset({IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_PROTO})

_IFADDRMSG = struct.Struct("=BBBBI")
_FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}


def ifaddr(prefixlen: int, index: int, family: int = socket.AF_INET, flags: int = 0) -> bytes:
    return _IFADDRMSG.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)


@dataclass(frozen=True)
class AddrMsg:
    index: int
    cidr: str  # IPv6 compressed, as `ip` prints it: "fd00::1/64"
    proto: int
    family: int = 4
    tentative: bool = False  # IPv6 duplicate address detection not passed (running or failed): not usable yet


def decode_addr(data: bytes, offset: int, end: int) -> AddrMsg:
    af, prefixlen, flags, _, index = _IFADDRMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _IFADDRMSG.size, end, ADDR_ATTRS)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS) or b""  # IPv4 point-to-point: IFA_ADDRESS is the peer
    family = _FAMILIES.get(af, 0)
    local = socket.inet_ntop(af, raw) if family and len(raw) == (4 if family == 4 else 16) else "?"
    proto = attrs.get(IFA_PROTO)
    flags = u32_of(attrs.get(IFA_FLAGS)) or flags  # IFA_FLAGS holds all 32 bits; ifa_flags only the low 8
    return AddrMsg(index, f"{local}/{prefixlen}", proto[0] if proto else 0, family, bool(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)))


def dump_addresses(sock: RtnlSocket) -> list[AddrMsg]:
    """Every address of both families (callers keep the family they want)."""
    body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return [decode_addr(d, o, e) for d, o, e in sock.dump(RTM_GETADDR, body)]


def address_body(index: int, cidr: str, proto: int | None = None) -> bytes:
    """The request for `cidr` on link `index`, its family from the address. An IPv6 address
    skips duplicate address detection (IFA_F_NODAD): usable at once, where DAD would hold it
    tentative ~2 s and fail a bind meanwhile."""
    address, prefix = cidr.split("/")
    family, flags = (socket.AF_INET6, IFA_F_NODAD) if ":" in address else (socket.AF_INET, 0)
    packed = socket.inet_pton(family, address)
    attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    if flags:
        attrs += attr_u32(IFA_FLAGS, flags)
    if proto is not None:
        attrs += attr_u8(IFA_PROTO, proto)
    return ifaddr(int(prefix), index, family, flags) + attrs


def add_address(sock: RtnlSocket, index: int, cidr: str, proto: int) -> None:
    sock.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, address_body(index, cidr, proto))


def delete_address(sock: RtnlSocket, index: int, cidr: str) -> None:
    sock.request(RTM_DELADDR, 0, address_body(index, cidr))
