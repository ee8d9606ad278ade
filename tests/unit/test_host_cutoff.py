"""What nsnet refuses because it would capture the host's own traffic (issue 12, item 4)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest
from builders import doc, topology

from netplan_lite.engine import reconcile
from netplan_lite.engine.observation import Observation
from netplan_lite.errors import TopologyError
from netplan_lite.model.loader import located
from builders import to_yaml

HOST = {IPv4Address("192.0.2.2"): "eth0"}
GATEWAYS = frozenset({IPv4Address("192.0.2.1")})


def lab(host_address: str) -> dict:
    forwards = [{"host_port": 8080, "namespace": "web", "port": 80, "host_address": host_address}]
    return doc({"br0": {"subnet": "172.30.0.0/24"}}, {"web": {"interfaces": {"eth0": {"bridge": "br0"}}}}, forwards)


def plan(data: dict) -> reconcile.Planned:
    return reconcile.compute(topology(data), Observation({}, host_addresses=HOST, host_gateways=GATEWAYS))


def test_a_host_address_of_another_machine_is_refused_with_its_key():
    with pytest.raises(TopologyError) as caught:
        plan(lab("8.8.8.8"))
    (problem,) = located(caught.value, to_yaml(lab("8.8.8.8"))).problems
    assert (problem.path, problem.line) == ("port_forwards.0.host_address", 14)
    assert problem.message.startswith("8.8.8.8 is not an address of this host: forwarding it would capture the host's own tcp")


@pytest.mark.parametrize("address", ["192.0.2.2", "172.30.0.1", "127.0.0.1"])
def test_the_hosts_own_addresses_its_bridge_gateways_and_loopback_are_accepted(address: str):
    assert not plan(lab(address)).plan.empty


def test_every_dnat_rule_matches_only_local_destinations():
    table = next(a.after for a in plan(lab("192.0.2.2")).plan.actions if a.id.kind.value == "nft_table")
    for rule in table.rules:
        if rule.comment.startswith("forward"):
            assert json.loads(rule.expr)[0] == {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, (
                rule
            )


@pytest.mark.parametrize(("gateway", "held"), [("192.0.2.2", "on eth0"), ("192.0.2.1", "the host's default gateway")])
def test_a_bridge_gateway_the_host_already_uses_is_refused(gateway: str, held: str):
    data = doc({"br0": {"subnet": "192.0.2.0/24", "gateway": gateway}}, {"web": {"interfaces": {"eth0": {"bridge": "br0"}}}})
    with pytest.raises(TopologyError) as caught:
        plan(data)
    (problem,) = located(caught.value, to_yaml(data)).problems
    assert (problem.path, problem.line) == ("bridges.br0", 3)
    assert problem.message.startswith(f"gateway {gateway} is already {held}: giving it to bridge br0 could cut the host off")


def test_the_default_gateway_is_no_local_address_for_a_forward():
    with pytest.raises(TopologyError, match="192.0.2.1 is not an address of this host"):
        plan(lab("192.0.2.1"))
