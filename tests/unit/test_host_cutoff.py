"""What nsnet refuses because it would cut the host off or capture its own traffic (issue 12, item 4).

The same refusals, planned against host facts written in files: tests/unit/test_host_corpus.py."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network

import pytest
from builders import doc, topology

from netplan_lite.engine import reconcile
from netplan_lite.engine.observation import Observation
from netplan_lite.errors import TopologyError
from netplan_lite.model.loader import located
from builders import to_yaml

HOST = {IPv4Address("192.0.2.2"): "eth0"}
GATEWAYS = frozenset({IPv4Address("192.0.2.1")})
NETWORKS = ((IPv4Network("192.0.2.0/24"), "eth0"), (IPv4Network("172.17.0.0/16"), "docker0"))


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


# a bridge subnet overlapping a network the host reaches directly (item 4c)


def bridged(subnet: str, **bridge: object) -> dict:
    return doc({"br0": {"subnet": subnet, **bridge}}, {"web": {"interfaces": {"eth0": {"bridge": "br0"}}}})


def planned_on_the_lan(data: dict) -> reconcile.Planned:
    return reconcile.compute(topology(data), Observation({}, host_addresses=HOST, host_gateways=GATEWAYS, host_networks=NETWORKS))


@pytest.mark.parametrize(
    ("subnet", "start"),
    [
        ("172.17.0.0/16", "172.17.0.0/16 is already the host's network on docker0 (route 172.17.0.0/16 dev docker0 proto kernel): a second route"),
        (
            "172.17.5.0/24",
            "172.17.5.0/24 lies inside 172.17.0.0/16, the host's network on docker0 (route 172.17.0.0/16 dev docker0 proto kernel): "
            "the host would send its traffic for 172.17.5.0/24 to bridge br0",
        ),
        (
            "172.16.0.0/12",
            "172.16.0.0/12 contains 172.17.0.0/16, the host's network on docker0 (route 172.17.0.0/16 dev docker0 proto kernel): "
            "the host keeps 172.17.0.0/16 on docker0",
        ),
    ],
    ids=["equal", "inside", "containing"],
)
def test_a_subnet_overlapping_a_connected_route_of_a_foreign_link_is_refused_at_its_line(subnet: str, start: str):
    data = bridged(subnet)
    with pytest.raises(TopologyError) as caught:
        planned_on_the_lan(data)
    (problem,) = located(caught.value, to_yaml(data)).problems
    assert (problem.path, problem.line, problem.column) == ("bridges.br0.subnet", 4, 5)
    assert problem.message.startswith(start), problem.message
    assert problem.message.endswith(
        "; pick a subnet this host does not reach directly, or set `allow_overlap: true` on bridge br0 if the overlap is intended"
    )


def test_allow_overlap_says_the_overlap_is_intended():
    assert not planned_on_the_lan(bridged("172.17.5.0/24", allow_overlap=True)).plan.empty


def test_a_subnet_apart_from_the_hosts_networks_is_fine():
    assert not planned_on_the_lan(bridged("172.18.0.0/16")).plan.empty


def test_unread_networks_are_not_checked():
    assert not plan(bridged("172.17.5.0/24")).plan.empty  # host_networks None: not read, not "no overlap"


def test_every_host_problem_is_reported_at_once():
    data = doc({"br0": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.2"}}, {"web": {"interfaces": {"eth0": {"bridge": "br0"}}}})
    with pytest.raises(TopologyError) as caught:
        planned_on_the_lan(data)
    assert [p.path for p in caught.value.problems] == ["bridges.br0", "bridges.br0.subnet"]
    with pytest.raises(TopologyError) as caught:  # the overlap intended: the gateway is still the host's
        planned_on_the_lan({**data, "bridges": {"br0": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.2", "allow_overlap": True}}})
    assert [p.path for p in caught.value.problems] == ["bridges.br0"]
