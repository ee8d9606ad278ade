"""Pre-flight warnings against the real kernel: gather() reads what the test made,
check() reports it. Everything made here carries the lab prefix and is removed by
exact name; the host's own sysctls, routes and firewall are only read. Legacy
iptables and a Docker-shaped iptables-nft ruleset are built in a throwaway network
namespace (`unshare -n`), which disappears with its process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from netplan_lite.kernel.preflight import checks, hostfacts
from netplan_lite.model.loader import load_file
from netplan_lite.kernel.preflight.checks import ForwardChain

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]


def _nft_json(commands: list[dict]) -> None:
    done = subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps({"nftables": commands}), capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr


def _doc(lab, forwards: list[dict] | None = None) -> dict:
    p = lab.prefix
    doc = {
        "name": p,
        "bridges": {f"{p}br": {"subnet": str(lab.subnet)}},
        "namespaces": {f"{p}-a": {"interfaces": {"eth0": {"bridge": f"{p}br"}}}, f"{p}-b": {"interfaces": {"eth0": {"bridge": f"{p}br"}}}},
    }
    if forwards:
        doc["port_forwards"] = forwards
    return doc


def _foreign_route(lab, network: IPv4Network) -> str:
    """A link named with the lab prefix carrying a route to NETWORK (both go with the link).
    A portless bridge: this kernel has no dummy driver."""
    name = f"{lab.prefix}fb"
    lab.foreign_bridge(name)  # remembered: cleanup deletes it, and its route with it
    lab.ip("link", "set", name, "up")
    lab.ip("route", "add", str(network), "dev", name)
    return name


def _by_code(warnings: list, code: str) -> list:
    return [w for w in warnings if w.code == code]


def test_gather_and_check_report_what_the_host_has(lab):
    p = lab.prefix
    inside = list(lab.subnet.subnets(new_prefix=25))[1]  # the upper half: only this lab's subnet
    foreign = _foreign_route(lab, inside)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        path = lab.write(
            _doc(
                lab,
                [
                    {"host_port": tcp_port, "namespace": f"{p}-a", "port": 80},
                    {"host_port": udp_port, "namespace": f"{p}-b", "port": 53, "protocol": "udp"},
                ],
            ),
            lab.dir / "topology.yaml",
        )
        topology = load_file(path)

        # a forward base chain with policy drop, made harmless by an unconditional accept rule in the
        # same transaction (the policy never applies); it lives only while gather() reads it
        table = f"{p}-pf"
        _nft_json(
            [
                {"add": {"table": {"family": "ip", "name": table}}},
                {"add": {"chain": {"family": "ip", "table": table, "name": "fwd", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}},
                {"add": {"rule": {"family": "ip", "table": table, "chain": "fwd", "expr": [{"accept": None}]}}},
            ]
        )
        try:
            facts = hostfacts.gather(topology)
        finally:
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, timeout=10)
        wanted = {("tcp", tcp_port), ("udp", udp_port)}
        by_proc = hostfacts.read_listeners(wanted, diag=False)  # the fallback agrees with sock_diag
        assert hostfacts.read_listeners(wanted) == by_proc and len(by_proc) == 2
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0

    assert facts.ip_forward == (Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "0")
    bridge_nf = Path(hostfacts.BRIDGE_NF_CALL_IPTABLES)
    assert facts.bridge_nf_call_iptables == (bridge_nf.exists() and bridge_nf.read_text().strip() != "0")
    assert ForwardChain("ip", table, "fwd", "drop") in facts.forward_chains
    assert checks.Listener("tcp", "127.0.0.1", tcp_port) in facts.listeners
    assert checks.Listener("udp", "127.0.0.1", udp_port) in facts.listeners
    assert checks.HostRoute(inside, foreign, None, 3, "unicast", None) in facts.routes  # proto boot: `ip route add`

    warnings = checks.check(topology, facts)
    drops = [w for w in _by_code(warnings, "forward-policy-drop") if f"nft chain ip {table} fwd" in w.message]
    assert len(drops) == 1 and f"bridge {p}br" in drops[0].message and "port forwards" in drops[0].message
    ports = _by_code(warnings, "host-port-in-use")
    assert any(f"tcp port {tcp_port}" in w.message and f"this host's connections to 127.0.0.1:{tcp_port} to {p}-a" in w.message for w in ports), ports
    assert any(f"udp port {udp_port}" in w.message and f"127.0.0.1:{udp_port}" in w.message for w in ports), ports
    overlaps = _by_code(warnings, "subnet-overlaps-route")
    assert [w.message.split(":")[0] for w in overlaps] == [f"host route {inside} dev {foreign} lies inside bridge {p}br's subnet {lab.subnet}"]
    # nothing of ours in the lines either way: plan prints them as they are
    assert all(w.line().startswith("warning: ") for w in warnings)


def test_the_bridges_own_route_is_not_an_overlap_once_applied(lab):
    p = lab.prefix
    inside = list(lab.subnet.subnets(new_prefix=25))[1]
    foreign = _foreign_route(lab, inside)
    path = lab.write(_doc(lab), lab.dir / "topology.yaml")  # no forwards, no masquerade: no nft table, no sysctl
    rc, out, err = lab.nsnet("apply", path)
    assert rc == 0, out + err
    topology = load_file(path)
    facts = hostfacts.gather(topology)
    own = [r for r in facts.routes if r.device == f"{p}br"]
    assert own == [checks.HostRoute(lab.subnet, f"{p}br", p, checks.PROTO_KERNEL, "unicast", None)]
    overlaps = _by_code(checks.check(topology, facts), "subnet-overlaps-route")
    assert len(overlaps) == 1 and f"dev {foreign}" in overlaps[0].message


IN_PRIVATE_NETNS = r"""
import json, subprocess, sys
from netplan_lite.model import loader
from netplan_lite.kernel.preflight import checks, hostfacts
for cmd in json.loads(sys.argv[1]):
    subprocess.run(cmd, check=True, capture_output=True)
topology = loader.load_file(sys.argv[2])
facts = hostfacts.gather(topology)
print(json.dumps({
    "chains": [[c.family, c.table, c.chain, c.policy, sorted(c.accepts_in), sorted(c.accepts_out)] for c in facts.forward_chains],
    "warnings": [w.line() for w in checks.check(topology, facts)],
}))
"""


def _in_private_netns(lab, commands: list[list[str]]) -> dict:
    """Run COMMANDS then gather()+check() in a network namespace of its own, gone when the process ends."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    path = lab.write(_doc(lab, [{"host_port": 18080, "namespace": f"{lab.prefix}-a", "port": 80}]), lab.dir / "topology.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", IN_PRIVATE_NETNS, json.dumps(commands), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_legacy_iptables_forward_drop_is_read_without_nft(lab):
    if shutil.which("iptables-legacy") is None:
        pytest.skip("iptables-legacy is not installed")
    bridge = f"{lab.prefix}br"
    found = _in_private_netns(
        lab,
        [
            ["iptables-legacy", "-P", "FORWARD", "DROP"],
            ["iptables-legacy", "-A", "INPUT", "-i", bridge, "-j", "ACCEPT"],  # input: does not count
            ["iptables-legacy", "-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT"],
        ],
    )
    assert [checks.LEGACY, "filter", "FORWARD", "drop", ["docker0"], ["docker0"]] in found["chains"]
    assert any(
        f"iptables-legacy chain filter FORWARD (hook forward) has policy drop and no rule there accepts bridge {bridge}" in w
        for w in found["warnings"]
    ), found["warnings"]


def test_docker_shaped_iptables_nft_ruleset(lab):
    if shutil.which("iptables-nft") is None or shutil.which("nft") is None:
        pytest.skip("iptables-nft or nft is not installed")
    bridge = f"{lab.prefix}br"
    found = _in_private_netns(
        lab,
        [
            ["iptables-nft", "-P", "FORWARD", "DROP"],
            ["iptables-nft", "-N", "DOCKER-USER"],
            ["iptables-nft", "-A", "FORWARD", "-j", "DOCKER-USER"],
            ["iptables-nft", "-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"],
            ["iptables-nft", "-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
        ],
    )
    assert ["ip", "filter", "FORWARD", "drop", ["docker0"], ["docker0"]] in found["chains"]
    # Docker's chain is there: nsnet's plan accepts the bridge in it, so no warning about FORWARD
    assert not [w for w in found["warnings"] if "nft chain ip filter FORWARD" in w], found["warnings"]
    # and where the admin accepted the bridge in DOCKER-USER by hand, none either
    found = _in_private_netns(
        lab,
        [
            ["iptables-nft", "-P", "FORWARD", "DROP"],
            ["iptables-nft", "-N", "DOCKER-USER"],
            ["iptables-nft", "-A", "FORWARD", "-j", "DOCKER-USER"],
            ["iptables-nft", "-A", "DOCKER-USER", "-i", bridge, "-j", "ACCEPT"],
            ["iptables-nft", "-A", "DOCKER-USER", "-o", bridge, "-j", "ACCEPT"],
        ],
    )
    assert not [w for w in found["warnings"] if "nft chain ip filter FORWARD" in w], found["warnings"]


# dual-stack: the facts of IPv6 forwarding, read in namespaces of the test's own

GATHER_DUAL = r"""
import dataclasses, json, subprocess, sys
from ipaddress import IPv6Address, IPv6Network
from netplan_lite.model import loader
from netplan_lite.kernel.preflight import checks, hostfacts
for cmd in json.loads(sys.argv[1]):
    subprocess.run(cmd, check=True, capture_output=True)
topology = loader.load_file(sys.argv[2])
bridge = dataclasses.replace(topology.bridges[0], subnet6=IPv6Network("fd00:10::/64"), gateway6=IPv6Address("fd00:10::1"), masquerade=True)
topology = dataclasses.replace(topology, bridges=(bridge,))  # what the dual-stack file keys give
facts = hostfacts.gather(topology)
print(json.dumps({
    "chains": [[c.family, c.table, c.chain, c.policy, sorted(c.accepts_in), sorted(c.accepts_out)] for c in facts.forward_chains],
    "ipv6_forwarding": facts.ipv6_forwarding,
    "ra_defaults": list(facts.ra_defaults),
    "warnings": [w.line() for w in checks.check(topology, facts)],
}))
"""


def _gather_dual(lab, prefix: list[str], commands: list[list[str]]) -> dict:
    """GATHER_DUAL under `prefix` (`unshare --net`, or `ip netns exec NS`), after COMMANDS there."""
    path = lab.write(_doc(lab, [{"host_port": 18080, "namespace": f"{lab.prefix}-a", "port": 80}]), lab.dir / "topology.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", GATHER_DUAL, json.dumps(commands), str(path)], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_legacy_ip6tables_forward_drop_is_read_and_warned_about_for_ipv6_traffic(lab):
    if shutil.which("ip6tables-legacy") is None or shutil.which("unshare") is None:
        pytest.skip("ip6tables-legacy or unshare is not installed")
    bridge = f"{lab.prefix}br"
    found = _gather_dual(
        lab,
        ["unshare", "--net"],
        [["ip6tables-legacy", "-P", "FORWARD", "DROP"], ["ip6tables-legacy", "-A", "FORWARD", "-i", "docker0", "-j", "ACCEPT"]],
    )
    assert [checks.LEGACY6, "filter", "FORWARD", "drop", ["docker0"], []] in found["chains"]
    drops = [
        w
        for w in found["warnings"]
        if f"ip6tables-legacy chain filter FORWARD (hook forward) has policy drop and no rule there accepts bridge {bridge}" in w
    ]
    assert len(drops) == 1 and "port forwards from other hosts and namespaces" in drops[0] and "masqueraded traffic" in drops[0], found["warnings"]
    assert f"`ip6tables-legacy -I FORWARD -i {bridge} -j ACCEPT`" in drops[0]


RA = r"""
import socket, struct, sys
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)  # the kernel fills in the checksum
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)  # a router advertisement must come with 255
index = socket.if_nametoindex(sys.argv[1])
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
# type 134, code 0, checksum, current hop limit 64, no flags, router lifetime 600 s, reachable time and retrans timer unset
sock.sendto(struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 600, 0, 0), ("ff02::1", 0, 0, index))
"""


def test_a_default_route_from_router_advertisements_is_warned_about_when_nsnet_will_forward_ipv6(lab):
    """A real router advertisement, sent from a namespace of the test's to another that stands in for
    the host: its kernel learns a default route (RTF_ADDRCONF) on a link with accept_ra=1."""
    host, router = f"{lab.prefix}-h", f"{lab.prefix}-r"
    for ns in (host, router):
        lab.foreign_namespace(ns)
        lab.ip("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    lab.ip("-n", host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", router)
    lab.ip("-n", host, "link", "set", "up0", "up")
    lab.ip("-n", router, "link", "set", "eth0", "up")
    assert lab.wait_until(lambda: any(a.get("addr_info") for a in lab.ip_json("-n", router, "-6", "addr", "show", "dev", "eth0")), timeout=5)

    def learned() -> bool:
        rc, out, _ = lab.run("ip", "netns", "exec", router, sys.executable, "-c", RA, "eth0")
        return rc == 0 and any(r.get("protocol") == "ra" for r in lab.ip_json("-n", host, "-6", "route", "show", "default"))

    assert lab.wait_until(learned, timeout=5), lab.ip_json("-n", host, "-6", "route")
    found = _gather_dual(lab, ["ip", "netns", "exec", host], [])
    assert found["ipv6_forwarding"] is False and found["ra_defaults"] == ["up0"]
    warning = next(w for w in found["warnings"] if "router advertisements" in w)
    assert warning.startswith("warning: the topology needs the host to forward IPv6 (port forwards, masquerade of fd00:10::/64)"), warning
    assert "`sysctl -w net.ipv6.conf.up0.accept_ra=2`" in warning
    found = _gather_dual(lab, ["ip", "netns", "exec", host], [["sysctl", "-q", "-w", "net.ipv6.conf.up0.accept_ra=2"]])
    assert found["ra_defaults"] == [] and not [w for w in found["warnings"] if "router advertisements" in w]
