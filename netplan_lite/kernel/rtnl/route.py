"""IPv4 routes of the main table (RTM_*ROUTE): the dump and the replace and delete requests."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .socket import NLM_F_CREATE, NLM_F_REPLACE, RT_SCOPE_UNIVERSE, RtnlSocket, attr, attr_u32, ipv4_of, parse_attrs, u32_of

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTMGRP_IPV4_ROUTE = 0x40  # the multicast group announcing IPv4 route changes

RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
RT_TABLE_MAIN = 254
RTN_UNICAST = 1

_RTMSG = struct.Struct("=BBBBBBBBI")


def rtmsg(dst_len: int, proto: int) -> bytes:
    return _RTMSG.pack(socket.AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)


def route_body(to: str, via: str, proto: int) -> bytes:
    """An IPv4 main-table route to `to` ("default" or CIDR) via a gateway."""
    address, _, prefix = ("0.0.0.0/0" if to == "default" else to).partition("/")
    attrs = attr(RTA_GATEWAY, socket.inet_aton(via)) + attr_u32(RTA_TABLE, RT_TABLE_MAIN)
    if int(prefix):
        attrs = attr(RTA_DST, socket.inet_aton(address)) + attrs
    return rtmsg(int(prefix), proto) + attrs


@dataclass(frozen=True)
class RouteMsg:
    to: str
    via: str
    proto: int


def decode_route(data: bytes, offset: int, end: int) -> RouteMsg | None:
    _, dst_len, _, _, table, proto, _, kind, _ = _RTMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _RTMSG.size, end)
    table = u32_of(attrs.get(RTA_TABLE)) or table
    gateway = ipv4_of(attrs.get(RTA_GATEWAY))
    if table != RT_TABLE_MAIN or kind != RTN_UNICAST or gateway is None:
        return None
    to = "default" if dst_len == 0 else f"{ipv4_of(attrs.get(RTA_DST))}/{dst_len}"
    return RouteMsg(to, gateway, proto)


def dump_routes(sock: RtnlSocket) -> list[RouteMsg]:
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)  # the local table is the kernel's
    return [r for d, o, e in sock.dump(RTM_GETROUTE, body) if (r := decode_route(d, o, e))]


def replace_route(sock: RtnlSocket, to: str, via: str, proto: int) -> None:
    sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route_body(to, via, proto))


def delete_route(sock: RtnlSocket, to: str, via: str) -> None:
    sock.request(RTM_DELROUTE, 0, route_body(to, via, 0))
