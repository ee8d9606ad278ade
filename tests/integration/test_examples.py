"""The example labs in examples/: each is applied, checked against the kernel, planned empty and destroyed.

The example files use fixed names, subnets and host ports, so a test never
applies one as it is: it loads the file, rewrites the topology name, bridge
and namespace names into the lab's random prefix, every subnet into one of the
lab's random /24s (same prefix length, same host offsets: the structure and
the addresses' positions stay identical) and every host port into a free
random port, writes that to the test's own directory, and runs `nsnet
validate`, `plan`, `apply`, the lab's checks, `plan --detailed-exitcode`
(exit 0) and `destroy` on it.

Traffic goes only to 127.0.0.1 and to addresses of the test's own
namespaces. Beyond the lab's cleanup, the autouse `host` fixture (set up
before `lab`, so torn down after its destroys) asserts that the nft table of
every topology the test wrote is gone (deleting it by its exact name if not)
and that none of them still holds net.ipv4.ip_forward in nsnet's registry
(releasing it with `nsnet destroy` of that exact topology name if one does),
removes the lock directory nsnet leaves in /run/nsnet for each of them, and
puts net.ipv4.ip_forward back as it was unless another topology claimed or
released it meanwhile (other suites may run at the same time).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from netplan_lite.model.loader import host_veth_name
from docblocks import Block, Clone, Swap, check_sh
from state_dirs import STATE_DIR, remove_state_dirs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
WEBSERVER = EXAMPLES / "webserver.py"  # the server the examples' comments use
SHORT = 2.0  # seconds a connection that must fail is given

IP_FORWARD_PATH = Path("/proc/sys/net/ipv4/ip_forward")
REGISTRY = STATE_DIR / "sysctl.json"

TCP_CLIENT = str(Path(__file__).with_name("tcp_client.py"))  # prints what the server sent, or "failed: ..." (exit 3)

UDP_ECHO = str(Path(__file__).with_name("udp_echo.py"))  # echoes with " <peer address>" appended

# UDP client: sends PAYLOAD (or SIZE bytes of "x" with "--size=SIZE") with the don't-fragment bit set,
# from a new connected socket per try (so that an ICMP port unreachable shows as "Connection refused");
# prints the answer, or "failed: <reason>" and exits 3.
UDP_CLIENT = r"""
import socket, sys
address, port, payload, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
data = b"x" * int(payload[7:]) if payload.startswith("--size=") else payload.encode()
reason = "timed out"
for _ in range(3):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO (linux/in.h)
        s.settimeout(timeout)
        try:
            s.connect((address, port))
            s.send(data)
            print(s.recv(65535).decode())
            sys.exit(0)
        except socket.timeout:
            continue  # a lost datagram: try again
        except OSError as err:
            reason = err.strerror or str(err)
            break
print(f"failed: {reason}")
sys.exit(3)
"""

pytestmark = pytest.mark.netns


# host-side helpers


def run(*cmd: str | Path, timeout: float = 30, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def read_ip_forward() -> str:
    return IP_FORWARD_PATH.read_text().strip()


def ip_forward_holders() -> list[str]:
    try:
        return sorted(json.loads(REGISTRY.read_text()).get("net.ipv4.ip_forward", {}).get("holders", []))
    except (OSError, ValueError):
        return []


def nft_tables() -> set[str]:
    """Names of the host's `inet` family nft tables (nsnet's family)."""
    rc, out, err = run("nft", "-j", "list", "tables")
    assert rc == 0, err
    return {t["table"]["name"] for t in json.loads(out)["nftables"] if "table" in t and t["table"]["family"] == "inet"}


def http_get(address: str, port: int) -> str:
    """GET / like `curl http://ADDRESS:PORT/`, never through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}:{port}/", timeout=5) as response:
        return response.read().decode()


def accepts(address: str, port: int) -> bool:
    """Whether a TCP connection to ADDRESS:PORT is accepted (closed again at once)."""
    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def udp_from_host(address: str, port: int, payload: str) -> str:
    """The answer to a datagram sent from the host, or "failed: <reason>" (see UDP_CLIENT)."""
    rc, out, err = run(sys.executable, "-c", UDP_CLIENT, address, str(port), payload, str(SHORT), timeout=3 * SHORT + 20)
    assert rc in (0, 3), err
    return out.strip()


def tcp_from(ns: str, address: str, port: int, timeout: float = SHORT) -> str:
    """What a server at ADDRESS:PORT sends to a connection from inside NS, or "failed: <reason>"."""
    rc, out, err = run("ip", "netns", "exec", ns, sys.executable, TCP_CLIENT, address, str(port), str(timeout), timeout=timeout + 20)
    assert rc in (0, 3), err
    return out.strip()


def udp_from(ns: str, address: str, port: int, payload: str, timeout: float = SHORT) -> str:
    """The answer to a datagram sent from inside NS, or "failed: <reason>"."""
    rc, out, err = run(
        "ip", "netns", "exec", ns, sys.executable, "-c", UDP_CLIENT, address, str(port), payload, str(timeout), timeout=3 * timeout + 20
    )
    assert rc in (0, 3), err
    return out.strip()


# the host fixture


class Host:
    """ip_forward before the test, and the topologies whose nft tables and state dirs must be gone after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.ip_forward = read_ip_forward()
        self.holders = ip_forward_holders()  # of other topologies: none of this test's exist yet
        self.topologies: set[str] = set()

    def cleanup(self) -> None:
        left = sorted({f"nsnet-{t}" for t in self.topologies} & nft_tables())
        for name in left:
            run("nft", "delete", "table", "inet", name)
        holding = sorted(self.topologies & set(ip_forward_holders()))
        for topology in holding:  # a destroy that failed half-way: release the claim by the exact name
            release = self.dir / f"release-{topology}.yaml"
            release.write_text(f"name: {topology}\n")
            run(sys.executable, "-m", "netplan_lite", "destroy", release, timeout=60, cwd=self.dir)
        others = [h for h in ip_forward_holders() if h not in self.topologies]
        if others == self.holders and read_ip_forward() != self.ip_forward:
            IP_FORWARD_PATH.write_text(self.ip_forward)
        journals = remove_state_dirs(self.topologies)
        assert not left, f"nft tables left behind after destroy: {left}"
        assert not holding, f"still holding net.ipv4.ip_forward after destroy: {holding}"
        assert not journals, f"journals left behind after destroy: {journals}"


@pytest.fixture(autouse=True)
def host(tmp_path: Path) -> Iterator[Host]:
    """Autouse, so set up before `lab` and torn down after the lab's cleanup (its destroys)."""
    h = Host(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


# an example, rewritten into the lab's names


@dataclasses.dataclass
class Copy:
    """An example rewritten for one test: the original document, its copy and the maps between them."""

    original: dict[str, Any]
    doc: dict[str, Any]
    path: Path
    bridges: dict[str, str]
    namespaces: dict[str, str]
    networks: dict[IPv4Network, IPv4Network]
    ports: dict[int, int]

    @property
    def name(self) -> str:
        return self.doc["name"]

    def ns(self, name: str) -> str:
        return self.namespaces[name]

    def br(self, name: str) -> str:
        return self.bridges[name]

    def port(self, example_port: int) -> int:
        return self.ports[example_port]

    def net(self, text: str) -> str:
        """The test's network for an example network (`a.b.c.d/p`)."""
        return str(self.networks[IPv4Network(text)])

    def addr(self, text: str) -> str:
        """The test's address for an example address, `a.b.c.d` or `a.b.c.d/p` (kept as written)."""
        iface = IPv4Interface(text)
        if iface.ip.is_loopback:
            return text
        for old, new in self.networks.items():
            if iface.ip in old:
                moved = new.network_address + (int(iface.ip) - int(old.network_address))
                return f"{moved}/{iface.network.prefixlen}" if "/" in text else str(moved)
        raise AssertionError(f"{text} is in no network of the example")

    def ip(self, text: str) -> str:
        """`addr` without the prefix length."""
        return self.addr(text).split("/")[0]

    def host_veth(self, ns: str, iface: str) -> str:
        """The host end of an example namespace's interface, by example names."""
        return host_veth_name(self.name, self.ns(ns), iface)


def _networks_of(doc: dict[str, Any]) -> list[IPv4Network]:
    """Every network the example uses: bridge subnets, then routed destinations and explicit prefixes outside them."""
    found: list[IPv4Network] = []

    def add(net: IPv4Network) -> None:
        if not any(net.subnet_of(known) for known in found):
            found.append(net)

    for spec in (doc.get("bridges") or {}).values():
        if "subnet" in spec:
            add(IPv4Network(spec["subnet"]))
    for spec in (doc.get("namespaces") or {}).values():
        for iface in (spec.get("interfaces") or {}).values():
            if "/" in iface.get("address", ""):
                add(IPv4Interface(iface["address"]).network)
        for route in spec.get("routes") or ():
            if route["to"] != "default":
                add(IPv4Network(route["to"]))
    return found


def rewrite(lab: Any, host: Host, example: str) -> Copy:
    """Load examples/EXAMPLE, rewrite it into the lab's names, subnets and free ports, and write it."""
    original = yaml.safe_load((EXAMPLES / example).read_text())
    prefix = lab.prefix
    bridges = {}
    for index, name in enumerate(original.get("bridges") or {}):
        short = prefix + name.removeprefix("br-")
        bridges[name] = short if len(short) <= 15 else f"{prefix}b{index}"
    namespaces = {name: f"{prefix}-{name}" for name in original.get("namespaces") or {}}
    networks = {}
    for index, net in enumerate(_networks_of(original)):
        assert net.prefixlen >= 24, f"{example}: {net} is wider than the lab's /24s"
        base = lab.subnet if index == 0 else lab.new_subnet()
        networks[net] = IPv4Network(f"{base.network_address}/{net.prefixlen}")
    published = sorted({f["host_port"] for f in original.get("port_forwards") or ()})
    ports = dict(zip(published, lab.free_ports(len(published)), strict=True))
    out = Copy(original, {}, lab.dir / example, bridges, namespaces, networks, ports)

    doc: dict[str, Any] = {"name": f"{prefix}-{original['name']}"}
    if "bridges" in original:
        doc["bridges"] = {}
        for name, spec in original["bridges"].items():
            spec = copy.deepcopy(spec)
            if "subnet" in spec:
                spec["subnet"] = out.net(spec["subnet"])
            if "gateway" in spec:
                spec["gateway"] = out.addr(spec["gateway"])
            doc["bridges"][bridges[name]] = spec
    if "namespaces" in original:
        doc["namespaces"] = {}
        for name, spec in original["namespaces"].items():
            spec = copy.deepcopy(spec)  # aliased specs (YAML anchors) become separate copies
            for iface in (spec.get("interfaces") or {}).values():
                iface["bridge"] = bridges[iface["bridge"]]
                if "address" in iface:
                    iface["address"] = out.addr(iface["address"])
            for route in spec.get("routes") or ():
                if route["to"] != "default":
                    route["to"] = out.net(route["to"])
                route["via"] = out.addr(route["via"])
            doc["namespaces"][namespaces[name]] = spec
    if "port_forwards" in original:
        doc["port_forwards"] = []
        for forward in original["port_forwards"]:
            forward = dict(forward, host_port=ports[forward["host_port"]], namespace=namespaces[forward["namespace"]])
            if "host_address" in forward:
                forward["host_address"] = out.addr(forward["host_address"])
            doc["port_forwards"].append(forward)
    assert set(doc) == set(original), "the rewrite must keep every section"
    out.doc = doc
    host.topologies.add(doc["name"])
    lab.write(doc, out.path)
    return out


def bring_up(lab: Any, host: Host, example: str) -> Copy:
    """Rewrite, validate, plan (changes), apply: the example is live."""
    ex = rewrite(lab, host, example)
    rc, out, err = lab.nsnet("validate", ex.path)
    assert rc == 0, out + err
    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", ex.path)
    assert rc == 2, out + err
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert "live state verified" in out, out
    assert set(ex.namespaces.values()) <= lab.netns_names()
    return ex


def assert_no_changes(lab: Any, ex: Copy) -> None:
    rc, out, err = lab.nsnet("plan", "--detailed-exitcode", ex.path)
    assert rc == 0 and lab.no_changes(out), out + err


def tear_down(lab: Any, ex: Copy) -> None:
    """Stop the test's servers (as the examples' comments do), `nsnet destroy`: nothing of the example is left.

    (A process still inside a namespace keeps it and its veth alive; the lab's cleanup checks again by exact names.)
    """
    for proc in lab.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert not set(ex.namespaces.values()) & lab.netns_names()
    assert lab.wait_until(lambda: not lab.links_with_alias(f"nsnet:{ex.name}")), lab.links_with_alias(f"nsnet:{ex.name}")
    assert all(lab.link(b) is None for b in ex.bridges.values())
    assert f"nsnet-{ex.name}" not in nft_tables()


def interface_state(lab: Any, ns: str | None, dev: str) -> dict[str, Any]:
    """`ip -j addr show dev DEV` (in NS): IPv4 addresses, MAC, MTU, state, master."""
    data = lab.ip_json(*(["-n", ns] if ns else []), "addr", "show", "dev", dev)[0]
    return {
        "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in data["addr_info"] if a["family"] == "inet"),
        "mac": data["address"],
        "mtu": data["mtu"],
        "up": "UP" in data["flags"],
        "master": data.get("master"),
    }


def route_table(lab: Any, ns: str) -> set[tuple[str, str | None, str, str | None]]:
    """(destination, gateway, device, protocol) of every IPv4 route in the main table of NS."""
    return {(r["dst"], r.get("gateway"), r["dev"], r.get("protocol")) for r in lab.ip_json("-n", ns, "-4", "route", "show")}


def serve_udp(lab: Any, ns: str, port: int, lifetime: float = 60) -> None:
    proc = lab.spawn(ns, sys.executable, UDP_ECHO, "0.0.0.0", str(port), str(lifetime))
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    assert line.strip() == "ready", f"udp server in {ns} did not start: {line!r} {proc.poll()}"


def serve_http(lab: Any, ns: str, address: str, port: int, text: str) -> None:
    """examples/webserver.py inside NS, as the examples' comments run it; returns once it answers."""
    proc = lab.spawn(ns, sys.executable, str(WEBSERVER), str(port), text)
    deadline = time.monotonic() + 10
    while not accepts(address, port):  # the host reaches its own namespaces directly
        assert proc.poll() is None, f"webserver in {ns} exited: {proc.communicate()}"
        assert time.monotonic() < deadline, f"webserver in {ns} does not answer on {address}:{port}"
        time.sleep(0.05)


# 1. two isolated bridges


def test_two_bridges_namespaces_reach_their_own_bridge_only(lab, host):
    ex = bring_up(lab, host, "two-bridges.yaml")
    blue_app, blue_client, red_app, red_client = (ex.ns(n) for n in ("blue-app", "blue-client", "red-app", "red-client"))
    blue_app_ip, red_app_ip = ex.ip("172.30.10.10"), ex.ip("172.30.11.10")
    addresses = {
        blue_app: ex.addr("172.30.10.10/24"),
        blue_client: ex.addr("172.30.10.2/24"),
        red_app: ex.addr("172.30.11.10/24"),
        red_client: ex.addr("172.30.11.2/24"),
    }
    for ns, address in addresses.items():
        assert lab.addresses(ns, "eth0") == [address], ns
        assert lab.default_routes(ns) == [], f"{ns} has a default route: the isolation needs none"
    assert lab.addresses(None, ex.br("br-blue")) == [ex.addr("172.30.10.1/24")]
    assert lab.addresses(None, ex.br("br-red")) == [ex.addr("172.30.11.1/24")]

    lab.serve(blue_app, blue_app_ip, 80, "blue-app")
    lab.serve(red_app, red_app_ip, 80, "red-app")
    # same bridge: direct, the app sees the client's own address
    assert tcp_from(blue_client, blue_app_ip, 80) == f"blue-app {ex.ip('172.30.10.2')}"
    assert tcp_from(red_client, red_app_ip, 80) == f"red-app {ex.ip('172.30.11.2')}"
    # the host is on both bridges (control: both apps answer)
    assert lab.tcp_from_host(blue_app_ip, 80, SHORT) == f"blue-app {ex.ip('172.30.10.1')}"
    assert lab.tcp_from_host(red_app_ip, 80, SHORT) == f"red-app {ex.ip('172.30.11.1')}"
    # across: no route, refused at once by the sender's own kernel
    assert tcp_from(blue_client, red_app_ip, 80) == "failed: Network is unreachable"
    assert tcp_from(red_client, blue_app_ip, 80) == "failed: Network is unreachable"
    assert tcp_from(blue_app, red_app_ip, 80) == "failed: Network is unreachable"

    assert_no_changes(lab, ex)
    tear_down(lab, ex)


# 2. three tiers, two bridges, a public and a localhost-only forward


def test_three_tier_forwards_and_tiers(lab, host):
    ex = bring_up(lab, host, "three-tier.yaml")
    web, app, db = ex.ns("web"), ex.ns("app"), ex.ns("db")
    web_ip, app_front, app_back, db_ip = (ex.ip(a) for a in ("172.30.20.10", "172.30.20.20", "172.30.21.20", "172.30.21.30"))
    front_gw, back_gw = ex.ip("172.30.20.1"), ex.ip("172.30.21.1")
    web_port, db_port = ex.port(18080), ex.port(15432)
    assert lab.addresses(app, "eth0") == [ex.addr("172.30.20.20/24")]
    assert lab.addresses(app, "eth1") == [ex.addr("172.30.21.20/24")]
    assert lab.default_routes(web) == [(front_gw, "eth0", "225")]
    assert lab.default_routes(app) == [(front_gw, "eth0", "225")]  # via the first interface's bridge
    assert lab.default_routes(db) == []

    # web: examples/webserver.py on port 80, published on every address
    serve_http(lab, web, web_ip, 80, "web tier")
    assert http_get("127.0.0.1", web_port) == "web tier\n"
    assert http_get(front_gw, web_port) == "web tier\n"
    lab.serve(app, "0.0.0.0", 8000, "app")
    lab.serve(db, db_ip, 5432, "db")
    # db: published on 127.0.0.1 only; the host's connection arrives from the backend gateway
    assert lab.tcp_from_host("127.0.0.1", db_port, SHORT) == f"db {back_gw}"
    assert lab.tcp_from_host(back_gw, db_port, SHORT) is None  # not on the host's other addresses
    assert tcp_from(web, front_gw, db_port) == "failed: Connection refused"  # nor from the bridge
    # the tiers: web -> app on the frontend, app -> db on the backend
    assert tcp_from(web, app_front, 8000) == f"app {web_ip}"
    assert tcp_from(app, db_ip, 5432) == f"db {app_back}"
    # web -> db: routed by the host at best, but db has no route back to the frontend
    rc, _, err = run("ip", "-n", db, "route", "get", web_ip)
    assert rc != 0 and "Network is unreachable" in err, err
    assert read_ip_forward() == "1"  # held by the example's forwards
    assert tcp_from(web, db_ip, 5432) in ("failed: timed out", "failed: No route to host")  # the latter if a firewall says so

    assert_no_changes(lab, ex)
    tear_down(lab, ex)


# 3. fan-out: 50 clients with automatic addresses


def test_fan_out_allocates_in_name_order_and_keeps_addresses(lab, host):
    ex = bring_up(lab, host, "fan-out.yaml")
    clients = sorted(n for n in ex.namespaces if n.startswith("client-"))
    assert len(clients) == 50 and len(ex.namespaces) == 51
    gateway = ex.ip("172.30.30.1")
    # the lowest free hosts in name order, skipping the gateway .1 and the server's pinned .10
    hosts = [h for h in range(2, 53) if h != 10]
    expected = {ex.ns(c): ex.addr(f"172.30.30.{h}/24") for c, h in zip(clients, hosts, strict=True)}
    expected[ex.ns("server")] = ex.addr("172.30.30.10/24")
    assert {ns: lab.addresses(ns, "eth0") for ns in expected} == {ns: [a] for ns, a in expected.items()}
    for client in ("client-01", "client-25", "client-50"):
        assert lab.default_routes(ex.ns(client)) == [(gateway, "eth0", "225")]
    assert_no_changes(lab, ex)

    server_ip = ex.ip("172.30.30.10")
    lab.serve(ex.ns("server"), server_ip, 80, "server")
    for client in ("client-01", "client-08", "client-09", "client-50"):
        assert tcp_from(ex.ns(client), server_ip, 80) == f"server {expected[ex.ns(client)].split('/')[0]}"
    last = expected[ex.ns("client-50")].split("/")[0]
    lab.serve(ex.ns("client-50"), last, 80, "client-50")
    assert lab.tcp_from_host(last, 80, SHORT) == f"client-50 {gateway}"  # host <-> namespace through the gateway

    # sticky: removing client-05 moves no other address
    doc = copy.deepcopy(ex.doc)
    del doc["namespaces"][ex.ns("client-05")]
    lab.write(doc, ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    del expected[ex.ns("client-05")]
    assert {ns: lab.addresses(ns, "eth0") for ns in expected} == {ns: [a] for ns, a in expected.items()}
    assert ex.ns("client-05") not in lab.netns_names()
    assert_no_changes(lab, ex)
    tear_down(lab, ex)


# 4. UDP services


def test_udp_service_forwards_datagrams(lab, host):
    ex = bring_up(lab, host, "udp-service.yaml")
    dns, syslog = ex.ns("dns"), ex.ns("syslog")
    gateway, dns_ip, syslog_ip = ex.ip("172.30.40.1"), ex.ip("172.30.40.53"), ex.ip("172.30.40.14")
    dns_port, syslog_port = ex.port(15353), ex.port(15514)
    serve_udp(lab, dns, 53)
    serve_udp(lab, syslog, 514)

    # the host's datagrams to 127.0.0.1 reach the namespaces from the gateway
    assert udp_from_host("127.0.0.1", dns_port, "query example.lab A") == f"query example.lab A {gateway}"
    assert udp_from_host("127.0.0.1", syslog_port, "<14>host: hello") == f"<14>host: hello {gateway}"
    # a neighbour through the published port (hairpin, masqueraded) and directly
    assert udp_from(syslog, gateway, dns_port, "query") == f"query {gateway}"
    assert udp_from(dns, syslog_ip, 514, "<14>dns: direct") == f"<14>dns: direct {dns_ip}"
    # the syslog forward is 127.0.0.1 only: from the bridge, or to the host's other addresses, the
    # datagram is the host's own, and nothing on the host listens on that port
    assert udp_from(dns, gateway, syslog_port, "<14>dns: via host") == "failed: Connection refused"
    assert udp_from_host(gateway, syslog_port, "<14>host: via gateway") == "failed: Connection refused"
    # a udp forward publishes no tcp port
    assert lab.tcp_from_host("127.0.0.1", dns_port, SHORT) is None

    assert_no_changes(lab, ex)
    tear_down(lab, ex)


# 5. everything pinned


def test_pinned_addresses_macs_mtus_and_routes_are_exactly_as_written(lab, host):
    ex = bring_up(lab, host, "pinned-addresses.yaml")
    lan, san = ex.br("br-lan"), ex.br("br-san")
    for bridge, gateway, mtu in ((lan, "172.30.50.254/24", 1500), (san, "172.30.51.254/24", 9000)):
        state = interface_state(lab, None, bridge)
        assert (state["addresses"], state["mtu"], state["up"]) == ([ex.addr(gateway)], mtu, True), bridge

    # every interface as written in the example, both ends of each veth
    for name, spec in ex.original["namespaces"].items():
        for iface, want in spec["interfaces"].items():
            address = want["address"] if "/" in want["address"] else want["address"] + "/24"
            assert interface_state(lab, ex.ns(name), iface) == {
                "addresses": [ex.addr(address)],
                "mac": want["mac"],
                "mtu": want["mtu"],
                "up": True,
                "master": None,
            }, f"{name}/{iface}"
            outside = interface_state(lab, None, ex.host_veth(name, iface))
            assert (outside["mtu"], outside["master"], outside["up"]) == (want["mtu"], ex.br(want["bridge"]), True)

    # routes: the connected subnets (kernel) and the example's static routes (proto 225), nothing else
    lan_net, san_net = ex.net("172.30.50.0/24"), ex.net("172.30.51.0/24")
    static = lambda to, via, dev: (to, ex.ip(via), dev, "225")  # noqa: E731
    assert route_table(lab, ex.ns("router")) == {
        (lan_net, None, "lan0", "kernel"),
        (san_net, None, "san0", "kernel"),
        static("default", "172.30.50.254", "lan0"),
    }
    assert route_table(lab, ex.ns("desk")) == {
        (lan_net, None, "eth0", "kernel"),
        static("default", "172.30.50.254", "eth0"),
        static(san_net, "172.30.50.1", "eth0"),
    }
    assert route_table(lab, ex.ns("nas")) == {
        (san_net, None, "eth0", "kernel"),
        static(lan_net, "172.30.51.1", "eth0"),
    }

    # desk -> nas goes through the router namespace, without NAT: only while the router forwards
    desk_ip, nas_ip = ex.ip("172.30.50.10"), ex.ip("172.30.51.20")
    route = lab.ip_json("-n", ex.ns("desk"), "route", "get", nas_ip)[0]
    assert (route.get("gateway"), route["dev"]) == (ex.ip("172.30.50.1"), "eth0")
    lab.serve(ex.ns("nas"), nas_ip, 80, "nas")
    assert tcp_from(ex.ns("desk"), nas_ip, 80) == f"nas {desk_ip}"  # the router forwards: `forwarding: true`
    lab.ip("netns", "exec", ex.ns("router"), "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")  # by hand: drift
    assert tcp_from(ex.ns("desk"), nas_ip, 80).startswith("failed: ")
    rc, out, err = lab.nsnet("apply", ex.path)  # repaired
    assert rc == 0 and f"~ namespace {ex.ns('router')} / sysctl net.ipv4.ip_forward" in out, out + err
    assert tcp_from(ex.ns("desk"), nas_ip, 80) == f"nas {desk_ip}"
    assert tcp_from(ex.ns("nas"), desk_ip, 22) == "failed: Connection refused"  # and back: desk's RST
    # jumbo frames on the storage network: 8972 bytes of UDP + 28 of headers = 9000, don't-fragment set,
    # through both veth ends and the bridge
    serve_udp(lab, ex.ns("nas"), 2049)
    assert udp_from(ex.ns("router"), nas_ip, 2049, "--size=8972") == f"8972 bytes {ex.ip('172.30.51.1')}"
    assert udp_from(ex.ns("router"), nas_ip, 2049, "--size=8973") == "failed: Message too long"  # control

    assert_no_changes(lab, ex)
    tear_down(lab, ex)


# every example is covered


TESTED = {"two-bridges.yaml", "three-tier.yaml", "fan-out.yaml", "udp-service.yaml", "pinned-addresses.yaml", "ring.yaml"}
ROUTED = {"ring.yaml"}  # links and IPv6: rewritten, run and pasted by tests/integration/test_ring.py


def test_every_example_lab_has_a_test_here():
    """examples/topology.yaml is covered by the rest of the suite (conftest's Example); every other lab here."""
    assert {p.name for p in EXAMPLES.glob("*.yaml")} - {"topology.yaml"} == TESTED


# the blocks of examples/README.md, pasted whole

EXAMPLES_README = EXAMPLES / "README.md"


def _readme_block(example: str) -> Block:
    text = EXAMPLES_README.read_text()
    match = re.search(rf"<!-- example: {re.escape(example)} -->\n```sh\n(.*?)```", text, re.S)
    assert match, f"examples/README.md has no block marked `<!-- example: {example} -->`"
    return Block("sh", match.group(1), text.count("\n", 0, match.start()) + 2)


@pytest.mark.parametrize("example", ["topology.yaml", *sorted(TESTED - ROUTED)])
def test_the_readme_block_pasted_whole_does_what_its_comments_say(lab, host, example):
    ex = rewrite(lab, host, example)
    names = {ex.original["name"]: ex.name, **ex.bridges, **ex.namespaces}
    if example == "fan-out.yaml":
        names["client-$n"] = f"{lab.prefix}-client-$n"  # the loop over the clients' names
    prefixes = {_prefix(old): _prefix(new) for old, new in ex.networks.items()}
    swap = Swap(names=names, prefixes=prefixes, ports=dict(ex.ports))
    clone = Clone(lab.dir / "clone", swap, REPO)
    lab.procs.append(clone.shell.proc)
    target = clone.root / swap.forward(f"examples/{example}")
    target.write_text(ex.path.read_text())
    lab.register(ex.doc, target)
    if example == "topology.yaml":  # its block runs demo.sh, which names the lab's objects itself
        demo = clone.root / swap.forward("examples/demo.sh")  # the block's words are swapped, its name too
        demo.write_text(swap.forward((EXAMPLES / "demo.sh").read_text()))
    try:
        check_sh(clone.shell, swap, _readme_block(example), timeout=300)
    finally:
        clone.close()
    assert not set(ex.namespaces.values()) & lab.netns_names()


def _prefix(network: IPv4Network) -> str:
    """`172.30.20.` of 172.30.20.0/24: the examples' networks are /24s or smaller."""
    return str(network.network_address).rpartition(".")[0] + "."
