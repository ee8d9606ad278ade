"""desired: address allocation (sticky) and the desired State of a topology."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from builders import bridge, doc, host_name, iface, namespace, one_bridge, route, state, topology
from hypothesis import given, settings
from hypothesis import strategies as st

from netplan_lite.engine import reconcile
from netplan_lite.engine.desired import allocate, desired_state
from netplan_lite.errors import TopologyError
from netplan_lite.model.topology import Bridge, Interface, Namespace, Topology
from netplan_lite.engine.observation import Observation
from netplan_lite.resources.ids import Kind
from netplan_lite.resources.interface import InterfaceState


def addr(text: str) -> IPv4Interface:
    return IPv4Interface(text)


def allocated(data: dict, kept: dict | None = None) -> dict[str, str]:
    """{"ns/if": "a.b.c.d/p"} for a topology document."""
    return {f"{ns}/{i}": str(a) for (ns, i), a in allocate(topology(data), kept or {}).items()}


def kept_of(result: dict[str, str]) -> dict:
    return {tuple(key.split("/")): addr(value) for key, value in result.items()}


# allocation


def test_pinned_addresses_are_kept():
    assert allocated(one_bridge("a", address="172.30.0.77")) == {"a/eth0": "172.30.0.77/24"}


def test_auto_addresses_are_lowest_free_in_name_order():
    assert allocated(one_bridge("c", "a", "b")) == {"a/eth0": "172.30.0.2/24", "b/eth0": "172.30.0.3/24", "c/eth0": "172.30.0.4/24"}


def test_auto_addresses_skip_pinned_ones():
    data = one_bridge("a", "b", "c")
    data["namespaces"]["a"]["interfaces"]["eth0"]["address"] = "172.30.0.3"
    assert allocated(data) == {"a/eth0": "172.30.0.3/24", "b/eth0": "172.30.0.2/24", "c/eth0": "172.30.0.4/24"}


def test_auto_addresses_skip_the_default_gateway():
    assert allocated(one_bridge("a"))["a/eth0"] == "172.30.0.2/24"


def test_auto_addresses_skip_an_explicit_gateway():
    data = one_bridge("a", "b")
    data["bridges"]["br0"]["gateway"] = "172.30.0.2"
    assert allocated(data) == {"a/eth0": "172.30.0.1/24", "b/eth0": "172.30.0.3/24"}


def test_auto_addresses_take_the_subnet_prefix():
    assert allocated(one_bridge("a", subnet="10.8.0.0/13"))["a/eth0"] == "10.8.0.2/13"


def test_each_bridge_allocates_from_its_own_subnet():
    data = doc(
        bridges={"br0": {"subnet": "10.0.0.0/24"}, "br1": {"subnet": "10.1.0.0/24"}},
        namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0"}, "eth1": {"bridge": "br1"}}}},
    )
    assert allocated(data) == {"a/eth0": "10.0.0.2/24", "a/eth1": "10.1.0.2/24"}


def test_interface_on_a_bridge_without_subnet_gets_no_address():
    data = doc(bridges={"br0": {}}, namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0"}}}})
    assert allocated(data) == {}


def test_interfaces_of_one_namespace_are_allocated_in_name_order():
    data = doc(bridges={"br0": {"subnet": "10.0.0.0/24"}}, namespaces={"a": {"interfaces": {"eth1": {"bridge": "br0"}, "eth0": {"bridge": "br0"}}}})
    assert allocated(data) == {"a/eth0": "10.0.0.2/24", "a/eth1": "10.0.0.3/24"}


def crowded() -> Topology:
    """Two auto interfaces on a /30 (one free host): the loader refuses this, so it is built directly."""
    ports = tuple(Namespace(n, (Interface("eth0", "br0", host_name(n, "eth0")),)) for n in ("a", "b"))
    return Topology("demo", (Bridge("br0", IPv4Network("10.0.0.0/30"), IPv4Address("10.0.0.1")),), ports, source="t.yaml")


def test_exhausted_subnet_raises_value_error():
    with pytest.raises(ValueError, match=r"^bridge br0: subnet 10.0.0.0/30 has no free address left for b/eth0$"):
        allocate(crowded(), {})


def test_exhausted_subnet_is_a_topology_error_when_planning():
    with pytest.raises(TopologyError) as info:
        reconcile.compute(crowded(), Observation({}))
    assert info.value.lines() == ["t.yaml: bridges: bridge br0: subnet 10.0.0.0/30 has no free address left for b/eth0"]


def test_smallest_subnet_fits_one_auto_address():
    assert allocated(one_bridge("a", subnet="10.0.0.0/30")) == {"a/eth0": "10.0.0.2/30"}


# sticky allocation


def test_kept_address_is_reused():
    assert allocated(one_bridge("a"), kept_of({"a/eth0": "172.30.0.9/24"})) == {"a/eth0": "172.30.0.9/24"}


def test_adding_a_namespace_never_moves_an_existing_address():
    before = allocated(one_bridge("b", "d"))
    after = allocated(one_bridge("a", "b", "c", "d", "e"), kept_of(before))
    assert {k: after[k] for k in before} == before
    assert after["a/eth0"] == "172.30.0.4/24"  # lowest free after b (.2) and d (.3)


def test_removing_a_namespace_never_moves_an_existing_address():
    before = allocated(one_bridge("a", "b", "c"))
    after = allocated(one_bridge("c"), kept_of(before))
    assert after == {"c/eth0": before["c/eth0"]} == {"c/eth0": "172.30.0.4/24"}


def test_freed_address_is_reused_by_a_new_namespace():
    before = allocated(one_bridge("a", "b", "c"))
    kept = kept_of({k: v for k, v in before.items() if k != "b/eth0"})
    assert allocated(one_bridge("a", "c", "z"), kept)["z/eth0"] == before["b/eth0"]


NAMES = st.sets(st.sampled_from([f"ns{i}" for i in range(12)]), max_size=12)


@settings(max_examples=60, deadline=None)
@given(first=NAMES, second=NAMES)
def test_surviving_namespaces_keep_their_addresses(first, second):
    before = allocated(one_bridge(*sorted(first)))
    after = allocated(one_bridge(*sorted(second)), kept_of(before))
    assert all(after[k] == before[k] for k in before.keys() & after.keys())
    assert len(set(after.values())) == len(after)


@pytest.mark.parametrize(
    "kept, why",
    [
        ("10.9.0.5/24", "outside the subnet"),
        ("172.30.0.9/16", "another prefix"),
        ("172.30.0.1/24", "the gateway"),
        ("172.30.0.0/24", "the network address"),
        ("172.30.0.255/24", "the broadcast address"),
        ("172.30.0.7/24", "now pinned by another namespace"),
    ],
)
def test_kept_address_that_became_invalid_is_reallocated(kept, why):
    data = one_bridge("a", "b")
    data["namespaces"]["b"]["interfaces"]["eth0"]["address"] = "172.30.0.7"
    assert allocated(data, {("a", "eth0"): addr(kept)})["a/eth0"] == "172.30.0.2/24", why


def test_two_interfaces_kept_on_the_same_address_keep_it_once():
    kept = {("a", "eth0"): addr("172.30.0.9/24"), ("b", "eth0"): addr("172.30.0.9/24")}
    assert allocated(one_bridge("a", "b"), kept) == {"a/eth0": "172.30.0.9/24", "b/eth0": "172.30.0.2/24"}


def test_kept_address_of_a_pinned_interface_is_ignored():
    result = allocated(one_bridge("a", address="172.30.0.50"), {("a", "eth0"): addr("172.30.0.9/24")})
    assert result == {"a/eth0": "172.30.0.50/24"}


def test_kept_address_moves_with_the_bridge_subnet():
    before = allocated(one_bridge("a", "b"))
    after = allocated(one_bridge("a", "b", subnet="10.5.0.0/24"), kept_of(before))
    assert after == {"a/eth0": "10.5.0.2/24", "b/eth0": "10.5.0.3/24"}


# desired state


def desired(data: dict, kept: dict | None = None) -> dict:
    topo = topology(data)
    return desired_state(topo, allocate(topo, kept or {}))


def test_desired_state_of_one_namespace():
    assert desired(one_bridge("a")) == state(
        bridge("br0", "172.30.0.1/24"),
        namespace("a"),
        iface("a", "eth0", "br0", "172.30.0.2/24"),
        route("a", "default", "172.30.0.1"),
    )


def test_bridge_without_subnet_has_no_address():
    assert list(desired(doc(bridges={"br0": {"mtu": 9000}})).values()) == [bridge("br0", mtu=9000)]


def test_unmanaged_interface_fields_are_none():
    (eth0,) = [r for r in desired(one_bridge("a")).values() if isinstance(r, InterfaceState)]
    assert (eth0.mtu, eth0.mac, eth0.host_name) == (None, None, host_name("a", "eth0"))


def test_pinned_mtu_and_mac_are_desired():
    (eth0,) = [r for r in desired(one_bridge("a", mtu=1400, mac="02:00:00:00:00:01")).values() if isinstance(r, InterfaceState)]
    assert (eth0.mtu, eth0.mac) == (1400, "02:00:00:00:00:01")


def test_default_route_goes_via_the_first_interfaces_gateway():
    data = doc(
        bridges={"br0": {"subnet": "10.0.0.0/24"}, "br1": {"subnet": "10.1.0.0/24", "gateway": "10.1.0.254"}},
        namespaces={"a": {"interfaces": {"eth1": {"bridge": "br1"}, "eth0": {"bridge": "br0"}}}},
    )
    routes = [r for r in desired(data).values() if r.kind is Kind.ROUTE]
    assert routes == [route("a", "default", "10.1.0.254")]


def test_explicit_empty_routes_give_no_route():
    data = one_bridge("a")
    data["namespaces"]["a"]["routes"] = []
    assert [r for r in desired(data).values() if r.kind is Kind.ROUTE] == []


def test_explicit_routes_replace_the_default_route():
    data = one_bridge("a")
    data["namespaces"]["a"]["routes"] = [{"to": "10.0.0.0/8", "via": "172.30.0.254"}, {"to": "default", "via": "172.30.0.1"}]
    routes = [r for r in desired(data).values() if r.kind is Kind.ROUTE]
    assert routes == [route("a", "10.0.0.0/8", "172.30.0.254"), route("a", "default", "172.30.0.1")]


def test_namespace_without_interfaces_has_no_route():
    assert desired(doc(namespaces={"a": {}})) == state(namespace("a"))


def test_desired_ids_are_unique_per_kind():
    data = one_bridge("a", "b")
    assert sorted(str(rid) for rid in desired(data)) == [
        "bridge br0",
        "interface a/eth0",
        "interface b/eth0",
        "namespace a",
        "namespace b",
        "route a/default",
        "route b/default",
    ]
