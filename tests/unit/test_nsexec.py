"""nsnet exec without root: which namespace may be entered, and the one-line refusals."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from netplan_lite.cli import main as cli
from netplan_lite.cli import commands as cli_commands
from netplan_lite.engine import rundir
from netplan_lite.kernel import namespace_exec as nsexec
from netplan_lite.errors import ConflictError, ExitCode, PermissionDenied
from netplan_lite.model.loader import load_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "topology.yaml"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path / "run-nsnet"))
    monkeypatch.delenv("NSNET_FILE", raising=False)


@pytest.fixture
def opened(monkeypatch) -> list[int]:
    """netns.open_fd gives an fd of /dev/null; the fds handed out are recorded (all must be closed)."""
    fds: list[int] = []

    def fake_open(name: str) -> int:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        fds.append(fd)
        return fd

    monkeypatch.setattr(nsexec.netns, "open_fd", fake_open)
    return fds


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_a_namespace_not_in_the_topology_lists_the_ones_that_are():
    with pytest.raises(nsexec.ExecError) as info:
        nsexec.check_declared(load_file(EXAMPLE), "web3", "t.yaml")
    assert info.value.lines() == ["namespace 'web3' is not in topology 'demo' (t.yaml); its namespaces: web1, web2"]


def test_declared_but_not_applied_suggests_apply(monkeypatch):
    def missing(name: str) -> int:
        raise FileNotFoundError(errno.ENOENT, "no such file")

    monkeypatch.setattr(nsexec.netns, "open_fd", missing)
    with pytest.raises(nsexec.ExecError) as info:
        nsexec.open_target("demo", "web1", "t.yaml")
    assert str(info.value) == "namespace 'web1' is declared but does not exist on this host: run `nsnet apply t.yaml` first"


def test_the_topologys_namespace_is_opened(opened):
    target = nsexec.open_target("demo", "web1", "t.yaml", read_alias=lambda fd: "nsnet:demo")
    assert target.namespace == "web1" and target.fd == opened[0] and not closed(target.fd)
    os.close(target.fd)


@pytest.mark.parametrize(
    "alias, whose",
    [
        ("nsnet:other", "it belongs to topology 'other'"),
        (None, "nsnet did not make it (its lo has no nsnet label)"),
        ("docker", "nsnet did not make it (its lo has no nsnet label)"),
    ],
)
def test_another_owners_namespace_is_refused(opened, alias, whose):
    with pytest.raises(ConflictError) as info:
        nsexec.open_target("demo", "web1", "t.yaml", read_alias=lambda fd: alias)
    assert str(info.value) == f"namespace 'web1' exists but is not part of topology 'demo': {whose}"
    assert closed(opened[0])


def test_an_unlabelled_namespace_an_interrupted_run_made_suggests_apply(opened, monkeypatch):
    monkeypatch.setattr(nsexec, "_intents", lambda topology: frozenset({"web1"}))
    with pytest.raises(nsexec.ExecError, match="created by an interrupted nsnet run .*run `nsnet apply t.yaml` first"):
        nsexec.open_target("demo", "web1", "t.yaml", read_alias=lambda fd: None)


def test_a_file_that_is_not_a_namespace_suggests_apply(opened):
    def not_a_namespace(fd: int) -> str:
        raise OSError(errno.EINVAL, "Invalid argument")

    with pytest.raises(nsexec.ExecError, match="is not a namespace .*nsnet apply"):
        nsexec.open_target("demo", "web1", "t.yaml", read_alias=not_a_namespace)
    assert closed(opened[0])


def test_no_privileges_is_a_permission_error(opened):
    def refused(fd: int) -> str:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    with pytest.raises(PermissionDenied, match="needs root"):
        nsexec.open_target("demo", "web1", "t.yaml", read_alias=refused)


def test_no_command_is_refused_before_anything_is_opened(monkeypatch):
    monkeypatch.setattr(nsexec, "open_target", lambda *a, **k: pytest.fail("opened a namespace"))
    with pytest.raises(nsexec.ExecError, match="no command given"):
        nsexec.run(load_file(EXAMPLE), "web1", [], "t.yaml")


def test_the_cli_passes_the_command_line_untouched(monkeypatch):
    calls = []
    monkeypatch.setattr(nsexec, "run", lambda topology, ns, argv, source: calls.append((topology.name, ns, argv, source)))
    for argv in (["exec", "-f", str(EXAMPLE), "web1", "--", "ip", "-j", "addr"], ["exec", "--file", str(EXAMPLE), "web1", "ip", "-j", "addr"]):
        cli.main(argv)
    cli.main(["exec", "-f", str(EXAMPLE), "web2", "--", "sh", "-c", "echo $HOME; exit 3", "--json", "-f", "x"])
    assert calls == [
        ("demo", "web1", ["ip", "-j", "addr"], str(EXAMPLE)),
        ("demo", "web1", ["ip", "-j", "addr"], str(EXAMPLE)),
        ("demo", "web2", ["sh", "-c", "echo $HOME; exit 3", "--json", "-f", "x"], str(EXAMPLE)),
    ]


def test_the_file_is_positional_as_for_every_command(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(nsexec, "run", lambda topology, ns, argv, source: calls.append((ns, argv, source)))
    cli.main(["exec", str(EXAMPLE), "web1", "--", "ss", "-tln"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab").write_text(EXAMPLE.read_text())  # an existing file, whatever its name
    cli.main(["exec", "lab", "web2", "--", "true"])
    assert calls == [("web1", ["ss", "-tln"], str(EXAMPLE)), ("web2", ["true"], "lab")]


@pytest.mark.parametrize(
    "words, expected",
    [
        (["web1", "--", "env", "--", "ls"], ("topology.yaml", "web1", ["env", "--", "ls"])),
        (["web1", "env", "--", "ls"], ("topology.yaml", "web1", ["env", "--", "ls"])),  # not a file: the command's --
        (["lab.yaml", "web1", "--", "ls"], ("lab.yaml", "web1", ["ls"])),
        (["labs/a", "web1", "--", "ls"], ("labs/a", "web1", ["ls"])),
        (["lab.yaml", "--", "ls"], ("topology.yaml", "lab.yaml", ["ls"])),  # namespace names may have dots
    ],
)
def test_which_operand_is_the_file(words, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NSNET_FILE", raising=False)
    assert cli_commands.exec_operands(None, words) == expected


def test_the_file_given_twice_is_refused(capsys):
    assert cli.main(["exec", "-f", str(EXAMPLE), str(EXAMPLE), "web1", "--", "true"]) == ExitCode.ERROR
    assert "give it with -f or as the first operand, not both" in capsys.readouterr().err


def test_cli_errors_are_one_line_and_exit_1(capsys, tmp_path):
    assert cli.main(["exec", "-f", str(EXAMPLE), "nope", "--", "true"]) == ExitCode.ERROR
    assert capsys.readouterr().err == (f"nsnet: namespace 'nope' is not in topology 'demo' ({EXAMPLE}); its namespaces: web1, web2\n")
    assert cli.main(["exec", "-f", str(tmp_path / "missing.yaml"), "web1", "--", "true"]) == ExitCode.ERROR
    assert capsys.readouterr().err == f"nsnet: {tmp_path / 'missing.yaml'}: no such file\n"


def test_exec_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        cli.main(["exec", "--help"])
    out = capsys.readouterr().out
    assert "usage: nsnet exec [-h] [-f FILE] [FILE] NAMESPACE -- COMMAND [ARG ...]" in out
    assert "/etc/netns/NAMESPACE" in out and "remounts /sys" in out
