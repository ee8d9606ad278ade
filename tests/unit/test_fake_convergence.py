"""Convergence on the in-memory FakeKernel: observe(apply(plan(d))) == d, drift, prune, destroy."""

from __future__ import annotations

import re

import pytest
from builders import rid, EXAMPLE, doc, host_name, iface, one_bridge, ops, route, topology
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from netplan_lite.engine import apply as apply_module
from netplan_lite.engine import reconcile
from netplan_lite.engine.apply import ActionFailed
from netplan_lite.errors import ConflictError, KernelError
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.model.loader import load_file
from netplan_lite.resources.interface import InterfaceState


@pytest.fixture(autouse=True)
def quick_verify(monkeypatch):
    """The fake is synchronous: one look is enough, so a miss does not wait 1.5 s."""
    monkeypatch.setattr(apply_module, "VERIFY_DELAYS", (0.0,))


def applied(data, kernel: FakeKernel | None = None) -> FakeKernel:
    """Apply a topology (document or loaded) to a fake and check it converged."""
    kernel = kernel if kernel is not None else FakeKernel()
    topo = data if not isinstance(data, dict) else topology(data)
    result = reconcile.apply(topo, kernel)
    assert result.converged, result.remaining
    return kernel


def in_sync(data, kernel: FakeKernel) -> bool:
    topo = data if not isinstance(data, dict) else topology(data)
    return reconcile.plan(topo, kernel).plan.empty


def addresses(kernel: FakeKernel) -> dict[str, tuple[str, ...]]:
    return {r.id.key: r.addresses for r in kernel.resources.values() if isinstance(r, InterfaceState)}


def drifted(kernel: FakeKernel, resource) -> None:
    """Change one resource behind nsnet's back."""
    kernel.resources[resource.id] = resource


# generated topologies

NAMESPACE_NAMES = st.sets(st.sampled_from(["a", "b", "c", "d", "web1", "web2", "db"]), max_size=6)


@st.composite
def topologies(draw, names=NAMESPACE_NAMES):
    count = draw(st.integers(1, 3))
    with_subnet = [draw(st.booleans()) if i else True for i in range(count)]
    bridges = {f"br{i}": ({"subnet": f"10.{i}.0.0/24"} if with_subnet[i] else {}) for i in range(count)}
    for i in range(count):
        if draw(st.booleans()):
            bridges[f"br{i}"]["mtu"] = draw(st.sampled_from([1400, 9000]))
    namespaces = {}
    pinned = 100
    for ns in sorted(draw(names)):
        interfaces = {}
        for n in range(draw(st.integers(0, 2))):
            b = draw(st.integers(0, count - 1))
            spec = {"bridge": f"br{b}"}
            if with_subnet[b] and draw(st.booleans()):
                spec["address"] = f"10.{b}.0.{pinned}"
                pinned += 1
            if draw(st.booleans()):
                spec["mtu"] = 1450
            interfaces[f"eth{n}"] = spec
        namespace = {"interfaces": interfaces}
        routes = draw(st.sampled_from(["default", "none", "explicit"]))
        first = next(iter(interfaces.values()), None)
        if routes == "none":
            namespace["routes"] = []
        elif routes == "explicit" and first and with_subnet[int(first["bridge"][2:])]:
            b = int(first["bridge"][2:])
            namespace["routes"] = [{"to": "10.200.0.0/16", "via": f"10.{b}.0.1"}, {"to": "default", "via": f"10.{b}.0.1"}]
        namespaces[ns] = namespace
    return doc(bridges=bridges, namespaces=namespaces)


GENERATED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GENERATED
@given(data=topologies())
def test_generated_topology_converges_and_then_plans_nothing(data):
    kernel = applied(data)
    assert in_sync(data, kernel)
    calls = len(kernel.calls)
    assert reconcile.apply(topology(data), kernel).results == []
    assert len(kernel.calls) == calls


@GENERATED
@given(data=topologies(), keep=st.sets(st.sampled_from(["a", "b", "c", "d", "web1", "web2", "db"])))
def test_removing_and_adding_back_namespaces_keeps_the_survivors_addresses(data, keep):
    kernel = applied(data)
    before = addresses(kernel)
    smaller = dict(data, namespaces={n: s for n, s in data["namespaces"].items() if n in keep})
    applied(smaller, kernel)
    assert in_sync(smaller, kernel)
    middle = addresses(kernel)
    assert middle == {k: v for k, v in before.items() if k.split("/")[0] in keep}
    applied(data, kernel)
    assert in_sync(data, kernel)
    assert {k: v for k, v in addresses(kernel).items() if k in middle} == middle


def keeps_interfaces(first: dict, second: dict) -> bool:
    """No namespace in both loses an interface (see test_renaming_an_interface_converges)."""
    return all(
        set(spec["interfaces"]) <= set(second["namespaces"][ns]["interfaces"])
        for ns, spec in first["namespaces"].items()
        if ns in second["namespaces"]
    )


@GENERATED
@given(first=topologies(), second=topologies())
def test_any_topology_converges_from_any_other(first, second):
    assume(keeps_interfaces(first, second))
    kernel = applied(first)
    applied(second, kernel)
    assert in_sync(second, kernel)


@GENERATED
@given(data=topologies())
def test_destroy_empties_the_fake(data):
    kernel = applied(data)
    reconcile.destroy("demo", kernel)
    assert kernel.resources == {}


# the example


def test_example_converges():
    topo = load_file(EXAMPLE)
    kernel = FakeKernel()
    planned = reconcile.plan(topo, kernel)
    result = reconcile.run(planned, kernel)
    assert result.converged and len(result.results) == len(planned.plan.actions) > 0
    assert in_sync(topo, kernel)


def test_example_observed_state_equals_desired_on_managed_fields():
    topo = load_file(EXAMPLE)
    kernel = applied(topo)
    desired = reconcile.plan(topo, kernel).desired
    assert kernel.observe().state.keys() == desired.keys()
    assert addresses(kernel) == {"web1/eth0": ("172.30.0.10/24",), "web2/eth0": ("172.30.0.2/24",)}


def test_apply_calls_the_kernel_in_plan_order():
    kernel = applied(load_file(EXAMPLE))
    assert [(op, str(r)) for op, r in kernel.calls] == ops(reconcile.plan(load_file(EXAMPLE), FakeKernel()).plan)


def test_listener_hears_every_action():
    heard = []
    result = reconcile.apply(load_file(EXAMPLE), FakeKernel(), reconcile.RunOptions(listener=heard.append))
    assert heard == result.results
    assert [str(r.action.id) for r in heard][:2] == ["bridge br-demo", "namespace web1"]


# drift


@pytest.fixture
def example() -> tuple:
    topo = load_file(EXAMPLE)
    kernel = applied(topo)
    kernel.calls.clear()
    return topo, kernel


def web(ns: str, *addresses: str, bridge: str | None = "br-demo", **fields) -> InterfaceState:
    return iface(ns, "eth0", bridge, *addresses, **fields)


@pytest.mark.parametrize(
    "change, expected",
    [
        # the kernel drops the default route with the old address: it is planned again
        (web("web1", "172.30.0.11/24"), [("delete", "route web1/default"), ("update", "interface web1/eth0"), ("create", "route web1/default")]),
        (web("web1", "172.30.0.10/24", up=False), [("update", "interface web1/eth0")]),
        (web("web2", "172.30.0.2/24", host_up=False), [("update", "interface web2/eth0")]),
        (web("web2", "172.30.0.2/24", "192.168.9.9/24"), [("update", "interface web2/eth0")]),
        (web("web1", "172.30.0.10/24", mtu=1500, mac="02:00:00:12:34:56", bridge=None), [("update", "interface web1/eth0")]),
        (route("web1", "default", "172.30.0.9"), [("update", "route web1/default")]),
        (route("web1", "10.0.0.0/8", "172.30.0.1"), [("delete", "route web1/10.0.0.0/8")]),
    ],
    ids=["address-changed", "interface-down", "host-end-down", "foreign-address", "unbridged", "route-changed", "extra-route"],
)
def test_drift_is_repaired(example, change, expected):
    topo, kernel = example
    drifted(kernel, change)
    planned = reconcile.plan(topo, kernel)
    assert ops(planned.plan) == expected
    assert reconcile.run(planned, kernel).converged
    assert in_sync(topo, kernel)


def test_deleted_interface_is_recreated_with_its_route(example):
    topo, kernel = example
    kernel.delete(kernel.resources[rid("interface web2/eth0")])
    kernel.calls.clear()
    assert ops(reconcile.plan(topo, kernel).plan) == [("create", "interface web2/eth0"), ("create", "route web2/default")]
    applied(topo, kernel)
    assert addresses(kernel)["web2/eth0"] == ("172.30.0.2/24",)


def test_lost_host_end_is_replaced(example):
    topo, kernel = example
    drifted(kernel, web("web2", "172.30.0.2/24", host=None, bridge=None, host_up=False))
    planned = reconcile.plan(topo, kernel)
    assert [a.op.value for a in planned.plan.actions] == ["delete", "delete", "create", "create"]
    assert reconcile.run(planned, kernel).converged


def test_renamed_host_end_is_replaced(example):
    topo, kernel = example
    drifted(kernel, web("web1", "172.30.0.10/24", host="nsvold"))
    applied(topo, kernel)
    assert kernel.resources[rid("interface web1/eth0")].host_name == host_name("web1", "eth0")


def test_deleted_namespace_is_recreated(example):
    topo, kernel = example
    kernel.delete(kernel.resources[rid("namespace web1")])
    applied(topo, kernel)
    assert in_sync(topo, kernel)


def test_deleted_bridge_is_recreated(example):
    topo, kernel = example
    kernel.delete(kernel.resources[rid("bridge br-demo")])
    kernel.calls.clear()
    applied(topo, kernel)
    assert kernel.calls == [("create", rid("bridge br-demo"))]


def test_hand_changed_auto_address_is_reverted(example):
    topo, kernel = example
    drifted(kernel, web("web2", "172.30.0.50/24"))
    applied(topo, kernel)
    assert addresses(kernel)["web2/eth0"] == ("172.30.0.2/24",)


# prune and destroy


def test_namespace_removed_from_the_file_is_pruned():
    kernel = applied(one_bridge("a", "b", "c"))
    kernel.calls.clear()
    applied(one_bridge("a", "c"), kernel)
    assert kernel.calls == [("delete", rid("namespace b"))]  # its interface and route go with it
    assert sorted(r.name for r in kernel.resources if r.namespace == "b") == []
    assert addresses(kernel) == {"a/eth0": ("172.30.0.2/24",), "c/eth0": ("172.30.0.4/24",)}


def test_bridge_removed_from_the_file_is_pruned():
    data = one_bridge("a")
    data["bridges"]["br1"] = {"subnet": "10.1.0.0/24"}
    kernel = applied(data)
    applied(one_bridge("a"), kernel)
    assert rid("bridge br1") not in kernel.resources


def test_destroy_empties_the_fake_and_is_idempotent():
    kernel = applied(one_bridge("a", "b"))
    first = reconcile.destroy("demo", kernel)
    assert first.converged and kernel.resources == {}
    kernel.calls.clear()
    assert reconcile.destroy("demo", kernel).results == [] and kernel.calls == []


def test_destroy_skips_the_calls_the_kernel_does_itself():
    kernel = applied(one_bridge("a", "b"))
    kernel.calls.clear()
    reconcile.destroy("demo", kernel)
    assert kernel.calls == [("delete", rid("namespace a")), ("delete", rid("namespace b")), ("delete", rid("bridge br0"))]


def test_destroy_empties_the_example():
    kernel = applied(load_file(EXAMPLE))
    assert reconcile.destroy("demo", kernel).converged
    assert kernel.resources == {}


# conflicts


@pytest.mark.parametrize(
    "kernel, message",
    [
        (
            FakeKernel(foreign_links={"br-demo": "topology 'other'"}),
            "link br-demo (for bridge br-demo) already exists on the host (topology 'other')",
        ),
        (
            FakeKernel(foreign_links={host_name("web2", "eth0"): "not made by nsnet"}),
            f"link {host_name('web2', 'eth0')} (for interface web2/eth0) already exists on the host (not made by nsnet)",
        ),
        (FakeKernel(foreign_namespaces={"web1": "not made by nsnet"}), "namespace web1 already exists (not made by nsnet)"),
    ],
)
def test_conflict_raises_and_makes_no_calls(kernel, message):
    with pytest.raises(ConflictError) as info:
        reconcile.apply(load_file(EXAMPLE), kernel)
    assert str(info.value).startswith("refusing to take over ")
    assert str(info.value).endswith(f" does not own: {message}")
    assert kernel.calls == [] and kernel.resources == {}


def test_every_conflict_is_named_at_once():
    kernel = FakeKernel(foreign_links={"br-demo": "not made by nsnet"}, foreign_namespaces={"web1": "x", "web2": "y"})
    with pytest.raises(ConflictError) as info:
        reconcile.plan(load_file(EXAMPLE), kernel)
    assert str(info.value).count("already exists") == 3


def test_unrelated_foreign_objects_are_no_conflict():
    kernel = FakeKernel(foreign_links={"eth0": "not made by nsnet", "docker0": "not made by nsnet"}, foreign_namespaces={"other": "topology 'other'"})
    applied(load_file(EXAMPLE), kernel)


# failures


def test_injected_failure_raises_action_failed_naming_the_action():
    kernel = FakeKernel()
    kernel.fail_on = rid("bridge br-demo")
    action = reconcile.plan(load_file(EXAMPLE), kernel).plan.actions[0]
    with pytest.raises(ActionFailed) as info:
        apply_module.run_action(kernel, action)
    assert re.fullmatch(r"create bridge br-demo failed: .+ \(errno 1\)", str(info.value))
    assert info.value.action is action and isinstance(info.value, KernelError)


def test_failed_apply_reports_the_failed_action():
    kernel = FakeKernel()
    kernel.fail_on = rid("interface web2/eth0")
    result = reconcile.apply(load_file(EXAMPLE), kernel)
    assert not result.converged
    assert isinstance(result.outcome.failure, ActionFailed)
    assert re.fullmatch(r"create interface web2/eth0 failed: .+ \(errno 1\)", str(result.outcome.failure))
    assert [str(r.action.id) for r in result.results][-1] == "interface web1/eth0"


def test_failed_apply_is_rolled_back():
    kernel = FakeKernel()
    kernel.fail_on = rid("interface web2/eth0")
    result = reconcile.apply(load_file(EXAMPLE), kernel)
    assert kernel.resources == {}
    assert [str(a.id) for a in result.outcome.rolled_back] == [str(r.action.id) for r in reversed(result.results)]


def test_failed_change_restores_the_previous_state_with_its_implied_children():
    kernel = applied(one_bridge("a", "b"))
    before = dict(kernel.resources)
    kernel.fail_on = rid("interface c/eth0")
    result = reconcile.apply(topology(one_bridge("a", "c")), kernel)
    assert not result.converged and result.outcome.not_rolled_back == []
    assert kernel.resources == before


def test_rerun_after_a_failure_finishes_the_apply():
    kernel = FakeKernel()
    kernel.fail_on = rid("interface web2/eth0")
    reconcile.apply(load_file(EXAMPLE), kernel)
    kernel.fail_on = None
    applied(load_file(EXAMPLE), kernel)
    assert in_sync(load_file(EXAMPLE), kernel)


def test_failure_without_rollback_keeps_the_progress():
    kernel = FakeKernel()
    kernel.fail_on = rid("interface web2/eth0")
    result = reconcile.apply(load_file(EXAMPLE), kernel, reconcile.RunOptions(rollback=False))
    assert result.outcome.rolled_back == [] and rid("interface web1/eth0") in kernel.resources


def test_failure_on_delete_names_the_delete():
    kernel = applied(one_bridge("a"))
    kernel.fail_on = rid("bridge br0")
    failure = reconcile.destroy("demo", kernel).outcome.failure
    assert re.fullmatch(r"delete bridge br0 failed: .+ \(errno 1\)", str(failure))


def test_renaming_an_interface_converges():
    kernel = applied(one_bridge("a"))
    renamed = one_bridge("a")
    renamed["namespaces"]["a"]["interfaces"] = {"eth1": {"bridge": "br0"}}
    assert reconcile.apply(topology(renamed), kernel).converged


def test_removing_the_first_interface_moves_the_default_route():
    data = doc(
        bridges={"br0": {"subnet": "10.0.0.0/24"}, "br1": {"subnet": "10.1.0.0/24"}},
        namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0"}, "eth1": {"bridge": "br1"}}}},
    )
    kernel = applied(data)
    del data["namespaces"]["a"]["interfaces"]["eth0"]
    assert reconcile.apply(topology(data), kernel).converged
