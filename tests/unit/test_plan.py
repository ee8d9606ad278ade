"""plan: golden cases, observed State + desired YAML in, ordered actions out."""

from __future__ import annotations

from builders import bridge, built, compute, doc, iface, namespace, one_bridge, ops, route, state

from netplan_lite.engine import reconcile
from netplan_lite.render import plans as render
from netplan_lite.engine.diff import diff
from netplan_lite.engine.observation import Observation
from netplan_lite.engine.diff import Op
from netplan_lite.engine.plan import Action, Plan, make_plan
from netplan_lite.resources.ids import Kind, ResourceId

TWO_BRIDGES = doc(
    bridges={"br1": {"subnet": "10.1.0.0/24"}, "br0": {"subnet": "10.0.0.0/24"}},
    namespaces={
        "web2": {"interfaces": {"eth0": {"bridge": "br0"}}},
        "web1": {"interfaces": {"eth0": {"bridge": "br0"}, "eth1": {"bridge": "br1"}}},
    },
)
LIVE_AB = built(("a", "172.30.0.2/24"), ("b", "172.30.0.3/24"))


def plan_of(data, observed=(), **observation) -> Plan:
    return compute(data, list(observed), **observation).plan


def action(plan: Plan, text: str) -> Action:
    return next(a for a in plan.actions if str(a.id) == text)


def test_create_order_is_bridges_namespaces_interfaces_routes_each_by_name():
    assert ops(plan_of(TWO_BRIDGES)) == [
        ("create", "bridge br0"),
        ("create", "bridge br1"),
        ("create", "namespace web1"),
        ("create", "namespace web2"),
        ("create", "interface web1/eth0"),
        ("create", "interface web1/eth1"),
        ("create", "interface web2/eth0"),
        ("create", "route web1/default"),
        ("create", "route web2/default"),
    ]


def test_creates_carry_the_desired_resource():
    first = plan_of(TWO_BRIDGES).actions[0]
    assert (first.op, first.before, first.after, first.reason, first.implied_by) == (Op.CREATE, None, bridge("br0", "10.0.0.1/24"), None, None)


def test_in_sync_gives_an_empty_plan():
    plan = plan_of(one_bridge("a", "b"), LIVE_AB)
    assert plan.empty and plan.actions == () and plan.counts() == (0, 0, 0)


def test_delete_order_is_reversed_with_implied_children():
    plan = plan_of(doc(), LIVE_AB)
    assert ops(plan) == [
        ("delete", "route a/default"),
        ("delete", "route b/default"),
        ("delete", "interface a/eth0"),
        ("delete", "interface b/eth0"),
        ("delete", "namespace a"),
        ("delete", "namespace b"),
        ("delete", "bridge br0"),
    ]
    assert [str(a.implied_by) if a.implied_by else None for a in plan.actions] == [
        "namespace a",
        "namespace b",
        "namespace a",
        "namespace b",
        None,
        None,
        None,
    ]


def test_implied_deletes_keep_before_and_have_no_after():
    plan = plan_of(one_bridge("a"), LIVE_AB)
    implied = action(plan, "interface b/eth0")
    assert (implied.op, implied.before, implied.after) == (Op.DELETE, LIVE_AB[5], None)
    assert implied.implied_by == ResourceId(Kind.NAMESPACE, "b")


def test_pruning_one_namespace_leaves_the_others_alone():
    assert ops(plan_of(one_bridge("a"), LIVE_AB)) == [
        ("delete", "route b/default"),
        ("delete", "interface b/eth0"),
        ("delete", "namespace b"),
    ]


def test_deleting_an_interface_of_a_kept_namespace_is_not_implied():
    observed = LIVE_AB + [iface("a", "eth1", "br0", "172.30.0.9/24")]
    plan = plan_of(one_bridge("a", "b"), observed)
    # the default route via the same subnet is planned again: the kernel may drop it with eth1
    assert ops(plan) == [("delete", "route a/default"), ("delete", "interface a/eth1"), ("create", "route a/default")]
    assert all(a.implied_by is None for a in plan.actions)


def test_orphan_host_veth_is_deleted_explicitly():
    orphan = iface("(host)", "nsvdeadbeef0123", None, host="nsvdeadbeef0123", up=False)
    plan = plan_of(one_bridge("a", "b"), LIVE_AB + [orphan])
    assert ops(plan) == [("delete", "interface (host)/nsvdeadbeef0123")]
    assert plan.actions[0].implied_by is None


def test_deletes_come_before_updates_and_creates():
    observed = built(("a", "172.30.0.2/24"), ("old", "172.30.0.3/24"))
    observed[0] = bridge("br0", "172.30.0.1/24", "10.9.9.9/8")
    plan = plan_of(one_bridge("a", "new"), observed)
    assert ops(plan) == [
        ("delete", "route old/default"),
        ("delete", "interface old/eth0"),
        ("delete", "namespace old"),
        ("update", "bridge br0"),
        ("create", "namespace new"),
        ("create", "interface new/eth0"),
        ("create", "route new/default"),
    ]


def test_updates_come_before_creates_of_the_same_kind():
    observed = [bridge("br0", "172.30.0.1/24"), namespace("b", lo_up=False)]
    assert ops(plan_of(one_bridge("a", "b"), observed))[:3] == [
        ("update", "namespace b"),
        ("create", "namespace a"),
        ("create", "interface a/eth0"),
    ]


def test_replace_is_lowered_to_delete_then_create_with_the_reason():
    observed = list(LIVE_AB)
    observed[2] = iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold")
    plan = plan_of(one_bridge("a", "b"), observed)
    assert ops(plan) == [
        ("delete", "route a/default"),
        ("delete", "interface a/eth0"),
        ("create", "interface a/eth0"),
        ("create", "route a/default"),
    ]
    assert [a.reason for a in plan.actions] == [
        "interface a/eth0 is replaced",
        "the host-side veth name changed",
        "the host-side veth name changed",
        "interface a/eth0 is replaced",
    ]
    assert all(a.is_replace for a in plan.actions)
    assert (plan.actions[1].before.host_name, plan.actions[2].after.host_name) == ("nsvold", LIVE_AB[2].host_name)


def test_replace_counts_as_one_add_and_one_destroy():
    observed = list(LIVE_AB)
    observed[2] = iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold")
    observed[3] = route("a", "default", "172.30.0.9")
    observed.append(namespace("b", lo_up=False))
    assert plan_of(one_bridge("a", "b"), observed).counts() == (2, 1, 2)


def test_counts_count_every_action():
    plan = plan_of(one_bridge("a", "new"), built(("a", "172.30.0.2/24"), ("old", "172.30.0.3/24")))
    assert plan.counts() == (3, 0, 3)


def test_update_carries_its_field_changes():
    observed = list(LIVE_AB)
    observed[3] = route("a", "default", "172.30.0.9")
    (update,) = plan_of(one_bridge("a", "b"), observed).actions
    assert (update.op, update.before, update.after) == (Op.UPDATE, route("a", "default", "172.30.0.9"), route("a"))
    assert [(f.field, f.before, f.after) for f in update.fields] == [("via", ("172.30.0.9",), ("172.30.0.1",))]


def test_same_input_gives_an_identical_plan():
    observed = built(("a", "172.30.0.2/24"), ("old", "172.30.0.3/24"))
    first = compute(TWO_BRIDGES, observed)
    second = compute(TWO_BRIDGES, list(reversed(observed)))
    assert first.plan == second.plan
    assert render.plan_text(first) == render.plan_text(second)
    assert render.plan_json(first) == render.plan_json(second)


def test_plan_does_not_depend_on_the_order_of_changes():
    changes = diff({}, state(*LIVE_AB))
    assert make_plan("demo", changes) == make_plan("demo", list(reversed(changes)))


def test_destroy_is_a_plan_against_an_empty_desired_state():
    observation = Observation(state(*LIVE_AB))
    destroy = reconcile.compute_destroy("demo", observation)
    assert destroy.plan == make_plan("demo", diff({}, observation.state)) == plan_of(doc(), LIVE_AB)
    assert destroy.desired == {} and destroy.plan.counts() == (0, 0, 7)


def test_destroy_of_nothing_is_empty():
    assert reconcile.compute_destroy("demo", Observation({})).plan.empty


def test_plan_names_its_topology():
    assert plan_of(doc(name="lab-7")).topology == "lab-7"


def test_empty_plan():
    assert Plan("demo").empty and Plan("demo").counts() == (0, 0, 0)
