"""The codec's routes (rtnl/route.py), checked against pyroute2's full codec: messages it
encodes must decode to the same fields, and requests ours encodes must decode back, in pyroute2 and in ours."""

from __future__ import annotations

import socket

import pytest
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netplan_lite.kernel.rtnl import route
from netplan_lite.kernel.rtnl.route import RouteMsg

from builders import NLMSG_HEADER as HEADER, encoded, nl_message

V6 = socket.AF_INET6


def pyroute2_route(dst_len=0, table=254, kind=1, proto=225, attrs=(("RTA_GATEWAY", "10.0.0.1"),), family=socket.AF_INET) -> bytes:
    m = rtmsg()
    m["family"], m["dst_len"], m["table"], m["proto"], m["type"] = family, dst_len, table, proto, kind
    m["attrs"] = list(attrs)
    return encoded(m)


def hops(*gateways: str, oif: int = 3) -> tuple[str, list]:
    return ("RTA_MULTIPATH", [{"oif": oif, "attrs": [("RTA_GATEWAY", gateway)]} for gateway in gateways])


def configured(data: bytes) -> RouteMsg | None:
    return route.configured_route(route.decode_route(data, HEADER, len(data)))


@pytest.mark.parametrize(
    "data, expected",
    [
        (pyroute2_route(attrs=(("RTA_GATEWAY", "10.0.0.1"), ("RTA_OIF", 7))), RouteMsg("0.0.0.0/0", ("10.0.0.1",), 225, dev=7)),
        (pyroute2_route(16, proto=4, attrs=(("RTA_DST", "10.9.0.0"), ("RTA_GATEWAY", "10.0.0.1"))), RouteMsg("10.9.0.0/16", ("10.0.0.1",), 4)),
        (pyroute2_route(16, attrs=(("RTA_DST", "10.9.0.0"), hops("10.0.0.9", "10.0.0.10"))), RouteMsg("10.9.0.0/16", ("10.0.0.9", "10.0.0.10"), 225)),
        (pyroute2_route(16, kind=6, attrs=(("RTA_DST", "10.66.0.0"),)), RouteMsg("10.66.0.0/16", (), 225, "blackhole")),
        (
            pyroute2_route(16, kind=7, attrs=(("RTA_DST", "10.66.0.0"), ("RTA_PRIORITY", 5))),
            RouteMsg("10.66.0.0/16", (), 225, "unreachable", metric=5),
        ),
        (pyroute2_route(16, kind=8, attrs=(("RTA_DST", "10.66.0.0"),)), RouteMsg("10.66.0.0/16", (), 225, "prohibit")),
        (
            pyroute2_route(16, attrs=(("RTA_DST", "10.77.0.0"), ("RTA_OIF", 7), ("RTA_PRIORITY", 50))),
            RouteMsg("10.77.0.0/16", (), 225, dev=7, metric=50),
        ),  # a device route
        (
            pyroute2_route(family=V6, attrs=(("RTA_GATEWAY", "fd00:10::1"), ("RTA_OIF", 7), ("RTA_PRIORITY", 1024))),
            RouteMsg("::/0", ("fd00:10::1",), 225, dev=7),
        ),  # IPv6's default metric reads as None
        (
            pyroute2_route(64, family=V6, attrs=(("RTA_DST", "fd00::"), ("RTA_PRIORITY", 1024), hops("fd00:1::2", "fd00:1::1"))),
            RouteMsg("fd00::/64", ("fd00:1::1", "fd00:1::2"), 225),
        ),  # IPv6 ECMP as modern kernels dump it: one message with RTA_MULTIPATH; gateways sorted
        (
            pyroute2_route(16, family=V6, kind=6, attrs=(("RTA_DST", "fd66::"), ("RTA_OIF", 1), ("RTA_PRIORITY", 20))),
            RouteMsg("fd66::/16", (), 225, "blackhole", metric=20),
        ),  # IPv6 lists `dev lo` for a reject route: no device
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.0.0.0"), ("RTA_OIF", 7))), None),  # connected: the kernel's
        (pyroute2_route(64, proto=2, family=V6, attrs=(("RTA_DST", "fd00:10::"), ("RTA_OIF", 7), ("RTA_PRIORITY", 256))), None),
        (pyroute2_route(64, proto=9, family=V6, attrs=(("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 7))), None),  # from a router advertisement
        (pyroute2_route(64, proto=3, family=V6, attrs=(("RTA_DST", "fe80::"), ("RTA_OIF", 7))), None),  # link-local, whoever made it
        (pyroute2_route(8, proto=3, family=V6, attrs=(("RTA_DST", "ff00::"), ("RTA_OIF", 7))), None),  # multicast
        (pyroute2_route(table=255), None),
        (pyroute2_route(kind=2), None),  # local
    ],
    ids=[
        "default",
        "static",
        "ecmp",
        "blackhole",
        "unreachable-metric",
        "prohibit",
        "device",
        "ipv6-default",
        "ipv6-ecmp",
        "ipv6-blackhole",
        "connected",
        "ipv6-connected",
        "ipv6-ra",
        "ipv6-link-local",
        "ipv6-multicast",
        "local-table",
        "local-type",
    ],
)
def test_the_routes_nsnet_may_own_or_see_as_drift_are_read_and_the_kernels_are_not(data, expected):
    assert configured(data) == expected


@pytest.mark.parametrize(
    "data, expected",
    [
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7))), route.ConnectedMsg("10.1.0.0/24", 7)),
        (pyroute2_route(24, proto=4, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7))), None),  # `ip route add ... dev`: by hand
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7), ("RTA_GATEWAY", "10.0.0.1"))), None),
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"),)), None),  # no single device
        (pyroute2_route(32, proto=2, table=255, attrs=(("RTA_DST", "10.1.0.1"), ("RTA_OIF", 7))), None),  # the local table's
        (pyroute2_route(64, proto=2, family=V6, attrs=(("RTA_DST", "fd00::"), ("RTA_OIF", 7))), None),  # IPv4 only
    ],
    ids=["connected", "static", "via", "no-device", "local-table", "ipv6"],
)
def test_a_connected_route_is_the_kernels_for_an_ipv4_address_prefix(data, expected):
    assert route.connected_route(route.decode_route(data, HEADER, len(data))) == expected


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7))),
            route.Route("10.1.0.0", 24, 254, 2, route.RTN_UNICAST, None, 7),
        ),
        (pyroute2_route(32, proto=4, kind=6, attrs=(("RTA_DST", "10.1.0.7"),)), route.Route("10.1.0.7", 32, 254, 4, route.RTN_BLACKHOLE, None, None)),
        (
            pyroute2_route(table=252, attrs=(("RTA_TABLE", 1000), ("RTA_GATEWAY", "192.0.2.1"), ("RTA_OIF", 2))),
            route.Route("0.0.0.0", 0, 1000, 225, route.RTN_UNICAST, "192.0.2.1", 2),
        ),  # a table id past 255: RTA_TABLE
        (
            pyroute2_route(family=V6, attrs=(hops("fd00::2", "fd00::1", oif=4), ("RTA_PRIORITY", 1024))),
            route.Route("::", 0, 254, 225, route.RTN_UNICAST, None, None, 6, 1024, ("fd00::2", "fd00::1")),
        ),
    ],
    ids=["connected", "blackhole", "table-attribute", "ipv6-multipath"],
)
def test_every_route_decodes_with_its_device_type_and_table_like_pyroute2_encodes_it(data, expected):
    """The one decoder serves pre-flight's host routes too, which keep every type and device."""
    assert route.decode_route(data, HEADER, len(data)) == expected


WRITTEN = [
    RouteMsg("10.9.0.0/16", ("10.0.0.1",), 225),
    RouteMsg("0.0.0.0/0", ("10.0.0.1",), 225, dev=7),
    RouteMsg("10.9.0.0/16", ("10.0.0.9", "10.0.0.10"), 225),
    RouteMsg("10.66.0.0/16", (), 225, "blackhole", metric=30),
    RouteMsg("10.66.0.0/16", (), 225, "unreachable"),
    RouteMsg("10.66.0.0/16", (), 225, "prohibit"),
    RouteMsg("10.77.0.0/16", (), 225, dev=7, metric=50),
    RouteMsg("::/0", ("fd00:10::1",), 225),
    RouteMsg("fd00::/64", ("fd00:1::1", "fd00:1::2", "fd00:1::3"), 225, metric=10),
    RouteMsg("fd66::/16", (), 225, "blackhole"),
    RouteMsg("fd77::/64", (), 225, dev=7),
]


@pytest.mark.parametrize("msg", WRITTEN, ids=lambda m: f"{m.to}-{m.type}-{len(m.via)}")
def test_a_route_request_decodes_back_to_the_route_it_asks_for(msg):
    data = nl_message(route.RTM_NEWROUTE, route.route_body(msg))
    assert configured(data) == msg


@pytest.mark.parametrize("msg", WRITTEN, ids=lambda m: f"{m.to}-{m.type}-{len(m.via)}")
def test_pyroute2_reads_our_route_requests_as_iproute2_would_send_them(msg):
    parsed = rtmsg(nl_message(route.RTM_NEWROUTE, route.route_body(msg)))
    parsed.decode()
    address, _, prefix = msg.to.partition("/")
    assert (parsed["family"], parsed["dst_len"], parsed["table"], parsed["proto"]) == (
        socket.AF_INET6 if msg.family == 6 else socket.AF_INET,
        int(prefix),
        254,
        225,
    )
    assert route.TYPES[parsed["type"]] == msg.type
    assert parsed.get("RTA_DST") == (address if int(prefix) else None)
    assert parsed.get("RTA_PRIORITY") == msg.metric
    assert parsed.get("RTA_OIF") == msg.dev
    link_scope = msg.type == "unicast" and not msg.via
    assert parsed["scope"] == (route.RT_SCOPE_LINK if link_scope else 0)
    if len(msg.via) > 1:
        assert parsed.get("RTA_GATEWAY") is None
        assert [hop.get("RTA_GATEWAY") for hop in parsed.get("RTA_MULTIPATH")] == list(msg.via)
    else:
        assert parsed.get("RTA_GATEWAY") == (msg.via[0] if msg.via else None)


@pytest.mark.parametrize(
    "msg, priority",
    [
        (RouteMsg("10.9.0.0/16", ("10.0.0.1",), 225), None),
        (RouteMsg("10.9.0.0/16", ("10.0.0.1", "10.0.0.2"), 225, metric=50), 50),
        (RouteMsg("fd00::/64", ("fd00:1::1",), 225), 1024),  # without it the kernel would take the first route of any metric
        (RouteMsg("fd66::/16", (), 225, "blackhole", metric=20), 20),
    ],
    ids=["ipv4", "ipv4-metric", "ipv6-default-metric", "ipv6-blackhole"],
)
def test_a_delete_names_destination_type_and_metric_and_no_next_hop(msg, priority):
    """No gateway, so the kernel deletes an ECMP route whole; its protocol, so never a route someone else made; any scope."""
    parsed = rtmsg(nl_message(route.RTM_DELROUTE, route.route_body(msg, delete=True)))
    parsed.decode()
    assert (route.TYPES[parsed["type"]], parsed["proto"], parsed["scope"]) == (msg.type, 225, route.RT_SCOPE_NOWHERE)
    assert parsed.get("RTA_PRIORITY") == priority
    assert parsed.get("RTA_GATEWAY") is parsed.get("RTA_MULTIPATH") is parsed.get("RTA_OIF") is None
