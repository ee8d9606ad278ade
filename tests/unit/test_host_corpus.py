"""The host-facts corpus: topologies that are refused, or accepted, only because of the host
they are planned on (issue 12, item 4: what would cut the host off or capture its traffic).

tests/corpus/bad and good are checked by the loader alone (test_corpus.py); these files
load fine, and a plan against the host they describe decides. Each file in
tests/corpus/host/bad and tests/corpus/host/good is a topology whose comment lines
carry, anywhere in the file:

- `# host: FACT`, the host it is planned on, in `ip`'s words (no other host fact exists;
  every link named gets an index, and `lo` with 127.0.0.1/8 is always there):
  - `link NAME nsnet:TOPOLOGY`: the link carries that nsnet label (unlabelled without it);
  - `address A.B.C.D/P dev NAME`: an IPv4 address of the link;
  - `route NET dev NAME`: a connected route (`proto kernel scope link`, what the kernel
    makes for an address's prefix);
  - `route NET via GW dev NAME`: a route via a gateway (`proto static`);
  - `default via GW dev NAME`: a default route.
- `# expect: LINE KEY: TEXT`, bad files only, one per problem and in their order: the plan
  raises a TopologyError whose problems are, one for one, at that line with that key path,
  their message containing TEXT.
- `# warns: CODE`, good files only, one per warning: the pre-flight warnings the same host
  gives, by code (none when absent).

The facts become netlink records (a host Snapshot) that go through observe.build_observation,
as the live host's would, then reconcile.compute; and through the CLI with a fake kernel
observing that host: `nsnet plan` and `nsnet apply` exit 1 with one located line per
problem and change nothing; a good file plans with exit 0.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from builders import address, link, opened, route_entry, run_cli

from netplan_lite.engine import reconcile, rundir
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.engine.observation import Observation
from netplan_lite.engine.scope import EVERYTHING, Scope
from netplan_lite.errors import ExitCode, TopologyError
from netplan_lite.kernel.netlink import Snapshot
from netplan_lite.kernel.observe import build_observation
from netplan_lite.kernel.preflight import checks
from netplan_lite.kernel.preflight.checks import HostFacts, HostRoute
from netplan_lite.kernel.rtnl.link import LinkMsg
from netplan_lite.kernel.rtnl.route import ConnectedMsg
from netplan_lite.labels import owner_of
from netplan_lite.model.loader import load_file, located

HOST_CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "host"
PROTO_STATIC = 4


@dataclass(frozen=True)
class Expected:
    line: int
    key: str
    text: str


@dataclass
class Host:
    """The host a file describes, as the kernel would list it."""

    links: dict[str, LinkMsg] = field(default_factory=dict)
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (cidr, link)
    routes: list[HostRoute] = field(default_factory=list)

    def link(self, name: str, alias: str | None = None) -> LinkMsg:
        if name not in self.links or alias:
            index = self.links[name].index if name in self.links else len(self.links) + 1
            self.links[name] = link(index, name, alias=alias)
        return self.links[name]

    def snapshot(self) -> Snapshot:
        connected = [ConnectedMsg(str(r.network), self.links[r.device].index) for r in self.routes if r.connected and r.device]
        defaults = [route_entry("default", r.via, PROTO_STATIC) for r in self.routes if r.via and r.network.prefixlen == 0]
        gateways = [route_entry(str(r.network), r.via, PROTO_STATIC) for r in self.routes if r.via and r.network.prefixlen]
        addresses = [address(self.links[name].index, cidr) for cidr, name in self.addresses]
        return Snapshot(tuple(self.links.values()), tuple(addresses), (*defaults, *gateways), tuple(connected))

    def facts(self) -> HostFacts:
        """Pre-flight's view: every route, with the nsnet topology labelling its device."""
        owners = {name: owner_of(msg.alias) for name, msg in self.links.items()}
        return HostFacts(routes=tuple(dataclasses.replace(r, owner=owners.get(r.device or "")) for r in self.routes))


def host_of(path: Path) -> Host:
    host = Host()
    host.link("lo")
    host.addresses.append(("127.0.0.1/8", "lo"))
    for fact in _tagged(path, "host"):
        words = shlex.split(fact)
        match words:
            case ["link", name, alias]:
                host.link(name, alias)
            case ["address", cidr, "dev", name]:
                host.addresses.append((cidr, host.link(name).name))
            case ["route", net, "dev", name]:
                host.link(name)
                host.routes.append(HostRoute(IPv4Network(net), name))  # proto kernel, unicast, no gateway
            case ["route" | "default" as kind, *_, "via", gateway, "dev", name] if len(words) == (6 if kind == "route" else 5):
                host.link(name)
                network = IPv4Network(words[1] if kind == "route" else "0.0.0.0/0")
                host.routes.append(HostRoute(network, name, proto=PROTO_STATIC, via=gateway))
            case _:
                raise AssertionError(f"{path.name}: unknown host fact {fact!r}")
    return host


def _tagged(path: Path, tag: str) -> list[str]:
    prefix = f"# {tag}: "
    return [line[len(prefix) :].strip() for line in path.read_text().splitlines() if line.startswith(prefix)]


def expectations(path: Path) -> list[Expected]:
    found = []
    for text in _tagged(path, "expect"):
        line, rest = text.split(" ", 1)
        key, _, message = rest.partition(": ")
        found.append(Expected(int(line), key, message))
    return found


def observed(path: Path) -> Observation:
    """The observation of the described host, through the same extraction as the live one."""
    return build_observation(load_file(path).name, host_of(path).snapshot(), {})


def files(kind: str) -> list[Path]:
    return sorted((HOST_CORPUS / kind).glob("*.yaml"))


class HostKernel(FakeKernel):
    """The fake kernel, on the described host: its own objects, and the host's facts."""

    def __init__(self, host: Observation):
        super().__init__()
        self.host = host

    def observe(self, scope: Scope = EVERYTHING) -> Observation:
        facts = {f: getattr(self.host, f) for f in ("host_addresses", "host_gateways", "host_networks")}
        return dataclasses.replace(super().observe(scope), **facts)


@pytest.fixture
def on_host(monkeypatch, tmp_path):
    """Install the described host for the CLI: its kernel, its pre-flight facts, a private /run/nsnet."""

    def install(path: Path) -> HostKernel:
        kernel = HostKernel(observed(path))
        monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", lambda topology: opened(kernel))
        monkeypatch.setattr("netplan_lite.kernel.preflight.gather", lambda topology, *docker_chains: host_of(path).facts())
        return kernel

    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path / "run-nsnet"))
    monkeypatch.delenv("NSNET_FILE", raising=False)
    return install


def test_the_corpus_covers_each_refusal_of_item_4():
    assert len(files("bad")) >= 10 and len(files("good")) >= 7
    kinds = {(e.key.split(".")[0], e.key.count(".")) for p in files("bad") for e in expectations(p)}
    assert kinds == {("port_forwards", 2), ("bridges", 1), ("bridges", 2)}  # host_address, gateway, subnet


@pytest.mark.parametrize("path", files("bad"), ids=lambda p: p.name)
def test_a_hostile_file_is_refused_at_its_lines(path: Path):
    expected = expectations(path)
    assert expected, f"{path.name}: a bad file says what it expects (`# expect: LINE KEY: TEXT`)"
    with pytest.raises(TopologyError) as caught:
        reconcile.compute(load_file(path), observed(path))
    problems = located(caught.value, path.read_bytes()).problems
    assert [(p.line, p.path) for p in problems] == [(e.line, e.key) for e in expected], [str(p) for p in problems]
    for problem, want in zip(problems, expected, strict=True):
        assert want.text in problem.message, problem.message
        assert problem.file == str(path)


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("path", files("bad"), ids=lambda p: p.name)
def test_nsnet_exits_1_with_one_located_line_per_problem_and_changes_nothing(path: Path, command: str, on_host, capsys):
    kernel = on_host(path)
    code, out, err = run_cli(capsys, command, str(path))
    assert (code, out) == (ExitCode.ERROR, "")
    lines = err.splitlines()
    expected = expectations(path)
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"nsnet: {path}:{want.line}:") and f": {want.key}: " in line and want.text in line, line
    assert kernel.calls == [] and kernel.resources == {}


@pytest.mark.parametrize("path", files("good"), ids=lambda p: p.name)
def test_an_accepted_counterpart_plans_with_its_warnings(path: Path, on_host, capsys):
    assert not _tagged(path, "expect"), f"{path.name}: a good file expects no error"
    topology = load_file(path)
    assert not reconcile.compute(topology, observed(path)).plan.empty
    assert [w.code for w in checks.check(topology, host_of(path).facts())] == _tagged(path, "warns")
    on_host(path)
    code, out, _ = run_cli(capsys, "plan", str(path))
    assert code == ExitCode.OK and out.count("warning: ") == len(_tagged(path, "warns")), out
