"""diff: desired vs observed State -> changes with before and after."""

from __future__ import annotations

import dataclasses

import pytest
from builders import rid, bridge, built, iface, namespace, one_bridge, route, state, topology

from netplan_lite.engine.desired import allocate, desired_state
from netplan_lite.engine.diff import Change, Op, FieldChange, diff

HOST_CHANGED = "the host-side veth name changed"


def desired(data: dict) -> dict:
    topo = topology(data)
    return desired_state(topo, allocate(topo, {}))


def summary(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.op.value, str(c.id)) for c in changes]


AB = one_bridge("a", "b")  # a: 172.30.0.2, b: 172.30.0.3
LIVE_AB = built(("a", "172.30.0.2/24"), ("b", "172.30.0.3/24"))


def live(*overrides) -> dict:
    """LIVE_AB with some resources replaced (matched by id)."""
    by_id = {r.id: r for r in LIVE_AB}
    by_id.update({r.id: r for r in overrides})
    return dict(by_id)


def test_in_sync_is_no_change():
    assert diff(desired(AB), state(*LIVE_AB)) == []


def test_everything_missing_is_created_in_rank_then_name_order():
    assert summary(diff(desired(AB), {})) == [
        ("create", "bridge br0"),
        ("create", "namespace a"),
        ("create", "namespace b"),
        ("create", "interface a/eth0"),
        ("create", "interface b/eth0"),
        ("create", "route a/default"),
        ("create", "route b/default"),
    ]


def test_create_has_no_before_and_delete_has_no_after():
    (create,) = diff(state(namespace("a")), {})
    (delete,) = diff({}, state(namespace("a")))
    assert (create.before, create.after, create.op) == (None, namespace("a"), Op.CREATE)
    assert (delete.before, delete.after, delete.op) == (namespace("a"), None, Op.DELETE)


def test_unwanted_resources_are_deleted():
    assert summary(diff(desired(one_bridge("a")), state(*LIVE_AB))) == [
        ("delete", "namespace b"),
        ("delete", "interface b/eth0"),
        ("delete", "route b/default"),
    ]


def test_changed_field_is_an_update_with_before_and_after():
    observed = live(iface("a", "eth0", "br0", "172.30.0.2/24", "10.9.9.9/8", up=False))
    (change,) = diff(desired(AB), observed)
    assert change.op is Op.UPDATE and change.reason is None
    assert change.fields == (
        FieldChange("addresses", ("172.30.0.2/24", "10.9.9.9/8"), ("172.30.0.2/24",)),
        FieldChange("up", False, True),
    )


def test_route_via_change_is_an_update():
    (change,) = diff(desired(AB), live(route("a", "default", "172.30.0.254")))
    assert change.fields == (FieldChange("via", ("172.30.0.254",), ("172.30.0.1",)),)


def test_route_replaced_by_hand_is_an_update():
    (change,) = diff(desired(AB), live(route("a", "default", "172.30.0.1", proto=4)))
    assert (change.op, change.fields) == (Op.UPDATE, (FieldChange("proto", 4, 225),))


def test_lo_down_is_an_update():
    (change,) = diff(desired(AB), live(namespace("a", lo_up=False)))
    assert (str(change.id), change.fields) == ("namespace a", (FieldChange("lo_up", False, True),))


@pytest.mark.parametrize(
    "observed",
    [
        iface("a", "eth0", "br0", "172.30.0.2/24", mtu=1500, mac="02:00:00:aa:bb:cc"),
        iface("a", "eth0", "br0", "172.30.0.2/24", mtu=9000, mac="02:00:00:00:00:01"),
        bridge("br0", "172.30.0.1/24", mtu=1500),
    ],
)
def test_unmanaged_fields_never_differ(observed):
    assert diff(desired(AB), live(observed)) == []


def test_managed_mtu_differs():
    (change,) = diff(
        desired(one_bridge("a", "b", mtu=1400)),
        live(iface("a", "eth0", "br0", "172.30.0.2/24", mtu=1500), iface("b", "eth0", "br0", "172.30.0.3/24", mtu=1400)),
    )
    assert (str(change.id), change.fields) == ("interface a/eth0", (FieldChange("mtu", 1500, 1400),))


def test_host_name_change_is_a_replace_with_its_reason():
    changes = diff(desired(AB), live(iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold")))
    assert summary(changes) == [("replace", "interface a/eth0"), ("replace", "route a/default")]
    assert changes[0].reason == HOST_CHANGED
    assert changes[0].fields == (FieldChange("host_name", "nsvold", changes[0].after.host_name),)


def test_lost_host_end_is_a_replace():
    (change, _) = diff(desired(AB), live(iface("a", "eth0", None, "172.30.0.2/24", host=None, host_up=False)))
    assert (change.op, change.reason) == (Op.REPLACE, HOST_CHANGED)


def test_routes_of_a_replaced_interface_are_replaced_too():
    changes = diff(desired(AB), live(iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold")))
    route_change = changes[1]
    assert route_change.reason == "interface a/eth0 is replaced"
    assert (route_change.before, route_change.after) == (route("a"), route("a"))
    assert route_change.fields == ()


def test_replaced_route_keeps_its_field_changes():
    observed = live(iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold"), route("a", "default", "172.30.0.9"))
    route_change = diff(desired(AB), observed)[1]
    assert route_change.op is Op.REPLACE
    assert route_change.fields == (FieldChange("via", ("172.30.0.9",), ("172.30.0.1",)),)


def test_other_namespaces_routes_are_untouched_by_a_replace():
    changes = diff(desired(AB), live(iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold")))
    assert rid("route b/default") not in {c.id for c in changes}


def test_bridge_change_is_an_update_not_a_replace():
    data = one_bridge("a")
    data["bridges"]["br1"] = {}
    data["namespaces"]["a"]["interfaces"]["eth0"]["bridge"] = "br1"
    observed = [bridge("br0", "172.30.0.1/24"), bridge("br1"), namespace("a"), iface("a", "eth0", "br0")]
    changes = diff(desired(data), state(*observed))
    assert summary(changes) == [("update", "interface a/eth0")]
    assert changes[0].fields == (FieldChange("bridge", "br0", "br1"),)


def test_diff_is_sorted_whatever_the_input_order():
    observed = list(reversed(LIVE_AB))
    assert diff({}, dict((r.id, r) for r in observed)) == diff({}, state(*LIVE_AB))


def test_diff_does_not_modify_its_inputs():
    want, have = desired(AB), live(route("a", "default", "172.30.0.9"))
    want_copy, have_copy = dict(want), dict(have)
    diff(want, have)
    assert (want, have) == (want_copy, have_copy)


def test_replace_only_comes_from_host_name():
    observed = live(dataclasses.replace(iface("a", "eth0", "br0", "172.30.0.2/24"), bridge="br9", mac="02:00:00:00:00:09"))
    (change,) = diff(desired(AB), observed)
    assert change.op is Op.UPDATE


def test_renaming_an_interface_plans_its_routes_again():
    data = one_bridge("a")
    data["namespaces"]["a"]["interfaces"] = {"eth1": {"bridge": "br0"}}
    changes = diff(desired(data), state(*built(("a", "172.30.0.2/24"))))
    assert rid("route a/default") in {c.id for c in changes}


def test_a_link_losing_an_address_replans_the_routes_via_it_in_that_ends_namespace():
    from netplan_lite.resources.link import LinkState

    before = LinkState("r1", "e12", "r2", "e21", ("10.1.0.0/31", "fd00:1::/127"), ("10.1.0.1/31", "fd00:1::1/127"))
    after = LinkState("r1", "e12", "r2", "e21", ("10.1.0.0/31",), ("10.1.0.1/31",))
    via_v6 = route("r1", "fd00::2/128", "fd00:1::1")
    via_v4 = route("r2", "10.0.0.1/32", "10.1.0.0")
    changes = diff(state(after, via_v6, via_v4), state(before, via_v6, via_v4))
    replaced = {c.id.key: c.reason for c in changes if c.op is Op.REPLACE}
    assert replaced == {"r1/fd00::2/128": "link r1/e12 loses an address"}


def test_a_replaced_link_takes_the_routes_through_its_devices_with_it():
    from netplan_lite.resources.link import LinkState

    before = LinkState("r1", "e12", "r9", "e21", ("10.1.0.0/31",), ("10.1.0.1/31",))
    after = LinkState("r1", "e12", "r2", "e21", ("10.1.0.0/31",), ("10.1.0.1/31",))
    device_route = route("r1", "10.77.0.0/16", "", dev="e12")
    changes = diff(state(after, device_route), state(before, device_route))
    assert {c.id.key: (c.op, c.reason) for c in changes} == {
        "r1/e12": (Op.REPLACE, "its peer end is not where the file puts it"),
        "r1/10.77.0.0/16": (Op.REPLACE, "link r1/e12 is replaced"),
    }
