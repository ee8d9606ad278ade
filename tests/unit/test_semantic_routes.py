"""Semantic checks and building of routes (both families, types, ECMP, link-end gateways, devices,
metrics) and of the checks `nsnet test` runs.

Every error is asserted as the whole line a user sees: file:line:column: key: message.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from builders import problems, topology

from netplan_lite.model.topology import Check, Endpoint, Expect, Protocol, Route, RouteType

LAB = """\
name: lab
addressing:
  p2p: {ipv4: 10.1.0.0/16}
bridges:
  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"]}
namespaces:
  r1:
    interfaces: {eth0: {bridge: br0}}
    routes: []
  r2: {}
  r3: {}
links:
  - {endpoints: [r1:e12, r2:e21]}
  - {endpoints: [r2:e23, r3:e32], addresses: {r2:e23: "fd00:23::/127", r3:e32: "fd00:23::1/127"}}
"""


def routes(*items: str, namespace: str = "r1") -> str:
    """LAB with these routes (flow mappings) in r1, the first on line 10; or in r2 or r3, the first on line 11."""
    listed = "".join(f"      - {item}\n" for item in items)
    if namespace == "r1":
        return LAB.replace("    routes: []\n", "    routes:\n" + listed)
    return LAB.replace(f"  {namespace}: {{}}\n", f"  {namespace}:\n    routes:\n" + listed)


def routes_of(text: str, namespace: str = "r1") -> tuple[Route, ...]:
    found = topology(text).namespace(namespace)
    assert found is not None and found.routes is not None
    return found.routes


def route_problem(line: int, column: int, key: str, message: str, namespace: str = "r1") -> str:
    return f"t.yaml:{line}:{column}: namespaces.{namespace}.routes.0{key}: {message}"


# what is built


def test_routes_of_both_families_are_built():
    text = routes("{to: default, via: 172.30.0.1}", '{to: "::/0", via: "fd00:30::1"}', '{to: "fd00:99::5", via: "fd00:30::1"}')
    assert routes_of(text) == (
        Route(IPv4Network("0.0.0.0/0"), (IPv4Address("172.30.0.1"),)),
        Route(IPv6Network("::/0"), (IPv6Address("fd00:30::1"),)),
        Route(IPv6Network("fd00:99::5/128"), (IPv6Address("fd00:30::1"),)),
    )
    assert [r.destination for r in routes_of(text)] == ["default", "::/0", "fd00:99::5/128"]


def test_ecmp_types_devices_and_metrics_are_built():
    text = routes(
        "{to: 10.9.0.0/16, via: [172.30.0.1, 172.30.0.2], metric: 4294967295}",
        "{to: 10.66.0.0/16, type: blackhole}",
        '{to: "fd00:66::/48", type: prohibit}',
        "{to: 10.77.0.0/16, dev: eth0, metric: 0}",
        "{to: 10.78.0.0/16, dev: lo}",
        '{to: "fd00:79::/48", via: "fe80::1", dev: e12}',
    )
    assert routes_of(text) == (
        Route(IPv4Network("10.9.0.0/16"), (IPv4Address("172.30.0.1"), IPv4Address("172.30.0.2")), metric=4294967295),
        Route(IPv4Network("10.66.0.0/16"), type=RouteType.BLACKHOLE),
        Route(IPv6Network("fd00:66::/48"), type=RouteType.PROHIBIT),
        Route(IPv4Network("10.77.0.0/16"), dev="eth0", metric=0),
        Route(IPv4Network("10.78.0.0/16"), dev="lo"),
        Route(IPv6Network("fd00:79::/48"), (IPv6Address("fe80::1"),), dev="e12"),
    )


def test_a_link_end_as_gateway_is_built_as_an_endpoint():
    text = routes("{to: 10.0.0.3/32, via: r3:e32}", '{to: "fd00:3::/64", via: [r3:e32]}', namespace="r2")
    assert [r.via for r in routes_of(text, "r2")] == [(Endpoint("r3", "e32"),), (Endpoint("r3", "e32"),)]


def test_gateways_in_pool_and_pinned_link_networks_are_reachable():
    text = routes("{to: 10.0.0.0/8, via: 10.1.0.1}", '{to: "fd00:3::/64", via: "fd00:23::1"}', namespace="r2")
    assert len(routes_of(text, "r2")) == 2


def test_default_routes_of_both_families_do_not_clash():
    assert len(routes_of(routes("{to: default, via: 172.30.0.1}", '{to: "::/0", via: "fd00:30::1"}'))) == 2


# errors


def test_unicast_route_needs_a_gateway_or_a_device():
    assert problems(routes("{to: 10.9.0.0/16}")) == [
        route_problem(10, 9, "", "a route needs `via` (a gateway) or `dev` (a device route), or a `type` (blackhole, unreachable or prohibit)")
    ]


@pytest.mark.parametrize(
    "extra, column, key, message",
    [
        (", via: 172.30.0.1", 44, ".via", "a blackhole route has no gateway: drop `via` (or `type`)"),
        (", dev: eth0", 44, ".dev", "a blackhole route has no device: drop `dev` (or `type`)"),
    ],
)
def test_a_route_that_drops_has_no_gateway_or_device(extra, column, key, message):
    assert problems(routes(f"{{to: 10.9.0.0/16, type: blackhole{extra}}}")) == [route_problem(10, column, key, message)]


def test_unknown_route_type():
    assert problems(routes("{to: 10.9.0.0/16, type: drop}")) == [
        route_problem(10, 27, ".type", "'drop' is not one of ['blackhole', 'unreachable', 'prohibit']")
    ]


def test_device_of_another_namespace():
    assert problems(routes("{to: 10.9.0.0/16, dev: e21}")) == [
        route_problem(10, 27, ".dev", "namespace r1 has no interface 'e21' (its interfaces, link ends and lo)")
    ]


def test_metric_out_of_range():
    assert problems(routes("{to: 10.9.0.0/16, dev: eth0, metric: 4294967296}")) == [
        route_problem(10, 38, ".metric", "4294967296 is greater than the maximum of 4294967295")
    ]


def test_ipv6_gateway_for_an_ipv4_destination():
    assert problems(routes('{to: default, via: "fd00:30::1"}')) == [
        route_problem(10, 23, ".via", "gateway fd00:30::1 is IPv6, but the route to default is IPv4")
    ]


def test_gateway_listed_twice():
    assert problems(routes("{to: 10.9.0.0/16, via: [172.30.0.1, 172.30.0.1]}")) == [
        route_problem(10, 45, ".via.1", "gateway 172.30.0.1 is listed twice")
    ]


def test_unreachable_ipv6_gateway():
    assert problems(routes('{to: "fd00:9::/64", via: "fd00:9::1"}')) == [
        route_problem(10, 29, ".via", "gateway fd00:9::1 is not reachable: no interface of r1 is in a network containing it")
    ]


def test_link_local_gateway_needs_a_device():
    assert problems(routes('{to: "fd00:9::/64", via: "fe80::1"}')) == [
        route_problem(10, 29, ".via", "gateway fe80::1 is link-local: give `dev:` to say on which link")
    ]


def test_gateway_that_is_no_link_end():
    assert problems(routes("{to: 10.9.0.0/16, via: r3:e9}")) == [
        route_problem(10, 27, ".via", "r3:e9 is not a link end (no link under links: has it)")
    ]


def test_link_end_gateway_that_is_no_neighbour():
    assert problems(routes("{to: 10.9.0.0/16, via: r3:e32}")) == [
        route_problem(10, 27, ".via", "r3:e32 is no neighbour of r1: the other end of its link (links item 1) is r2:e23")
    ]


def test_link_end_gateway_without_an_address_of_the_family():
    assert problems(routes('{to: "fd00:9::/64", via: r2:e21}')) == [
        route_problem(
            10,
            29,
            ".via",
            "r2:e21 has no IPv6 address: pin one in links item 0's addresses, or give the p2p pool an ipv6 network (addressing.p2p.ipv6)",
        )
    ]


def test_duplicate_ipv6_destination():
    assert problems(routes('{to: "fd00:9::/64", dev: eth0}', '{to: "fd00:9::0/64", dev: eth0}')) == [
        "t.yaml:11:10: namespaces.r1.routes.1.to: route to fd00:9::0/64 is already defined (routes item 0)"
    ]


def test_bad_ipv6_destination():
    assert problems(routes('{to: "fd00:9::5/64", dev: eth0}')) == [
        route_problem(10, 10, ".to", "'fd00:9::5/64' has host bits set; did you mean fd00:9::/64?")
    ]


# checks of `nsnet test`


def checks(*items: str) -> str:
    return LAB + "checks:\n" + "".join(f"  - {item}\n" for item in items)


def test_checks_are_built_with_their_lines_and_defaults():
    text = checks(
        "{from: r1, to: r3, ping: true}",
        "{from: r1, to: 10.66.0.5, port: 53, protocol: udp, expect: unreachable, family: 4}",
        '{from: r1, to: "fd00:0::5", ping: true}',
    )
    assert topology(text).checks == (
        Check("r1", "r3", ping=True, line=16),
        Check("r1", "10.66.0.5", port=53, protocol=Protocol.UDP, expect=Expect.UNREACHABLE, family=4, line=17),
        Check("r1", "fd00::5", ping=True, line=18),
    )
    assert [c.line for c in topology(text).checks] == [16, 17, 18]


def test_a_namespace_named_like_an_address_is_the_namespace():
    text = LAB.replace("  r3: {}\n", "  r3: {}\n  10.0.0.9: {}\n") + "checks:\n  - {from: r1, to: 10.0.0.9, ping: true}\n"
    assert topology(text).checks[0].to == "10.0.0.9"


def check_problem(column: int, key: str, message: str) -> str:
    return f"t.yaml:16:{column}: checks.0{key}: {message}"


@pytest.mark.parametrize(
    "check, column, key, message",
    [
        ("{from: r9, to: r3, ping: true}", 6, ".from", "unknown namespace 'r9' (not under namespaces:)"),
        ("{from: r1, to: nowhere, ping: true}", 16, ".to", "'nowhere' is neither a namespace of this file nor an IPv4 or IPv6 address"),
        ("{from: r1, to: r3, ping: true, port: 80}", 5, "", "a check pings (`ping: true`) or connects to a `port`, not both"),
        ("{from: r1, to: r3}", 5, "", "a check needs `ping: true` or a `port` to connect to"),
        ("{from: r1, to: r3, ping: false}", 5, "", "a check needs `ping: true` or a `port` to connect to"),
        ("{from: r1, to: r3, ping: true, protocol: udp}", 36, ".protocol", "protocol is for a check with a `port`; a ping has none"),
        ("{from: r1, to: 10.66.0.5, ping: true, family: 6}", 43, ".family", "family 6, but 10.66.0.5 is IPv4"),
        ("{from: r1, to: r3, ping: true, family: 5}", 36, ".family", "5 is not one of [4, 6]"),
        ("{from: r1, to: r3, ping: true, expect: maybe}", 36, ".expect", "'maybe' is not one of ['reachable', 'unreachable']"),
    ],
)
def test_bad_check(check, column, key, message):
    assert problems(checks(check)) == [check_problem(column, key, message)]
