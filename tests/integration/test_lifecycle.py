"""Prune, re-address, destroy, foreign objects, coexisting topologies, saved plans."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytestmark = pytest.mark.netns


def test_prune_deletes_a_removed_namespace_and_its_veth(lab, applied):
    ex = applied
    kept_index = lab.link(ex.host_veth(ex.web2))["ifindex"]
    lab.write(ex.doc(namespaces=(ex.web2,)), ex.path)

    rc, out, err = lab.nsnet("plan", ex.path)
    assert f"- namespace {ex.web1}" in lab.lines(out), out + err
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err

    assert ex.web1 not in lab.netns_names()
    assert lab.wait_until(lambda: lab.link(ex.host_veth(ex.web1)) is None)
    lab.assert_example_live(ex, namespaces=(ex.web2,))
    assert lab.link(ex.host_veth(ex.web2))["ifindex"] == kept_index  # untouched, not recreated
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])


def test_changing_the_subnet_moves_addresses_and_routes(lab, applied):
    moved = dataclasses.replace(applied, subnet=lab.new_subnet())
    lab.write(moved.doc(), moved.path)

    rc, out, err = lab.nsnet("apply", moved.path)
    assert rc == 0, out + err
    lab.assert_example_live(moved)  # bridge .1, web1 .10, web2 .2, default via .1: all in the new subnet
    assert lab.no_changes(lab.nsnet("plan", moved.path)[1])


def test_destroy_removes_everything_and_twice_is_a_no_op(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert not {ex.web1, ex.web2} & lab.netns_names()
    assert lab.wait_until(lambda: not lab.links_with_alias(ex.label)), lab.links_with_alias(ex.label)

    rc, out, err = lab.nsnet("destroy", ex.path)
    assert (rc, out.strip()) == (0, "No changes."), out + err


def test_destroy_with_a_process_inside_a_namespace(lab, applied):
    ex = applied
    sleeper = lab.spawn(ex.web2, "sleep", "30")
    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert f"process {sleeper.pid} still runs in namespace {ex.web2}" in out
    assert lab.links_with_alias(ex.label) == []


def _snapshot(lab, kind, name):
    """What a foreign object looks like in the kernel (bridge timers, which tick, left out)."""
    if kind == "bridge":
        data = lab.ip_json("-d", "link", "show", "dev", name)
        info = data[0].get("linkinfo", {}).get("info_data", {})
        for key in [k for k in info if k.endswith("_timer")]:
            del info[key]
        return data
    return lab.ip_json("-n", name, "-d", "link", "show"), lab.ip_json("-n", name, "addr", "show")


@pytest.mark.parametrize("kind", ["bridge", "namespace"])
def test_a_foreign_object_with_a_wanted_name_is_refused(lab, kind):
    ex = lab.example()
    name = ex.bridge if kind == "bridge" else ex.web1
    (lab.foreign_bridge if kind == "bridge" else lab.foreign_namespace)(name)
    before = _snapshot(lab, kind, name)

    for command in ("plan", "apply"):
        rc, out, err = lab.nsnet(command, ex.path)
        assert rc == 1, out + err
        assert len(err.splitlines()) == 1 and name in err and "nsnet does not own" in err, err

    assert _snapshot(lab, kind, name) == before
    assert lab.links_with_alias(ex.label) == []
    other = ex.web2 if kind == "namespace" else ex.web1
    assert other not in lab.netns_names()


def test_two_topologies_coexist_and_destroy_is_scoped(lab):
    first, second = lab.example(), lab.example(suffix="b")
    for ex in (first, second):
        rc, out, err = lab.nsnet("apply", ex.path)
        assert rc == 0, out + err
    for ex in (first, second):
        assert lab.no_changes(lab.nsnet("plan", ex.path)[1])
        lab.assert_example_live(ex)

    assert lab.nsnet("destroy", first.path)[0] == 0
    assert not {first.web1, first.web2} & lab.netns_names()
    assert lab.wait_until(lambda: not lab.links_with_alias(first.label))
    lab.assert_example_live(second)
    assert lab.no_changes(lab.nsnet("plan", second.path)[1])


def test_saved_plan_applies_once_then_is_stale(lab):
    ex = lab.example()
    plan_file = lab.dir / "plan.json"
    rc, out, err = lab.nsnet("plan", "-o", plan_file, ex.path)
    assert rc == 0, out + err
    assert json.loads(plan_file.read_text())["kind"] == "nsnet-plan"

    rc, out, err = lab.nsnet("apply", plan_file)
    assert rc == 0, out + err
    lab.assert_example_live(ex)

    rc, out, err = lab.nsnet("apply", plan_file)
    assert rc == 1 and "stale" in err, out + err
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])


def test_a_namespace_made_again_keeps_its_mac_and_its_neighbour_reaches_it_at_once(lab, applied):
    """web1 talks to web2 (its ARP entry for web2 is then fresh for ~30 s); web2 is removed and made
    again with the same address: with a random MAC web1's SYNs went to the old MAC until that entry
    expired. The first connection after re-creation gets 3 s, far below the ARP reachable time."""
    ex = applied
    web2 = ex.expected[ex.web2].split("/")[0]
    mac = lab.link("eth0", ex.web2)["address"]
    lab.serve(ex.web2, web2, 8000, "first", lifetime=10)
    assert lab.connect_from(ex.web1, web2, 8000).startswith("first ")
    for namespaces in ((ex.web1,), (ex.web1, ex.web2)):
        lab.write(ex.doc(namespaces), ex.path)
        assert lab.nsnet("apply", ex.path)[0] == 0
    assert lab.link("eth0", ex.web2)["address"] == mac
    lab.serve(ex.web2, web2, 8001, "again", lifetime=10)
    assert lab.connect_from(ex.web1, web2, 8001, timeout=3).startswith("again ")


def test_bridge_mac_stays_when_ports_come_and_go(lab, applied):
    """A bridge without a fixed MAC takes its lowest port's, and neighbours' ARP entries go stale."""
    ex = applied
    mac = lab.link(ex.bridge)["address"]
    doc = ex.doc()
    doc["namespaces"][f"{lab.prefix}-web3"] = {"interfaces": {"eth0": {"bridge": ex.bridge}}}
    lab.write(doc, ex.path)
    assert lab.nsnet("apply", ex.path)[0] == 0
    assert lab.link(ex.bridge)["address"] == mac
    lab.write(ex.doc(), ex.path)
    assert lab.nsnet("apply", ex.path)[0] == 0
    assert lab.link(ex.bridge)["address"] == mac
