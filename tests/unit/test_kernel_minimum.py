"""The oldest kernel nsnet runs on: reading `uname -r`, the one-line refusal of an older kernel
before any command touches it, the commands that need no kernel, and the docs that state it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders import EXAMPLE, run_cli as run

from netplan_lite.cli import main as cli
from netplan_lite.errors import ExitCode
from netplan_lite.kernel import minimum
from netplan_lite.kernel.minimum import KernelTooOld, Requirement

ROOT = Path(__file__).resolve().parents[2]
OLD = "5.15.0-91-generic"  # Ubuntu 22.04's kernel
REFUSAL = (
    f"nsnet: Linux {OLD} is too old: nsnet needs Linux 5.18 or later, for address ownership labels (IFA_PROTO); "
    "NSNET_KERNEL_CHECK=off skips this check on a kernel that has the feature backported\n"
)
KERNEL_COMMANDS = {
    "plan": [str(EXAMPLE)],
    "apply": [str(EXAMPLE)],
    "destroy": [str(EXAMPLE)],
    "show": [str(EXAMPLE)],
    "ls": [],
    "exec": ["-f", str(EXAMPLE), "web1", "--", "true"],
    "agent": [],
    "test": [str(EXAMPLE), "--ping-all"],
}
FILE_COMMANDS = {"validate", "fmt", "graph", "init", "completion", "cni"}
COMMAND_FUNCTIONS = {
    "plan": "cmd_plan",
    "apply": "cmd_apply",
    "destroy": "cmd_destroy",
    "show": "cmd_show",
    "ls": "cmd_ls",
    "exec": "cmd_exec",
    "test": "cmd_test",
}


def kernel_release(monkeypatch, release: str) -> None:
    monkeypatch.setattr(minimum, "running_release", lambda: release)


# reading the release


@pytest.mark.parametrize(
    "release, version",
    [
        ("6.18.44-fc-v1098", (6, 18, 44)),
        ("5.15.0-91-generic", (5, 15, 0)),
        ("4.19.0-26-amd64", (4, 19, 0)),
        ("6.1.0-13-amd64", (6, 1, 0)),
        ("5.18", (5, 18, 0)),
        ("6.0.0-rc1", (6, 0, 0)),
        ("5.15.153.1-microsoft-standard-WSL2", (5, 15, 153)),
        ("5.14.0-427.13.1.el9_4.x86_64", (5, 14, 0)),
        ("2.6.32", (2, 6, 32)),
        ("  6.8.0-1014-azure\n", (6, 8, 0)),
    ],
)
def test_the_version_is_the_leading_numbers_of_the_release(release, version):
    assert minimum.parse_release(release) == version


@pytest.mark.parametrize("release", ["", "custom", "v6.1", "linux-6.1", "6", "six.one"])
def test_a_release_without_a_version_passes(release):
    assert minimum.parse_release(release) is None
    minimum.require(release)  # nothing to go by: no refusal, no error


@pytest.mark.parametrize("release", ["5.18.0", "5.18", "5.18.0-0.deb11.4-amd64", "6.1.0-13-amd64", "6.18.44-fc-v1098", "10.0"])
def test_a_kernel_from_5_18_on_passes(release):
    minimum.require(release)


@pytest.mark.parametrize("release", ["5.17.15", "5.15.0-91-generic", "5.10.0-28-amd64", "4.19.0-26-amd64", "3.10.0-1160.el7.x86_64"])
def test_an_older_kernel_is_refused_naming_ifa_proto(release):
    with pytest.raises(KernelTooOld) as refused:
        minimum.require(release)
    assert str(refused.value).startswith(f"Linux {release} is too old: nsnet needs Linux 5.18 or later, for address ownership labels (IFA_PROTO); ")
    assert refused.value.code == "kernel"
    assert refused.value.lines() == [str(refused.value)]  # one line


def test_the_minimum_is_ifa_proto_in_5_18():
    assert minimum.MINIMUM == (5, 18, 0)
    assert [r.feature for r in minimum.REQUIREMENTS if r.since == minimum.MINIMUM] == ["address ownership labels (IFA_PROTO)"]


def test_the_refusal_names_the_newest_requirement_not_met(monkeypatch):
    monkeypatch.setattr(
        minimum, "REQUIREMENTS", (Requirement((3, 0, 0), "old"), Requirement((4, 10, 0), "middle"), Requirement((4, 2, 0), "lower middle"))
    )
    assert minimum.missing((4, 3, 0)) == Requirement((4, 10, 0), "middle")
    assert minimum.missing((2, 6, 39)) == Requirement((4, 10, 0), "middle")
    assert minimum.missing((4, 10, 0)) is None
    with pytest.raises(KernelTooOld, match=r"^Linux 4\.1\.0 is too old: nsnet needs Linux 4\.10 or later, for middle; "):
        minimum.require("4.1.0")


def test_versions_are_written_as_linux_names_them():
    assert [minimum.text(v) for v in [(5, 18, 0), (2, 6, 28), (4, 0, 0)]] == ["5.18", "2.6.28", "4.0"]


def test_nsnet_kernel_check_off_skips_the_check(monkeypatch):
    monkeypatch.setenv("NSNET_KERNEL_CHECK", "off")
    minimum.require(OLD)
    monkeypatch.setenv("NSNET_KERNEL_CHECK", "on")  # only "off" turns it off
    with pytest.raises(KernelTooOld):
        minimum.require(OLD)


def test_the_running_release_is_unames(monkeypatch):
    monkeypatch.undo()  # conftest.py's stand-in, which every other unit test sees
    assert minimum.running_release() == os.uname().release


# the command line


def test_every_command_is_either_kernel_or_file_only():
    """A new command must say whether it needs the kernel (cli/main.py: `command(..., kernel=)`)."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    needs = {name: p.get_default("needs_kernel") for name, p in commands.items()}
    assert {name for name, kernel in needs.items() if kernel} == set(KERNEL_COMMANDS)
    assert {name for name, kernel in needs.items() if not kernel} == FILE_COMMANDS


@pytest.fixture
def nothing_may_run(monkeypatch):
    """Every way a command reaches the kernel (or the command itself) fails the test."""

    def touched(*args, **kwargs):
        raise AssertionError("the kernel, or the command, was reached before the refusal")

    for name in COMMAND_FUNCTIONS.values():
        monkeypatch.setattr(cli, name, touched)
    monkeypatch.setattr(cli, "cmd_agent", touched)
    monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", touched)
    monkeypatch.setattr("netplan_lite.kernel.live.require_privileges", touched)
    monkeypatch.setattr("netplan_lite.kernel.netlink.Netlink.__init__", touched)
    monkeypatch.setattr("netplan_lite.kernel.netns.open_fd", touched)
    monkeypatch.setattr("netplan_lite.kernel.rtnl.socket.NetlinkSocket.__init__", touched)
    monkeypatch.setattr("netplan_lite.model.loader.read_source", touched)


@pytest.mark.parametrize("command", sorted(KERNEL_COMMANDS))
def test_a_kernel_command_on_an_old_kernel_refuses_in_one_line_before_anything(command, monkeypatch, capsys, nothing_may_run):
    kernel_release(monkeypatch, OLD)
    code, out, err = run(capsys, command, *KERNEL_COMMANDS[command])
    assert (code, out, err) == (ExitCode.ERROR, "", REFUSAL)


def test_the_entry_point_on_an_old_kernel_exits_1_in_one_line_having_loaded_no_kernel_module(tmp_path):
    """`nsnet plan` as installed (launch.main), in a process of its own: exit 1, one line on stderr,
    no traceback, and of the kernel layer only the check itself was imported."""
    probe = (
        "import sys; from netplan_lite.kernel import minimum; "
        f"minimum.running_release = lambda: {OLD!r}; "
        "from netplan_lite import launch; sys.argv = ['nsnet', 'plan', sys.argv[1]]; code = launch.main(); "
        "loaded = sorted(m for m in sys.modules if m.startswith('netplan_lite.kernel.') or m.startswith('pyroute2')); "
        "print(loaded); sys.exit(code)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NSNET_FILE", "NSNET_KERNEL_CHECK")}
    env.update(PYTHONPATH=str(ROOT), NSNET_AGENT="off")
    done = subprocess.run([sys.executable, "-c", probe, str(EXAMPLE)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stderr) == (ExitCode.ERROR, REFUSAL)
    assert done.stdout == "['netplan_lite.kernel.minimum']\n"


def test_the_refusal_with_json_is_a_kernel_error_document(monkeypatch, capsys, nothing_may_run):
    kernel_release(monkeypatch, OLD)
    code, out, err = run(capsys, "plan", "--json", str(EXAMPLE))
    assert (code, err) == (ExitCode.ERROR, REFUSAL)
    doc = json.loads(out)
    assert (doc["valid"], doc["error"]) == (False, "kernel")
    assert [p["message"] for p in doc["problems"]] == [REFUSAL[len("nsnet: ") : -1]]


def test_the_refusal_comes_before_the_privilege_check(monkeypatch, capsys):
    """Not root on an old kernel: sudo would not help, so the kernel is what nsnet names."""
    kernel_release(monkeypatch, OLD)
    monkeypatch.setattr("netplan_lite.kernel.live.require_privileges", lambda: pytest.fail("privileges checked first"))
    assert run(capsys, "ls") == (ExitCode.ERROR, "", REFUSAL)


@pytest.mark.parametrize("release", [OLD, "custom-build"])
def test_a_kernel_command_runs_when_the_check_passes_or_is_off(release, monkeypatch, capsys):
    kernel_release(monkeypatch, release)
    if release == OLD:
        monkeypatch.setenv("NSNET_KERNEL_CHECK", "off")
    monkeypatch.setattr(cli, "cmd_plan", lambda args: 42)
    assert run(capsys, "plan", str(EXAMPLE)) == (42, "", "")


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["validate", str(EXAMPLE)], "valid topology 'demo'"),
        (["fmt", "--check", str(EXAMPLE)], "already formatted"),
        (["graph", "--format", "mermaid", str(EXAMPLE)], "flowchart LR"),
        (["init", "-"], "# The topology's name labels everything nsnet creates"),
        (["completion", "bash"], "complete"),
        (["completion", "--list-namespaces", str(EXAMPLE)], "web1"),
    ],
)
def test_file_only_commands_work_on_an_old_kernel(argv, shown, monkeypatch, capsys):
    kernel_release(monkeypatch, "4.19.0-26-amd64")
    code, out, err = run(capsys, *argv)
    assert (code, err) == (ExitCode.OK, "")
    assert shown in out


# the docs say the same


def _rows(section: str) -> list[list[str]]:
    return [[cell.strip().replace("`", "") for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]


def test_the_design_table_lists_every_requirement_with_its_version():
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("## Kernel requirements", 1)[1].split("\n## ", 1)[0]
    rows = {row[0]: row for row in _rows(section)}
    for r in minimum.REQUIREMENTS:
        assert r.feature in rows, f"docs/design.md's kernel table has no row {r.feature!r}"
        assert rows[r.feature][2] == minimum.text(r.since), f"docs/design.md says {rows[r.feature][2]} for {r.feature!r}"
        assert rows[r.feature][3], f"docs/design.md gives no source for {r.feature!r}"


def test_the_refusal_design_md_shows_is_nsnets():
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("## Kernel requirements", 1)[1].split("\n## ", 1)[0]
    assert f"```text\n{REFUSAL}```" in section


@pytest.mark.parametrize("doc", ["README.md", "docs/ci.md", "docs/design.md"])
def test_the_docs_state_the_minimum(doc):
    text = (ROOT / doc).read_text()
    assert f"Linux {minimum.text(minimum.MINIMUM)} or later" in text
    assert not re.search(r"(Linux|kernel) (>= )?6\.3\b", text), f"{doc} still gives the old figure"
