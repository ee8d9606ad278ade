"""The codec's routes (rtnl/route.py), checked against pyroute2's full codec: messages it
encodes must decode to the same fields, and requests ours encodes must decode back."""

from __future__ import annotations

import pytest
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netplan_lite.kernel.rtnl import route

from builders import NLMSG_HEADER as HEADER, encoded, nl_message


def pyroute2_route(dst_len=0, table=254, kind=1, proto=225, attrs=(("RTA_GATEWAY", "10.0.0.1"),)) -> bytes:
    m = rtmsg()
    m["family"], m["dst_len"], m["table"], m["proto"], m["type"] = 2, dst_len, table, proto, kind
    m["attrs"] = list(attrs)
    return encoded(m)


@pytest.mark.parametrize(
    "data, expected",
    [
        (pyroute2_route(), route.RouteMsg("default", "10.0.0.1", 225)),
        (pyroute2_route(16, proto=4, attrs=(("RTA_DST", "10.9.0.0"), ("RTA_GATEWAY", "10.0.0.1"))), route.RouteMsg("10.9.0.0/16", "10.0.0.1", 4)),
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.0.0.0"),)), None),  # connected: no gateway
        (pyroute2_route(table=255), None),
        (pyroute2_route(kind=2), None),
    ],
    ids=["default", "static", "connected", "local-table", "not-unicast"],
)
def test_only_main_table_unicast_routes_with_a_gateway_are_read(data, expected):
    assert route.gateway_route(route.decode_route(data, HEADER, len(data))) == expected


@pytest.mark.parametrize(
    "data, expected",
    [
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7))), route.ConnectedMsg("10.1.0.0/24", 7)),
        (pyroute2_route(24, proto=4, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7))), None),  # `ip route add ... dev`: by hand
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"), ("RTA_OIF", 7), ("RTA_GATEWAY", "10.0.0.1"))), None),
        (pyroute2_route(24, proto=2, attrs=(("RTA_DST", "10.1.0.0"),)), None),  # no single device
        (pyroute2_route(32, proto=2, table=255, attrs=(("RTA_DST", "10.1.0.1"), ("RTA_OIF", 7))), None),  # the local table's
    ],
    ids=["connected", "static", "via", "no-device", "local-table"],
)
def test_a_connected_route_is_the_kernels_for_an_address_prefix(data, expected):
    assert route.connected_route(route.decode_route(data, HEADER, len(data))) == expected


def test_route_request_round_trips():
    body = route.route_body("10.9.0.0/16", "10.0.0.1", 225)
    data = nl_message(route.RTM_NEWROUTE, body)
    assert route.gateway_route(route.decode_route(data, HEADER, len(data))) == route.RouteMsg("10.9.0.0/16", "10.0.0.1", 225)


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
    ],
    ids=["connected", "blackhole", "table-attribute"],
)
def test_every_route_decodes_with_its_device_type_and_table_like_pyroute2_encodes_it(data, expected):
    """The one decoder serves pre-flight's host routes too, which keep every type and device."""
    assert route.decode_route(data, HEADER, len(data)) == expected
