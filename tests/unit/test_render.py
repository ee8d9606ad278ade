"""render: plan text markers and summary, plan JSON, apply and show output."""

from __future__ import annotations

import json

from builders import EXAMPLE, built, compute, doc, host_name, iface, namespace, one_bridge, route, state

from netplan_lite.engine import reconcile
from netplan_lite.render import plans as render, show as tables
from netplan_lite.engine.apply import ActionResult, Outcome
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.model.loader import load_file
from netplan_lite.engine.observation import Observation
from netplan_lite.engine.plan import Plan

LIVE_AB = built(("a", "172.30.0.2/24"), ("b", "172.30.0.3/24"))


def text(data, observed=()) -> str:
    return render.plan_text(compute(data, list(observed)))


def test_create_plan_text_golden():
    assert text(one_bridge("a")) == (
        "nsnet will perform these actions on topology 'demo':\n"
        "\n"
        "host:\n"
        "  + bridge br0: address 172.30.0.1/24\n"
        "\n"
        "namespace a:\n"
        "  + namespace a\n"
        f"  + namespace a / interface eth0: bridge br0, address 172.30.0.2/24, host veth {host_name('a', 'eth0')}\n"
        "  + namespace a / route default: via 172.30.0.1\n"
        "\n"
        "Plan: 4 to add, 0 to change, 0 to destroy.\n"
    )


def test_groups_are_the_host_then_namespaces_by_name():
    lines = text(one_bridge("b", "a")).splitlines()
    assert [line for line in lines if line.endswith(":") and not line.startswith(" ")][1:] == ["host:", "namespace a:", "namespace b:"]


def test_empty_plan_says_no_changes():
    assert text(one_bridge("a", "b"), LIVE_AB) == "No changes. The kernel matches topology 'demo'.\n"


def test_summary_lines():
    assert render.summary(Plan("demo")) == "No changes."
    assert render.summary(compute(one_bridge("a"), LIVE_AB).plan) == "Plan: 0 to add, 0 to change, 3 to destroy."


def test_update_marker_and_field_lines():
    observed = list(LIVE_AB)
    observed[2] = iface("a", "eth0", "br0", "172.30.0.2/24", "10.9.9.9/8", up=False)
    lines = text(one_bridge("a", "b"), observed).splitlines()
    assert lines[2:5] == [
        "namespace a:",
        "  ~ namespace a / interface eth0: address 172.30.0.2/24, 10.9.9.9/8 -> 172.30.0.2/24",
        "  ~ namespace a / interface eth0: state down -> up",
    ]
    assert lines[-1] == "Plan: 0 to add, 1 to change, 0 to destroy."


def test_delete_marker_with_implied_children():
    lines = text(one_bridge("a"), LIVE_AB).splitlines()
    assert lines[2:6] == [
        "namespace b:",
        "  - namespace b / route default (goes with namespace b)",
        "  - namespace b / interface eth0 (goes with namespace b)",
        "  - namespace b",
    ]


def test_replace_is_one_line_with_its_reason_and_counts_both_halves():
    observed = list(LIVE_AB)
    observed[2] = iface("a", "eth0", "br0", "172.30.0.2/24", host="nsvold")
    lines = text(one_bridge("a", "b"), observed).splitlines()
    assert lines[2:-2] == [
        "namespace a:",
        "  -/+ namespace a / route default (interface a/eth0 is replaced)",
        f"  -/+ namespace a / interface eth0: host veth nsvold -> {host_name('a', 'eth0')} (the host-side veth name changed)",
    ]
    assert lines[-1] == "Plan: 2 to add, 0 to change, 2 to destroy."


def test_lo_state_field_name():
    observed = list(LIVE_AB)
    observed[1] = namespace("a", lo_up=False)
    assert "  ~ namespace a: lo state down -> up" in text(one_bridge("a", "b"), observed).splitlines()


def test_route_via_field_line():
    observed = list(LIVE_AB)
    observed[3] = route("a", "default", "172.30.0.9")
    assert "  ~ namespace a / route default: via 172.30.0.9 -> 172.30.0.1" in text(one_bridge("a", "b"), observed).splitlines()


def test_example_plan_lists_its_forward_rules():
    lines = render.plan_text(reconcile.plan(load_file(EXAMPLE), FakeKernel())).splitlines()
    assert any(line.startswith("      + rule ") and "8080" in line for line in lines)


def test_plan_text_is_deterministic():
    first = compute(doc(bridges={"br0": {"subnet": "10.0.0.0/24"}}, namespaces={"z": {}, "a": {}}), LIVE_AB)
    second = compute(doc(bridges={"br0": {"subnet": "10.0.0.0/24"}}, namespaces={"a": {}, "z": {}}), list(reversed(LIVE_AB)))
    assert render.plan_text(first) == render.plan_text(second)


# JSON


def test_plan_json_has_format_version_summary_and_actions():
    doc_ = render.plan_json(compute(one_bridge("a"), LIVE_AB))
    assert doc_["format_version"] == render.FORMAT_VERSION == 1
    assert (doc_["topology"], doc_["changes"], doc_["summary"]) == ("demo", True, {"add": 0, "change": 0, "destroy": 3})
    assert [(a["op"], a["kind"], a["name"], a["implied_by"]) for a in doc_["actions"]] == [
        ("delete", "route", "b/default", "namespace b"),
        ("delete", "interface", "b/eth0", "namespace b"),
        ("delete", "namespace", "b", None),
    ]


def test_plan_json_action_carries_before_after_and_fields():
    observed = list(LIVE_AB)
    observed[3] = route("a", "default", "172.30.0.9")
    (action,) = render.plan_json(compute(one_bridge("a", "b"), observed))["actions"]
    assert {k: action[k] for k in ("op", "kind", "name", "reason", "implied_by", "fields")} == {
        "op": "update",
        "kind": "route",
        "name": "a/default",
        "reason": None,
        "implied_by": None,
        "fields": [{"field": "via", "before": ["172.30.0.9"], "after": ["172.30.0.1"]}],
    }
    assert (action["before"]["via"], action["after"]["via"], action["after"]["namespace"]) == (["172.30.0.9"], ["172.30.0.1"], "a")


def test_plan_json_of_an_empty_plan():
    doc_ = render.plan_json(compute(one_bridge("a", "b"), LIVE_AB))
    assert (doc_["changes"], doc_["actions"]) == (False, [])


def test_plan_json_is_serialisable_with_lists_for_tuples():
    doc_ = render.plan_json(reconcile.plan(load_file(EXAMPLE), FakeKernel()))
    assert json.loads(json.dumps(doc_)) == doc_
    bridge = next(a for a in doc_["actions"] if a["kind"] == "bridge")
    assert bridge["after"]["addresses"] == ["172.30.0.1/24"]


# apply and show


def applied(data, observed=()) -> reconcile.Applied:
    planned = compute(data, list(observed))
    results = [ActionResult(a, 0.0012) for a in planned.plan.actions]
    return reconcile.Applied(planned, Outcome(results))


def test_applied_line_has_marker_id_and_time():
    result = applied(one_bridge("a")).results[0]
    assert render.applied_line(result) == "  + bridge br0  [1 ms]"


def test_applied_line_for_an_implied_delete():
    result = applied(one_bridge("a"), LIVE_AB).results[0]
    assert render.applied_line(result) == "  - namespace b / route default (goes with namespace b)  [1 ms]"


def test_applied_summary():
    assert render.applied_summary(applied(one_bridge("a")), "Apply", 0.25) == (
        "Apply complete: 4 added, 0 changed, 0 destroyed in 0.25 s; live state verified."
    )
    assert render.applied_summary(applied(one_bridge("a", "b"), LIVE_AB), "Apply", 0.0) == "No changes."


def test_show_text_of_nothing():
    assert tables.show_text("demo", {}, Plan("demo")) == ("Topology demo: in sync\n\n  (nothing live, nothing planned)\n")


def test_show_text_is_a_table_per_namespace_with_drift_marks():
    observed = list(LIVE_AB)
    observed[2] = iface("a", "eth0", "br0", "172.30.0.2/24", up=False)
    drift = compute(one_bridge("a", "c"), observed).plan
    lines = tables.show_text("demo", state(*observed), drift).splitlines()
    assert lines[0] == "Topology demo: drifted: 3 to add, 1 to change, 3 to destroy (`nsnet apply` repairs it)"
    a = lines.index("      namespace a (lo up)")
    assert lines[a + 1].split() == ["INTERFACE", "ADDRESS", "BRIDGE", "HOST", "VETH", "STATE"]
    assert lines[a + 2].split() == ["~", "eth0", "172.30.0.2/24", "br0", host_name("a", "eth0"), "down"]
    assert lines[a + 3].strip() == "state down -> up"
    assert "  -   namespace b (lo up)" in lines and "  +   namespace c (lo up)" in lines
    assert lines[-1].startswith("Marks: + missing, ~ changed")


def test_show_of_many_namespaces_points_to_ls():
    many = built(*[(f"n{i}", f"172.30.0.{i + 2}/24") for i in range(tables.MANY_NAMESPACES + 1)])
    assert tables.show_text("demo", state(*many), Plan("demo")).splitlines()[-1] == (
        "21 namespaces: `nsnet ls` sums each topology up in one row; `nsnet show --json` is all of this for scripts."
    )
    few = built(*[(f"n{i}", f"172.30.0.{i + 2}/24") for i in range(tables.MANY_NAMESPACES)])
    assert "nsnet ls" not in tables.show_text("demo", state(*few), Plan("demo"))


def test_show_lists_forwards_under_their_namespace():
    forwards = load_file(EXAMPLE).port_forwards
    kernel = FakeKernel()
    planned = reconcile.apply(load_file(EXAMPLE), kernel).planned
    text_ = tables.show_text("demo", kernel.observe().state, Plan("demo"), forwards)
    web1 = text_.split("namespace web1")[1].split("namespace web2")[0]
    assert "tcp *:8080 -> port 80" in web1 and "8081" not in web1
    assert planned.plan.actions


def test_state_json_lists_resources_in_rank_order():
    doc_ = render.state_json("demo", state(*LIVE_AB), Plan("demo"))
    assert doc_["format_version"] == 1 and doc_["drift"] == []
    assert [(r["kind"], r.get("name") or r.get("to")) for r in doc_["resources"]][:3] == [("bridge", "br0"), ("namespace", "a"), ("namespace", "b")]


def test_fingerprint_depends_on_observed_state_only():
    topo_a, topo_b = one_bridge("a"), one_bridge("a", "b")
    same = Observation(state(*LIVE_AB))
    assert compute(topo_a, LIVE_AB).fingerprint == compute(topo_b, LIVE_AB).fingerprint == reconcile.state_fingerprint(same)
    assert compute(topo_a, LIVE_AB[:3]).fingerprint != compute(topo_a, LIVE_AB).fingerprint


def test_show_lists_orphaned_host_veth_ends_under_the_host():
    from netplan_lite.resources.ids import ORPHAN_NAMESPACE
    from netplan_lite.resources.interface import InterfaceState

    orphan = InterfaceState(ORPHAN_NAMESPACE, "nsvlost", "nsvlost", up=False, host_up=True)
    observed = [*LIVE_AB, orphan]
    drift = compute(one_bridge("a", "b"), observed).plan
    lines = tables.show_text("demo", state(*observed), drift).splitlines()
    assert "ORPHANED VETH END" in lines[lines.index("      host") + 3]
    assert lines[lines.index("      host") + 4].split() == ["-", "nsvlost", "up"]


def test_show_lists_the_rules_in_docker_s_chain_among_the_host_settings():
    from netplan_lite.resources.docker_user import DOCKER_USER, Ip6tablesRulesState, IptablesRulesState

    rules = [IptablesRulesState(DOCKER_USER, ("br0 in", "br0 out")), Ip6tablesRulesState(DOCKER_USER, ("br0 in",))]
    lines = tables.show_text("demo", state(*LIVE_AB, *rules), Plan("demo")).splitlines()
    rows = [line.split() for line in lines]
    assert ["iptables", "rule", "DOCKER-USER", "accept", "br0", "in/out"] in rows
    assert ["ip6tables", "rule", "DOCKER-USER", "accept", "br0", "in"] in rows
