"""The nsnet CLI: help, exit codes, one line per error, no kernel (a FakeKernel stands in)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders import EXAMPLE, iface, one_bridge, opened, run_cli as run, to_yaml

from netplan_lite.cli import main as cli
from netplan_lite.engine import rundir
from netplan_lite.errors import ExitCode
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.kernel.preflight.checks import HostFacts

COMMANDS = ["validate", "plan", "apply", "destroy", "show", "test", "ls", "graph", "init", "fmt", "exec", "completion", "agent", "cni"]
BAD = "name: demo\nbridges:\n  br0: {subnet: 172.30.0.5/24, colour: red}\nnamespaces:\n  a:\n    interfaces:\n      eth0: {bridge: nope}\n"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch, tmp_path):
    """No test here may reach the live kernel or /run: open_kernel fails unless a test installs a fake."""

    def refuse(topology):
        raise AssertionError("a unit test tried to open the live kernel")

    monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", refuse)
    monkeypatch.setattr("netplan_lite.kernel.preflight.gather", lambda topology, *docker_chains: HostFacts())  # the host's own facts vary
    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path / "run-nsnet"))
    monkeypatch.delenv("NSNET_FILE", raising=False)


@pytest.fixture
def kernel(monkeypatch) -> FakeKernel:
    fake = FakeKernel()
    monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", lambda topology: opened(fake))
    return fake


@pytest.fixture
def topo_file(tmp_path) -> str:
    path = tmp_path / "topology.yaml"
    path.write_bytes(to_yaml(one_bridge("a", "b")))
    return str(path)


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


# help


def test_every_command_is_covered_here():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(sub.choices) == sorted(COMMANDS)


def test_top_level_help_lists_commands_and_exit_codes(capsys):
    out = help_of(capsys)
    assert all(name in out for name in COMMANDS)
    assert "exit codes:" in out and "3  show --check" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_exits_0_and_mentions_exit_codes(capsys, command):
    out = help_of(capsys, command)
    assert f"usage: nsnet {command}" in out
    assert "exit codes:" in out and "2  plan --detailed-exitcode" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip().startswith("nsnet ")


def test_exit_codes_are_named():
    assert [int(c) for c in (ExitCode.OK, ExitCode.ERROR, ExitCode.CHANGES, ExitCode.DRIFT, ExitCode.CHECKS_FAILED)] == [0, 1, 2, 3, 4]


def test_usage_error_exits_1(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["plan", "--detailed-exitcode", "--no-such-option"])
    assert info.value.code == ExitCode.ERROR


# validate


def test_validate_example_exits_0(capsys):
    code, out, err = run(capsys, "validate", str(EXAMPLE))
    assert code == 0 and err == ""
    assert out == f"{EXAMPLE}: valid topology 'demo' (1 bridge, 2 namespaces, 2 port forwards)\n"


def test_validate_json(capsys):
    code, out, _ = run(capsys, "validate", "--json", str(EXAMPLE))
    assert code == 0
    assert json.loads(out) == {
        "format_version": 1,
        "file": str(EXAMPLE),
        "valid": True,
        "topology": "demo",
        "counts": {"bridges": 1, "namespaces": 2, "port_forwards": 2},
    }


def test_validate_bad_file_prints_one_line_per_problem(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, err = run(capsys, "validate", str(path))
    assert code == ExitCode.ERROR and out == ""
    assert err.splitlines() == [
        f"nsnet: {path}:3:32: bridges.br0.colour: unknown key 'colour' (known keys: allow_overlap, gateway, masquerade, mtu, subnet)",
        f"nsnet: {path}:3:9: bridges.br0.subnet: '172.30.0.5/24' has host bits set; did you mean 172.30.0.0/24?",
        f"nsnet: {path}:7:14: namespaces.a.interfaces.eth0.bridge: unknown bridge 'nope' (not under bridges:)",
    ]


def test_validate_missing_file_is_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    code, out, err = run(capsys, "validate", str(missing))
    assert (code, out, err) == (1, "", f"nsnet: {missing}: no such file\n")


def test_validate_directory_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert (code, err) == (1, f"nsnet: {tmp_path}: is a directory, not a topology file\n")


def test_validate_unsafe_yaml_is_one_line(capsys, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nname: b\n")
    code, _, err = run(capsys, "validate", str(path))
    assert (code, err) == (1, f"nsnet: {path}:2:1: name: duplicate key (first defined on line 1)\n")


def test_nsnet_file_is_the_default_file(capsys, monkeypatch):
    monkeypatch.setenv("NSNET_FILE", str(EXAMPLE))
    code, out, _ = run(capsys, "validate")
    assert code == 0 and out.startswith(f"{EXAMPLE}: valid topology 'demo'")


def test_default_file_is_topology_yaml_in_the_current_directory(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "validate")
    assert (code, err) == (1, "nsnet: topology.yaml: no such file\n")


def test_python_m_runs_the_cli_without_a_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NSNET_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "validate", str(path)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 3
    assert all(line.startswith("nsnet: ") for line in done.stderr.splitlines())
    assert "Traceback" not in done.stderr


# the error boundary


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch, topo_file):
    def interrupted(raw, path):
        raise KeyboardInterrupt

    monkeypatch.setattr("netplan_lite.model.loader.load_bytes", interrupted)
    code, out, err = run(capsys, "validate", "--json", topo_file)
    assert (code, out, err) == (ExitCode.INTERRUPTED, "", "nsnet: interrupted\n")


def _bug(*_args, **_kwargs):
    raise RuntimeError("boom")


INTERNAL_LINE = "nsnet: internal error: RuntimeError: boom (rerun with --debug for the traceback)\n"
INTERNAL_DOC = {
    "format_version": 1,
    "valid": False,
    "error": "internal",
    "problems": [{"file": None, "line": None, "column": None, "key": None, "message": "internal error: RuntimeError: boom"}],
}


def test_an_internal_error_is_one_line_without_a_traceback(capsys, monkeypatch, topo_file):
    monkeypatch.setattr("netplan_lite.model.loader.load_bytes", _bug)
    code, out, err = run(capsys, "validate", topo_file)
    assert (code, out, err) == (ExitCode.INTERNAL, "", INTERNAL_LINE)
    assert ExitCode.INTERNAL == ExitCode.ERROR == 1  # what it always exited with


@pytest.mark.parametrize(
    "command, where",
    [
        ("validate", "netplan_lite.model.loader.load_bytes"),
        ("plan", "netplan_lite.engine.reconcile.plan"),
        ("apply", "netplan_lite.engine.reconcile.run"),
        ("show", "netplan_lite.engine.reconcile.plan"),
    ],
)
def test_an_internal_error_with_json_prints_an_error_document(capsys, monkeypatch, kernel, topo_file, command, where):
    """The same document as any other error's (schemas/validate.schema.json), with `error: internal`."""
    monkeypatch.setattr(where, _bug)
    code, out, err = run(capsys, command, "--json", topo_file)
    assert (code, err) == (ExitCode.INTERNAL, INTERNAL_LINE)
    assert json.loads(out) == INTERNAL_DOC


def test_an_internal_error_with_debug_shows_the_traceback_then_the_line(capsys, monkeypatch, topo_file):
    monkeypatch.setattr("netplan_lite.model.loader.load_bytes", _bug)
    code, out, err = run(capsys, "--debug", "validate", "--json", topo_file)
    assert code == ExitCode.INTERNAL and json.loads(out) == INTERNAL_DOC
    assert err.startswith("Traceback (most recent call last):\n") and 'raise RuntimeError("boom")' in err
    assert err.endswith("\nnsnet: internal error: RuntimeError: boom\n")


def test_a_user_error_with_json_is_a_document_of_the_same_shape(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, _ = run(capsys, "validate", "--json", str(path))
    doc = json.loads(out)
    assert code == ExitCode.ERROR and doc["error"] == "topology"
    assert doc.keys() == INTERNAL_DOC.keys() and doc["problems"][0].keys() == INTERNAL_DOC["problems"][0].keys()


# plan, show, apply, destroy on a fake kernel


def test_plan_prints_the_plan(capsys, kernel, topo_file):
    code, out, err = run(capsys, "plan", topo_file)
    assert code == 0 and err == ""
    assert out.splitlines()[-1] == "Plan: 7 to add, 0 to change, 0 to destroy."


def test_plan_detailed_exitcode_is_2_with_changes(capsys, kernel, topo_file):
    assert run(capsys, "plan", "--detailed-exitcode", topo_file)[0] == ExitCode.CHANGES


def test_plan_json(capsys, kernel, topo_file):
    code, out, _ = run(capsys, "plan", "--json", topo_file)
    doc = json.loads(out)
    assert code == 0 and doc["format_version"] == 1 and len(doc["actions"]) == 7


def test_plan_conflict_is_one_line_and_exit_1(capsys, kernel, topo_file):
    kernel.foreign_namespaces["a"] = "not made by nsnet"
    code, out, err = run(capsys, "plan", topo_file)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("nsnet: refusing to take over ")


def test_apply_then_plan_has_no_changes(capsys, kernel, topo_file):
    code, out, _ = run(capsys, "apply", topo_file)
    assert code == 0 and out.splitlines()[-1].startswith("Apply complete: 7 added, 0 changed, 0 destroyed")
    code, out, _ = run(capsys, "plan", "--detailed-exitcode", topo_file)
    assert (code, out) == (0, "No changes. The kernel matches topology 'demo'.\n")


def test_show_check_exits_3_on_drift(capsys, kernel, topo_file):
    run(capsys, "apply", topo_file)
    kernel.resources.pop(next(rid for rid in kernel.resources if str(rid) == "route a/default"))
    code, out, _ = run(capsys, "show", "--check", topo_file)
    assert code == ExitCode.DRIFT and out.startswith("Topology demo: drifted: 1 to add")


def test_show_check_exits_0_without_drift(capsys, kernel, topo_file):
    run(capsys, "apply", topo_file)
    code, out, _ = run(capsys, "show", "--check", topo_file)
    assert code == 0 and out.splitlines()[0] == "Topology demo: in sync"


def test_destroy_removes_everything(capsys, kernel, topo_file):
    run(capsys, "apply", topo_file)
    code, out, _ = run(capsys, "destroy", topo_file)
    assert code == 0 and kernel.resources == {}
    assert out.splitlines()[-1].startswith("Destroy complete: 0 added, 0 changed, 7 destroyed")


def test_failed_apply_exits_1_with_one_line_per_fact(capsys, kernel, topo_file):
    kernel.fail_on = iface("b").id
    code, _, err = run(capsys, "apply", topo_file)
    assert code == 1 and "Traceback" not in err
    assert re.fullmatch(r"nsnet: create interface b/eth0 failed: .+ \(errno 1\)", err.splitlines()[0])
    assert all(line.startswith("nsnet: ") for line in err.splitlines())
    assert kernel.resources == {}  # rolled back


def test_saved_plan_is_applied(capsys, kernel, topo_file, tmp_path):
    saved = tmp_path / "plan.json"
    assert run(capsys, "plan", "-o", str(saved), topo_file)[0] == 0
    assert run(capsys, "apply", str(saved))[0] == 0
    assert run(capsys, "plan", "--detailed-exitcode", topo_file)[0] == 0


def test_stale_saved_plan_is_refused(capsys, kernel, topo_file, tmp_path):
    saved = tmp_path / "plan.json"
    run(capsys, "plan", "-o", str(saved), topo_file)
    run(capsys, "apply", topo_file)
    code, _, err = run(capsys, "apply", str(saved))
    assert code == 1 and err.startswith("nsnet: saved plan is stale") and len(err.splitlines()) == 1


def test_saved_plan_is_refused_when_the_file_changed(capsys, kernel, topo_file, tmp_path):
    saved = tmp_path / "plan.json"
    run(capsys, "plan", "-o", str(saved), topo_file)
    Path(topo_file).write_bytes(to_yaml(one_bridge("a")))
    code, _, err = run(capsys, "apply", str(saved))
    assert code == 1 and err.startswith("nsnet: saved plan is stale") and "changed since the plan was made" in err
    assert kernel.resources == {}
