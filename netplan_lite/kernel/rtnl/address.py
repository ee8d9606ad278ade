"""IPv4 addresses (RTM_*ADDR, <linux/if_addr.h>): the dump and the add and delete requests."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .socket import NLM_F_CREATE, NLM_F_EXCL, RT_SCOPE_UNIVERSE, RtnlSocket, attr, attr_u8, ipv4_of, parse_attrs

RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTMGRP_IPV4_IFADDR = 0x10  # the multicast group announcing IPv4 address changes

IFA_ADDRESS, IFA_LOCAL, IFA_PROTO = 1, 2, 11

_IFADDRMSG = struct.Struct("=BBBBI")


def ifaddr(prefixlen: int, index: int) -> bytes:
    return _IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)


@dataclass(frozen=True)
class AddrMsg:
    index: int
    cidr: str
    proto: int


def decode_addr(data: bytes, offset: int, end: int) -> AddrMsg:
    _, prefixlen, _, _, index = _IFADDRMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _IFADDRMSG.size, end)
    local = ipv4_of(attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS))
    proto = attrs.get(IFA_PROTO)
    return AddrMsg(index, f"{local}/{prefixlen}", proto[0] if proto else 0)


def dump_addresses(sock: RtnlSocket) -> list[AddrMsg]:
    body = _IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)
    return [decode_addr(d, o, e) for d, o, e in sock.dump(RTM_GETADDR, body)]


def add_address(sock: RtnlSocket, index: int, cidr: str, proto: int) -> None:
    address, prefix = cidr.split("/")
    packed = socket.inet_aton(address)
    attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed) + attr_u8(IFA_PROTO, proto)
    sock.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddr(int(prefix), index) + attrs)


def delete_address(sock: RtnlSocket, index: int, cidr: str) -> None:
    address, prefix = cidr.split("/")
    packed = socket.inet_aton(address)
    sock.request(RTM_DELADDR, 0, ifaddr(int(prefix), index) + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))
