"""IPv4 routes of the main table (RTM_*ROUTE): the one decoder, the dump, and the replace and
delete requests."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .socket import NLM_F_CREATE, NLM_F_REPLACE, RT_SCOPE_UNIVERSE, RtnlSocket, attr, attr_u32, ipv4_of, parse_attrs, u32_of

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTMGRP_IPV4_ROUTE = 0x40  # the multicast group announcing IPv4 route changes

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
RTPROT_KERNEL = 2  # a route the kernel made for an address's prefix
RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT = 1, 6, 7, 8

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
class Route:
    """A route as the kernel lists it: the fields anything in nsnet reads (snapshots, pre-flight)."""

    dst: str  # "0.0.0.0" for a default route
    dst_len: int
    table: int
    proto: int  # RTPROT_*: 2 kernel, 3 boot, 4 static, 225 nsnet
    kind: int  # RTN_*
    gateway: str | None
    oif: int | None  # None: no single output device (multipath, blackhole, ...)


@dataclass(frozen=True)
class RouteMsg:
    """What a Snapshot keeps of a route (see gateway_route)."""

    to: str
    via: str
    proto: int


def decode_route(data: bytes, offset: int, end: int) -> Route:
    _, dst_len, _, _, table, proto, _, kind, _ = _RTMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _RTMSG.size, end)
    return Route(
        ipv4_of(attrs.get(RTA_DST)) or "0.0.0.0",
        dst_len,
        u32_of(attrs.get(RTA_TABLE)) or table,
        proto,
        kind,
        ipv4_of(attrs.get(RTA_GATEWAY)),
        u32_of(attrs.get(RTA_OIF)),
    )


def gateway_route(route: Route) -> RouteMsg | None:
    """The route as a Snapshot holds it: only main-table unicast routes via a gateway can be
    nsnet's (connected routes are the kernel's, other types are never written)."""
    if route.table != RT_TABLE_MAIN or route.kind != RTN_UNICAST or route.gateway is None:
        return None
    to = "default" if route.dst_len == 0 else f"{route.dst}/{route.dst_len}"
    return RouteMsg(to, route.gateway, route.proto)


@dataclass(frozen=True)
class ConnectedMsg:
    """A network the namespace reaches directly: the route the kernel made for an address's prefix."""

    to: str  # CIDR
    index: int  # the link it is on


def connected_route(route: Route) -> ConnectedMsg | None:
    """What `ip route` shows as `proto kernel scope link` in the main table; None for any other route."""
    if route.table != RT_TABLE_MAIN or route.kind != RTN_UNICAST or route.proto != RTPROT_KERNEL or route.gateway or route.oif is None:
        return None
    return ConnectedMsg(f"{route.dst}/{route.dst_len}", route.oif)


def dump_routes(sock: RtnlSocket) -> list[Route]:
    """Every route of the main table, of every type."""
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)  # the local table is the kernel's
    return [r for d, o, e in sock.dump(RTM_GETROUTE, body) if (r := decode_route(d, o, e)).table == RT_TABLE_MAIN]


def replace_route(sock: RtnlSocket, to: str, via: str, proto: int) -> None:
    sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route_body(to, via, proto))


def delete_route(sock: RtnlSocket, to: str, via: str) -> None:
    sock.request(RTM_DELROUTE, 0, route_body(to, via, 0))
