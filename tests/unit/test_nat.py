"""The nft rules and sysctls a topology's forwards and masquerade need."""

from __future__ import annotations

import json
from ipaddress import IPv4Interface

from netplan_lite.model.loader import load_bytes
from netplan_lite.resources.nat import claims_clash, desired_claims, desired_nat, forward_claims, forward_targets

BASE = """name: lab
bridges:
  br0: {subnet: 10.1.0.0/24%s}
namespaces:
  web: {interfaces: {eth0: {bridge: br0, address: 10.1.0.10}}}
  dns: {interfaces: {eth0: {bridge: br0, address: 10.1.0.11}}}
"""
ADDRESSES = {("web", "eth0"): IPv4Interface("10.1.0.10/24"), ("dns", "eth0"): IPv4Interface("10.1.0.11/24")}


def nat(forwards: str = "", bridge_extra: str = ""):
    topology = load_bytes(((BASE % bridge_extra) + forwards).encode())
    return topology, *desired_nat(topology, ADDRESSES)


def rules(table) -> dict[tuple[str, str], list]:
    return {(r.chain, r.comment): json.loads(r.expr) for r in table.rules}


def test_no_forwards_and_no_masquerade_need_no_table():
    _, table, sysctls = nat()
    assert table is None and sysctls == []


def test_forward_on_every_address_gets_prerouting_output_localhost_and_guard():
    _, table, sysctls = nat("port_forwards: [{host_port: 8080, namespace: web, port: 80}]\n")
    found = rules(table)
    assert ("prerouting", "forward tcp *:8080 -> web:80") in found
    assert ("output", "forward tcp *:8080 -> web:80") in found
    assert ("postrouting", "localhost to br0: masquerade 127.0.0.0/8") in found
    assert ("postrouting", "hairpin on br0: masquerade 10.1.0.0/24") in found
    assert any(chain == "guard" for chain, _ in found)
    assert found[("output", "forward tcp *:8080 -> web:80")][-1] == {"dnat": {"addr": "10.1.0.10", "port": 80}}
    assert {s.key: s.value for s in sysctls} == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.br0.route_localnet": "1"}


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
    assert [s.key for s in sysctls] == ["net.ipv4.ip_forward"]


def test_masquerade_alone_needs_forwarding_and_one_rule():
    _, table, sysctls = nat(bridge_extra=", masquerade: true")
    assert list(rules(table)) == [("postrouting", "masquerade 10.1.0.0/24 leaving br0")]
    assert [s.key for s in sysctls] == ["net.ipv4.ip_forward"]


def test_forward_targets_have_hairpin_ports_and_claims_are_read_back_from_comments():
    topology, table, _ = nat("port_forwards: [{host_port: 8080, namespace: web, port: 80}]\n")
    assert forward_targets(topology) == {("web", "eth0")}
    assert set(forward_claims(table)) == set(desired_claims(topology)) == {("tcp", "*", 8080)}


def test_claims_clash_on_the_same_address_or_on_every_address():
    assert claims_clash(("tcp", "*", 80), ("tcp", "127.0.0.1", 80))
    assert claims_clash(("tcp", "10.0.0.1", 80), ("tcp", "10.0.0.1", 80))
    assert not claims_clash(("tcp", "10.0.0.1", 80), ("tcp", "10.0.0.2", 80))
    assert not claims_clash(("tcp", "*", 80), ("udp", "*", 80))
