"""`nsnet plan|apply --target NAMESPACE` against the kernel: only the target is read and changed."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.netns


def test_adding_one_namespace_with_target_touches_nothing_else(lab, applied):
    ex = applied
    doc = ex.doc()
    new = lab.prefix + "-web3"
    lab.namespaces.add(new)
    doc["namespaces"][new] = {"interfaces": {"eth0": {"bridge": ex.bridge}}}
    del doc["namespaces"][ex.web2]  # left out of the file, yet not a target: kept
    lab.write(doc, ex.path)
    web1_index = lab.link(ex.host_veth(ex.web1))["ifindex"]

    rc, out, err = lab.nsnet("plan", "--target", new, ex.path)
    assert rc == 0, out + err
    assert lab.lines(out)[0] == f"nsnet will perform these actions on topology '{ex.topology}' in namespace {new}:", out
    assert "This plan is partial (--target)" in out and ex.web2 not in out, out

    rc, out, err = lab.nsnet("apply", "--target", new, "--json", ex.path)
    assert rc == 0, out + err
    result = json.loads(out)
    assert result["targets"] == [new] and result["run"]["converged"], result
    assert {ex.web1, ex.web2, new} <= lab.netns_names()
    assert lab.addresses(new, "eth0") == [ex.cidr(3)]  # around web1's .10 and web2's .2, which it did not read
    assert lab.link(ex.host_veth(ex.web1))["ifindex"] == web1_index

    rc, out, err = lab.nsnet("plan", ex.path)  # the whole topology: only web2 is left to delete
    assert f"- namespace {ex.web2}" in lab.lines(out) and new not in out, out


def test_an_unknown_target_is_a_user_error_that_changes_nothing(lab, applied):
    ex = applied
    for command in ("plan", "apply"):
        rc, out, err = lab.nsnet(command, "--target", "nosuchns", ex.path)
        assert rc == 1 and out == "", out + err
        assert err.startswith(f"nsnet: {ex.path}: --target nosuchns: no namespace nosuchns in the topology"), err
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])
