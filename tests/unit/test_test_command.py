"""`nsnet test` through the CLI, with the kernel side faked: exit codes, output, --junit, --wait."""

from __future__ import annotations

import contextlib
import json
import re
import xml.etree.ElementTree as ET
from ipaddress import ip_address

import pytest
from builders import run_cli

from netplan_lite.cli import main as cli
from netplan_lite.engine import probes
from netplan_lite.engine.probes import Answer, Outcome
from netplan_lite.errors import ConflictError, ExitCode
from netplan_lite.kernel import reachability
from netplan_lite.model.topology import Check, Expect, Namespace, Topology

LAB = Topology(
    "lab",
    namespaces=(Namespace("a"), Namespace("b")),
    checks=(Check("a", "b", ping=True, line=8), Check("a", "10.66.0.5", ping=True, expect=Expect.UNREACHABLE, line=9)),
    source="lab.yaml",
)
ADDRESSES = {"a": (ip_address("10.0.0.1"),), "b": (ip_address("10.0.0.2"), ip_address("fd00::2"))}


class FakeLab:
    """Stands in for the kernel side: the lab's addresses and the answers of the probes, recorded."""

    def __init__(self, monkeypatch, topology: Topology = LAB, answers: dict[str, Answer] | None = None):
        self.answers = answers or {}
        self.waits: list[float] = []
        self.ran: list[probes.Probe] = []
        monkeypatch.setattr("netplan_lite.cli.commands._load", lambda path: (topology, b""))
        monkeypatch.setattr("netplan_lite.kernel.live.require_privileges", lambda: None)
        monkeypatch.setattr(reachability, "open_lab", self.open_lab)
        monkeypatch.setattr(reachability, "run_probes", self.run_probes)

    @contextlib.contextmanager
    def open_lab(self, topology, source):
        yield reachability.Lab({ns.name: -1 for ns in topology.namespaces}, ADDRESSES)

    def run_probes(self, planned, fds, wait):
        self.ran, self.waits = list(planned), [*self.waits, wait]
        default = {
            Expect.REACHABLE: Answer(Outcome.REPLY, 0.0005, "echo reply", 1, 0.001),
            Expect.UNREACHABLE: Answer(Outcome.TIMEOUT, None, "no reply in 1 s", 5, 1),
        }
        return [self.answers.get(str(p.address), default[p.expect]) for p in planned]


def test_every_check_passing_exits_0_with_the_table(capsys, monkeypatch):
    fake = FakeLab(monkeypatch)
    code, out, err = run_cli(capsys, "test", "lab.yaml")
    assert (code, err) == (ExitCode.OK, "")
    assert [p.name for p in fake.ran] == ["1: a -> b 10.0.0.2 ping", "1: a -> b fd00::2 ping", "2: a -> 10.66.0.5 ping, expect unreachable"]
    assert out.splitlines()[0].startswith("CHECK") and out.splitlines()[-1].startswith("Topology lab: 3 probes, all passed in ")
    assert fake.waits == [probes.DEFAULT_WAIT]


def test_a_failed_probe_exits_4(capsys, monkeypatch):
    FakeLab(monkeypatch, answers={"fd00::2": Answer(Outcome.TIMEOUT, None, "no reply in 5 s", 25, 5.0)})
    code, out, _ = run_cli(capsys, "test", "lab.yaml")
    assert code == ExitCode.CHECKS_FAILED == 4
    assert "FAIL" in out and out.splitlines()[-1].startswith("Topology lab: 1 of 3 probes failed (check 1) in ")


def test_ping_all_adds_its_probes(capsys, monkeypatch):
    fake = FakeLab(monkeypatch)
    assert run_cli(capsys, "test", "lab.yaml", "--ping-all")[0] == 0
    assert [p.name for p in fake.ran[3:]] == ["ping-all: a -> b 10.0.0.2 ping", "ping-all: a -> b fd00::2 ping", "ping-all: b -> a 10.0.0.1 ping"]


def test_junit_is_written_as_well_as_the_table(capsys, monkeypatch, tmp_path):
    FakeLab(monkeypatch, answers={"10.66.0.5": Answer(Outcome.REPLY, 0.001, "echo reply", 1, 0.001)})
    report = tmp_path / "report.xml"
    code, out, _ = run_cli(capsys, "test", "lab.yaml", "--junit", str(report))
    assert code == 4 and "CHECK" in out
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("lab", "3", "1")
    failure = suite.find("testcase[@line='9']/failure")
    assert failure.get("message") == "reached (echo reply), expected unreachable"


def test_json_replaces_the_table(capsys, monkeypatch):
    FakeLab(monkeypatch)
    code, out, _ = run_cli(capsys, "test", "lab.yaml", "--json", "--wait", "0.5")
    doc = json.loads(out)
    assert code == 0 and doc["passed"] and doc["wait_seconds"] == 0.5 and len(doc["probes"]) == 3


def test_wait_is_handed_to_the_probes_and_its_default_is_the_one_the_help_names(capsys, monkeypatch):
    fake = FakeLab(monkeypatch)
    run_cli(capsys, "test", "lab.yaml", "--wait", "0")
    assert fake.waits == [0.0]
    with pytest.raises(SystemExit):
        cli.main(["test", "--help"])
    assert f"(default: {probes.DEFAULT_WAIT:g})" in re.sub(r"\s+", " ", capsys.readouterr().out)


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "3601"])
def test_a_bad_wait_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as info:
        cli.main(["test", "lab.yaml", "--wait", value])
    assert info.value.code == ExitCode.ERROR and "--wait: " in capsys.readouterr().err


def test_a_file_without_checks_is_an_error_before_the_lab_is_read(capsys, monkeypatch):
    fake = FakeLab(monkeypatch, Topology("lab", namespaces=(Namespace("a"),), source="lab.yaml"))
    monkeypatch.setattr(reachability, "open_lab", None)  # never called
    code, out, err = run_cli(capsys, "test", "lab.yaml")
    assert (code, out) == (ExitCode.ERROR, "")
    assert err == "nsnet: lab.yaml: nothing to test: the file has no `checks:` (add some, or use --ping-all)\n"
    assert not fake.ran


def test_ping_all_with_no_address_anywhere_is_an_error(capsys, monkeypatch):
    FakeLab(monkeypatch, Topology("lab", namespaces=(Namespace("c"),), source="lab.yaml"))
    code, _, err = run_cli(capsys, "test", "lab.yaml", "--ping-all")
    assert code == ExitCode.ERROR and err == "nsnet: lab.yaml: nothing to test: no namespace has an address to ping\n"


def test_a_lab_not_applied_is_one_line_and_exit_1(capsys, monkeypatch):
    FakeLab(monkeypatch)

    @contextlib.contextmanager
    def foreign(topology, source):
        raise ConflictError("namespace 'a' exists but is not part of topology 'lab': it belongs to topology 'other'")
        yield

    monkeypatch.setattr(reachability, "open_lab", foreign)
    code, out, err = run_cli(capsys, "test", "lab.yaml", "--json")
    assert code == ExitCode.ERROR and err.count("\n") == 1 and "belongs to topology 'other'" in err
    assert json.loads(out)["error"] == "conflict"


def test_an_unwritable_junit_file_is_one_line(capsys, monkeypatch, tmp_path):
    FakeLab(monkeypatch)
    code, _, err = run_cli(capsys, "test", "lab.yaml", "--junit", str(tmp_path / "no" / "such" / "r.xml"))
    assert code == ExitCode.ERROR and err.startswith("nsnet: ") and "cannot write: No such file or directory" in err
