"""Every --json document nsnet prints matches its published schema in schemas/.

The documents are real CLI output (a FakeKernel stands in for the kernel):
validate, plan (creates, updates, replaces, implied deletes, warnings),
apply, destroy, show with and without drift, and the error document.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from builders import EXAMPLE, iface, one_bridge, opened, to_yaml
from jsonschema import Draft202012Validator

from netplan_lite.cli import main as cli
from netplan_lite.engine import rundir
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.engine.warnings import PreflightWarning
from netplan_lite.kernel.preflight.checks import HostFacts

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
WARNING = PreflightWarning("host-port-in-use", "a socket listens on 127.0.0.1:8080", "stop it or pick another port")


CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")  # a stock validator (PyPI), from the test extras


def validator(name: str) -> Draft202012Validator:
    """The published schema alone: no registry, nothing resolved from another file."""
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid(schema: str, doc: dict) -> None:
    """Valid for jsonschema with nothing but the schema file, and for `check-jsonschema --schemafile`."""
    errors = sorted(validator(schema).iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.json"
        path.write_text(json.dumps(doc))
        done = subprocess.run([str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMAS / schema), str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(autouse=True)
def fake_host(monkeypatch, tmp_path):
    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path / "run-nsnet"))
    monkeypatch.setattr("netplan_lite.kernel.preflight.gather", lambda topology, *docker_chains: HostFacts())


@pytest.fixture
def kernel(monkeypatch) -> FakeKernel:
    fake = FakeKernel()
    monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", lambda topology: opened(fake))
    return fake


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_validate(capsys):
    code, doc = run_json(capsys, "validate", str(EXAMPLE))
    assert code == 0
    assert_valid("validate.schema.json", doc)


def test_an_error_document(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: demo\nbridges: {br0: {colour: red}}\n")
    code, doc = run_json(capsys, "validate", str(bad))
    assert code == 1 and doc["error"] == "topology" and doc["problems"][0]["line"] == 2
    assert_valid("validate.schema.json", doc)


def test_an_internal_error_document(capsys, monkeypatch):
    def bug(raw, path):
        raise RuntimeError("boom")

    monkeypatch.setattr("netplan_lite.model.loader.load_bytes", bug)
    code, doc = run_json(capsys, "validate", str(EXAMPLE))
    assert code == 1 and doc["error"] == "internal"
    assert_valid("validate.schema.json", doc)


def test_plan_apply_show_destroy_of_the_example(capsys, kernel, monkeypatch):
    monkeypatch.setattr("netplan_lite.kernel.preflight.check", lambda topology, facts: [WARNING])
    code, plan = run_json(capsys, "plan", str(EXAMPLE))
    assert code == 0 and plan["changes"] and plan["warnings"][0]["code"] == "host-port-in-use"
    assert {a["kind"] for a in plan["actions"]} == {"bridge", "namespace", "interface", "route", "nft_table", "sysctl"}
    assert_valid("plan.schema.json", plan)

    code, applied = run_json(capsys, "apply", str(EXAMPLE))
    assert code == 0 and applied["run"]["converged"]
    assert_valid("plan.schema.json", applied)

    code, shown = run_json(capsys, "show", str(EXAMPLE))
    assert code == 0 and not shown["drifted"]
    assert {r["kind"] for r in shown["resources"]} == {"bridge", "namespace", "interface", "route", "nft_table", "sysctl"}
    assert_valid("state.schema.json", shown)

    code, destroyed = run_json(capsys, "destroy", str(EXAMPLE))
    assert code == 0 and destroyed["summary"]["add"] == 0
    assert_valid("plan.schema.json", destroyed)


def test_updates_replaces_and_implied_deletes(capsys, kernel, tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_bytes(to_yaml(one_bridge("a", "b")))
    assert cli.main(["apply", str(path)]) == 0
    capsys.readouterr()
    rid = next(rid for rid in kernel.resources if str(rid) == "interface a/eth0")
    kernel.resources[rid] = iface("a", "eth0", "br0", "172.30.0.2/24", "10.9.9.9/8", host="nsvold", up=False)
    path.write_bytes(to_yaml(one_bridge("a")))
    code, plan = run_json(capsys, "plan", str(path))
    assert {a["op"] for a in plan["actions"]} == {"create", "delete"} and any(a["implied_by"] for a in plan["actions"])
    assert any(a["reason"] and a["fields"] for a in plan["actions"])
    assert_valid("plan.schema.json", plan)

    code, shown = run_json(capsys, "show", str(path))
    assert shown["drifted"] and shown["drift"]
    assert_valid("state.schema.json", shown)


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    return [r for v in node for r in refs(v)] if isinstance(node, list) else []


def test_published_schemas_reference_no_other_file_and_the_bundles_are_current():
    for path in SCHEMAS.glob("*.schema.json"):
        outside = [r for r in refs(json.loads(path.read_text())) if not r.startswith("#/")]
        assert not outside, f"{path.name} refers to other files: {outside}"
    done = subprocess.run([sys.executable, str(SCHEMAS.parent / "scripts" / "bundle-schemas"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_test_document(capsys, monkeypatch):
    """`nsnet test --json` with the kernel side faked: a probe of each outcome, one without an address, ping-all."""
    import contextlib
    from ipaddress import ip_address

    from netplan_lite.engine.probes import Answer, Outcome
    from netplan_lite.kernel import reachability
    from netplan_lite.model.topology import Check, Expect, Namespace, Protocol, Topology

    checks = (Check("a", "b", ping=True, line=5), Check("a", "b", port=80), Check("a", "b", port=53, protocol=Protocol.UDP, family=6))
    checks += (Check("a", "10.66.0.5", ping=True, expect=Expect.UNREACHABLE), Check("b", "a", ping=True, family=6))
    lab = Topology("lab", namespaces=(Namespace("a"), Namespace("b")), checks=checks)
    addresses = {"a": (ip_address("10.0.0.1"),), "b": (ip_address("10.0.0.2"), ip_address("fd00::2"))}
    reply = Answer(Outcome.REPLY, 0.0004, "echo reply", 1, 0.001)
    answers = [  # in probe order: checks 1 and 2 reach both of b's addresses; ping-all's probes get `reply`
        reply,
        Answer(Outcome.TIMEOUT, None, "no reply in 5 s", 25, 5.0),
        Answer(Outcome.REFUSED, 0.0001, "connection refused", 25, 5.0),
        reply,
        Answer(Outcome.REFUSED, 0.0001, "port unreachable", 25, 5.0),
        Answer(Outcome.UNREACHABLE, None, "not sent: a blackhole route (EINVAL)", 1, 0.0),
        Answer(Outcome.NO_ADDRESS),  # check 5: a has no IPv6 address
    ]

    @contextlib.contextmanager
    def open_lab(topology, source):
        yield reachability.Lab({"a": -1, "b": -1}, addresses)

    monkeypatch.setattr("netplan_lite.cli.commands._load", lambda path: (lab, b""))
    monkeypatch.setattr("netplan_lite.kernel.live.require_privileges", lambda: None)
    monkeypatch.setattr(reachability, "open_lab", open_lab)
    monkeypatch.setattr(reachability, "run_probes", lambda planned, fds, wait: (answers + [reply] * len(planned))[: len(planned)])
    code, doc = run_json(capsys, "test", "lab.yaml", "--ping-all")
    assert code == 4 and not doc["passed"]
    assert {p["outcome"] for p in doc["probes"]} == {"reply", "timeout", "refused", "unreachable", "no-address"}
    assert {p["check"] for p in doc["probes"]} == {1, 2, 3, 4, 5, None}
    assert_valid("test.schema.json", doc)
