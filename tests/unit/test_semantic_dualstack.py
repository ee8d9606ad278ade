"""Semantic checks and building of dual-stack bridges, interfaces and port forwards.

Every error is asserted as the whole line a user sees: file:line:column: key: message.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

import pytest
from builders import problems, topology

LAB = """\
name: lab
bridges:
  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"]}
namespaces:
  a:
    interfaces:
      eth0: {bridge: br0}
"""


def lab(*changes: tuple[str, str], add: str = "") -> str:
    text = LAB
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text + add


def bridge(spec: str) -> str:
    return lab(('  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"]}', f"  br0: {spec}"))


def eth0(spec: str) -> str:
    return lab(("      eth0: {bridge: br0}", f"      eth0: {spec}"))


# bridges


def test_dual_stack_bridge_gets_a_gateway_in_each_family():
    (br0,) = topology(LAB).bridges
    assert (br0.subnet, br0.gateway) == (IPv4Network("172.30.0.0/24"), IPv4Address("172.30.0.1"))
    assert (br0.subnet6, br0.gateway6) == (IPv6Network("fd00:30::/64"), IPv6Address("fd00:30::1"))
    assert br0.gateway6_interface == IPv6Interface("fd00:30::1/64")
    assert br0.subnets == (IPv4Network("172.30.0.0/24"), IPv6Network("fd00:30::/64"))


def test_ipv6_only_bridge():
    (br0,) = topology(bridge('{subnet: "fd00:30::/64"}')).bridges
    assert (br0.subnet, br0.gateway, br0.subnet6, br0.gateway6) == (None, None, IPv6Network("fd00:30::/64"), IPv6Address("fd00:30::1"))


def test_gateways_given_per_family_and_defaulted_per_family():
    (br0,) = topology(bridge('{subnet: [172.30.0.0/24, "fd00:30::/64"], gateway: ["fd00:30::fe"]}')).bridges
    assert (br0.gateway, br0.gateway6) == (IPv4Address("172.30.0.1"), IPv6Address("fd00:30::fe"))
    (br0,) = topology(bridge('{subnet: [172.30.0.0/24, "fd00:30::/64"], gateway: [172.30.0.254, "fd00:30::fe"]}')).bridges
    assert (br0.gateway, br0.gateway6) == (IPv4Address("172.30.0.254"), IPv6Address("fd00:30::fe"))


def test_gateway_none_leaves_the_bridge_without_an_address():
    (br0,) = topology(bridge('{subnet: [172.30.0.0/24, "fd00:30::/64"], gateway: none}')).bridges
    assert (br0.gateway, br0.gateway6, br0.gateway_interface, br0.gateway6_interface) == (None, None, None, None)
    assert br0.subnets == (IPv4Network("172.30.0.0/24"), IPv6Network("fd00:30::/64"))


def test_gateway_none_frees_the_first_host_for_a_router():
    text = lab(('"fd00:30::/64"]}', '"fd00:30::/64"], gateway: none}'), ("{bridge: br0}", '{bridge: br0, address: [172.30.0.1, "fd00:30::1"]}'))
    (eth0,) = topology(text).namespaces[0].interfaces
    assert (eth0.address, eth0.address6) == (IPv4Interface("172.30.0.1/24"), IPv6Interface("fd00:30::1/64"))


def test_two_subnets_of_one_family():
    assert problems(bridge("{subnet: [10.0.0.0/24, 10.1.0.0/24]}")) == [
        "t.yaml:3:31: bridges.br0.subnet.1: a second IPv4 network: give at most one per family"
    ]


@pytest.mark.parametrize(
    "subnet, message",
    [
        ("ff00::/64", "ff00::/64 is a multicast, link-local or ::/8 range; a bridge needs unicast addresses"),
        ("fe80::/64", "fe80::/64 is a multicast, link-local or ::/8 range; a bridge needs unicast addresses"),
        ("::/64", "::/64 is a multicast, link-local or ::/8 range; a bridge needs unicast addresses"),
        ("fd00::5/64", "'fd00::5/64' has host bits set; did you mean fd00::/64?"),
        ("fd00::", "'fd00::' needs a prefix length, e.g. fd00::/64"),
        ("fc00::/7", "prefix /7 is outside /8../126: no room for a gateway and hosts"),
        ("fd00::zz/64", "'fd00::zz/64' is not an IPv6 address"),
        ("fe80::/64%eth0", "'fe80::/64%eth0' is not an IPv6 address"),
    ],
)
def test_bad_ipv6_subnet(subnet, message):
    assert problems(bridge(f'{{subnet: "{subnet}"}}')) == [f"t.yaml:3:9: bridges.br0.subnet: {message}"]


def test_overlapping_ipv6_subnets():
    text = LAB.replace(
        '  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"]}', '  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"]}\n  br1: {subnet: "fd00::/16"}'
    )
    assert problems(text) == ["t.yaml:4:9: bridges.br1.subnet: fd00::/16 overlaps fd00:30::/64 of bridge br0"]


def test_two_gateways_of_one_family():
    assert problems(bridge("{subnet: 172.30.0.0/24, gateway: [172.30.0.2, 172.30.0.3]}")) == [
        "t.yaml:3:54: bridges.br0.gateway.1: a second IPv4 gateway: give at most one per family"
    ]


@pytest.mark.parametrize(
    "gateway, message",
    [
        ("fd01::1", "fd01::1 is outside subnet fd00:30::/64"),
        ("fd00:30::", "fd00:30:: is the subnet-router anycast address of fd00:30::/64"),
    ],
)
def test_bad_ipv6_gateway(gateway, message):
    assert problems(bridge(f'{{subnet: [172.30.0.0/24, "fd00:30::/64"], gateway: "{gateway}"}}')) == [f"t.yaml:3:50: bridges.br0.gateway: {message}"]


def test_ipv4_gateway_on_an_ipv6_only_bridge():
    assert problems(bridge('{subnet: "fd00:30::/64", gateway: 10.0.0.1}')) == [
        "t.yaml:3:33: bridges.br0.gateway: 10.0.0.1 is IPv4, but the bridge has no IPv4 subnet"
    ]


def test_none_is_not_a_gateway_in_a_list():
    assert problems(bridge("{subnet: 172.30.0.0/24, gateway: [none]}")) == [
        "t.yaml:3:42: bridges.br0.gateway.0: `none` stands alone: `gateway: none`"
    ]


def test_ipv6_subnet_without_room_for_its_interfaces():
    text = lab(('"fd00:30::/64"', '"fd00:30::/126"'), add="  b: {interfaces: {eth0: {bridge: br0}}}\n  c: {interfaces: {eth0: {bridge: br0}}}\n")
    assert problems(text) == [
        "t.yaml:3:9: bridges.br0.subnet: fd00:30::/126 has room for 2 interface addresses besides the gateway, but 3 interfaces use bridge br0"
    ]


def test_a_bridge_without_gateway_has_room_for_one_more_interface():
    switch = ('[172.30.0.0/24, "fd00:30::/64"]}', "172.30.0.0/30, gateway: none}")
    assert topology(lab(switch, add="  b: {interfaces: {eth0: {bridge: br0}}}\n"))
    text = lab(switch, add="  b: {interfaces: {eth0: {bridge: br0}}}\n  c: {interfaces: {eth0: {bridge: br0}}}\n")
    assert problems(text) == ["t.yaml:3:9: bridges.br0.subnet: 172.30.0.0/30 has room for 2 interface addresses, but 3 interfaces use bridge br0"]


# interfaces


def test_an_interface_takes_an_automatic_address_in_each_family_unless_pinned():
    (eth0,) = topology(LAB).namespaces[0].interfaces
    assert (eth0.address, eth0.address6) == (None, None)
    (eth0,) = topology(eth0_spec := eth0_text('"fd00:30::5"')).namespaces[0].interfaces
    assert (eth0.address, eth0.address6) == (None, IPv6Interface("fd00:30::5/64")), eth0_spec
    (eth0,) = topology(eth0_text('[172.30.0.5/24, "fd00:30::5"]')).namespaces[0].interfaces
    assert (eth0.address, eth0.address6) == (IPv4Interface("172.30.0.5/24"), IPv6Interface("fd00:30::5/64"))


def eth0_text(address: str) -> str:
    return eth0(f"{{bridge: br0, address: {address}}}")


def test_ipv6_address_with_its_own_network_on_a_bridge_without_subnet():
    text = lab(('{subnet: [172.30.0.0/24, "fd00:30::/64"]}', "{}"), ("{bridge: br0}", '{bridge: br0, address: "fd00:9::5/64"}'))
    assert topology(text).namespaces[0].interfaces[0].address6 == IPv6Interface("fd00:9::5/64")


@pytest.mark.parametrize(
    "address, column, key, message",
    [
        ("[172.30.0.5, 172.30.0.6]", 49, ".1", "a second IPv4 address: give at most one per family"),
        ('"fd01::5"', 27, "", "fd01::5 is outside subnet fd00:30::/64 of bridge br0"),
        ('"fd00:30::5/48"', 27, "", "prefix /48 differs from subnet fd00:30::/64 of bridge br0"),
        ('"fd00:30::"', 27, "", "fd00:30:: is the subnet-router anycast address of fd00:30::/64 of bridge br0"),
    ],
)
def test_bad_ipv6_interface_address(address, column, key, message):
    assert problems(eth0_text(address)) == [f"t.yaml:7:{column}: namespaces.a.interfaces.eth0.address{key}: {message}"]


def test_ipv6_address_that_is_the_default_gateway_suggests_gateway_none():
    assert problems(eth0_text('"fd00:30::1"')) == [
        "t.yaml:7:27: namespaces.a.interfaces.eth0.address: fd00:30::1 is the gateway of bridge br0 (by default, its subnet's first host): "
        "give the bridge `gateway: none` (a plain switch, when a namespace on it routes) or another `gateway:`, or pin another address here"
    ]


def test_the_default_gateway_of_the_family_not_given_has_the_hint():
    text = lab(('"fd00:30::/64"]}', '"fd00:30::/64"], gateway: "fd00:30::fe"}'), ("{bridge: br0}", "{bridge: br0, address: 172.30.0.1}"))
    assert problems(text) == [
        "t.yaml:7:27: namespaces.a.interfaces.eth0.address: 172.30.0.1 is the gateway of bridge br0 (by default, its subnet's first host): "
        "give the bridge `gateway: none` (a plain switch, when a namespace on it routes) or another `gateway:`, or pin another address here"
    ]


def test_address_that_is_a_given_gateway_has_no_hint():
    text = lab(('"fd00:30::/64"]}', '"fd00:30::/64"], gateway: "fd00:30::fe"}'), ("{bridge: br0}", '{bridge: br0, address: "fd00:30::fe"}'))
    assert problems(text) == ["t.yaml:7:27: namespaces.a.interfaces.eth0.address: fd00:30::fe is the gateway of bridge br0"]


def test_ipv4_address_on_an_ipv6_only_bridge():
    text = lab(('[172.30.0.0/24, "fd00:30::/64"]', '"fd00:30::/64"'), ("{bridge: br0}", "{bridge: br0, address: 172.30.0.5}"))
    assert problems(text) == ["t.yaml:7:27: namespaces.a.interfaces.eth0.address: 172.30.0.5 is IPv4, but bridge br0 has no IPv4 subnet"]


def test_ipv6_address_used_twice():
    text = eth0_text('"fd00:30::5"') + '  b: {interfaces: {eth0: {bridge: br0, address: "fd00:30::5/64"}}}\n'
    assert problems(text) == ["t.yaml:8:40: namespaces.b.interfaces.eth0.address: fd00:30::5 is already used by a.eth0"]


def test_address_with_its_own_network_inside_a_pool():
    text = lab(
        ('{subnet: [172.30.0.0/24, "fd00:30::/64"]}', "{}"),
        ("{bridge: br0}", "{bridge: br0, address: 10.1.2.3/24}"),
        ("bridges:", "addressing:\n  p2p: {ipv4: 10.1.0.0/16}\nbridges:"),
    )
    assert problems(text) == [
        "t.yaml:9:27: namespaces.a.interfaces.eth0.address: 10.1.2.0/24 overlaps 10.1.0.0/16 of the p2p pool (addressing.p2p): "
        "pin an address outside the pools"
    ]


# port forwards


def forward(spec: str, changes: tuple[tuple[str, str], ...] = ()) -> str:
    return lab(*changes, add=f"port_forwards:\n  - {{host_port: 8080, namespace: a, port: 80{spec}}}\n")


def test_ipv6_port_forward_is_built():
    (only,) = topology(forward(', host_address: "fd00::5"')).port_forwards
    assert only.host_address == IPv6Address("fd00::5")


def test_ipv6_loopback_cannot_be_forwarded():
    assert problems(forward(', host_address: "::1"')) == [
        "t.yaml:9:47: port_forwards.0.host_address: ::1 cannot be forwarded into a namespace: the kernel never routes ::1 off the host, "
        "and IPv6 has no route_localnet to allow it as IPv4 does for 127.0.0.1; publish on 127.0.0.1 or on an address of the host"
    ]


def test_ipv6_unspecified_address_matches_no_packet():
    assert problems(forward(', host_address: "::"')) == [
        "t.yaml:9:47: port_forwards.0.host_address: :: matches no packet; omit host_address to publish on every address"
    ]


def test_ipv6_forward_to_an_interface_without_ipv6():
    text = forward(', host_address: "fd00::5"', (('[172.30.0.0/24, "fd00:30::/64"]', "172.30.0.0/24"),))
    assert problems(text) == [
        "t.yaml:9:47: port_forwards.0.host_address: an IPv6 forward needs an IPv6 address on a.eth0: bridge br0 has no IPv6 subnet"
    ]


def test_ipv4_forward_to_an_interface_without_ipv4():
    text = forward(", host_address: 127.0.0.1", (('[172.30.0.0/24, "fd00:30::/64"]', '"fd00:30::/64"'),))
    assert problems(text) == [
        "t.yaml:9:47: port_forwards.0.host_address: an IPv4 forward needs an IPv4 address on a.eth0: bridge br0 has no IPv4 subnet"
    ]


def test_ipv6_forward_to_a_pinned_ipv6_address_on_a_bridge_without_subnet():
    changes = (('{subnet: [172.30.0.0/24, "fd00:30::/64"]}', "{}"), ("{bridge: br0}", '{bridge: br0, address: "fd00:9::5/64"}'))
    assert topology(forward(', host_address: "fd00::5"', changes)).port_forwards


def test_the_same_ipv6_host_address_written_two_ways_clashes():
    text = forward(', host_address: "fd00::5"') + '  - {host_port: 8080, namespace: a, port: 81, host_address: "fd00:0:0::5"}\n'
    assert problems(text) == ["t.yaml:10:6: port_forwards.1.host_port: tcp port 8080 is already forwarded by port_forwards item 0"]
