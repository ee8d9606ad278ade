"""Namespace sysctls against the real kernel: set inside the namespace, drift repaired,
restored when the key leaves the file, gone with the namespace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns

RUN = Path("/run/nsnet")


def sysctl(lab, ns: str, key: str) -> str:
    rc, out, err = lab.run("ip", "netns", "exec", ns, "cat", "/proc/sys/" + key.replace(".", "/"))
    assert rc == 0, err
    return " ".join(out.split())


def with_sysctls(ex, **by_namespace: dict) -> dict:
    doc = ex.doc()
    for ns, extra in by_namespace.items():
        doc["namespaces"][ns].update(extra)
    return doc


def apply(lab, ex, doc: dict) -> str:
    lab.write(doc, ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])
    return out


def test_forwarding_sets_both_families_and_leaves_other_namespaces_alone(lab, applied):
    ex = applied
    out = apply(lab, ex, with_sysctls(ex, **{ex.web1: {"forwarding": True, "sysctls": {"net.ipv4.conf.all.rp_filter": 2}}}))
    assert f"+ namespace {ex.web1} / sysctl net.ipv4.ip_forward" in out, out
    assert (sysctl(lab, ex.web1, "net.ipv4.ip_forward"), sysctl(lab, ex.web1, "net.ipv6.conf.all.forwarding")) == ("1", "1")
    assert sysctl(lab, ex.web1, "net.ipv4.conf.all.rp_filter") == "2"
    assert sysctl(lab, ex.web2, "net.ipv4.ip_forward") == "0"
    record = json.loads((RUN / ex.topology / "sysctls.json").read_text())
    assert record[ex.web1]["original"] == {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0", "net.ipv4.conf.all.rp_filter": "0"}


def test_a_key_changed_by_hand_is_drift_and_repaired(lab, applied):
    ex = applied
    apply(lab, ex, with_sysctls(ex, **{ex.web1: {"forwarding": True}}))
    lab.run("ip", "netns", "exec", ex.web1, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
    rc, out, err = lab.nsnet("plan", ex.path)
    assert f"~ namespace {ex.web1} / sysctl net.ipv4.ip_forward: value 0 -> 1" in lab.lines(out), out + err
    apply(lab, ex, with_sysctls(ex, **{ex.web1: {"forwarding": True}}))
    assert sysctl(lab, ex.web1, "net.ipv4.ip_forward") == "1"


def test_a_key_left_out_of_the_file_is_restored(lab, applied):
    ex = applied
    apply(lab, ex, with_sysctls(ex, **{ex.web1: {"sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.ip_local_port_range": "20000 30000"}}}))
    assert sysctl(lab, ex.web1, "net.ipv4.ip_local_port_range") == "20000 30000"
    out = apply(lab, ex, with_sysctls(ex, **{ex.web1: {"sysctls": {"net.ipv4.ip_forward": 1}}}))
    assert "net.ipv4.ip_local_port_range restored to 32768 60999 in " + ex.web1 in out, out
    assert sysctl(lab, ex.web1, "net.ipv4.ip_local_port_range") == "32768 60999"
    out = apply(lab, ex, ex.doc())
    assert sysctl(lab, ex.web1, "net.ipv4.ip_forward") == "0"
    assert not (RUN / ex.topology / "sysctls.json").exists()


def test_destroy_takes_the_sysctls_with_the_namespace(lab, applied):
    ex = applied
    apply(lab, ex, with_sysctls(ex, **{ex.web1: {"forwarding": True}}))
    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert any(line.startswith(f"- namespace {ex.web1} / sysctl net.ipv4.ip_forward (goes with namespace {ex.web1})") for line in lab.lines(out)), out
    assert not (RUN / ex.topology / "sysctls.json").exists()
    rc, out, err = lab.nsnet("apply", ex.path)  # made again: a fresh namespace, set afresh
    assert rc == 0, out + err
    assert sysctl(lab, ex.web1, "net.ipv4.ip_forward") == "1"


def test_an_unknown_key_fails_the_apply_and_rolls_back(lab, applied):
    ex = applied
    lab.write(with_sysctls(ex, **{ex.web1: {"sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.no_such_key": 1}}}), ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc != 0 and "net.ipv4.no_such_key" in out + err, out + err
    assert sysctl(lab, ex.web1, "net.ipv4.ip_forward") == "0"  # rolled back: restored
    lab.write(ex.doc(), ex.path)
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])
