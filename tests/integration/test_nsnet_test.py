"""`nsnet test` against the real kernel: two namespaces of the test's own, joined by a veth pair
with IPv4 and IPv6 addresses (nodad), servers it starts and stops by PID, and topology files
whose namespaces are those: one labelled on lo the way nsnet labels what it creates, one a
`path:` data source. Pass, fail, exit codes, the table, JSON and JUnit; a lab not applied."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import secrets
from ipaddress import IPv6Address
import select
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from netplan_lite.kernel.rtnl.address import AddrMsg
from netplan_lite.model.loader import topology_schema

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
TCP_SERVER = str(Path(__file__).with_name("tcp_server.py"))
UDP_ECHO = str(Path(__file__).with_name("udp_echo.py"))
V6_LISTENER = (  # accepts nothing: the kernel completes connections into the backlog
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET6)\n"
    "s.bind((sys.argv[1], int(sys.argv[2])))\n"
    "s.listen(8)\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[3]))\n"
)
TCP, CLOSED, UDP, CLOSED_UDP, TCP6 = 8080, 8081, 5353, 5354, 8086
IPV6_DUMPED = any(f.name == "family" for f in dataclasses.fields(AddrMsg))  # the codec reads IPv6 addresses too
needs_checks = pytest.mark.skipif("checks" not in topology_schema()["properties"], reason="the topology format has no `checks:` yet")


@dataclasses.dataclass(frozen=True)
class Pair:
    """Namespace `a` (labelled for the topology) and `b` (a data source), joined by a veth pair."""

    topology: str
    a: str
    b: str
    a4: str
    b4: str
    a6: str
    b6: str
    lo4: str  # on b's lo, routed from a via b
    blackholed: str  # a's route sends it nowhere

    def doc(self, checks: list[dict] | None = None, **extra: dict) -> dict:
        namespaces = {self.a: {}, self.b: {"path": f"/run/netns/{self.b}"}, **extra}
        return {"name": self.topology, "namespaces": namespaces, **({"checks": checks} if checks is not None else {})}


def started(proc: subprocess.Popen) -> subprocess.Popen:
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    assert line.strip() == "ready", f"server did not start: {line!r} {proc.poll()}"
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()  # by its PID: `ip netns exec` execs the server itself
    proc.wait(timeout=10)


@pytest.fixture
def pair(lab) -> Pair:
    # canonical text ("fd61:699:baff::", not "fd61:0699:baff::"): the results are compared as text
    prefix6 = str(IPv6Address(f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}::"))
    pair = Pair(
        topology=lab.prefix,
        a=f"{lab.prefix}-a",
        b=f"{lab.prefix}-b",
        a4=str(lab.subnet[1]),
        b4=str(lab.subnet[2]),
        a6=f"{prefix6}1",
        b6=f"{prefix6}2",
        lo4=str(lab.new_subnet()[1]),
        blackholed=str(lab.new_subnet()[5]),
    )
    for ns in (pair.a, pair.b):
        lab.foreign_namespace(ns)
        lab.ip("-n", ns, "link", "set", "lo", "up")
    lab.ip("-n", pair.a, "link", "set", "lo", "alias", f"nsnet:{pair.topology}")  # as nsnet labels a namespace it creates
    # a spare pair first, so that the two ends of eth0 get different ifindexes: with equal ones IPv6 stays dead 1-2 s (measured)
    lab.ip("-n", pair.b, "link", "add", "spare0", "type", "veth", "peer", "name", "spare1")
    lab.ip("-n", pair.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", pair.b)
    for ns, v4, v6 in ((pair.a, pair.a4, pair.a6), (pair.b, pair.b4, pair.b6)):
        lab.ip("-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
        lab.ip("-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
        lab.ip("-n", ns, "link", "set", "eth0", "up")
    lab.ip("-n", pair.b, "addr", "add", f"{pair.lo4}/32", "dev", "lo")
    lab.ip("-n", pair.a, "route", "add", f"{pair.lo4}/32", "via", pair.b4)
    lab.ip("-n", pair.a, "route", "add", "blackhole", f"{pair.blackholed}/32")
    return pair


@pytest.fixture
def servers(lab, pair) -> dict[str, subprocess.Popen]:
    return {
        "tcp": lab.serve(pair.b, "0.0.0.0", TCP, "hello"),
        "udp": started(lab.spawn(pair.b, sys.executable, UDP_ECHO, "0.0.0.0", str(UDP), "60")),
        "tcp6": started(lab.spawn(pair.b, sys.executable, "-c", V6_LISTENER, pair.b6, str(TCP6), "60")),
    }


def schema_errors(doc: dict) -> list[str]:
    schema = json.loads((REPO / "schemas" / "test.schema.json").read_text())
    return [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(doc)]


def rows(out: str) -> list[list[str]]:
    """The table's rows (without the header and the summary), split on whitespace."""
    return [line.split() for line in out.splitlines()[1:] if line.strip() and not line.startswith("Topology ")]


def b_addresses(pair: Pair) -> list[str]:
    """What `to: b` probes, in order: b's global addresses, lo's included, IPv4 first, each family by address."""
    return sorted([pair.lo4, pair.b4], key=ipaddress.ip_address) + ([pair.b6] if IPV6_DUMPED else [])


# checks


@needs_checks
def test_passing_checks_exit_0_with_a_row_per_probe_and_json_and_junit(lab, pair, servers, tmp_path):
    checks = [
        {"from": pair.a, "to": pair.b, "ping": True},
        {"from": pair.a, "to": pair.b6, "ping": True},
        {"from": pair.a, "to": pair.b4, "port": TCP},
        {"from": pair.a, "to": pair.b6, "port": TCP6},
        {"from": pair.a, "to": pair.b4, "port": UDP, "protocol": "udp"},
        {"from": pair.a, "to": pair.blackholed, "ping": True, "expect": "unreachable"},
        {"from": pair.a, "to": pair.b4, "port": CLOSED, "expect": "unreachable"},
    ]
    path = lab.write(pair.doc(checks), tmp_path / "pair.yaml")
    junit = tmp_path / "report.xml"
    rc, out, err = lab.nsnet("test", path, "--junit", junit)
    assert (rc, err) == (0, ""), out + err
    table = rows(out)
    addresses = b_addresses(pair)
    assert [r[:3] for r in table[: len(addresses)]] == [["1", "ping", pair.a]] * len(addresses)
    assert [r[4] for r in table[: len(addresses)]] == addresses
    assert all(r[r.index("pass") + 1].replace(".", "").isdigit() for r in table if "(expect" not in r)  # an RTT in ms
    assert len(table) == len(addresses) + 6 and all("pass" in r for r in table)
    blackholed = next(line for line in out.splitlines() if line.startswith("6 ping"))
    assert "unreachable as expected: not sent: a blackhole route (EINVAL)" in blackholed
    assert "unreachable as expected: connection refused" in next(line for line in out.splitlines() if line.startswith("7 tcp"))
    assert out.splitlines()[-1].startswith(f"Topology {pair.topology}: {len(table)} probes, all passed in ")

    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == (pair.topology, str(len(table)), "0")
    assert all(case.get("classname") == f"{pair.topology}.{pair.a}" and case.get("line") for case in suite.iter("testcase"))

    rc, out, _ = lab.nsnet("test", path, "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["passed"] and not schema_errors(doc)
    tcp6 = next(p for p in doc["probes"] if p["port"] == TCP6)
    assert (tcp6["family"], tcp6["outcome"], tcp6["attempts"]) == (6, "reply", 1) and tcp6["rtt_ms"] > 0


@needs_checks
def test_failing_checks_exit_4_and_say_why(lab, pair, servers, tmp_path):
    checks = [
        {"from": pair.a, "to": pair.b4, "port": TCP},
        {"from": pair.a, "to": pair.b4, "port": CLOSED},
        {"from": pair.a, "to": pair.b4, "port": CLOSED_UDP, "protocol": "udp"},
        {"from": pair.a, "to": pair.b, "ping": True, "expect": "unreachable"},
        {"from": pair.a, "to": pair.blackholed, "ping": True},
    ]
    path = lab.write(pair.doc(checks), tmp_path / "pair.yaml")
    stop(servers["tcp"])  # now check 1 fails too
    junit = tmp_path / "report.xml"
    rc, out, err = lab.nsnet("test", path, "--wait", "1", "--junit", junit)
    assert rc == 4, out + err
    lines = out.splitlines()
    assert "FAIL" in next(line for line in lines if line.startswith("1 tcp")) and "connection refused" in lines[1]
    assert next(line for line in lines if line.startswith("3 udp")).endswith("port unreachable")
    assert all("reached (echo reply), expected unreachable" in line for line in lines if line.startswith("4 ping"))
    assert next(line for line in lines if line.startswith("5 ping")).endswith("not sent: a blackhole route (EINVAL)")
    assert lines[-1].startswith(f"Topology {pair.topology}: ") and "failed (checks 1, 2, 3, 4, 5) in " in lines[-1]

    failures = ET.parse(junit).getroot().findall("testsuite/testcase/failure")
    assert {f.get("type") for f in failures} == {"refused", "reply", "unreachable"}
    assert len(failures) == 3 + len(b_addresses(pair)) + 1

    rc, out, _ = lab.nsnet("test", path, "--json", "--wait", "0.5")
    doc = json.loads(out)
    assert rc == 4 and not doc["passed"] and doc["summary"]["passed"] == 0 and not schema_errors(doc)


# --ping-all, and a lab that is not applied (no `checks:` needed)


def test_ping_all_pings_every_address_of_the_other_namespace_both_ways(lab, pair, tmp_path):
    path = lab.write(pair.doc(), tmp_path / "pair.yaml")
    rc, out, err = lab.nsnet("test", path, "--ping-all", "--json")
    assert rc == 0, out + err
    doc = json.loads(out)
    assert not schema_errors(doc)
    probed = {(p["from"], p["address"]) for p in doc["probes"]}
    a_addresses = [pair.a4] + ([pair.a6] if IPV6_DUMPED else [])
    assert probed == {(pair.a, x) for x in b_addresses(pair)} | {(pair.b, x) for x in a_addresses}
    assert all(p["passed"] and p["check"] is None and p["rtt_ms"] is not None for p in doc["probes"])


def test_a_file_without_checks_is_an_error_unless_ping_all(lab, pair, tmp_path):
    path = lab.write(pair.doc(), tmp_path / "pair.yaml")
    rc, out, err = lab.nsnet("test", path)
    assert (rc, out) == (1, "") and err == f"nsnet: {path}: nothing to test: the file has no `checks:` (add some, or use --ping-all)\n"


def test_a_missing_namespace_is_an_error_and_nothing_is_probed(lab, pair, tmp_path):
    gone = f"{lab.prefix}-gone"
    path = lab.write(pair.doc(**{gone: {}}), tmp_path / "pair.yaml")
    rc, out, err = lab.nsnet("test", path, "--ping-all")
    assert (rc, out) == (1, "")
    assert err == f"nsnet: namespace {gone!r} is declared but does not exist on this host: run `nsnet apply {path}` first\n"


def test_a_namespace_of_another_topology_or_of_no_topology_is_refused(lab, pair, tmp_path):
    other = f"{lab.prefix}-other"
    lab.foreign_namespace(other)
    lab.ip("-n", other, "link", "set", "lo", "alias", f"nsnet:{lab.prefix}x")
    path = lab.write(pair.doc(**{other: {}}), tmp_path / "pair.yaml")
    rc, out, err = lab.nsnet("test", path, "--ping-all", "--json")
    assert rc == 1 and json.loads(out)["error"] == "conflict"
    assert err.count("\n") == 1 and f"it belongs to topology '{lab.prefix}x'" in err

    doc = pair.doc()
    doc["namespaces"][pair.b] = {}  # b without `path:` must carry the label, and does not
    lab.write(doc, path)
    rc, _, err = lab.nsnet("test", path, "--ping-all")
    assert rc == 1 and f"namespace {pair.b!r} exists but is not part of topology" in err and "its lo has no nsnet label" in err


def test_a_data_source_that_is_gone_is_an_error(lab, pair, tmp_path):
    doc = pair.doc()
    doc["namespaces"][pair.b] = {"path": f"/run/netns/{lab.prefix}-nothere"}  # never made
    path = lab.write(doc, tmp_path / "pair.yaml")
    rc, _, err = lab.nsnet("test", path, "--ping-all")
    gone = f"/run/netns/{lab.prefix}-nothere"
    assert rc == 1 and err == f"nsnet: namespace {pair.b!r}: its data source {gone} does not exist (has its container stopped?)\n"
