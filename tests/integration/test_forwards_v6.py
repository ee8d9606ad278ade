"""Dual-stack port forwards: the inet table's IPv6 rules against the kernel, and the move from an
older nsnet's `ip` table to the `inet` one.

Until the desired state gives interfaces IPv6 addresses, the IPv6 side is built here with `ip`
argv and the table is made by resources/nat.py and written by kernel/nftables.py directly, as
apply would write it. Traffic goes only to ::1, 127.0.0.1 and addresses of the test's own
bridges, links and namespaces: an IPv6 "host address" is one the test puts on a portless bridge
of its own (this kernel has no dummy driver). What needs the host to forward IPv6 (prerouting
from elsewhere, hairpin, masquerade) runs in a host of its own: a namespace standing in for the
host, so net.ipv6.conf.all.forwarding of the real host is never touched. Every nft table a test
writes is deleted by its exact name, in both families, even on failure.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from ipaddress import IPv4Interface, IPv6Address, IPv6Interface, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Iterator

import pytest

from netplan_lite.kernel import nftables
from netplan_lite.model.loader import load_file
from netplan_lite.model.topology import Bridge, Interface, Namespace, PortForward, Topology
from netplan_lite.render.plans import resource_json
from netplan_lite.resources.nat import IPV6_FORWARD, desired_nat, table_name
from netplan_lite.resources.nft_table import NftChain, NftRule, NftTableState

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
TCP_SERVER = str(Path(__file__).with_name("tcp_server.py"))
CLIENT = str(Path(__file__).with_name("tcp_client.py"))
SHORT = 2.0
FAMILIES = ("inet", "ip")
WRITE_TABLE = """
import json, sys
from netplan_lite.kernel import nftables
from netplan_lite.resources.registry import decode
nftables.replace_table(decode(json.load(sys.stdin)))
"""  # run inside a namespace: nft writes the table of the namespace it runs in


def run(*cmd: str, timeout: float = 30, stdin: str | None = None) -> tuple[int, str, str]:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=stdin)
    return done.returncode, done.stdout, done.stderr


def ok(*cmd: str, stdin: str | None = None) -> str:
    rc, out, err = run(*cmd, stdin=stdin)
    assert rc == 0, f"{' '.join(cmd)}: {err.strip()}"
    return out


def nft_tables() -> set[tuple[str, str]]:
    doc = json.loads(ok("nft", "-j", "list", "tables"))
    return {(t["table"]["family"], t["table"]["name"]) for t in doc["nftables"] if "table" in t}


def free_prefix() -> IPv6Network:
    """A random /48 of fd00::/8 that no route of the host (but a default one) overlaps."""
    taken = [ip_network(r["dst"]) for r in json.loads(ok("ip", "-6", "-j", "route", "show", "table", "all")) if r["dst"] not in ("default", "::/0")]
    for _ in range(100):
        candidate = IPv6Network(f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}::/48")
        if not any(candidate.overlaps(t) for t in taken if t.version == 6):
            return candidate
    pytest.fail("no free /48 in fd00::/8")


def free_port(lab: Any) -> int:
    """A port free for IPv4 (lab.free_ports) and for IPv6 too, on the host."""
    while True:
        (port,) = lab.free_ports(1)
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(("::", port))
            return port
        except OSError:
            continue


def tcp_from(ns: str, address: str, port: int, timeout: float = SHORT) -> str | None:
    rc, out, err = run("ip", "netns", "exec", ns, sys.executable, CLIENT, address, str(port), str(timeout), timeout=timeout + 20)
    assert rc in (0, 3), err
    return out.strip() if rc == 0 else None


class Tables:
    """nft tables the test writes itself for topologies without a file, deleted by exact name in both families."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def cleanup(self) -> None:
        for family, name in sorted(nft_tables()):
            if name in self.names and family in FAMILIES:
                run("nft", "delete", "table", family, name)


@pytest.fixture
def tables() -> Iterator[Tables]:
    t = Tables()
    try:
        yield t
    finally:
        t.cleanup()


def ipv4_lab(lab: Any, port: int, suffix: str = "") -> tuple[Path, str, str]:
    """Applied by nsnet: bridge <prefix>b (lab.subnet) and namespace <prefix>-web (.10) with a
    forward of `port` to its port 80. (path, bridge, namespace). The lab's `nsnet destroy`
    removes its table, and fails the test if it did not."""
    bridge, web = f"{lab.prefix}b{suffix}", f"{lab.prefix}{suffix}-web"
    doc = {
        "name": f"{lab.prefix}{suffix}",
        "bridges": {bridge: {"subnet": str(lab.subnet)}},
        "namespaces": {web: {"interfaces": {"eth0": {"bridge": bridge, "address": str(lab.subnet[10])}}}},
        "port_forwards": [{"host_port": port, "namespace": web, "port": 80}],
    }
    path = lab.write(doc, lab.dir / f"topology{suffix}.yaml")
    rc, out, err = lab.nsnet("apply", path)
    assert rc == 0, out + err
    return path, bridge, web


def with_ipv6(topology: Topology, subnet6: IPv6Network) -> Topology:
    """The loaded IPv4 topology with an IPv6 subnet on its bridge, gateway ::1 (what the dual-stack file keys give)."""
    bridge = dataclasses.replace(topology.bridges[0], subnet6=subnet6, gateway6=subnet6[1])
    return dataclasses.replace(topology, bridges=(bridge,))


# 1. the real host: output DNAT of the host's own connections


def test_ipv6_forward_reaches_the_namespace_from_the_bridge_gateway_and_a_host_address(lab):
    port = free_port(lab)
    path, bridge, web = ipv4_lab(lab, port)
    prefix = free_prefix()
    subnet6 = list(prefix.subnets(new_prefix=64))[1]
    gateway6, web6 = subnet6[1], subnet6[10]
    host6 = list(prefix.subnets(new_prefix=64))[2][1]
    # the IPv6 side, as the dual-stack desired state will make it: addresses without DAD, a default route
    ok("ip", "addr", "add", f"{gateway6}/64", "dev", bridge, "nodad")
    ok("ip", "-n", web, "addr", "add", f"{web6}/64", "dev", "eth0", "nodad")
    ok("ip", "-n", web, "-6", "route", "add", "default", "via", str(gateway6), "dev", "eth0")
    # a global address of the host's own, on a link of the test's (a portless bridge carries it)
    holder = f"{lab.prefix}h6"
    lab.foreign_bridge(holder)
    ok("ip", "link", "set", holder, "addrgenmode", "none")
    ok("ip", "link", "set", holder, "up")
    ok("ip", "addr", "add", f"{host6}/128", "dev", holder, "nodad")

    topology = with_ipv6(load_file(path), subnet6)
    table, sysctls = desired_nat(topology, {(web, "eth0"): IPv4Interface(f"{lab.subnet[10]}/24")}, {(web, "eth0"): IPv6Interface(f"{web6}/64")})
    assert table is not None and IPV6_FORWARD in {s.key for s in sysctls}
    nftables.replace_table(table)  # what apply writes: the IPv4 rules nsnet wrote, plus IPv6's
    assert nftables.read_tables()[table.name] == table  # read back equal: no false drift from the inet table
    assert ("ip", table.name) not in nft_tables()

    lab.serve(web, "0.0.0.0", 80, "web4")
    lab.serve(web, str(web6), 80, "web6")
    for address in (gateway6, host6):  # the host's own connections keep its address as source
        assert lab.tcp_from_host(str(address), port) == f"web6 {address}", address
    assert lab.tcp_from_host("127.0.0.1", port) == f"web4 {lab.subnet[1]}"  # IPv4 as before, in the same table
    # [::1] is left alone: nothing listens there, so the connection is refused at once instead of hanging
    started = time.monotonic()
    assert lab.tcp_from_host("::1", port, timeout=SHORT) is None
    assert time.monotonic() - started < SHORT / 2


# 2. a host of its own: prerouting, hairpin and masquerade need the host to forward IPv6


def test_ipv6_prerouting_hairpin_and_masquerade_in_a_host_of_its_own(lab):
    p = lab.prefix
    host, web, client, remote = f"{p}-h", f"{p}-w", f"{p}-c", f"{p}-r"
    for ns in (host, web, client, remote):
        lab.foreign_namespace(ns)
        ok("ip", "-n", ns, "link", "set", "lo", "up")
        # before any link: DAD of the link-local addresses would keep IPv6 dead ~2 s (docs/design.md)
        ok("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    prefix = free_prefix()
    subnet6, uplink = list(prefix.subnets(new_prefix=64))[1:3]
    gateway6, web6, client6, up_host, up_remote = subnet6[1], subnet6[10], subnet6[11], uplink[1], uplink[2]
    ok("ip", "netns", "exec", host, "sysctl", "-q", "-w", f"{IPV6_FORWARD}=1")  # that namespace's own switch
    ok("ip", "-n", host, "link", "add", "br0", "type", "bridge")
    ok("ip", "-n", host, "link", "set", "br0", "up")
    ok("ip", "-n", host, "addr", "add", f"{gateway6}/64", "dev", "br0", "nodad")
    for ns, address in ((web, web6), (client, client6)):
        ok("ip", "-n", host, "link", "add", f"v{ns[-1]}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        ok("ip", "-n", host, "link", "set", f"v{ns[-1]}", "master", "br0", "up")
        ok("ip", "-n", ns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
        ok("ip", "-n", ns, "link", "set", "eth0", "up")
        ok("ip", "-n", ns, "-6", "route", "add", "default", "via", str(gateway6), "dev", "eth0")
    # the uplink to another host, which knows no route to the bridge's subnet
    ok("ip", "-n", host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", remote)
    ok("ip", "-n", host, "addr", "add", f"{up_host}/64", "dev", "up0", "nodad")
    ok("ip", "-n", remote, "addr", "add", f"{up_remote}/64", "dev", "eth0", "nodad")
    ok("ip", "-n", host, "link", "set", "up0", "up")
    ok("ip", "-n", remote, "link", "set", "eth0", "up")

    port = free_port(lab)
    topology = Topology(
        f"{p}own",
        bridges=(Bridge("br0", subnet6=subnet6, gateway6=gateway6, masquerade=True),),
        namespaces=(Namespace(web, (Interface("eth0", "br0", f"v{web[-1]}"),)), Namespace(client, (Interface("eth0", "br0", f"v{client[-1]}"),))),
        port_forwards=(PortForward(port, web, 80),),
    )
    table, sysctls = desired_nat(topology, {}, {(web, "eth0"): IPv6Interface(f"{web6}/64"), (client, "eth0"): IPv6Interface(f"{client6}/64")})
    assert table is not None and [s.key for s in sysctls] == [IPV6_FORWARD]
    ok("ip", "netns", "exec", host, sys.executable, "-c", WRITE_TABLE, stdin=json.dumps(resource_json(table)))

    lab.serve(web, str(web6), 80, "web")
    lab.serve(remote, str(up_remote), 80, "remote")
    # from another host to the host's uplink address: prerouting DNAT, forwarded, the client's address kept
    assert tcp_from(remote, str(up_host), port) == f"web {up_remote}"
    # hairpin: a neighbour on the bridge to the gateway, masqueraded to it so the reply comes back through the host
    assert tcp_from(client, str(gateway6), port) == f"web {gateway6}"
    # masquerade: the namespace reaches the other host, which sees the host's uplink address
    assert tcp_from(web, str(up_remote), 80) == f"remote {up_host}"
    # [::1] of that host is not forwarded
    assert tcp_from(host, "::1", port) is None


# 3. the move from an older nsnet's `ip` table


def _as_before_dual_stack(table: NftTableState) -> NftTableState:
    """The table an nsnet before dual-stack wrote: family ip, `dnat to` without a family, no `meta nfproto`."""

    def old(rule: NftRule) -> NftRule:
        expr = [e for e in json.loads(rule.expr) if e.get("match", {}).get("left") != {"meta": {"key": "nfproto"}}]
        for e in expr:
            e.get("dnat", {}).pop("family", None)
        return dataclasses.replace(rule, expr=json.dumps(expr, sort_keys=True, separators=(",", ":")))

    return dataclasses.replace(table, family="ip", rules=tuple(sorted(old(r) for r in table.rules)))


def test_an_older_ip_table_is_replaced_by_the_inet_one_and_forwarding_never_stops(lab):
    port = free_port(lab)
    path, bridge, web = ipv4_lab(lab, port)
    name = table_name(lab.prefix)
    nftables.replace_table(_as_before_dual_stack(nftables.read_tables()[name]))  # as an older nsnet left it
    assert {f for f, n in nft_tables() if n == name} == {"ip"}
    lab.serve(web, "0.0.0.0", 80, "web", lifetime=60)
    assert (lab.tcp_from_host("127.0.0.1", port) or "").startswith("web ")  # the old table forwards

    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", path)
    assert rc == 2, out + err
    changes = [line for line in lab.lines(out) if line.startswith("~ ")]
    assert changes[0] == f"~ nft table {name}: family ip -> inet", out
    assert all(line.startswith(f"~ nft table {name}: ") for line in changes), out  # nothing else changes

    failures: list[str] = []
    made = [0]
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            if not (lab.tcp_from_host("127.0.0.1", port, timeout=SHORT) or "").startswith("web "):
                failures.append(time.strftime("%T"))
            made[0] += 1

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        time.sleep(0.2)
        rc, out, err = lab.nsnet("apply", path)
        time.sleep(0.2)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert rc == 0, out + err
    assert not failures and made[0] > 5, (failures, made)
    assert {f for f, n in nft_tables() if n == name} == {"inet"}
    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", path)
    assert rc == 0 and lab.no_changes(out), out + err


# 4. host-port claims across topologies, families and table families


def test_ports_published_by_an_older_ip_table_or_on_an_ipv6_address_are_claims_too(lab, tables):
    p1, p2 = free_port(lab), free_port(lab)
    # an older nsnet's topology publishing p1 on every address (family ip), and a dual-stack one publishing p2 on an IPv6 address
    old, v6 = f"{lab.prefix}old", f"{lab.prefix}six"
    tables.names |= {table_name(old), table_name(v6)}
    chains = (NftChain("output", "nat", "output", -100),)
    nftables.replace_table(NftTableState(table_name(old), "ip", chains, (NftRule("output", f"forward tcp *:{p1} -> x:80", _never(p1)),)))
    six = Topology(
        v6,
        bridges=(Bridge("br0", subnet6=IPv6Network("2001:db8:99::/64"), gateway6=IPv6Address("2001:db8:99::1")),),
        namespaces=(Namespace("x", (Interface("eth0", "br0", "vx"),)),),
        port_forwards=(PortForward(p2, "x", 80, host_address=IPv6Address("2001:db8:99::1")),),
    )
    six_table, _ = desired_nat(six, {}, {("x", "eth0"): IPv6Interface("2001:db8:99::10/64")})
    assert six_table is not None
    nftables.replace_table(six_table)  # rules that never match: 2001:db8::/32 is for documentation

    bridge, web = f"{lab.prefix}b", f"{lab.prefix}-web"

    def plan(forwards: list[dict[str, Any]]) -> tuple[int, str]:
        doc = {
            "name": lab.prefix,
            "bridges": {bridge: {"subnet": str(lab.subnet)}},
            "namespaces": {web: {"interfaces": {"eth0": {"bridge": bridge}}}},
            "port_forwards": forwards,
        }
        rc, out, err = lab.nsnet("plan", lab.write(doc, lab.dir / "topology.yaml"))
        return rc, out + err

    rc, said = plan([{"host_port": p1, "namespace": web, "port": 80, "host_address": "127.0.0.1"}])
    assert rc == 1 and f"tcp port 127.0.0.1:{p1} is already forwarded by topology {old!r}" in said, said
    rc, said = plan([{"host_port": p2, "namespace": web, "port": 80}])  # every address: IPv6's too
    assert rc == 1 and f"tcp port *:{p2} is already forwarded by topology {v6!r}" in said, said
    rc, said = plan([{"host_port": p2, "namespace": web, "port": 80, "host_address": "127.0.0.1"}])  # another family's address
    assert rc == 0, said


def _never(port: int) -> str:
    """An output rule that never matches here: tcp to port `port` of 192.0.2.1 (TEST-NET-1, no address of this host)."""
    expr = [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.1"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": port}},
        {"dnat": {"addr": "192.0.2.1", "port": 80}},
    ]
    return json.dumps(expr, sort_keys=True, separators=(",", ":"))
