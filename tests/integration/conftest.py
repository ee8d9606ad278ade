"""Root-only integration tests: shared fixture and helpers.

Every test gets a `lab`: a random prefix (`t` + 5 hex digits) that every
topology, bridge and namespace name it writes carries, and a random /24 in
10.0.0.0/8 that overlaps no route on the host. The lab remembers the exact
name of everything the test may have made (bridges, namespaces, host veths,
foreign objects, processes) and its cleanup always runs, in this order: kill
the test's processes (a process inside a namespace keeps it, and its veth,
alive), `nsnet destroy` each topology the test wrote, delete the remembered
names that are still there (exact names only, never patterns), then assert
that nothing of the test is left.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from netplan_lite.model.loader import host_veth_name

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60

TCP_SERVER = str(Path(__file__).with_name("tcp_server.py"))  # answers "<reply> <peer address>"


CLIENT = str(Path(__file__).with_name("tcp_client.py"))  # prints what the server sent, or "failed: ..." (exit 3)

ADDRESS_PROTOS = r"""
import json, socket, sys
from pyroute2 import IPRoute
with IPRoute() as ipr:
    index = ipr.link_lookup(ifname=sys.argv[1])[0]
    print(json.dumps({a.get("address"): a.get("proto") for a in ipr.get_addr(family=socket.AF_INET, index=index)}))
"""


# plain helpers


def run(*cmd: str | os.PathLike, timeout: float = CLI_TIMEOUT, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def nsnet(*args: str | os.PathLike, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run the CLI as a subprocess: (exit code, stdout, stderr)."""
    return run(sys.executable, "-m", "netplan_lite", *args, cwd=cwd or REPO)


def ip(*args: str) -> str:
    """Run `ip ARGS`; fail the test if it fails."""
    rc, out, err = run("ip", *args)
    assert rc == 0, f"ip {' '.join(args)} failed: {err.strip()}"
    return out


def ip_json(*args: str) -> Any:
    out = ip("-j", *args)
    return json.loads(out) if out.strip() else []


def _ns(ns: str | None) -> list[str]:
    return ["-n", ns] if ns else []


def netns_names() -> set[str]:
    return {entry["name"] for entry in ip_json("netns", "list")}


def link(name: str, ns: str | None = None) -> dict[str, Any] | None:
    """`ip -j link show dev NAME` (in ns), or None when there is no such link."""
    rc, out, _ = run("ip", *_ns(ns), "-j", "link", "show", "dev", name)
    return json.loads(out)[0] if rc == 0 else None


def links_with_alias(alias: str) -> list[str]:
    return sorted(link["ifname"] for link in ip_json("link", "show") if link.get("ifalias") == alias)


def addresses(ns: str | None, dev: str) -> list[str]:
    """IPv4 addresses of DEV as `a.b.c.d/prefix`."""
    data = ip_json(*_ns(ns), "-4", "addr", "show", "dev", dev)
    return sorted(f"{a['local']}/{a['prefixlen']}" for entry in data for a in entry.get("addr_info", []))


def address_protos(ns: str, dev: str) -> dict[str, int | None]:
    """IFA_PROTO of each IPv4 address of DEV (iproute2 6.1 does not print it)."""
    rc, out, err = run("ip", "netns", "exec", ns, sys.executable, "-c", ADDRESS_PROTOS, dev)
    assert rc == 0, err
    return json.loads(out)


def routes(ns: str) -> list[dict[str, Any]]:
    return ip_json("-n", ns, "-4", "route", "show")


def default_routes(ns: str) -> list[tuple[str | None, str | None, str | None]]:
    """(gateway, dev, protocol) of each default route in the main table of NS."""
    return [(r.get("gateway"), r.get("dev"), r.get("protocol")) for r in routes(ns) if r["dst"] == "default"]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll: link and namespace deletion complete asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def host_networks() -> list[IPv4Network]:
    """Destinations of every IPv4 route on the host, except default routes."""
    found = []
    for route in ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "default")
        if dst != "default":
            found.append(ipaddress.ip_network(dst, strict=False))
    return found


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def no_changes(out: str) -> bool:
    return out.startswith("No changes.")


def nft_table_names() -> set[str]:
    if shutil.which("nft") is None:
        return set()
    rc, out, _ = run("nft", "-j", "list", "tables")
    return {i["table"]["name"] for i in json.loads(out)["nftables"] if "table" in i} if rc == 0 and out.strip() else set()


def ip_forward_holders() -> set[str]:
    """Topologies /run/nsnet/sysctl.json lists as holding net.ipv4.ip_forward."""
    try:
        registry = json.loads(Path("/run/nsnet/sysctl.json").read_text())
    except (OSError, ValueError):
        return set()
    return set(registry.get("net.ipv4.ip_forward", {}).get("holders", []))


def forwarded_ports() -> set[int]:
    """Host ports some nsnet topology (of any suite running now) forwards, from its rule comments."""
    ports = set()
    for name in nft_table_names():
        for family in ("inet", "ip") if name.startswith("nsnet-") else ():  # nsnet's family, and an older nsnet's
            rc, out, _ = run("nft", "-j", "list", "table", family, name)
            for item in json.loads(out)["nftables"] if rc == 0 else []:
                words = item.get("rule", {}).get("comment", "").split()  # "forward tcp *:PORT -> ns:port"
                if len(words) >= 3 and words[0] == "forward":
                    ports.add(int(words[2].rpartition(":")[2]))
    return ports


def tcp_from_host(address: str, port: int, timeout: float = 5.0) -> str | None:
    """What a server at ADDRESS:PORT sends to a connection from the host, or None if none is made."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    return data.decode()


def free_ports(count: int) -> list[int]:
    """Distinct host ports in 20000-31999 (below the ephemeral range) that nothing binds (TCP nor UDP) or forwards."""
    ports: list[int] = []
    taken = forwarded_ports()
    while len(ports) < count:
        port = 20000 + secrets.randbelow(12000)
        if port in ports or port in taken:
            continue
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("0.0.0.0", port))
        except OSError:
            continue
        ports.append(port)
    return ports


# the example topology


@dataclasses.dataclass(frozen=True)
class Example:
    """The shape of examples/topology.yaml: one bridge, web1 (pinned .10), web2 (allocated)."""

    topology: str
    bridge: str
    web1: str
    web2: str
    subnet: IPv4Network
    path: Path

    @property
    def label(self) -> str:
        return f"nsnet:{self.topology}"

    @property
    def gateway(self) -> str:
        return str(self.subnet[1])

    def cidr(self, host: int) -> str:
        return f"{self.subnet[host]}/{self.subnet.prefixlen}"

    @property
    def expected(self) -> dict[str, str]:
        """Namespace -> eth0 address: web1 pinned at .10, web2 the lowest free host (.2)."""
        return {self.web1: self.cidr(10), self.web2: self.cidr(2)}

    def host_veth(self, ns: str, iface: str = "eth0") -> str:
        return host_veth_name(self.topology, ns, iface)

    def doc(self, namespaces: tuple[str, ...] | None = None) -> dict[str, Any]:
        specs = {
            self.web1: {"interfaces": {"eth0": {"bridge": self.bridge, "address": str(self.subnet[10])}}},
            self.web2: {"interfaces": {"eth0": {"bridge": self.bridge}}},
        }
        keep = namespaces or (self.web1, self.web2)
        return {
            "name": self.topology,
            "bridges": {self.bridge: {"subnet": str(self.subnet)}},
            "namespaces": {ns: specs[ns] for ns in keep},
        }


def assert_example_live(ex: Example, namespaces: tuple[str, ...] | None = None) -> None:
    """The kernel holds the example exactly as nsnet should have made it."""
    bridge = link(ex.bridge)
    assert bridge is not None, f"bridge {ex.bridge} missing"
    assert bridge.get("ifalias") == ex.label and "UP" in bridge["flags"]
    assert addresses(None, ex.bridge) == [ex.cidr(1)]
    for ns in namespaces or (ex.web1, ex.web2):
        assert ns in netns_names()
        inner, host = link("eth0", ns), link(ex.host_veth(ns))
        assert inner is not None and host is not None, f"veth of {ns} missing"
        assert inner.get("ifalias") == ex.label and "UP" in inner["flags"]
        assert host.get("ifalias") == ex.label and "UP" in host["flags"]
        assert host.get("master") == ex.bridge
        assert addresses(ns, "eth0") == [ex.expected[ns]]
        assert address_protos(ns, "eth0") == {ex.expected[ns].split("/")[0]: 225}
        assert default_routes(ns) == [(ex.gateway, "eth0", "225")]


# the lab


class Lab:
    # kernel helpers, reachable from the tests through the fixture (test modules import nothing from here)
    ip = staticmethod(ip)
    run = staticmethod(run)
    nft_table_names = staticmethod(nft_table_names)
    ip_json = staticmethod(ip_json)
    link = staticmethod(link)
    netns_names = staticmethod(netns_names)
    links_with_alias = staticmethod(links_with_alias)
    addresses = staticmethod(addresses)
    default_routes = staticmethod(default_routes)
    wait_until = staticmethod(wait_until)
    lines = staticmethod(lines)
    no_changes = staticmethod(no_changes)
    assert_example_live = staticmethod(assert_example_live)
    free_ports = staticmethod(free_ports)
    tcp_from_host = staticmethod(tcp_from_host)

    def __init__(self, tmp_path: Path):
        self.prefix = "t" + secrets.token_hex(3)[:5]
        self.dir = tmp_path
        self._subnets: list[IPv4Network] = []
        self.subnet = self.new_subnet()
        self.files: dict[str, Path] = {}  # topology name -> last file written for it
        self.namespaces: set[str] = set()
        self.links: set[str] = set()
        self.procs: list[subprocess.Popen] = []

    # names and files

    def new_subnet(self) -> IPv4Network:
        """A random /24 in 10.0.0.0/8 overlapping no host route and no earlier pick."""
        taken = host_networks() + self._subnets
        for _ in range(200):
            candidate = IPv4Network(f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.0/24")
            if not any(candidate.overlaps(net) for net in taken):
                self._subnets.append(candidate)
                return candidate
        pytest.fail("no free /24 in 10.0.0.0/8")

    def example(self, suffix: str = "", filename: str | None = None) -> Example:
        """Write the example topology; with a suffix, a second one with its own names and subnet."""
        ex = Example(
            topology=f"{self.prefix}{suffix}",
            bridge=f"{self.prefix}br{suffix}",
            web1=f"{self.prefix}{suffix}-web1",
            web2=f"{self.prefix}{suffix}-web2",
            subnet=self.new_subnet() if suffix else self.subnet,
            path=self.dir / (filename or f"topology{suffix}.yaml"),
        )
        self.write(ex.doc(), ex.path)
        return ex

    def write(self, doc: dict[str, Any], path: Path) -> Path:
        """Write a topology and remember every name it can make in the kernel."""
        self.register(doc, path)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def register(self, doc: dict[str, Any], path: Path) -> None:
        """Remember every name a topology (written by the test, or by the commands it runs) can make in the kernel."""
        name = doc["name"]
        assert name.startswith(self.prefix)
        for bridge in doc.get("bridges") or {}:
            assert bridge.startswith(self.prefix) and len(bridge) <= 15, bridge
            self.links.add(bridge)
        for ns, spec in (doc.get("namespaces") or {}).items():
            assert ns.startswith(self.prefix), ns
            self.namespaces.add(ns)
            for iface in (spec or {}).get("interfaces") or {}:
                self.links.add(host_veth_name(name, ns, iface))
        self.files[name] = path

    def nsnet(self, *args: str | os.PathLike) -> tuple[int, str, str]:
        return nsnet(*args, cwd=self.dir)

    # foreign objects and processes

    def foreign_bridge(self, name: str) -> None:
        assert name.startswith(self.prefix)
        self.links.add(name)
        ip("link", "add", name, "type", "bridge")

    def foreign_namespace(self, name: str) -> None:
        assert name.startswith(self.prefix)
        self.namespaces.add(name)
        ip("netns", "add", name)

    def spawn(self, ns: str, *argv: str) -> subprocess.Popen:
        """Start a process inside NS; killed in cleanup."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def serve(self, ns: str, address: str, port: int, reply: str, lifetime: float = 30) -> subprocess.Popen:
        """A TCP server inside NS bound to ADDRESS; returns once it listens."""
        proc = self.spawn(ns, sys.executable, TCP_SERVER, address, str(port), reply, str(lifetime))
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "ready", f"server in {ns} did not start: {line!r} {proc.poll()}"
        return proc

    def connect_from(self, ns: str, address: str, port: int, timeout: float = 5.0) -> str:
        """Connect to ADDRESS:PORT from inside NS (giving up after TIMEOUT); what the server sent."""
        rc, out, err = run("ip", "netns", "exec", ns, sys.executable, CLIENT, address, str(port), str(timeout), timeout=timeout + 15)
        assert rc == 0, err
        return out.strip()

    # cleanup

    def leftovers(self) -> list[str]:
        left = [f"namespace {n}" for n in sorted(self.namespaces & netns_names())]
        left += [f"link {n}" for n in sorted(self.links) if link(n) is not None]
        for topology in self.files:
            left += [f"link {n} (alias nsnet:{topology})" for n in links_with_alias(f"nsnet:{topology}")]
        tables = nft_table_names()
        left += [f"nft table nsnet-{t}" for t in self.files if f"nsnet-{t}" in tables]
        left += [f"ip_forward held by {t}" for t in self.files if t in ip_forward_holders()]
        return left

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        for path in self.files.values():
            nsnet("destroy", path, cwd=self.dir)
        for ns in sorted(self.namespaces & netns_names()):
            run("ip", "netns", "del", ns)
        for name in sorted(self.links):
            if link(name) is not None:
                run("ip", "link", "del", "dev", name)
        wait_until(lambda: not self.leftovers())
        assert not self.leftovers(), f"left behind: {self.leftovers()}"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def applied(lab: Lab) -> Example:
    """The example topology, applied."""
    ex = lab.example()
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    return ex
