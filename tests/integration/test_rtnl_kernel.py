"""The rtnetlink codec against the real kernel: what it writes is what `ip`/`tc` read, and
what `ip`/`tc` write is what it reads. Every test works in namespaces of its own (a
random prefix), made with `ip netns add` and deleted even when the test fails."""

from __future__ import annotations

import json
import secrets
import subprocess
from typing import Any, Callable, Iterator

import pytest

from netplan_lite.kernel.netlink import Netlink
from netplan_lite.kernel.rtnl import address
from netplan_lite.kernel.rtnl.address import AddrMsg

pytestmark = pytest.mark.netns


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.strip()}"
    return proc.stdout


def in_ns(ns: str, *argv: str) -> str:
    return run("ip", "netns", "exec", ns, *argv)


def ip_json(ns: str, *args: str) -> Any:
    out = run("ip", "-n", ns, "-j", *args)
    return json.loads(out) if out.strip() else []


@pytest.fixture
def nl() -> Iterator[Netlink]:
    with Netlink() as session:
        yield session


@pytest.fixture
def namespace(nl: Netlink) -> Iterator[Callable[[str], str]]:
    """A factory of namespaces named with this test's random prefix; all deleted at the end
    (after the session's fds and sockets, which would keep them alive, are closed)."""
    prefix = "rk" + secrets.token_hex(3)
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{prefix}-{suffix}"
        run("ip", "netns", "add", name)
        made.append(name)
        return name

    try:
        yield make
    finally:
        nl.close()
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        left = set(run("ip", "netns", "list").split()) & set(made)
        assert not left, f"namespaces left behind: {left}"


def by_name(nl: Netlink, ns: str) -> dict[str, Any]:
    return {each.name: each for each in nl.links(ns)}


# links


def test_a_veth_pair_spans_two_namespaces_and_each_end_names_the_other_by_its_id(nl, namespace):
    a, b = namespace("a"), namespace("b")
    nl.add_veth_pair(a, "e12", b, "e21")
    end_a, end_b = by_name(nl, a)["e12"], by_name(nl, b)["e21"]
    assert end_a.kind == end_b.kind == "veth"
    assert end_a.peer == end_b.index and end_b.peer == end_a.index  # IFLA_LINK: the peer's index in its namespace
    assert end_a.link_netnsid is not None and end_a.link_netnsid == nl.nsid(a, b)
    assert end_b.link_netnsid is not None and end_b.link_netnsid == nl.nsid(b, a)
    assert [link["ifname"] for link in ip_json(a, "link", "show", "e12")] == ["e12"]
    assert by_name(nl, a)["lo"].link_netnsid is None


def test_a_namespace_without_a_link_to_another_gives_it_no_id(nl, namespace):
    a, c = namespace("a"), namespace("c")
    assert nl.nsid(a, c) is None


def pair(nl: Netlink, namespace: Callable[[str], str]) -> tuple[str, int, str, int]:
    """Two namespaces joined by an up veth pair: (a, index of e12 in a, b, index of e21 in b)."""
    a, b = namespace("a"), namespace("b")
    nl.add_veth_pair(a, "e12", b, "e21")
    ia, ib = nl.lookup(a, "e12"), nl.lookup(b, "e21")
    assert ia and ib
    nl.set_link(b, ib, up=True)
    nl.set_link(a, ia, up=True)
    return a, ia, b, ib


# addresses


def test_addresses_of_both_families_are_added_usable_at_once_and_deleted(nl, namespace):
    a, ia, b, ib = pair(nl, namespace)
    nl.add_address(a, ia, "10.1.0.1/24", 225)
    nl.add_address(a, ia, "fd00:1:0::1/64", 225)
    (shown,) = ip_json(a, "addr", "show", "dev", "e12")
    ipv6 = {i["local"]: i for i in shown["addr_info"] if i["family"] == "inet6"}
    assert ipv6["fd00:1::1"].get("nodad") and not ipv6["fd00:1::1"].get("tentative")
    assert {i["local"] for i in shown["addr_info"] if i["family"] == "inet"} == {"10.1.0.1"}
    ours = {m.cidr: m for m in _dump(nl, a)}
    assert ours["10.1.0.1/24"] == AddrMsg(ia, "10.1.0.1/24", 225, 4, False)
    assert ours["fd00:1::1/64"] == AddrMsg(ia, "fd00:1::1/64", 225, 6, False)
    in_ns(a, "python3", "-c", "import socket; socket.socket(socket.AF_INET6).bind(('fd00:1::1', 0))")  # not tentative: a bind works

    nl.delete_address(a, ia, "fd00:1::1/64")
    nl.delete_address(a, ia, "10.1.0.1/24")
    assert not {"fd00:1::1/64", "10.1.0.1/24"} & {m.cidr for m in _dump(nl, a)}


def test_an_address_still_in_duplicate_detection_reads_as_tentative(nl, namespace):
    a, ia, b, ib = pair(nl, namespace)
    run("ip", "-n", b, "addr", "add", "fd00:1::2/64", "dev", "e21")  # with DAD: tentative for ~1 s
    (found,) = [m for m in _dump(nl, b) if m.cidr == "fd00:1::2/64"]
    assert (found.index, found.family, found.tentative, found.proto) == (ib, 6, True, 0)


def _dump(nl: Netlink, ns: str) -> list[AddrMsg]:
    return address.dump_addresses(nl.sock(ns))
