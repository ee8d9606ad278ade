"""The nft rules and sysctls a topology's forwards and masquerade need, in both IP versions."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Interface, IPv6Address, IPv6Interface, IPv6Network

import pytest

from netplan_lite.model.loader import load_bytes
from netplan_lite.model.topology import PortForward, Topology
from netplan_lite.resources.nat import (
    HELD_SYSCTLS,
    IP_FORWARD,
    IPV6_FORWARD,
    claim_clashes,
    claims_clash,
    cross_bridge_routes,
    desired_claims,
    desired_nat,
    forward_claims,
    forward_families,
    forward_targets,
    host_forwarding,
    taken_claims,
)

BASE = """name: lab
bridges:
  br0: {subnet: 10.1.0.0/24%s}
namespaces:
  web: {interfaces: {eth0: {bridge: br0, address: 10.1.0.10}}}
  dns: {interfaces: {eth0: {bridge: br0, address: 10.1.0.11}}}
"""
ADDRESSES = {("web", "eth0"): IPv4Interface("10.1.0.10/24"), ("dns", "eth0"): IPv4Interface("10.1.0.11/24")}
ADDRESSES6 = {("web", "eth0"): IPv6Interface("fd00:10::10/64"), ("dns", "eth0"): IPv6Interface("fd00:10::11/64")}
SUBNET6, GATEWAY6 = IPv6Network("fd00:10::/64"), IPv6Address("fd00:10::1")


def nat(forwards: str = "", bridge_extra: str = ""):
    topology = load_bytes(((BASE % bridge_extra) + forwards).encode())
    return topology, *desired_nat(topology, ADDRESSES)


def dual_stack(topology: Topology, *forwards: PortForward) -> Topology:
    """br0 with an IPv6 subnet and gateway as well (the loader's dual-stack keys build the same model),
    plus forwards the loader cannot make yet (an IPv6 host_address)."""
    bridge = dataclasses.replace(topology.bridges[0], subnet6=SUBNET6, gateway6=GATEWAY6)
    return dataclasses.replace(topology, bridges=(bridge, *topology.bridges[1:]), port_forwards=topology.port_forwards + forwards)


def nat6(forwards: str = "", bridge_extra: str = "", extra: tuple[PortForward, ...] = ()):
    topology = dual_stack(load_bytes(((BASE % bridge_extra) + forwards).encode()), *extra)
    return topology, *desired_nat(topology, ADDRESSES, ADDRESSES6)


def rules(table) -> dict[tuple[str, str], list]:
    return {(r.chain, r.comment): json.loads(r.expr) for r in table.rules}


def keys(sysctls) -> dict[str, str]:
    return {s.key: s.value for s in sysctls}


WEB = "port_forwards: [{host_port: 8080, namespace: web, port: 80}]\n"


def test_no_forwards_and_no_masquerade_need_no_table():
    _, table, sysctls = nat()
    assert table is None and sysctls == []
    _, table, sysctls = nat6()
    assert table is None and sysctls == []


def test_forward_on_every_address_gets_prerouting_output_localhost_and_guard():
    _, table, sysctls = nat(WEB)
    found = rules(table)
    assert ("prerouting", "forward tcp *:8080 -> web:80") in found
    assert ("output", "forward tcp *:8080 -> web:80") in found
    assert ("postrouting", "localhost to br0: masquerade 127.0.0.0/8") in found
    assert ("postrouting", "hairpin on br0: masquerade 10.1.0.0/24") in found
    assert any(chain == "guard" for chain, _ in found)
    # the inet table sees both versions: the IPv4 rule says its own
    assert found[("output", "forward tcp *:8080 -> web:80")][1:] == [
        {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
        {"dnat": {"family": "ip", "addr": "10.1.0.10", "port": 80}},
    ]
    assert keys(sysctls) == {IP_FORWARD: "1", "net.ipv4.conf.br0.route_localnet": "1"}
    assert table.family == "inet"


def test_loopback_only_forward_has_no_prerouting_rule():
    forwards = "port_forwards: [{host_port: 5353, namespace: dns, port: 53, protocol: udp, host_address: 127.0.0.1}]\n"
    _, table, _ = nat(forwards)
    chains = {chain for chain, comment in rules(table) if comment.startswith("forward")}
    assert chains == {"output"}


def test_forward_on_a_specific_address_skips_localhost_masquerade():
    _, table, sysctls = nat("port_forwards: [{host_port: 8080, namespace: web, port: 80, host_address: 10.1.0.1}]\n")
    found = rules(table)
    assert {chain for chain, c in found if c.startswith("forward")} == {"prerouting", "output"}
    assert not any(chain == "guard" for chain, _ in found)
    assert [s.key for s in sysctls] == [IP_FORWARD]


def test_masquerade_alone_needs_forwarding_and_one_rule():
    _, table, sysctls = nat(bridge_extra=", masquerade: true")
    assert list(rules(table)) == [("postrouting", "masquerade 10.1.0.0/24 leaving br0")]
    assert [s.key for s in sysctls] == [IP_FORWARD]


def test_forward_targets_have_hairpin_ports_and_claims_are_read_back_from_comments():
    topology, table, _ = nat(WEB)
    assert forward_targets(topology) == {("web", "eth0")}
    assert set(forward_claims(table)) == set(desired_claims(topology)) == {("tcp", "*", 8080)}


def test_claims_clash_on_the_same_address_or_on_every_address():
    assert claims_clash(("tcp", "*", 80), ("tcp", "127.0.0.1", 80))
    assert claims_clash(("tcp", "10.0.0.1", 80), ("tcp", "10.0.0.1", 80))
    assert not claims_clash(("tcp", "10.0.0.1", 80), ("tcp", "10.0.0.2", 80))
    assert not claims_clash(("tcp", "*", 80), ("udp", "*", 80))


# IPv6


def test_a_dual_stack_forward_on_every_address_publishes_both_versions():
    topology, table, sysctls = nat6(WEB)
    found = rules(table)
    v6 = "forward tcp *:8080 -> web:80 (IPv6)"
    assert {chain for chain, comment in found if comment == v6} == {"prerouting", "output"}
    assert found[("output", v6)] == [
        {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
        # not [::1] (it cannot be DNATed into a namespace) nor a link-local address
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "fe80::", "len": 10}}}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
        {"dnat": {"family": "ip6", "addr": "fd00:10::10", "port": 80}},
    ]
    assert ("prerouting", "forward tcp *:8080 -> web:80") in found  # IPv4 as before
    assert ("postrouting", "hairpin on br0: masquerade fd00:10::/64") in found
    assert found[("postrouting", "hairpin on br0: masquerade fd00:10::/64")][2] == {
        "match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "fd00:10::", "len": 64}}}
    }
    # the localhost rules and the guard are IPv4's alone
    assert [c for _, c in found if "127.0.0.0/8" in c] == [
        "guard br0: no 127.0.0.0/8 from the bridge (CVE-2020-8558)",
        "localhost to br0: masquerade 127.0.0.0/8",
    ]
    assert keys(sysctls) == {IP_FORWARD: "1", IPV6_FORWARD: "1", "net.ipv4.conf.br0.route_localnet": "1"}
    assert set(forward_claims(table)) == {("tcp", "*", 8080)}
    assert forward_families(topology, topology.port_forwards[0]) == (4, 6)


def test_a_forward_on_an_ipv6_host_address_publishes_ipv6_only():
    forward = PortForward(8080, "web", 80, host_address=GATEWAY6)
    topology, table, sysctls = nat6(extra=(forward,))
    found = rules(table)
    comment = "forward tcp [fd00:10::1]:8080 -> web:80"
    assert sorted(found) == [
        ("output", comment),
        ("postrouting", "hairpin on br0: masquerade fd00:10::/64"),
        ("prerouting", comment),
    ]
    assert found[("prerouting", comment)][1] == {
        "match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "fd00:10::1"}
    }
    assert keys(sysctls) == {IPV6_FORWARD: "1"}  # no route_localnet, no ip_forward
    assert set(forward_claims(table)) == set(desired_claims(topology)) == {("tcp", "fd00:10::1", 8080)}


def test_an_ipv4_host_address_or_an_ipv4_only_target_publishes_ipv4_only():
    _, table, sysctls = nat6("port_forwards: [{host_port: 8080, namespace: web, port: 80, host_address: 10.1.0.1}]\n")
    assert not any("IPv6" in c or "fd00" in c for _, c in rules(table))
    assert keys(sysctls) == {IP_FORWARD: "1"}
    _, table, sysctls = nat(WEB)  # the bridge has no IPv6 subnet
    assert not any("IPv6" in c for _, c in rules(table))
    assert IPV6_FORWARD not in keys(sysctls)


def test_masquerade_of_a_dual_stack_bridge_masquerades_each_subnet():
    _, table, sysctls = nat6(bridge_extra=", masquerade: true")
    assert sorted(rules(table)) == [("postrouting", "masquerade 10.1.0.0/24 leaving br0"), ("postrouting", "masquerade fd00:10::/64 leaving br0")]
    assert rules(table)[("postrouting", "masquerade fd00:10::/64 leaving br0")] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "fd00:10::", "len": 64}}}},
        {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br0"}},
        {"masquerade": None},
    ]
    assert keys(sysctls) == {IP_FORWARD: "1", IPV6_FORWARD: "1"}


TWO_BRIDGES = """name: lab
bridges:
  br-a: {subnet: 10.1.0.0/24}
  br-b: {subnet: 10.2.0.0/24}
namespaces:
  a: {interfaces: {eth0: {bridge: br-a}}%s}
  b: {interfaces: {eth0: {bridge: br-b}}%s}
"""


def two_ipv6_bridges(routes: str = "") -> Topology:
    topology = load_bytes((TWO_BRIDGES % (routes, routes)).encode())
    a, b = topology.bridges
    six = (
        dataclasses.replace(a, subnet6=IPv6Network("fd00:a::/64"), gateway6=IPv6Address("fd00:a::1")),
        dataclasses.replace(b, subnet6=IPv6Network("fd00:b::/64"), gateway6=IPv6Address("fd00:b::1")),
    )
    return dataclasses.replace(topology, bridges=six)


def test_namespaces_routing_between_ipv6_bridges_through_the_host_hold_ipv6_forwarding_alone():
    topology = two_ipv6_bridges()
    assert cross_bridge_routes(topology, 6) == [("a", "br-a", "br-b"), ("b", "br-b", "br-a")]
    table, sysctls = desired_nat(topology, {}, {})
    assert table is None and keys(sysctls) == {IPV6_FORWARD: "1"}  # IPv4's crossing is left to the host (pre-flight warns)
    assert host_forwarding(topology) == (6,)


def test_isolated_ipv6_bridges_need_no_forwarding():
    topology = two_ipv6_bridges(", routes: []")
    assert cross_bridge_routes(topology, 6) == [] and host_forwarding(topology) == ()
    assert desired_nat(topology, {}, {}) == (None, [])


def test_the_shared_switches_are_held_and_per_link_keys_are_not():
    assert HELD_SYSCTLS == (IP_FORWARD, IPV6_FORWARD)
    _, _, sysctls = nat6(WEB)
    assert [s.key for s in sysctls if s.key not in HELD_SYSCTLS] == ["net.ipv4.conf.br0.route_localnet"]


def test_without_ipv6_addresses_no_ipv6_rule_is_made():
    topology = dual_stack(load_bytes((BASE % "" + WEB).encode()))
    table, _ = desired_nat(topology, ADDRESSES)
    assert not any("IPv6" in r.comment or "fd00" in r.comment for r in table.rules)


@pytest.mark.parametrize(
    ("wanted", "taken", "clash"),
    [
        (("tcp", "*", 80), ("tcp", "fd00::1", 80), True),  # every address: both versions
        (("tcp", "fd00::1", 80), ("tcp", "fd00::1", 80), True),
        (("tcp", "fd00::1", 80), ("tcp", "10.0.0.1", 80), False),
        (("tcp", "fd00::1", 80), ("tcp", "fd00::2", 80), False),
    ],
)
def test_claims_clash_across_versions(wanted, taken, clash):
    assert claims_clash(wanted, taken) is clash


def test_an_ipv6_claim_of_another_topology_is_read_from_either_family_and_named_in_brackets():
    _, theirs, _ = nat6(extra=(PortForward(8080, "web", 80, host_address=GATEWAY6),))
    old = dataclasses.replace(nat(WEB)[1], name="nsnet-old", family="ip")  # an nsnet before dual-stack's table
    taken = taken_claims({"nsnet-lab": theirs, "nsnet-old": old, "nsnet-me": old}, "nsnet-me")
    assert taken == {("tcp", "fd00:10::1", 8080): "lab", ("tcp", "*", 8080): "old"}
    assert claim_clashes([("tcp", "fd00:10::1", 8080)], {("tcp", "fd00:10::1", 8080): "lab"}) == [
        "tcp port [fd00:10::1]:8080 is already forwarded by topology 'lab'"
    ]
