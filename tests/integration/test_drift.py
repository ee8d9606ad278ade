"""Drift made by hand shows in plan and `show --check`, and apply repairs it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.netns


def delete_veth(lab, ex):
    lab.ip("link", "del", "dev", ex.host_veth(ex.web1))
    return [f"+ namespace {ex.web1} / interface eth0: bridge ", f"+ namespace {ex.web1} / route default: via "]


def change_address(lab, ex):
    lab.ip("-n", ex.web2, "addr", "del", ex.cidr(2), "dev", "eth0")
    lab.ip("-n", ex.web2, "addr", "add", ex.cidr(50), "dev", "eth0")
    return [f"~ namespace {ex.web2} / interface eth0: address {ex.cidr(50)} -> {ex.cidr(2)}"]


def namespace_end_down(lab, ex):
    lab.ip("-n", ex.web2, "link", "set", "eth0", "down")
    return [f"~ namespace {ex.web2} / interface eth0: state down -> up"]


def host_end_down(lab, ex):
    lab.ip("link", "set", ex.host_veth(ex.web2), "down")
    return [f"~ namespace {ex.web2} / interface eth0: host end state down -> up"]


def foreign_address(lab, ex):
    lab.ip("-n", ex.web1, "addr", "add", ex.cidr(99), "dev", "eth0")
    return [f"~ namespace {ex.web1} / interface eth0: address {ex.cidr(10)}, {ex.cidr(99)} -> {ex.cidr(10)}"]


def delete_default_route(lab, ex):
    lab.ip("-n", ex.web1, "route", "del", "default")
    return [f"+ namespace {ex.web1} / route default: via "]


@pytest.mark.parametrize(
    "drift", [delete_veth, change_address, namespace_end_down, host_end_down, foreign_address, delete_default_route], ids=lambda f: f.__name__
)
def test_drift_is_planned_and_repaired(lab, applied, drift):
    ex = applied
    expected = drift(lab, ex)

    rc, out, err = lab.nsnet("plan", ex.path)
    assert rc == 0, err
    assert all(any(line.startswith(e) for line in lab.lines(out)) for e in expected), out
    assert lab.nsnet("show", "--check", ex.path)[0] == 3

    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err

    rc, out, err = lab.nsnet("plan", ex.path)
    assert rc == 0 and lab.no_changes(out), out + err
    assert lab.nsnet("show", "--check", ex.path)[0] == 0
    lab.assert_example_live(ex)
