"""Targeted plans (`--target NAMESPACE`): read and change only those namespaces and the host
objects they need; allocate around the recorded addresses of the others."""

from __future__ import annotations

from ipaddress import IPv4Interface

from builders import built, doc, ops, topology

from netplan_lite.engine.assignments import Recorded
from netplan_lite.engine import reconcile
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.engine.scope import Scope
from netplan_lite.render.plans import applied_summary, plan_json, plan_text

LIVE_AB = built(("a", "172.30.0.2/24"), ("b", "172.30.0.3/24"))
RECORDED = Recorded({("a", "eth0"): IPv4Interface("172.30.0.2/24"), ("b", "eth0"): IPv4Interface("172.30.0.3/24")})


def lab(*names: str, forward_to: str | None = None) -> dict:
    namespaces = {n: {"interfaces": {"eth0": {"bridge": "br0"}}} for n in names}
    forwards = [{"host_port": 8080, "namespace": forward_to, "port": 80}] if forward_to else None
    return doc({"br0": {"subnet": "172.30.0.0/24"}, "br9": {"subnet": "172.31.9.0/24"}}, namespaces, forwards)


def targeted(data: dict, kernel: FakeKernel, *targets: str, recorded=RECORDED) -> reconcile.Planned:
    observation = kernel.observe(Scope(frozenset(targets)))
    return reconcile.compute(topology(data), observation, frozenset(targets), recorded)


def test_a_new_namespace_gets_the_next_free_address_around_the_unread_ones():
    kernel = FakeKernel(LIVE_AB + [built()[0]])
    planned = targeted(lab("a", "b", "c"), kernel, "c")
    assert ops(planned.plan) == [("create", "namespace c"), ("create", "interface c/eth0"), ("create", "route c/default")]
    assert planned.plan.actions[1].after.addresses == ("172.30.0.4/24",)
    assert planned.plan.partial and planned.addresses[("a", "eth0")] == RECORDED.v4[("a", "eth0")]


def test_other_namespaces_and_unneeded_host_objects_are_neither_read_nor_changed():
    kernel = FakeKernel(LIVE_AB)
    planned = targeted(lab("a", "c"), kernel, "c")  # b left the file, br9 is new: neither is the target's
    assert ("delete", "namespace b") not in ops(planned.plan)
    assert ("create", "bridge br9") not in ops(planned.plan)
    assert not [rid for rid in planned.observation.state if rid.home == "b"]


def test_host_wide_objects_follow_the_target():
    planned = targeted(lab("a", "b", forward_to="a"), FakeKernel(LIVE_AB), "a")
    assert {("create", "nft table nsnet-demo"), ("create", "sysctl net.ipv4.ip_forward")} <= set(ops(planned.plan))


def test_applying_a_targeted_plan_converges_in_its_scope():
    kernel = FakeKernel(LIVE_AB)
    planned = targeted(lab("a", "b", "c"), kernel, "c")
    applied = reconcile.run(planned, kernel)
    assert applied.converged
    assert targeted(lab("a", "b", "c"), kernel, "c").plan.empty
    whole = reconcile.plan(topology(lab("a", "b", "c")), kernel).plan  # the whole topology: only what was left out
    assert ops(whole) == [("create", "bridge br9")]


def test_without_a_record_every_namespace_is_read_but_only_the_target_changes():
    kernel = FakeKernel(LIVE_AB)
    planned = reconcile.plan(topology(lab("a", "c")), kernel, ["c"])  # no record: reads all
    assert ("delete", "namespace b") not in ops(planned.plan)
    assert planned.plan.actions[1].after.addresses == ("172.30.0.4/24",)  # b's .3 was read, not guessed


def test_the_plan_says_it_is_partial():
    planned = targeted(lab("a", "b", "c"), FakeKernel(LIVE_AB), "c")
    text = plan_text(planned)
    assert text.startswith("nsnet will perform these actions on topology 'demo' in namespace c:")
    assert "This plan is partial (--target): only namespace c and the host objects it needs" in text
    assert plan_json(planned)["targets"] == ["c"]
    assert "targets" not in plan_json(reconcile.plan(topology(lab("a", "b")), FakeKernel(LIVE_AB)))
    applied = reconcile.run(planned, FakeKernel(LIVE_AB))
    assert applied_summary(applied, "Apply", 0.1).endswith("live state verified (partial: only namespace c, --target).")
    empty = targeted(lab("a", "b"), FakeKernel(LIVE_AB), "b")
    assert plan_text(empty).startswith("No changes. The kernel matches topology 'demo' in namespace b.")
