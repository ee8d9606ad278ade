"""nsnet next to a real Docker daemon (issue 12): Docker's FORWARD DROP, DOCKER-USER and docker0.

Installs nothing: the module uses `dockerd` when it is on PATH (scripts/setup --test
installs docker.io and iptables) and skips when the host cannot have a private daemon
undone exactly (see dockerd.skip_reason: a Docker or iptables firewall of the host's
own, legacy iptables, another nsnet lab live now). The module-scoped `docker` fixture
records the host (nft ruleset text and tables, links, the sysctls Docker writes), sets
ip_forward=0, starts dockerd in a temporary directory (its own config, data-root,
exec-root, pidfile, socket, and a random /24 for docker0 that no host route overlaps),
waits until `-P FORWARD DROP` and DOCKER-USER are there, and after the module's tests
stops dockerd by its pid and restores the host, asserting that it is exactly as
recorded. The restore runs when a test fails too.

The lab: namespaces a (pinned .10, a TCP server on port 80, published on a random host
port) and b on one bridge with masquerade. With br_netfilter's bridge-nf-call-iptables=1
the frames between a and b cross iptables' FORWARD, so Docker's policy drop cuts them
unless DOCKER-USER accepts the bridge. Traffic goes only to 127.0.0.1 and to addresses
of the lab's own namespaces; a connection that must fail is given SHORT seconds.

The tests: (1) by default nsnet accepts the bridge in DOCKER-USER and every path is
reached, drift is found and mended, destroy leaves Docker's rules and docker0 as they
were; (2) with `firewall: {docker_user: false}` nothing is added and exactly the traffic
the forward-policy-drop warning names is dropped, until the fix it names is taken;
(3) Docker restarts under a live lab, plainly (20.10 keeps the chain's rules) and on a
reset firewall (a fresh chain: plan shows the change, apply mends it); (4) where
ip6tables has DOCKER-USER too, nsnet's rules go into both.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import dockerd
from state_dirs import remove_state_dirs

pytestmark = pytest.mark.netns

CLIENT = str(Path(__file__).with_name("tcp_client.py"))  # prints what the server sent, or "failed: ..." (exit 3)
SHORT = 2.0  # seconds a connection that must fail is given
OK = 5.0  # seconds a connection that must work is given
CHAIN = "DOCKER-USER"
REPLY = "web"  # what a's server answers, followed by the peer address it saw

# the kinds of traffic the forward-policy-drop warning can name, by the words it uses for them
TRAFFIC_WORDS = {
    "neighbour": ("neighbour", "between its namespaces"),  # a <-> b on the bridge (bridge-nf-call-iptables=1)
    "hairpin": ("hairpin", "port forwards from other hosts and namespaces"),  # a namespace -> gateway:published port
    "outside": ("masquerade", "to the outside"),  # to beyond the host: not tried here (no traffic leaves the host)
    "cross-bridge": ("traffic to and from",),  # to another bridge's namespaces: this lab has one bridge
}


# host-side helpers


def run(*cmd: str, timeout: float = 30) -> tuple[int, str, str]:
    return dockerd.run(*cmd, timeout=timeout)


def saved(tool: str) -> str:
    """`iptables-save` / `ip6tables-save` without its `#` lines and with every `[packets:bytes]` zeroed."""
    rc, out, err = run(tool)
    assert rc == 0, err
    kept = []
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(":"):  # ":CHAIN POLICY [n:m]"
            line = line.rpartition(" ")[0] + " [0:0]" if line.endswith("]") else line
        kept.append(line)
    return "\n".join(kept) + "\n"


def firewalls() -> dict[str, str]:
    return {tool: saved(tool) for tool in ("iptables-save", "ip6tables-save")}


def chain_rules(tool: str = "iptables") -> list[str] | None:
    """`TOOL -S DOCKER-USER` as lines, or None when the chain does not exist."""
    rc, out, _ = run(tool, "-S", CHAIN)
    return out.splitlines() if rc == 0 else None


def nsnet_rules(topology: str, tool: str = "iptables") -> dict[str, list[str]]:
    """The rules of DOCKER-USER carrying the comment nsnet:TOPOLOGY, by direction (-i/-o), as
    argument lists; checks that each comes before Docker's `-j RETURN` (after it, none would match)."""
    lines = chain_rules(tool) or []
    found: dict[str, list[str]] = {}
    ret = lines.index(f"-A {CHAIN} -j RETURN") if f"-A {CHAIN} -j RETURN" in lines else len(lines)
    for index, line in enumerate(lines):
        words = shlex.split(line)
        if "--comment" in words and words[words.index("--comment") + 1] == f"nsnet:{topology}":
            assert index < ret, f"{line!r} comes after Docker's RETURN: {lines}"
            direction = "-i" if "-i" in words else "-o" if "-o" in words else "?"
            assert direction not in found, f"two {direction} rules: {lines}"
            found[direction] = words
    return found


def docker0() -> dict[str, Any]:
    rc, out, err = run("ip", "-j", "link", "show", "dev", dockerd.BRIDGE)
    assert rc == 0, err
    return json.loads(out)[0]


def tcp_from(ns: str, address: str, port: int, timeout: float) -> str | None:
    """What a server at ADDRESS:PORT sends to a connection from inside NS, or None if none is made."""
    rc, out, err = run("ip", "netns", "exec", ns, sys.executable, CLIENT, address, str(port), str(timeout), timeout=timeout + 20)
    assert rc in (0, 3), err
    return out.strip() if rc == 0 else None


def named_traffic(message: str) -> set[str]:
    """The kinds of traffic (TRAFFIC_WORDS) a forward-policy-drop message says are dropped; fails on
    words it does not know, so that a new kind in the warning is met here with a test."""
    assert "drops " in message, message
    named: set[str] = set()
    for part in message.split("drops ", 1)[1].split(", "):
        kinds = {kind for kind, words in TRAFFIC_WORDS.items() if any(w in part for w in words)}
        assert kinds, f"the warning names traffic this test does not know: {part!r} (in {message!r})"
        named |= kinds
    return named


# fixtures


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dockerd.Dockerd]:
    reason = dockerd.skip_reason()
    if reason:
        pytest.skip(reason)
    record = dockerd.HostRecord.take()
    daemon = dockerd.Dockerd(tmp_path_factory.mktemp("dockerd"), dockerd.free_subnet())
    problems: list[str] = []
    try:
        dockerd.set_ip_forward("0")
        daemon.start()
        assert dockerd.forward_policy() == "DROP"
        yield daemon
    finally:
        try:
            daemon.stop()
        except Exception as err:  # noqa: BLE001 - the host is restored whatever went wrong; reported below
            problems.append(f"stopping dockerd: {err!r}")
        left = daemon.mounts()
        problems += [f"mounted after dockerd stopped: {m}" for m in left]
        daemon.remove_dirs()
        problems += dockerd.restore(record)
    assert not problems, "\n".join(problems)


@pytest.fixture(autouse=True)
def topologies() -> Iterator[set[str]]:
    """Autouse, so torn down after the lab's cleanup: /run/nsnet/<topology> of each topology written."""
    names: set[str] = set()
    yield names
    journals = remove_state_dirs(names)
    assert not journals, f"journals left behind after destroy: {journals}"


class Site:
    """The lab's topology next to Docker: its names, file, and the nsnet commands on it."""

    def __init__(self, lab: Any, topologies: set[str], docker_user: bool | None = None):
        self.lab = lab
        self.topology = lab.prefix
        self.bridge = f"{lab.prefix}b"
        self.a, self.b = f"{lab.prefix}-a", f"{lab.prefix}-b"
        self.gateway = str(lab.subnet[1])
        self.a_address = str(lab.subnet[10])
        (self.port,) = lab.free_ports(1)
        topologies.add(self.topology)
        self.write(docker_user)

    def write(self, docker_user: bool | None) -> None:
        """The topology file; DOCKER_USER: the `firewall: {docker_user: ...}` key, None: no key."""
        doc: dict[str, Any] = {
            "name": self.topology,
            "bridges": {self.bridge: {"subnet": str(self.lab.subnet), "masquerade": True}},
            "namespaces": {
                self.a: {"interfaces": {"eth0": {"bridge": self.bridge, "address": self.a_address}}},
                self.b: {"interfaces": {"eth0": {"bridge": self.bridge}}},
            },
            "port_forwards": [{"host_port": self.port, "namespace": self.a, "port": 80}],
        }
        if docker_user is not None:
            doc["firewall"] = {"docker_user": docker_user}
        self.path = self.lab.write(doc, self.lab.dir / "topology.yaml")

    def nsnet(self, *args: str) -> tuple[int, str, str]:
        return self.lab.nsnet(*args, self.path)

    def plan(self) -> tuple[int, str]:
        """`nsnet plan --detailed-exitcode`: (exit code, output)."""
        rc, out, err = self.nsnet("plan", "--detailed-exitcode")
        assert rc in (0, 2), out + err
        return rc, out + err

    def apply(self) -> str:
        rc, out, err = self.nsnet("apply")
        assert rc == 0, out + err
        return out + err

    def warnings(self, code: str) -> list[dict[str, str]]:
        rc, out, err = self.nsnet("plan", "--json")
        assert rc == 0, out + err
        return [w for w in json.loads(out)["warnings"] if w["code"] == code and f"bridge {self.bridge}" in w["message"]]

    def serve(self) -> None:
        self.lab.serve(self.a, "0.0.0.0", 80, REPLY, lifetime=120)

    def reached(self, timeout: float = OK) -> dict[str, bool]:
        """Which of the lab's paths to a's server answer (and answer as they should)."""
        return {
            "host": self.lab.tcp_from_host("127.0.0.1", self.port, timeout=timeout) == f"{REPLY} {self.gateway}",
            "neighbour": tcp_from(self.b, self.a_address, 80, timeout) == f"{REPLY} {self.lab.subnet[2]}",
            "hairpin from b": tcp_from(self.b, self.gateway, self.port, timeout) == f"{REPLY} {self.gateway}",
            "hairpin from a": tcp_from(self.a, self.gateway, self.port, timeout) == f"{REPLY} {self.gateway}",
        }


def plan_lines(out: str) -> list[str]:
    """The plan's action lines (+, -, ~) about DOCKER-USER (a warning's hint may name it too)."""
    return [line.strip() for line in out.splitlines() if line.strip()[:1] in ("+", "-", "~") and CHAIN in line]


def expected_plan_lines(bridge: str) -> list[str]:
    lines = [f"+ iptables rule {CHAIN}: accept {bridge} in/out"]
    if chain_rules("ip6tables") is not None:
        lines.append(f"+ ip6tables rule {CHAIN}: accept {bridge} in/out")
    return lines


ALL = {"host": True, "neighbour": True, "hairpin from b": True, "hairpin from a": True}


def assert_opened(site: Site) -> dict[str, list[str]]:
    """nsnet's two rules are in DOCKER-USER (ip6tables' too, when Docker made one), before Docker's
    RETURN, and accept the bridge's traffic in and out; the iptables rules, by direction."""
    rules = nsnet_rules(site.topology)
    assert sorted(rules) == ["-i", "-o"], chain_rules()
    for direction, words in rules.items():
        assert words[words.index(direction) + 1] == site.bridge and words[-2:] == ["-j", "ACCEPT"], words
    if chain_rules("ip6tables") is not None:
        assert sorted(nsnet_rules(site.topology, "ip6tables")) == ["-i", "-o"], chain_rules("ip6tables")
    return rules


# 1. the default: nsnet opens DOCKER-USER for its bridge


def test_docker_user_accepts_the_bridge_so_every_path_is_reached_and_destroy_leaves_dockers_rules(docker, lab, topologies):
    site = Site(lab, topologies)
    before, bridge_before = firewalls(), docker0()

    rc, out, err = site.nsnet("plan")
    assert rc == 0, out + err
    assert plan_lines(out) == expected_plan_lines(site.bridge), out
    assert site.warnings("forward-policy-drop") == []  # the plan opens the chain: nothing left to warn about
    site.apply()
    rules = assert_opened(site)

    site.serve()
    assert site.reached() == ALL
    assert site.warnings("forward-policy-drop") == []
    assert site.plan()[0] == 0

    # drift: a rule deleted by hand is a change, and apply puts it back
    rc, _, err = run("iptables", "-D", *rules["-i"][1:])
    assert rc == 0, err
    assert sorted(nsnet_rules(site.topology)) == ["-o"]
    rc, out = site.plan()
    assert rc == 2 and any(site.bridge in line for line in plan_lines(out)), out
    site.apply()
    assert assert_opened(site) == rules
    assert site.plan()[0] == 0
    assert site.reached()["neighbour"]

    rc, out, err = site.nsnet("destroy")
    assert rc == 0, out + err
    assert nsnet_rules(site.topology) == {}
    assert firewalls() == before  # Docker's rules, byte for byte (counters aside)
    assert docker0() == bridge_before


# 2. the opt-out: nsnet leaves Docker's chain alone and its warning says what breaks


def test_with_docker_user_false_nothing_is_added_and_exactly_the_traffic_the_warning_names_is_dropped(docker, lab, topologies):
    site = Site(lab, topologies, docker_user=False)
    before = firewalls()

    rc, out, err = site.nsnet("plan")
    assert rc == 0, out + err
    assert plan_lines(out) == [], out
    (warning,) = site.warnings("forward-policy-drop")
    assert "docker_user" in warning["message"] + warning["hint"] and CHAIN in warning["hint"], warning  # names the fix
    applied = site.apply()
    assert f"{warning['message']} ({warning['hint']})" in applied, applied  # its `warning: ...` line
    assert firewalls() == before
    assert nsnet_rules(site.topology) == {}

    named = named_traffic(warning["message"])
    assert named & {"neighbour", "hairpin"}, f"the lab has both: {warning['message']}"
    site.serve()
    assert site.reached(timeout=SHORT) == {
        "host": True,  # the host's own connection leaves by OUTPUT: FORWARD never sees it
        "neighbour": "neighbour" not in named,
        "hairpin from b": "hairpin" not in named,
        "hairpin from a": "hairpin" not in named,
    }, warning["message"]

    # the fix the warning names: without the opt-out, every path is reached
    site.write(docker_user=True)
    rc, out = site.plan()
    assert rc == 2 and plan_lines(out) == expected_plan_lines(site.bridge), out
    site.apply()
    assert_opened(site)
    assert site.reached() == ALL
    assert site.warnings("forward-policy-drop") == []

    rc, out, err = site.nsnet("destroy")
    assert rc == 0, out + err
    assert firewalls() == before


# 3. Docker restarts under a live lab


def test_after_a_docker_restart_plan_tells_whether_the_rules_survived_and_apply_restores_traffic(docker, lab, topologies):
    site = Site(lab, topologies)
    site.apply()
    rules = assert_opened(site)
    bridge_before = docker0()
    site.serve()

    # a plain restart: Docker keeps the chain and what is in it (20.10 does: no change then)
    docker.stop()
    docker.start()
    assert dockerd.forward_policy() == "DROP"  # left from the first start: Docker found ip_forward=1 this time
    survived = nsnet_rules(site.topology) == rules
    rc, out = site.plan()
    assert rc == (0 if survived else 2), f"rules survived: {survived}; {chain_rules()}\n{out}"
    print(f"after a Docker restart nsnet's DOCKER-USER rules {'survived' if survived else 'were gone'}: {chain_rules()}")
    site.apply()
    assert assert_opened(site) == rules
    assert site.plan()[0] == 0
    assert site.reached() == ALL
    assert docker0() == bridge_before  # Docker takes its bridge back as it left it

    # a restart on a reset host (as after a reboot: no iptables rules, ip_forward=0): Docker makes a
    # fresh chain and FORWARD DROP again
    docker.stop()
    rc, _, err = run("nft", "delete", "table", "ip", "filter")  # Docker's: the fixture made sure the host had none
    assert rc == 0, err
    dockerd.set_ip_forward("0")
    docker.start()
    assert dockerd.forward_policy() == "DROP"
    assert chain_rules() == ["-N DOCKER-USER", f"-A {CHAIN} -j RETURN"]
    rc, out = site.plan()
    assert rc == 2 and plan_lines(out) == expected_plan_lines(site.bridge), out
    assert not site.reached(timeout=SHORT)["neighbour"]
    site.apply()
    assert assert_opened(site) == rules
    assert site.plan()[0] == 0
    assert site.reached() == ALL

    rc, out, err = site.nsnet("destroy")
    assert rc == 0, out + err
    assert nsnet_rules(site.topology) == {}


# 4. ip6tables' DOCKER-USER


@pytest.fixture
def ip6_docker_user(docker: dockerd.Dockerd) -> Iterator[None]:
    """DOCKER-USER in ip6tables as Docker 23+ makes it with ip6tables on (20.10's --ip6tables sets
    FORWARD DROP there but makes no DOCKER-USER): `-j RETURN`, jumped to from FORWARD. Deleted
    afterwards with the `ip6 filter` table when that table was not there before."""
    if chain_rules("ip6tables") is not None:
        pytest.skip("ip6tables already has DOCKER-USER")
    had_table = ("ip6", "filter") in dockerd.nft_tables()
    for args in (["-N", CHAIN], ["-A", CHAIN, "-j", "RETURN"], ["-I", "FORWARD", "-j", CHAIN]):
        rc, _, err = run("ip6tables", *args)
        assert rc == 0, err
    try:
        yield
    finally:
        if had_table:
            for args in (["-D", "FORWARD", "-j", CHAIN], ["-F", CHAIN], ["-X", CHAIN]):
                run("ip6tables", *args)
        else:
            run("nft", "delete", "table", "ip6", "filter")


def test_where_ip6tables_has_docker_user_nsnet_accepts_the_bridge_in_both_and_destroy_removes_both(docker, ip6_docker_user, lab, topologies):
    site = Site(lab, topologies)
    before = firewalls()
    rc, out, err = site.nsnet("plan")
    assert rc == 0, out + err
    assert plan_lines(out) == [f"+ iptables rule {CHAIN}: accept {site.bridge} in/out", f"+ ip6tables rule {CHAIN}: accept {site.bridge} in/out"], out
    site.apply()
    assert_opened(site)  # and the ip6tables pair, before its RETURN
    assert site.plan()[0] == 0

    rc, _, err = run("ip6tables", "-D", *nsnet_rules(site.topology, "ip6tables")["-o"][1:])
    assert rc == 0, err
    rc, out = site.plan()
    assert rc == 2 and [line for line in plan_lines(out) if line.startswith("~ ip6tables")], out
    site.apply()
    assert sorted(nsnet_rules(site.topology, "ip6tables")) == ["-i", "-o"]

    rc, out, err = site.nsnet("destroy")
    assert rc == 0, out + err
    assert nsnet_rules(site.topology, "ip6tables") == {} and firewalls() == before
