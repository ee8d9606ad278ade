"""Port forwards, hairpin, masquerade, the localhost guard and the topology's nft table.

Traffic goes only to 127.0.0.1 and to addresses of the test's own bridges and
namespaces. Host ports are random (20000-31999, below the ephemeral range) so
that nothing else on the host is hit. Beyond the lab's cleanup, the autouse
`host` fixture (set up before `lab`, so torn down after it) kills the test's
host processes, asserts that the nft table of every topology the test wrote is
gone (deleting it by its exact name if not), deletes the test's foreign nft
table by exact name, removes the lock directory nsnet leaves in /run/nsnet for
each of the test's topologies, and restores net.ipv4.ip_forward to its value
before the test unless another topology claimed or released it meanwhile (other
suites may run at the same time: the registry, not this test, owns the value).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from netplan_lite.model.loader import host_veth_name
from state_dirs import STATE_DIR, remove_state_dirs

TCP_SERVER = str(Path(__file__).with_name("tcp_server.py"))  # answers "<reply> <peer address>"

pytestmark = pytest.mark.netns

IP_FORWARD = "net.ipv4.ip_forward"
FAMILY = "inet"  # of nsnet's tables
IP_FORWARD_PATH = Path("/proc/sys/net/ipv4/ip_forward")
REGISTRY = STATE_DIR / "sysctl.json"
SHORT = 2.0  # seconds a connection that must fail is given

UDP_ECHO = str(Path(__file__).with_name("udp_echo.py"))  # echoes with " <peer address>" appended

CLIENT = str(Path(__file__).with_name("tcp_client.py"))  # prints what the server sent, or "failed: ..." (exit 3)


# host-side helpers


def run(*cmd: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def read_ip_forward() -> str:
    return IP_FORWARD_PATH.read_text().strip()


def write_ip_forward(value: str) -> None:
    IP_FORWARD_PATH.write_text(value)


def ip_forward_holders() -> list[str]:
    try:
        return sorted(json.loads(REGISTRY.read_text()).get(IP_FORWARD, {}).get("holders", []))
    except (OSError, ValueError):
        return []


def nft_tables() -> list[tuple[str, str]]:
    """(family, name) of every nft table on the host."""
    rc, out, err = run("nft", "-j", "list", "tables")
    assert rc == 0, err
    return [(t["table"]["family"], t["table"]["name"]) for t in json.loads(out)["nftables"] if "table" in t]


def table_exists(name: str) -> bool:
    return (FAMILY, name) in nft_tables()


def table_text(name: str, family: str = FAMILY) -> str:
    """`nft -j list table FAMILY NAME`, verbatim."""
    rc, out, err = run("nft", "-j", "list", "table", family, name)
    assert rc == 0, err
    return out


def table_rules(name: str) -> list[dict[str, Any]]:
    return [item["rule"] for item in json.loads(table_text(name))["nftables"] if "rule" in item]


def start_host_server(address: str, port: int, reply: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, TCP_SERVER, address, str(port), reply, "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_ready(proc, "host")
    return proc


def wait_ready(proc: subprocess.Popen, where: str) -> None:
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    assert line.strip() == "ready", f"server in {where} did not start: {line!r} {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}"


def udp_from_host(address: str, port: int, payload: str, tries: int = 3) -> str | None:
    """Send a datagram (a new socket, hence a new conntrack entry, per try); the echo or None."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(SHORT)
            s.sendto(payload.encode(), (address, port))
            try:
                return s.recvfrom(4096)[0].decode()
            except socket.timeout:
                continue
    return None


def tcp_from(ns: str, address: str, port: int, timeout: float = SHORT) -> str | None:
    """What a server at ADDRESS:PORT sends to a connection from inside NS, or None if none is made."""
    rc, out, err = run("ip", "netns", "exec", ns, sys.executable, CLIENT, address, str(port), str(timeout), timeout=timeout + 20)
    assert rc in (0, 3), err
    return out.strip() if rc == 0 else None


# fixtures


class Host:
    """What a test makes on the host outside the lab (processes, nft tables) and ip_forward before it."""

    def __init__(self) -> None:
        self.ip_forward = read_ip_forward()
        self.holders = ip_forward_holders()  # of other topologies: none of this test's exist yet
        self.procs: list[subprocess.Popen] = []
        self.topologies: set[str] = set()  # their nft tables must be gone once the lab has destroyed them
        self.foreign_tables: set[str] = set()  # the test's own, deleted in cleanup

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        present = nft_tables()
        ours = {f"nsnet-{t}" for t in self.topologies}
        left = sorted({name for family, name in present if name in ours})
        for family, name in sorted(t for t in present if t[1] in ours | self.foreign_tables):
            run("nft", "delete", "table", family, name)
        # ip_forward is shared: put it back only if no other topology took or let go of it meanwhile
        others = [h for h in ip_forward_holders() if h not in self.topologies]
        if others == self.holders and read_ip_forward() != self.ip_forward:
            write_ip_forward(self.ip_forward)
        journals = remove_state_dirs(self.topologies)
        assert not left, f"nft tables left behind after destroy: {left}"
        assert not journals, f"journals left behind after destroy: {journals}"


@pytest.fixture(autouse=True)
def host() -> Iterator[Host]:
    """Autouse, so set up before `lab` and torn down after the lab's cleanup (its destroys)."""
    h = Host()
    try:
        yield h
    finally:
        h.cleanup()


class Net:
    """The lab plus topology builders and the host-side bookkeeping of this module."""

    def __init__(self, lab: Any, host: Host):
        self.lab = lab
        self.host = host
        self.prefix: str = lab.prefix

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def topology(
        self,
        suffix: str = "",
        bridges: dict[str, Any] | None = None,
        namespaces: dict[str, Any] | None = None,
        forwards: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": f"{self.prefix}{suffix}", "bridges": bridges or {}, "namespaces": namespaces or {}}
        if forwards:
            doc["port_forwards"] = forwards
        return doc

    def write(self, doc: dict[str, Any], filename: str = "topology.yaml") -> Path:
        self.host.topologies.add(doc["name"])
        return self.lab.write(doc, self.lab.dir / filename)

    def apply(self, path: Path) -> str:
        rc, out, err = self.lab.nsnet("apply", path)
        assert rc == 0, out + err
        return out

    def assert_no_changes(self, path: Path) -> None:
        rc, out, err = self.lab.nsnet("plan", "--detailed-exitcode", path)
        assert rc == 0 and out.startswith("No changes."), out + err

    def serve_udp(self, ns: str, port: int, lifetime: float = 60) -> None:
        proc = self.lab.spawn(ns, sys.executable, UDP_ECHO, "0.0.0.0", str(port), str(lifetime))
        wait_ready(proc, ns)

    def host_server(self, address: str, port: int, reply: str) -> None:
        self.host.procs.append(start_host_server(address, port, reply))

    def foreign_table(self, name: str, ruleset: str) -> None:
        assert name.startswith(self.prefix)
        self.host.foreign_tables.add(name)
        proc = subprocess.run(["nft", "-f", "-"], input=ruleset, capture_output=True, text=True, timeout=10)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def net(lab: Any, host: Host) -> Net:
    return Net(lab, host)


def one_bridge(
    net: Net, names: list[str], forwards: list[dict[str, Any]], masquerade: bool | None = None, pinned: dict[str, int] | None = None
) -> tuple[dict[str, Any], str, Any]:
    """A topology with one bridge (subnet lab.subnet) and a namespace per name: (doc, bridge, subnet)."""
    subnet = net.lab.subnet
    bridge = f"{net.prefix}b"
    spec: dict[str, Any] = {"subnet": str(subnet)}
    if masquerade is not None:
        spec["masquerade"] = masquerade
    namespaces = {}
    for n in names:
        iface: dict[str, Any] = {"bridge": bridge}
        if pinned and n in pinned:
            iface["address"] = str(subnet[pinned[n]])
        namespaces[net.name(n)] = {"interfaces": {"eth0": iface}}
    return net.topology(bridges={bridge: spec}, namespaces=namespaces, forwards=forwards), bridge, subnet


def forward(host_port: int, ns: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"host_port": host_port, "namespace": ns, "port": port, **extra}


# 1. the Docker two-nginx scenario


def test_two_servers_on_port_80_are_reached_through_their_own_host_ports(net, lab):
    p1, p2 = lab.free_ports(2)
    web1, web2 = net.name("web1"), net.name("web2")
    doc, bridge, subnet = one_bridge(net, ["web1", "web2"], [forward(p1, web1, 80), forward(p2, web2, 80)], masquerade=True, pinned={"web1": 10})
    path = net.write(doc)
    gateway = str(subnet[1])

    rc, out, err = lab.nsnet("plan", path)
    assert rc == 0, err
    plan = lab.lines(out)
    assert any(line.startswith(f"+ nft table nsnet-{doc['name']}: ") for line in plan), out
    assert f'+ rule output "forward tcp *:{p1} -> {web1}:80"' in plan, out
    assert f'+ rule prerouting "forward tcp *:{p2} -> {web2}:80"' in plan, out

    net.apply(path)
    lab.serve(web1, "0.0.0.0", 80, "web1")
    lab.serve(web2, "0.0.0.0", 80, "web2")
    for address in ("127.0.0.1", gateway):
        assert (lab.tcp_from_host(address, p1) or "").split()[:1] == ["web1"], address
        assert (lab.tcp_from_host(address, p2) or "").split()[:1] == ["web2"], address
    net.assert_no_changes(path)


# 2. hairpin


def test_hairpin_a_neighbour_and_the_target_itself_reach_the_published_port(net, lab):
    (p1,) = lab.free_ports(1)
    web1, client = net.name("web1"), net.name("client")
    doc, bridge, subnet = one_bridge(net, ["web1", "client"], [forward(p1, web1, 80)])
    path = net.write(doc)
    net.apply(path)
    gateway = str(subnet[1])
    port = lab.ip_json("-d", "link", "show", "dev", host_veth_name(doc["name"], web1, "eth0"))[0]
    assert port["linkinfo"]["info_slave_data"]["hairpin"] is True

    lab.serve(web1, "0.0.0.0", 80, "web1")
    # masqueraded to the gateway, so that the reply goes back through the host's conntrack
    assert tcp_from(client, gateway, p1) == f"web1 {gateway}"
    assert tcp_from(web1, gateway, p1) == f"web1 {gateway}"


# 3. UDP


def test_udp_forward_echoes_back_to_the_host(net, lab):
    (p1,) = lab.free_ports(1)
    echo = net.name("echo")
    doc, bridge, subnet = one_bridge(net, ["echo"], [forward(p1, echo, 5353, protocol="udp")])
    path = net.write(doc)
    rc, out, err = lab.nsnet("plan", path)
    assert f'+ rule output "forward udp *:{p1} -> {echo}:5353"' in lab.lines(out), out + err
    net.apply(path)

    net.serve_udp(echo, 5353)
    reply = udp_from_host("127.0.0.1", p1, "hello")
    # the host's 127.0.0.1 source is masqueraded to the gateway as it enters the bridge
    assert reply == f"hello {subnet[1]}"
    assert lab.tcp_from_host("127.0.0.1", p1, timeout=SHORT) is None  # a udp forward publishes no tcp port


# 4. host_address and the localhost guard (CVE-2020-8558)


def test_loopback_only_forward_is_not_reachable_from_the_bridge(net, lab):
    p1, q = lab.free_ports(2)
    web1, other = net.name("web1"), net.name("other")
    doc, bridge, subnet = one_bridge(net, ["web1", "other"], [forward(p1, web1, 80, host_address="127.0.0.1")])
    path = net.write(doc)
    net.apply(path)
    gateway = str(subnet[1])
    assert Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").read_text().strip() == "1"

    lab.serve(web1, "0.0.0.0", 80, "web1")
    net.host_server("127.0.0.1", q, "host-loopback")
    assert (lab.tcp_from_host("127.0.0.1", p1) or "").startswith("web1 ")
    assert (lab.tcp_from_host("127.0.0.1", q) or "").startswith("host-loopback ")  # the service is up

    for port in (p1, q):
        for address in (gateway, "127.0.0.1"):
            assert tcp_from(other, address, port) is None, f"{other} reached {address}:{port}"


def _route_loopback_to_the_host(lab, ns: str, gateway: str) -> None:
    """Make NS send 127.0.0.1 out of eth0 to the host, as a hostile neighbour on the bridge would."""
    lab.ip("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.route_localnet=1")
    # without 127.0.0.1 on lo (and the local routes that go with it) the host's replies from
    # 127.0.0.1 are not martians here, so a connection completes whenever the host answers
    lab.ip("-n", ns, "addr", "del", "127.0.0.1/8", "dev", "lo")
    lab.ip("-n", ns, "route", "add", "127.0.0.1/32", "via", gateway, "dev", "eth0")


def test_guard_drops_packets_for_127_0_0_0_8_arriving_on_the_bridge(net, lab):
    p1, q = lab.free_ports(2)
    web1, attacker = net.name("web1"), net.name("atk")
    doc, bridge, subnet = one_bridge(net, ["web1", "atk"], [forward(p1, web1, 80)])
    path = net.write(doc)
    net.apply(path)
    name = f"nsnet-{doc['name']}"
    net.host_server("127.0.0.1", q, "host-loopback")
    _route_loopback_to_the_host(lab, attacker, str(subnet[1]))

    assert tcp_from(attacker, "127.0.0.1", q) is None  # dropped by the guard

    # control: without the guard rule, the same packets do reach the host's 127.0.0.1 service,
    # so the failure above is the guard's doing and not the test's
    guard = next(r for r in table_rules(name) if r["chain"] == "guard")
    rc, _, err = run("nft", "delete", "rule", FAMILY, name, "guard", "handle", str(guard["handle"]))
    assert rc == 0, err
    assert (tcp_from(attacker, "127.0.0.1", q) or "").startswith("host-loopback ")


def _nsnet_killed_at(lab, command: str, path: Path, checkpoint: int) -> None:
    """Run nsnet with its fault injection: SIGKILL at the given kernel-changing step."""
    done = subprocess.run(
        [sys.executable, "-m", "netplan_lite", command, str(path)],
        capture_output=True,
        text=True,
        cwd=lab.dir,
        env={**os.environ, "NSNET_KILL_AT": str(checkpoint)},
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


def _add_a_localhost_forward(net, lab, path, doc, p2):
    """Checkpoint 1 sets route_localnet on the bridge; killed at 2, before the table (with the guard) is replaced."""
    doc["port_forwards"].append(forward(p2, net.name("web1"), 80))
    net.write(doc)
    _nsnet_killed_at(lab, "apply", path, 2)


def _destroy(net, lab, path, doc, p2):
    """Checkpoint 1 deletes the table; killed at 2, the namespaces, bridge and route_localnet=1 are still there."""
    _nsnet_killed_at(lab, "destroy", path, 2)


@pytest.mark.parametrize("interrupted", [_add_a_localhost_forward, _destroy], ids=lambda f: f.__name__.strip("_"))
def test_no_step_of_a_run_leaves_route_localnet_on_without_the_guard(net, lab, interrupted):
    p1, p2, q = lab.free_ports(3)
    web1, attacker = net.name("web1"), net.name("atk")
    # the first forward publishes on the gateway only: no route_localnet, no guard yet
    doc, bridge, subnet = one_bridge(net, ["web1", "atk"], [forward(p1, web1, 80, host_address=str(lab.subnet[1]))])
    if interrupted is _destroy:
        doc["port_forwards"] = [forward(p1, web1, 80)]
    path = net.write(doc)
    net.apply(path)
    net.host_server("127.0.0.1", q, "host-loopback")

    interrupted(net, lab, path, doc, p2)  # nsnet killed half-way

    _route_loopback_to_the_host(lab, attacker, str(subnet[1]))
    exposed = Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").read_text().strip() == "1"
    table = f"nsnet-{doc['name']}"
    guarded = table_exists(table) and any(r["chain"] == "guard" for r in table_rules(table))
    assert tcp_from(attacker, "127.0.0.1", q) is None, "the host's 127.0.0.1 service answered a neighbour on the bridge"
    assert guarded or not exposed


# 5. masquerade


def test_masquerade_hides_the_client_address_and_turning_it_off_shows_it(net, lab):
    (p1,) = lab.free_ports(1)
    net_a, net_b = lab.subnet, lab.new_subnet()
    bridge_a, bridge_b = f"{net.prefix}ba", f"{net.prefix}bb"
    client, server = net.name("client"), net.name("server")

    def doc(masquerade: bool) -> dict[str, Any]:
        return net.topology(
            bridges={bridge_a: {"subnet": str(net_a), "masquerade": masquerade}, bridge_b: {"subnet": str(net_b)}},
            namespaces={
                client: {"interfaces": {"eth0": {"bridge": bridge_a, "address": str(net_a[10])}}},
                server: {"interfaces": {"eth0": {"bridge": bridge_b, "address": str(net_b[10])}}},
            },
            # the forward keeps net.ipv4.ip_forward held when masquerade is off
            forwards=[forward(p1, server, 80)],
        )

    path = net.write(doc(True))
    net.apply(path)
    lab.serve(server, "0.0.0.0", 80, "server", lifetime=60)
    assert tcp_from(client, str(net_b[10]), 80) == f"server {net_b[1]}"

    net.write(doc(False))
    rc, out, err = lab.nsnet("plan", path)
    change = f'rule postrouting "masquerade {net_a} leaving {bridge_a}" removed'
    assert any(line.startswith("~ nft table ") and line.endswith(change) for line in lab.lines(out)), out + err
    net.apply(path)
    assert tcp_from(client, str(net_b[10]), 80) == f"server {net_a[10]}"
    net.assert_no_changes(path)


def test_forward_to_a_named_second_interface_goes_to_its_address(net, lab):
    (p1,) = lab.free_ports(1)
    net_a, net_b = lab.subnet, lab.new_subnet()
    bridge_a, bridge_b = f"{net.prefix}ba", f"{net.prefix}bb"
    web = net.name("web")
    doc = net.topology(
        bridges={bridge_a: {"subnet": str(net_a)}, bridge_b: {"subnet": str(net_b)}},
        namespaces={web: {"interfaces": {"eth0": {"bridge": bridge_a}, "eth1": {"bridge": bridge_b, "address": str(net_b[20])}}}},
        forwards=[forward(p1, web, 80, interface="eth1")],
    )
    path = net.write(doc)
    net.apply(path)
    rule = next(r for r in table_rules(f"nsnet-{doc['name']}") if r["chain"] == "output")
    assert {"dnat": {"family": "ip", "addr": str(net_b[20]), "port": 80}} in rule["expr"]
    lab.serve(web, str(net_b[20]), 80, "web-eth1")  # listens on eth1's address only
    assert lab.tcp_from_host("127.0.0.1", p1) == f"web-eth1 {net_b[1]}"
    net.assert_no_changes(path)


# 6. drift of the nft table and of ip_forward


def test_a_rule_deleted_by_hand_is_planned_and_restored(net, lab):
    (p1,) = lab.free_ports(1)
    web1 = net.name("web1")
    doc, bridge, subnet = one_bridge(net, ["web1"], [forward(p1, web1, 80)])
    path = net.write(doc)
    net.apply(path)
    name = f"nsnet-{doc['name']}"
    before = table_text(name)
    comment = f"forward tcp *:{p1} -> {web1}:80"
    rule = next(r for r in table_rules(name) if r["chain"] == "output" and r["comment"] == comment)
    rc, _, err = run("nft", "delete", "rule", FAMILY, name, "output", "handle", str(rule["handle"]))
    assert rc == 0, err

    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", path)
    assert rc == 2, out + err
    assert f'~ nft table {name}: rule output "{comment}" added' in lab.lines(out), out

    net.apply(path)
    net.assert_no_changes(path)
    assert [r for r in table_rules(name) if r["comment"] == comment and r["chain"] == "output"]
    assert len(table_rules(name)) == len([i for i in json.loads(before)["nftables"] if "rule" in i])
    lab.serve(web1, "0.0.0.0", 80, "web1")
    assert (lab.tcp_from_host("127.0.0.1", p1) or "").startswith("web1 ")


def test_a_table_deleted_by_hand_is_recreated(net, lab):
    (p1,) = lab.free_ports(1)
    doc, bridge, subnet = one_bridge(net, ["web1"], [forward(p1, net.name("web1"), 80)])
    path = net.write(doc)
    net.apply(path)
    name = f"nsnet-{doc['name']}"
    rules = sorted((r["chain"], r["comment"]) for r in table_rules(name))
    rc, _, err = run("nft", "delete", "table", FAMILY, name)
    assert rc == 0, err

    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", path)
    assert rc == 2 and any(line.startswith(f"+ nft table {name}: ") for line in lab.lines(out)), out + err
    net.apply(path)
    assert sorted((r["chain"], r["comment"]) for r in table_rules(name)) == rules
    net.assert_no_changes(path)


def _ip_forward_off(lab, doc, bridge, web1):
    write_ip_forward("0")  # the host fixture puts back the value from before the test
    return [f"~ sysctl {IP_FORWARD}: value 0 -> 1"], lambda: read_ip_forward() == "1"


def _route_localnet_off(lab, doc, bridge, web1):
    key = Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet")
    key.write_text("0")
    return [f"+ sysctl net.ipv4.conf.{bridge}.route_localnet = 1"], lambda: key.read_text().strip() == "1"


def _hairpin_off(lab, doc, bridge, web1):
    veth = host_veth_name(doc["name"], web1, "eth0")
    lab.ip("link", "set", "dev", veth, "type", "bridge_slave", "hairpin", "off")
    on = lambda: lab.ip_json("-d", "link", "show", "dev", veth)[0]["linkinfo"]["info_slave_data"]["hairpin"]  # noqa: E731
    return [f"~ namespace {web1} / interface eth0: hairpin off -> on"], on


@pytest.mark.parametrize("switch_off", [_ip_forward_off, _route_localnet_off, _hairpin_off], ids=lambda f: f.__name__.strip("_"))
def test_a_switch_turned_off_by_hand_is_drift_and_apply_turns_it_back_on(net, lab, switch_off):
    (p1,) = lab.free_ports(1)
    web1 = net.name("web1")
    doc, bridge, subnet = one_bridge(net, ["web1"], [forward(p1, web1, 80)])
    path = net.write(doc)
    net.apply(path)
    assert read_ip_forward() == "1"
    expected, repaired = switch_off(lab, doc, bridge, web1)

    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", path)
    assert rc == 2, out + err
    assert set(expected) <= set(lab.lines(out)), out
    net.apply(path)
    assert repaired()
    net.assert_no_changes(path)
    lab.serve(web1, "0.0.0.0", 80, "web1")
    assert (lab.tcp_from_host("127.0.0.1", p1) or "").startswith("web1 ")  # needs route_localnet
    assert tcp_from(web1, str(subnet[1]), p1) == f"web1 {subnet[1]}"  # needs hairpin


# 7. destroy


def test_destroy_removes_table_links_namespaces_and_releases_ip_forward(net, lab):
    p1, p2 = lab.free_ports(2)
    web1, web2 = net.name("web1"), net.name("web2")
    doc, bridge, subnet = one_bridge(net, ["web1", "web2"], [forward(p1, web1, 80), forward(p2, web2, 53, protocol="udp")], masquerade=True)
    path = net.write(doc)
    if not ip_forward_holders() and all(n.startswith("nsnet-") for _, n in nft_tables()):
        write_ip_forward("0")  # nothing needs it: start from 0 so that the restore is seen (put back in cleanup)
    found = read_ip_forward()
    net.apply(path)
    assert read_ip_forward() == "1" and doc["name"] in ip_forward_holders()
    name = f"nsnet-{doc['name']}"

    others = [h for h in ip_forward_holders() if h != doc["name"]]  # read as late as possible: suites run at once
    foreign = [n for _, n in nft_tables() if not n.startswith("nsnet-")]
    rc, out, err = lab.nsnet("destroy", path)
    assert rc == 0, out + err
    assert any(line.startswith(f"- nft table {name}") for line in lab.lines(out)), out
    assert not table_exists(name)
    rc, ruleset, _ = run("nft", "list", "ruleset")
    assert f"-> {web1}:80" not in ruleset and f"-> {web2}:53" not in ruleset and name not in ruleset
    assert lab.wait_until(lambda: lab.link(bridge) is None)
    assert not {web1, web2} & lab.netns_names()
    assert not lab.links_with_alias(f"nsnet:{doc['name']}")
    assert doc["name"] not in ip_forward_holders()

    said = [line for line in lab.lines(out) if line.startswith(IP_FORWARD)]
    assert len(said) == 1, out
    if others:
        assert said[0] == f"{IP_FORWARD} left at 1: still needed by topology {', '.join(others)}"
        assert read_ip_forward() == "1"
    elif foreign:
        assert said[0].startswith(f"{IP_FORWARD} left at 1 (it was "), said[0]
        assert "other firewall tables may rely on it" in said[0]
    else:
        assert read_ip_forward() == found
        expected = f"restored to {found}" if found != "1" else "is 1, as nsnet found it"
        assert said[0] == f"{IP_FORWARD} {expected}", said[0]


# 8. foreign nft tables are never touched


def test_a_foreign_nft_table_is_untouched_by_apply_reapply_and_destroy(net, lab):
    p1, q = lab.free_ports(2)
    web1 = net.name("web1")
    doc, bridge, subnet = one_bridge(net, ["web1"], [forward(p1, web1, 80)])
    foreign = f"{net.prefix}-foreign"
    net.foreign_table(
        foreign,
        f"""
table ip {foreign} {{
    chain pre {{
        type nat hook prerouting priority -100; policy accept;
        iifname "{bridge}" tcp dport {q} dnat to {subnet[200]}:80
    }}
}}
""",
    )
    snapshot = table_text(foreign, "ip")
    path = net.write(doc)

    net.apply(path)
    assert table_text(foreign, "ip") == snapshot
    assert net.apply(path).startswith("No changes.")
    net.assert_no_changes(path)
    net.write(one_bridge(net, ["web1"], [forward(p1, web1, 80)], masquerade=True)[0])
    net.apply(path)  # replaces the nsnet table whole
    assert table_text(foreign, "ip") == snapshot
    rc, out, err = lab.nsnet("destroy", path)
    assert rc == 0, out + err
    assert table_text(foreign, "ip") == snapshot
    assert not table_exists(f"nsnet-{doc['name']}")


# 9. two topologies, one host port


def test_a_host_port_forwarded_by_another_topology_is_refused_and_nothing_changes(net, lab):
    (p1,) = lab.free_ports(1)
    first, _, _ = one_bridge(net, ["web1"], [forward(p1, net.name("web1"), 80)])
    first_path = net.write(first, "first.yaml")
    net.apply(first_path)
    first_table = table_text(f"nsnet-{first['name']}")

    subnet = lab.new_subnet()
    bridge, web = f"{net.prefix}xb", f"{net.prefix}x-web"
    second = net.topology(
        "x",
        bridges={bridge: {"subnet": str(subnet)}},
        namespaces={web: {"interfaces": {"eth0": {"bridge": bridge}}}},
        forwards=[forward(p1, web, 8000, host_address="127.0.0.1")],
    )
    second_path = net.write(second, "second.yaml")

    for command in ("plan", "apply"):
        rc, out, err = lab.nsnet(command, second_path)
        assert rc == 1, out + err
        assert len(err.strip().splitlines()) == 1, err
        assert f"topology {first['name']!r}" in err and str(p1) in err, err

    assert not table_exists(f"nsnet-{second['name']}")
    assert lab.link(bridge) is None and web not in lab.netns_names()
    assert not lab.links_with_alias(f"nsnet:{second['name']}")
    assert second["name"] not in ip_forward_holders()
    assert table_text(f"nsnet-{first['name']}") == first_table


def _stopped(proc: subprocess.Popen) -> bool:
    with open(f"/proc/{proc.pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0] == "T"


def test_two_applies_racing_for_one_host_port_cannot_both_publish_it(net, lab):
    """The second topology's apply is planned before the first publishes the port, then stopped
    (NSNET_STOP_AT=1, its first kernel change, before its table); once the first has published the
    port, the second must refuse at the moment it writes its table, roll back and leave the first alone."""
    (port,) = lab.free_ports(1)
    subnet = lab.new_subnet()
    bridge, web = f"{net.prefix}xb", f"{net.prefix}x-web"
    second = net.topology(
        "x",
        bridges={bridge: {"subnet": str(subnet)}},
        namespaces={web: {"interfaces": {"eth0": {"bridge": bridge}}}},
        forwards=[forward(port, web, 8000)],
    )
    second_path = net.write(second, "second.yaml")
    racer = subprocess.Popen(
        [sys.executable, "-m", "netplan_lite", "apply", str(second_path)],
        cwd=lab.dir,
        env={**os.environ, "NSNET_STOP_AT": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert lab.wait_until(lambda: racer.poll() is not None or _stopped(racer), timeout=30), "never stopped"
        assert racer.poll() is None, racer.communicate()

        first, _, _ = one_bridge(net, ["web1"], [forward(port, net.name("web1"), 80)])
        first_path = net.write(first, "first.yaml")
        net.apply(first_path)
        first_table = table_text(f"nsnet-{first['name']}")

        racer.send_signal(signal.SIGCONT)
        out, err = racer.communicate(timeout=60)
    finally:
        if racer.poll() is None:  # before the lab's destroys, which would wait for its lock
            racer.kill()
            racer.communicate()
    assert racer.returncode == 1, out + err
    assert f"already forwarded by topology {first['name']!r}" in out + err, out + err
    assert not table_exists(f"nsnet-{second['name']}")
    assert lab.link(bridge) is None and web not in lab.netns_names()
    assert not lab.links_with_alias(f"nsnet:{second['name']}")
    assert table_text(f"nsnet-{first['name']}") == first_table
    net.assert_no_changes(first_path)
