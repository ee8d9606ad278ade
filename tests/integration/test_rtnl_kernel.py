"""The rtnetlink codec against the real kernel: what it writes is what `ip`/`tc` read, and
what `ip`/`tc` write is what it reads. Every test works in namespaces of its own (a
random prefix), made with `ip netns add` and deleted even when the test fails."""

from __future__ import annotations

import dataclasses
import errno
import json
import re
import secrets
import shutil
import struct
import subprocess
from typing import Any, Callable, Iterator

import pytest

from netplan_lite.kernel.netlink import Netlink
from netplan_lite.kernel.rtnl import address, qdisc, route
from netplan_lite.kernel.rtnl.address import AddrMsg
from netplan_lite.kernel.rtnl.qdisc import QdiscMsg
from netplan_lite.kernel.rtnl.route import ConnectedMsg, RouteMsg
from netplan_lite.model import netem as netem_units
from netplan_lite.model.netem import Netem

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


# routes


def routed_pair(nl: Netlink, namespace: Callable[[str], str]) -> tuple[str, int]:
    """A namespace `a` whose e12 reaches three gateways of each family (on b's end)."""
    a, ia, b, ib = pair(nl, namespace)
    nl.add_address(a, ia, "10.1.0.1/24", 225)
    nl.add_address(a, ia, "fd00:1::1/64", 225)
    for host in (2, 3, 4):
        nl.add_address(b, ib, f"10.1.0.{host}/24", 225)
        nl.add_address(b, ib, f"fd00:1::{host}/64", 225)
    return a, ia


def configured(nl: Netlink, ns: str) -> dict[tuple[str, int | None], RouteMsg]:
    """The routes the codec reads in `ns`, both families, by (destination, metric)."""
    found = [r for r in map(route.configured_route, route.dump_routes(nl.sock(ns), None)) if r]
    return {(r.to, r.metric): r for r in found}


def shown(ns: str, family: str, to: str) -> list[dict[str, Any]]:
    return ip_json(ns, family, "route", "show", "table", "main", "exact", to)


ROUTES = [
    RouteMsg("0.0.0.0/0", ("10.1.0.2",), 225),
    RouteMsg("10.9.0.0/16", ("10.1.0.2", "10.1.0.3"), 225),
    RouteMsg("10.66.0.0/16", (), 225, "blackhole"),
    RouteMsg("10.67.0.0/16", (), 225, "unreachable", metric=7),
    RouteMsg("10.68.0.0/16", (), 225, "prohibit"),
    RouteMsg("::/0", ("fd00:1::2",), 225),
    RouteMsg("fd00:9::/64", ("fd00:1::2", "fd00:1::3", "fd00:1::4"), 225, metric=20),
    RouteMsg("fd66::/16", (), 225, "blackhole"),
    RouteMsg("fd67::/16", (), 225, "unreachable"),
    RouteMsg("fd68::/16", (), 225, "prohibit", metric=5),
]


def test_every_kind_of_route_written_by_the_codec_reads_back_the_same_in_ip_and_in_the_codec(nl, namespace):
    a, ia = routed_pair(nl, namespace)
    kernel_made = set(configured(nl, a))
    assert not kernel_made  # connected, link-local, multicast, ::1: none of them is the kernel's to show as ours
    device = [RouteMsg("10.77.0.0/16", (), 225, dev=ia, metric=50), RouteMsg("fd77::/64", (), 225, dev=ia)]
    for msg in ROUTES + device:
        nl.replace_route(a, msg)
    read = configured(nl, a)
    for msg in ROUTES + device:
        single_path_unicast = msg.type == "unicast" and len(msg.via) <= 1
        assert read.pop((msg.to, msg.metric)) == (dataclasses.replace(msg, dev=ia) if single_path_unicast else msg)
    assert not read

    (ecmp,) = shown(a, "-6", "fd00:9::/64")
    assert (ecmp["metric"], sorted(hop["gateway"] for hop in ecmp["nexthops"])) == (20, ["fd00:1::2", "fd00:1::3", "fd00:1::4"])
    (ecmp,) = shown(a, "-4", "10.9.0.0/16")
    assert sorted(hop["gateway"] for hop in ecmp["nexthops"]) == ["10.1.0.2", "10.1.0.3"]
    (device_route,) = shown(a, "-4", "10.77.0.0/16")
    assert (device_route["dev"], device_route["scope"], device_route["metric"], device_route["protocol"]) == ("e12", "link", 50, "225")
    (reject,) = shown(a, "-6", "fd68::/16")
    assert (reject["type"], reject["metric"]) == ("prohibit", 5)
    assert [r["type"] for r in shown(a, "-4", "10.67.0.0/16")] == ["unreachable"]
    assert not [r for r in route.dump_routes(nl.sock(a)) if r.family != 4]  # pre-flight's dump stays IPv4


def test_a_replace_changes_next_hops_and_type_in_place_and_a_delete_takes_the_route_whole(nl, namespace):
    a, ia = routed_pair(nl, namespace)
    for to, gateways in (("10.9.0.0/16", ("10.1.0.2", "10.1.0.3", "10.1.0.4")), ("fd00:9::/64", ("fd00:1::2", "fd00:1::3", "fd00:1::4"))):
        for via in (gateways[:2], gateways, gateways[1:2]):
            nl.replace_route(a, RouteMsg(to, via, 225))
            assert [r.via for key, r in configured(nl, a).items() if key[0] == to] == [via]
        nl.replace_route(a, RouteMsg(to, gateways, 225))
        nl.replace_route(a, RouteMsg(to, (), 225, "blackhole"))
        assert [r for key, r in configured(nl, a).items() if key[0] == to] == [RouteMsg(to, (), 225, "blackhole")]
        nl.replace_route(a, RouteMsg(to, gateways, 225))
        nl.replace_route(a, RouteMsg(to, gateways[:1], 225, metric=50))  # another metric: another route
        assert {key for key in configured(nl, a) if key[0] == to} == {(to, None), (to, 50)}
        nl.delete_route(a, RouteMsg(to, (), 225, metric=50))
        assert [r.via for key, r in configured(nl, a).items() if key[0] == to] == [gateways]
        nl.delete_route(a, RouteMsg(to, (), 225))
        assert not [key for key in configured(nl, a) if key[0] == to]


def test_routes_written_with_ip_read_as_the_codec_writes_them(nl, namespace):
    a, ia = routed_pair(nl, namespace)
    run("ip", "-n", a, "-6", "route", "add", "fd00:9::/64", "nexthop", "via", "fd00:1::4", "nexthop", "via", "fd00:1::2")
    run("ip", "-n", a, "route", "add", "10.9.0.0/16", "nexthop", "via", "10.1.0.3", "nexthop", "via", "10.1.0.2")
    run("ip", "-n", a, "route", "add", "blackhole", "10.66.0.0/16", "metric", "7")
    run("ip", "-n", a, "-6", "route", "add", "unreachable", "fd67::/16")
    run("ip", "-n", a, "route", "add", "10.77.0.0/16", "dev", "e12", "proto", "static")
    boot = 3  # what `ip route add` gives a route unless told
    assert configured(nl, a) == {
        ("fd00:9::/64", None): RouteMsg("fd00:9::/64", ("fd00:1::2", "fd00:1::4"), boot),
        ("10.9.0.0/16", None): RouteMsg("10.9.0.0/16", ("10.1.0.2", "10.1.0.3"), boot),
        ("10.66.0.0/16", 7): RouteMsg("10.66.0.0/16", (), boot, "blackhole", metric=7),
        ("fd67::/16", None): RouteMsg("fd67::/16", (), boot, "unreachable"),
        ("10.77.0.0/16", None): RouteMsg("10.77.0.0/16", (), 4, dev=ia),
    }
    snap = nl.snapshot(a)
    assert ConnectedMsg("10.1.0.0/24", ia) in snap.connected and all(c.to.count(".") == 3 for c in snap.connected)

    for theirs in (RouteMsg("10.66.0.0/16", (), boot, "blackhole", metric=7), RouteMsg("fd67::/16", (), boot, "unreachable")):
        with pytest.raises(OSError) as refused:  # a delete names its protocol: nsnet's never takes another's route
            nl.delete_route(a, dataclasses.replace(theirs, proto=225))
        assert refused.value.errno == errno.ESRCH
        nl.delete_route(a, theirs)
        assert (theirs.to, theirs.metric) not in configured(nl, a)


# qdiscs


def tc_request(ns: str, *args: str) -> bytes:
    """The RTM_NEWQDISC body `tc ARGS` sends in `ns` (read with strace: the kernel need not accept it)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "strace", "-e", "trace=sendmsg", "-e", "write=3", "tc", *args], capture_output=True, text=True, timeout=30
    )
    sent: list[bytearray] = []
    for line in proc.stderr.splitlines():
        if line.startswith(" * "):  # " * N bytes in buffer 0": a message follows, 16 bytes a line
            sent.append(bytearray())
        elif (hexed := re.match(r" \| [0-9a-f]{5}  (.{48})", line)) and sent:
            sent[-1] += bytes.fromhex(hexed[1].replace(" ", ""))
    (request,) = [m for m in sent if len(m) > 16 and struct.unpack_from("=H", m, 4)[0] == qdisc.RTM_NEWQDISC]
    return bytes(request[16:])


@pytest.fixture
def netem_kernel(nl, namespace) -> tuple[str, int]:
    """(namespace, link index) of an up veth end, or a skip if this kernel has no netem."""
    a, ia, b, ib = pair(nl, namespace)
    try:
        qdisc.set_netem(nl.sock(a), ia, Netem(delay=MS), "add")
    except qdisc.NetemUnavailable:
        pytest.skip("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)")
    qdisc.delete_root_qdisc(nl.sock(a), ia)
    return a, ia


MS = 1_000_000
SPECS = {
    "delay 20ms 5ms loss 1% rate 100mbit": {"delay": "20ms", "jitter": "5ms", "loss": "1%", "rate": "100mbit"},
    "delay 1s duplicate 2% reorder 25% corrupt 0.5% limit 500": {"delay": "1s", "duplicate": "2%", "reorder": "25%", "corrupt": "0.5%", "limit": 500},
    "rate 40gbit": {"rate": "40gbit"},
}


@pytest.mark.skipif(shutil.which("strace") is None, reason="reads tc's request with strace")
@pytest.mark.parametrize("args", SPECS)
def test_the_installed_tc_asks_for_the_same_netem_as_the_codec(nl, namespace, args):
    a, ia, b, ib = pair(nl, namespace)
    theirs = tc_request(a, "qdisc", "add", "dev", "e12", "root", "netem", *args.split())
    ours = qdisc.netem_body(ia, netem_units.parse(SPECS[args]))
    assert theirs[:20] == ours[:20]  # tcmsg: the link, handle 0, parent root
    assert qdisc.decode_qdisc(theirs, 0, len(theirs)) == qdisc.decode_qdisc(ours, 0, len(ours))


def test_root_qdiscs_are_dumped_with_their_handles_and_deleted(nl, namespace):
    a, ia, b, ib = pair(nl, namespace)
    sock = nl.sock(a)
    assert QdiscMsg(ia, 0, qdisc.TC_H_ROOT, "noqueue", None) in qdisc.dump_qdiscs(sock)  # the kernel's default for a veth
    run("tc", "-n", a, "qdisc", "add", "dev", "e12", "root", "handle", "5:", "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms")
    assert [q for q in qdisc.dump_qdiscs(sock) if q.index == ia and q.parent == qdisc.TC_H_ROOT] == [
        QdiscMsg(ia, 0x50000, qdisc.TC_H_ROOT, "tbf", None)
    ]
    qdisc.delete_root_qdisc(sock, ia)
    assert [q.kind for q in qdisc.dump_qdiscs(sock) if q.index == ia] == ["noqueue"]
    with pytest.raises(OSError) as nothing:
        qdisc.delete_root_qdisc(sock, ia)
    assert nothing.value.errno == errno.ENOENT
    assert [q["kind"] for q in json.loads(run("tc", "-n", a, "-j", "qdisc", "show", "dev", "e12"))] == ["noqueue"]


def root_netem(nl: Netlink, ns: str, index: int) -> QdiscMsg:
    (found,) = [q for q in qdisc.dump_qdiscs(nl.sock(ns)) if q.index == index and q.parent == qdisc.TC_H_ROOT]
    assert found.kind == "netem"
    return found


@pytest.mark.parametrize("args", SPECS)
def test_a_netem_set_by_tc_reads_back_as_the_file_would_write_it(nl, netem_kernel, args):
    a, ia = netem_kernel
    run("tc", "-n", a, "qdisc", "add", "dev", "e12", "root", "netem", *args.split())
    assert root_netem(nl, a, ia).netem == netem_units.parse(SPECS[args])


def test_a_netem_set_by_the_codec_reads_back_the_same_in_tc_and_in_the_codec_and_changes_in_place(nl, netem_kernel):
    a, ia = netem_kernel
    sock = nl.sock(a)
    wanted = netem_units.parse({"delay": "20ms", "jitter": "5ms", "loss": "1%", "rate": "100mbit", "corrupt": "0.5%", "reorder": "25%", "limit": 500})
    qdisc.set_netem(sock, ia, wanted, "add")
    first = root_netem(nl, a, ia)
    assert first.netem == wanted and first.handle
    (shown,) = json.loads(run("tc", "-n", a, "-j", "qdisc", "show", "dev", "e12"))
    options = shown["options"]
    assert (shown["kind"], options["limit"], options["rate"]["rate"]) == ("netem", 500, 12_500_000)
    assert (options["delay"]["delay"], options["delay"]["jitter"]) == pytest.approx((0.020, 0.005))
    assert (options["loss-random"]["loss"], options["corrupt"]["corrupt"], options["reorder"]["reorder"]) == pytest.approx((0.01, 0.005, 0.25))

    smaller = Netem(delay=30 * MS)  # everything else back to zero: the kernel would keep reorder, corrupt and rate unless told
    qdisc.set_netem(sock, ia, smaller, "change")
    changed = root_netem(nl, a, ia)
    assert (changed.handle, changed.netem) == (first.handle, smaller)  # in place: the same qdisc
    qdisc.set_netem(sock, ia, wanted, "replace")
    assert root_netem(nl, a, ia).netem == wanted
    run("tc", "-n", a, "qdisc", "change", "dev", "e12", "root", "netem", "delay", "50ms")  # by hand: what a reader sees as drift
    assert root_netem(nl, a, ia).netem.delay == 50 * MS
    qdisc.delete_root_qdisc(sock, ia)
    assert [q.kind for q in qdisc.dump_qdiscs(sock) if q.index == ia] == ["noqueue"]


def test_a_change_with_no_netem_there_is_refused(nl, netem_kernel):
    a, ia = netem_kernel
    with pytest.raises(OSError) as refused:
        qdisc.set_netem(nl.sock(a), ia, Netem(delay=MS), "change")
    assert refused.value.errno == errno.ENOENT and not isinstance(refused.value, qdisc.NetemUnavailable)


def test_a_kernel_without_netem_is_named(nl, namespace):
    a, ia, b, ib = pair(nl, namespace)
    try:
        qdisc.set_netem(nl.sock(a), ia, Netem(delay=MS), "replace")
    except qdisc.NetemUnavailable as err:
        assert "CONFIG_NET_SCH_NETEM" in str(err)
    else:
        qdisc.delete_root_qdisc(nl.sock(a), ia)
        pytest.skip("this kernel has netem")


# snapshots


def test_a_snapshot_holds_both_families_and_the_root_qdiscs_someone_set(nl, namespace):
    a, ia = routed_pair(nl, namespace)
    nl.set_link(a, nl.lookup(a, "lo"), up=True)  # ::1, and the kernel's routes for it
    nl.replace_route(a, RouteMsg("fd00:9::/64", ("fd00:1::2", "fd00:1::3"), 225))
    nl.replace_route(a, RouteMsg("10.9.0.0/16", ("10.1.0.2",), 225))
    run("tc", "-n", a, "qdisc", "add", "dev", "e12", "root", "handle", "7:", "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms")
    snap = nl.snapshot(a)
    ours = {(m.cidr, m.family) for m in snap.addresses if m.proto == 225}
    assert ours == {("10.1.0.1/24", 4), ("fd00:1::1/64", 6)}
    assert ("::1/128", 6) in {(m.cidr, m.family) for m in snap.addresses}  # lo's, read like any other
    assert set(snap.routes) == {RouteMsg("fd00:9::/64", ("fd00:1::2", "fd00:1::3"), 225), RouteMsg("10.9.0.0/16", ("10.1.0.2",), 225, dev=ia)}
    assert snap.connected == (ConnectedMsg("10.1.0.0/24", ia),)
    assert snap.qdiscs == (QdiscMsg(ia, 0x70000, qdisc.TC_H_ROOT, "tbf", None),) == nl.qdiscs(a)  # not lo's or the peer's defaults
    nl.delete_qdisc(a, ia)
    assert nl.qdiscs(a) == () == nl.snapshot(a).qdiscs


def test_netem_through_the_session_is_set_read_changed_and_deleted(nl, netem_kernel):
    a, ia = netem_kernel
    nl.set_netem(a, ia, Netem(delay=20 * MS, loss=netem_units.parse_percent("1%")), "add")
    (first,) = nl.snapshot(a).qdiscs
    nl.set_netem(a, ia, Netem(delay=10 * MS), "change")
    assert nl.qdiscs(a) == (QdiscMsg(ia, first.handle, qdisc.TC_H_ROOT, "netem", Netem(delay=10 * MS)),)
    nl.delete_qdisc(a, ia)
    assert nl.qdiscs(a) == ()
