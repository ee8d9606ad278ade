"""Routes of the main table, both families (RTM_*ROUTE): the one decoder, the dump, and the
replace and delete requests (gateways, ECMP, device routes, blackhole/unreachable/prohibit, metric)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from .socket import NLM_F_CREATE, NLM_F_REPLACE, RT_SCOPE_UNIVERSE, RtnlSocket, attr, attr_u32, parse_attrs

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTMGRP_IPV4_ROUTE = 0x40  # the multicast groups announcing route changes
RTMGRP_IPV6_ROUTE = 0x400

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
ROUTE_ATTRS = frozenset({RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE})
RT_TABLE_MAIN = 254
RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 253, 255
RTPROT_KERNEL, RTPROT_RA = 2, 9  # the kernel's own: an address's prefix, an IPv6 router advertisement
RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT = 1, 6, 7, 8
TYPES = {RTN_UNICAST: "unicast", RTN_BLACKHOLE: "blackhole", RTN_UNREACHABLE: "unreachable", RTN_PROHIBIT: "prohibit"}
TYPE_NUMBERS = {name: number for number, name in TYPES.items()}
DEFAULT_METRIC = {4: 0, 6: 1024}  # what the kernel gives a route added without RTA_PRIORITY

_RTMSG = struct.Struct("=BBBBBBBBI")
_RTNEXTHOP = struct.Struct("=HBBi")  # rtnh_len, rtnh_flags, rtnh_hops, rtnh_ifindex; then its attributes
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_FAMILY = {socket.AF_INET: 4, socket.AF_INET6: 6}
_U32 = struct.Struct("=I").unpack_from


class Route(NamedTuple):
    """A route as the kernel lists it: the fields anything in nsnet reads (snapshots, pre-flight).
    A NamedTuple: one is built for every route of every dump, at a third of a frozen dataclass's cost."""

    dst: str  # "0.0.0.0" or "::" for a default route
    dst_len: int
    table: int
    proto: int  # RTPROT_*: 2 kernel, 3 boot, 4 static, 9 ra, 225 nsnet
    kind: int  # RTN_*
    gateway: str | None
    oif: int | None  # None: no single output device (multipath, IPv4 blackhole, ...)
    family: int = 4
    priority: int = 0  # the metric (RTA_PRIORITY)
    multipath: tuple[str, ...] = ()  # the gateways of an ECMP route's next hops (RTA_MULTIPATH), as listed


@dataclass(frozen=True)
class RouteMsg:
    """A route as a Snapshot keeps it and as nsnet writes it (see configured_route)."""

    to: str  # always a CIDR: "0.0.0.0/0", "::/0", "10.0.0.0/24", "fd00::/64"
    via: tuple[str, ...]  # the gateways in address order; more than one: ECMP
    proto: int
    type: str = "unicast"  # or blackhole, unreachable, prohibit
    dev: int | None = None  # the output ifindex of a single-path unicast route (the kernel fills it for a gateway route too)
    metric: int | None = None  # None: the family's default (IPv4 0, IPv6 1024)

    @property
    def family(self) -> int:
        return 6 if ":" in self.to else 4


def decode_route(data: bytes, offset: int, end: int) -> Route:
    """The one route decoder (helpers inlined: it runs for every route of a 1000-route namespace)."""
    af, dst_len, _, _, table, proto, _, kind, _ = _RTMSG.unpack_from(data, offset)
    get = parse_attrs(data, offset + _RTMSG.size, end, ROUTE_ATTRS).get
    dst, gateway, oif, priority = get(RTA_DST), get(RTA_GATEWAY), get(RTA_OIF), get(RTA_PRIORITY)
    multipath, table_id = get(RTA_MULTIPATH), get(RTA_TABLE)
    ipv6 = af == socket.AF_INET6
    return Route(
        socket.inet_ntop(af, dst) if dst else ("::" if ipv6 else "0.0.0.0"),
        dst_len,
        _U32(table_id)[0] if table_id else table,
        proto,
        kind,
        socket.inet_ntop(af, gateway) if gateway else None,
        _U32(oif)[0] if oif else None,
        6 if ipv6 else 4,
        _U32(priority)[0] if priority else 0,
        _nexthop_gateways(af, multipath) if multipath else (),
    )


def _address(af: int, raw: bytes | None) -> str | None:
    return socket.inet_ntop(af, raw) if raw else None


def _nexthop_gateways(af: int, raw: bytes | None) -> tuple[str, ...]:
    """The gateway of each rtnexthop of an RTA_MULTIPATH (each: the struct, then its attributes)."""
    gateways = []
    offset = 0
    while raw and offset + _RTNEXTHOP.size <= len(raw):
        length = _RTNEXTHOP.unpack_from(raw, offset)[0]
        if length < _RTNEXTHOP.size:
            break
        gateway = _address(af, parse_attrs(raw, offset + _RTNEXTHOP.size, offset + length).get(RTA_GATEWAY))
        if gateway:
            gateways.append(gateway)
        offset += (length + 3) & ~3
    return tuple(gateways)


def configured_route(route: Route) -> RouteMsg | None:
    """The route as a Snapshot holds it, or None for what only the kernel makes: of the main
    table, every unicast, blackhole, unreachable and prohibit route that is not the kernel's
    (an address's prefix, an IPv6 router advertisement, IPv6 link-local and multicast). These
    are the routes nsnet may own, or see as drift."""
    dst, dst_len, table, proto, kind, gateway, oif, family, priority, multipath = route
    if table != RT_TABLE_MAIN or kind not in TYPES or proto == RTPROT_KERNEL or proto == RTPROT_RA:
        return None
    if family == 6 and dst_len >= 8 and _link_local_or_multicast(dst, dst_len):
        return None
    gateways = multipath or ((gateway,) if gateway else ())
    return RouteMsg(
        f"{dst}/{dst_len}",
        tuple(sorted(gateways, key=ipaddress.ip_address)) if len(gateways) > 1 else gateways,
        proto,
        TYPES[kind],
        oif if kind == RTN_UNICAST and not multipath else None,  # IPv6 lists `dev lo` for its reject routes
        priority if priority and priority != DEFAULT_METRIC[family] else None,  # IPv6 takes 0 for 1024
    )


def _link_local_or_multicast(dst: str, dst_len: int) -> bool:
    """Inside fe80::/10 or ff00::/8 (ipaddress would cost as much as the rest of the decoding)."""
    first, second = socket.inet_pton(socket.AF_INET6, dst)[:2]
    return first == 0xFF or (first == 0xFE and second & 0xC0 == 0x80 and dst_len >= 10)


@dataclass(frozen=True)
class ConnectedMsg:
    """A network the namespace reaches directly: the route the kernel made for an address's prefix."""

    to: str  # CIDR
    index: int  # the link it is on


def connected_route(route: Route) -> ConnectedMsg | None:
    """What `ip route` shows as `proto kernel scope link` in the IPv4 main table; None for any other route."""
    if (
        route.family != 4
        or route.table != RT_TABLE_MAIN
        or route.kind != RTN_UNICAST
        or route.proto != RTPROT_KERNEL
        or route.gateway
        or route.oif is None
    ):
        return None
    return ConnectedMsg(f"{route.dst}/{route.dst_len}", route.oif)


def dump_routes(sock: RtnlSocket, family: int | None = 4) -> list[Route]:
    """Every route of the main table, of every type, of one family (4 or 6) or of both (None)."""
    af = _AF[family] if family else socket.AF_UNSPEC
    body = _RTMSG.pack(af, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0)  # the local table is the kernel's
    return [
        r
        for d, o, e in sock.dump(RTM_GETROUTE, body)
        if d[o] in _FAMILY and (r := decode_route(d, o, e)).table == RT_TABLE_MAIN  # AF_UNSPEC also brings multicast routing's families
    ]


# writes


def route_body(msg: RouteMsg, delete: bool = False) -> bytes:
    """The request for `msg` in the main table, its family from `to`. A delete names the route by
    destination, type, metric (part of a route's key: one with another metric is another route)
    and protocol (0: any), never by next hop, so it takes an ECMP route whole and leaves a route
    someone else made to the same destination."""
    family = msg.family
    af = _AF[family]
    address, _, prefix = msg.to.partition("/")
    attrs = attr(RTA_DST, socket.inet_pton(af, address)) if int(prefix) else b""
    attrs += attr_u32(RTA_TABLE, RT_TABLE_MAIN)
    metric = msg.metric if msg.metric is not None else (DEFAULT_METRIC[family] if delete else None)
    if metric:  # an IPv6 delete names the default metric: without one the kernel takes the first route of any
        attrs += attr_u32(RTA_PRIORITY, metric)
    if delete:
        return _RTMSG.pack(af, int(prefix), 0, 0, RT_TABLE_MAIN, msg.proto, RT_SCOPE_NOWHERE, TYPE_NUMBERS[msg.type], 0) + attrs
    if len(msg.via) == 1:
        attrs += attr(RTA_GATEWAY, socket.inet_pton(af, msg.via[0]))
    elif msg.via:
        hops = (attr(RTA_GATEWAY, socket.inet_pton(af, gateway)) for gateway in msg.via)
        attrs += attr(RTA_MULTIPATH, b"".join(_RTNEXTHOP.pack(_RTNEXTHOP.size + len(a), 0, 0, msg.dev or 0) + a for a in hops))
    if msg.dev is not None and len(msg.via) <= 1:
        attrs += attr_u32(RTA_OIF, msg.dev)
    scope = RT_SCOPE_LINK if msg.type == "unicast" and not msg.via else RT_SCOPE_UNIVERSE
    return _RTMSG.pack(af, int(prefix), 0, 0, RT_TABLE_MAIN, msg.proto, scope, TYPE_NUMBERS[msg.type], 0) + attrs


def replace_route(sock: RtnlSocket, msg: RouteMsg) -> None:
    """Create the route, or replace the one with its destination and metric."""
    sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route_body(msg))


def delete_route(sock: RtnlSocket, msg: RouteMsg) -> None:
    sock.request(RTM_DELROUTE, 0, route_body(msg, delete=True))
