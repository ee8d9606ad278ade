"""Data-source namespaces (`path:`): an existing namespace is used, never created, labelled or
deleted; nsnet manages only what it makes inside, and removes just that."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.netns


def container(lab) -> subprocess.Popen:
    """A process in a network namespace of its own, as a container runtime makes one (not under /run/netns)."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    lab.procs.append(proc)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
            return proc
        time.sleep(0.01)
    raise AssertionError("unshare did not enter a new namespace")


def in_container(lab, proc, *argv: str) -> str:
    rc, out, err = lab.run("nsenter", "-t", str(proc.pid), "-n", *argv)
    assert rc == 0, err
    return out


def attach(lab, ex, proc: subprocess.Popen) -> str:
    """The example plus the container's namespace as a forwarding data source with an eth0 on the bridge."""
    doc = ex.doc()
    app = lab.prefix + "-app"
    doc["namespaces"][app] = {"path": f"/proc/{proc.pid}/ns/net", "forwarding": True, "interfaces": {"eth0": {"bridge": ex.bridge}}}
    lab.write(doc, ex.path)
    return app


def test_a_containers_namespace_gets_an_interface_and_keeps_what_is_its_own(lab, applied):
    ex = applied
    proc = container(lab)
    in_container(lab, proc, "ip", "link", "add", "own0", "type", "veth", "peer", "name", "own1")  # not nsnet's
    in_container(lab, proc, "ip", "link", "set", "lo", "up")
    app = attach(lab, ex, proc)

    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert f"+ namespace {app}  [" not in out and f"+ namespace {app} / interface eth0" in out, out  # used, not created
    assert app not in lab.netns_names()
    addresses = in_container(lab, proc, "ip", "-br", "addr", "show", "dev", "eth0")
    assert ex.cidr(3) in addresses, addresses
    assert "own0" in in_container(lab, proc, "ip", "-br", "link")
    assert in_container(lab, proc, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])

    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert proc.poll() is None  # the namespace and its process live on
    links = in_container(lab, proc, "ip", "-br", "link")
    assert "eth0" not in links and "own0" in links, links
    assert in_container(lab, proc, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"  # restored
    assert "lo" in links and "UNKNOWN" in in_container(lab, proc, "ip", "-br", "link", "show", "lo")


def test_a_data_source_left_out_of_the_file_loses_only_what_nsnet_made(lab, applied):
    ex = applied
    other = lab.prefix + "-other"
    lab.foreign_namespace(other)  # another tool's, under /run/netns
    doc = ex.doc()
    doc["namespaces"][other] = {"path": f"/run/netns/{other}", "interfaces": {"eth0": {"bridge": ex.bridge}}}
    lab.write(doc, ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert lab.link("eth0", other) is not None

    lab.write(ex.doc(), ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert any(line.startswith(f"- namespace {other} / interface eth0") for line in lab.lines(out)), out
    assert other in lab.netns_names() and lab.link("eth0", other) is None
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])


def test_a_missing_data_source_is_an_error_that_changes_nothing(lab, applied):
    ex = applied
    doc = ex.doc()
    doc["namespaces"][lab.prefix + "-gone"] = {"path": "/proc/999999999/ns/net", "interfaces": {}}
    lab.write(doc, ex.path)
    for command in ("plan", "apply"):
        rc, out, err = lab.nsnet(command, ex.path)
        assert rc == 1 and "nothing at /proc/999999999/ns/net is a network namespace" in err, out + err


def test_destroy_after_the_container_is_gone_leaves_nothing_behind(lab, applied):
    ex = applied
    proc = container(lab)
    attach(lab, ex, proc)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    proc.kill()
    proc.wait(timeout=10)  # the container exits: its namespace, veth and sysctls go with it
    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert not os.path.exists(f"/run/nsnet/{ex.topology}"), os.listdir(f"/run/nsnet/{ex.topology}")
