"""`nsnet agent` against the real kernel: commands run through the test's own agent
behave exactly as without it (output, exit codes, drift, errors, fault injection,
signals), and the agent starts, serves and stops cleanly.

Every test that needs one gets its own agent (`agent` fixture) on a socket in its
tmp_path (NSNET_AGENT_SOCKET), never the host's default socket. Commands that
must go through it run with that socket and without NSNET_AGENT (the suite sets
NSNET_AGENT=off for everything else, the lab's cleanup included); commands
compared against them run with NSNET_AGENT=off and the same socket, so the agent
is there but not used. The agent's stderr goes to agent.log in tmp_path: one line
per command it ran, which tells a command it ran from one that ran locally.

The `agent` fixture depends on `lab`, so it is torn down first: SIGTERM (any
process of the agent still running a command after the timeout is killed by its
exact pid), then it must have exited 0 and removed its socket, before the lab's
cleanup destroys what the test wrote (without the agent).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import netplan_lite

pytestmark = pytest.mark.netns

CLI_TIMEOUT = 60
START_TIMEOUT = 60  # the first read of every namespace of the host (other labs may be big)
STOP_TIMEOUT = 60
SOCKET_NAME = "agent.sock"
LOG_NAME = "agent.log"
WITHOUT_AGENT = "running without the agent"


# the agent


def agent_env(sock: Path, **extra: str) -> dict[str, str]:
    """The test's environment for a command that may go to the agent at `sock`."""
    env = {k: v for k, v in os.environ.items() if k != "NSNET_AGENT"}
    env["NSNET_AGENT_SOCKET"] = str(sock)
    env.update(extra)
    return env


def proc_children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _signal_mask(pid: int, field: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith(f"{field}:"))


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process `pid` has a handler for `sig` (SigCgt in /proc/PID/status)."""
    return bool(_signal_mask(pid, "SigCgt") & (1 << (sig - 1)))


def pending(pid: int, sig: signal.Signals) -> bool:
    """Whether `sig` was sent to process `pid` and not delivered yet (a stopped process)."""
    return bool((_signal_mask(pid, "ShdPnd") | _signal_mask(pid, "SigPnd")) & (1 << (sig - 1)))


class Agent:
    """A running `nsnet agent` of the test, and the commands run through it."""

    LINE = re.compile(r"^nsnet agent: (?P<argv>.*): exit (?P<code>-?\d+) in \d+\.\d\d s$")

    def __init__(self, lab, sock: Path, log: Path, proc: subprocess.Popen):
        self.lab, self.socket, self.log, self.proc = lab, sock, log, proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self, **extra: str) -> dict[str, str]:
        return agent_env(self.socket, **extra)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def served(self) -> list[tuple[str, int]]:
        """(argv, exit code) of every command the agent logged, in order."""
        return [(m["argv"], int(m["code"])) for line in self.log_text().splitlines() if (m := self.LINE.match(line))]

    def _cmd(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "netplan_lite", *args]

    def run(self, *args: str, logged: int | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run `nsnet ARGS` through the agent; check the agent ran it (and logged exit `logged`,
        by default the client's own exit code)."""
        before = self.served()
        done = subprocess.run(self._cmd(args), env=self.env(**extra), cwd=self.lab.dir, capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert WITHOUT_AGENT not in done.stderr, done.stderr
        self.wait_logged(before, " ".join(args), done.returncode if logged is None else logged)
        return done

    def wait_logged(self, before: list[tuple[str, int]], argv: str, code: int) -> None:
        """The agent logs a command after it sent its exit status: wait for the line."""
        new = lambda: self.served()[len(before) :]  # noqa: E731
        assert self.lab.wait_until(lambda: (argv, code) in new(), timeout=10), (
            f"the agent did not log {argv!r} with exit {code}; new lines: {new()}\n{self.log_text()}"
        )

    def local(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run `nsnet ARGS` with NSNET_AGENT=off while this agent serves."""
        return subprocess.run(
            self._cmd(args), env=self.env(NSNET_AGENT="off", **extra), cwd=self.lab.dir, capture_output=True, text=True, timeout=CLI_TIMEOUT
        )

    def start(self, *args: str, **extra: str) -> subprocess.Popen:
        """Start `nsnet ARGS` through the agent without waiting."""
        return subprocess.Popen(self._cmd(args), env=self.env(**extra), cwd=self.lab.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def children(self) -> list[int]:
        return proc_children(self.pid)

    def stopped_child(self, timeout: float = 30) -> int:
        """The agent's process that stopped itself (NSNET_STOP_AT), once there is one."""
        found: list[int] = []

        def look() -> bool:
            found[:] = [pid for pid in self.children() if proc_state(pid) == "T"]
            return len(found) == 1

        assert self.lab.wait_until(look, timeout=timeout), f"no stopped child: {found} {self.log_text()}"
        return found[0]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the agent with `sig` (unless it has stopped already); it must have exited 0, logged
        that it stopped, and removed its socket. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stuck = self.children()
                for pid in stuck:  # its own command processes, by exact pid
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"the agent did not stop within {STOP_TIMEOUT} s (killed it and {stuck})\n{self.log_text()}")
            assert self.log_text().splitlines()[-1] == f"nsnet agent: stopped ({sig.name})", self.log_text()
        assert self.proc.returncode == 0, self.log_text()
        assert self.log_text().splitlines()[-1].startswith("nsnet agent: stopped ("), self.log_text()
        assert not os.path.lexists(self.socket), f"the agent left its socket {self.socket}"


def start_agent(lab, sock: Path, log: Path, package_parent: Path | None = None) -> Agent:
    """Start `nsnet agent` on `sock` (from the copy of the package under `package_parent`, if given);
    return once it serves (its "serving" line, logged after it listens)."""
    assert len(os.fsencode(sock)) < 100, f"socket path too long for AF_UNIX: {sock}"
    env = agent_env(sock, **({"PYTHONPATH": str(package_parent)} if package_parent else {}))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netplan_lite", "agent"], env=env, cwd=lab.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    agent = Agent(lab, sock, log, proc)
    serving = f"nsnet agent: serving {sock} (pid {proc.pid})"
    deadline = time.monotonic() + START_TIMEOUT
    while not (serving in agent.log_text() and sock.is_socket()):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            pytest.fail(f"the agent did not start serving {sock} (exit {proc.returncode}):\n{agent.log_text()}")
        time.sleep(0.05)
    return agent


@pytest.fixture
def agent(lab) -> Iterator[Agent]:
    started = start_agent(lab, lab.dir / SOCKET_NAME, lab.dir / LOG_NAME)
    try:
        yield started
    finally:
        started.stop()


# helpers


def nothing_left(lab, ex) -> list[str]:
    left = [f"namespace {n}" for n in (ex.web1, ex.web2) if n in lab.netns_names()]
    left += [f"link {n}" for n in lab.links_with_alias(ex.label)]
    left += [f"bridge {ex.bridge}"] if lab.link(ex.bridge) is not None else []
    return left


def assert_same_run(via: subprocess.CompletedProcess[str], local: subprocess.CompletedProcess[str]) -> None:
    assert (via.returncode, via.stdout, via.stderr) == (local.returncode, local.stdout, local.stderr), (
        f"through the agent:\n{via.stdout}{via.stderr}\nwithout:\n{local.stdout}{local.stderr}"
    )


def converged(lab, agent: Agent, ex) -> None:
    plan = agent.run("plan", "--detailed-exitcode", ex.path.name)
    assert plan.returncode == 0 and lab.no_changes(plan.stdout), plan.stdout + plan.stderr
    lab.assert_example_live(ex)


def end(proc: subprocess.Popen, timeout: float = CLI_TIMEOUT) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish: {out}{err}")


def release(agent: Agent, *procs: subprocess.Popen) -> None:
    """After a test that stopped a command: let every process of the agent go on, kill stragglers."""
    for pid in agent.children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.communicate(timeout=CLI_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


# 1. the workflow


def test_apply_plan_edit_json_and_destroy_through_the_agent(lab, agent):
    ex = lab.example()
    name = ex.path.name

    applied = agent.run("apply", name)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete" in applied.stdout and "live state verified" in applied.stdout
    lab.assert_example_live(ex)

    same = agent.run("plan", "--detailed-exitcode", name)
    assert same.returncode == 0 and lab.no_changes(same.stdout), same.stdout + same.stderr

    web3 = f"{lab.prefix}-web3"  # an edit the agent's remembered copy of the file must not hide
    doc = ex.doc()
    doc["namespaces"][web3] = {"interfaces": {"eth0": {"bridge": ex.bridge}}}
    lab.write(doc, ex.path)
    via = agent.run("plan", "--detailed-exitcode", name)
    assert via.returncode == 2, via.stdout + via.stderr
    assert any(line.startswith(f"+ namespace {web3}") for line in lab.lines(via.stdout)), via.stdout
    assert_same_run(via, agent.local("plan", "--detailed-exitcode", name))

    as_json = agent.run("plan", "--json", name)
    assert as_json.returncode == 0, as_json.stderr
    doc_via = json.loads(as_json.stdout)
    assert doc_via["changes"] is True and doc_via["topology"] == ex.topology
    assert doc_via == json.loads(agent.local("plan", "--json", name).stdout)

    again = agent.run("apply", name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert web3 in lab.netns_names()
    assert agent.run("plan", "--detailed-exitcode", name).returncode == 0

    destroyed = agent.run("destroy", name)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert lab.wait_until(lambda: not nothing_left(lab, ex)), nothing_left(lab, ex)
    assert web3 not in lab.netns_names()

    assert agent.served() == [
        (f"apply {name}", 0),
        (f"plan --detailed-exitcode {name}", 0),
        (f"plan --detailed-exitcode {name}", 2),
        (f"plan --json {name}", 0),
        (f"apply {name}", 0),
        (f"plan --detailed-exitcode {name}", 0),
        (f"destroy {name}", 0),
    ], agent.log_text()  # one line per command run through it; none for the NSNET_AGENT=off ones


def test_show_and_ls_through_the_agent(lab, agent):
    ex = lab.example()
    assert agent.run("apply", ex.path.name).returncode == 0
    shown = agent.run("show", ex.path.name)
    assert shown.returncode == 0, shown.stderr
    assert_same_run(shown, agent.local("show", ex.path.name))
    assert f"namespace {ex.web1}" in shown.stdout
    listed = agent.run("ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert ex.topology in listed.stdout


def test_the_clients_directory_environment_and_umask_are_the_commands(lab, agent):
    """`plan -o` through the agent: the topology from $NSNET_FILE, the plan file written in the
    client's directory with its umask; the saved plan matches a live read (applied without the agent)."""
    ex = lab.example()
    assert agent.run("apply", ex.path.name).returncode == 0
    lab.ip("-n", ex.web1, "addr", "add", ex.cidr(99), "dev", "eth0")
    before = agent.served()
    saved = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "plan", "-o", "saved.plan"],
        env=agent.env(NSNET_FILE=ex.path.name),
        cwd=lab.dir,
        umask=0o027,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert saved.returncode == 0, saved.stdout + saved.stderr
    agent.wait_logged(before, "plan -o saved.plan", 0)
    plan_file = lab.dir / "saved.plan"
    assert plan_file.is_file() and plan_file.stat().st_mode & 0o777 == 0o640
    assert json.loads(plan_file.read_text())["source"] == str(ex.path)

    applied = agent.local("apply", "saved.plan")  # the agent's snapshot is what a live read sees
    assert applied.returncode == 0, applied.stdout + applied.stderr
    converged(lab, agent, ex)


# 2. drift made by hand after the agent read the namespaces


def foreign_address(lab, ex):
    lab.ip("-n", ex.web1, "addr", "add", ex.cidr(99), "dev", "eth0")
    return f"~ namespace {ex.web1} / interface eth0: address {ex.cidr(10)}, {ex.cidr(99)} -> {ex.cidr(10)}"


def default_route_deleted(lab, ex):
    lab.ip("-n", ex.web1, "route", "del", "default")
    return f"+ namespace {ex.web1} / route default: via {ex.gateway}"


def host_end_down(lab, ex):
    lab.ip("link", "set", ex.host_veth(ex.web2), "down")
    return f"~ namespace {ex.web2} / interface eth0: host end state down -> up"


def bridge_down(lab, ex):
    lab.ip("link", "set", ex.bridge, "down")
    return f"~ bridge {ex.bridge}: state down -> up"


@pytest.mark.parametrize("drift", [foreign_address, default_route_deleted, host_end_down, bridge_down], ids=lambda f: f.__name__)
def test_drift_made_by_hand_is_seen_and_repaired_through_the_agent(lab, agent, drift):
    ex = lab.example()
    name = ex.path.name
    assert agent.run("apply", name).returncode == 0
    converged(lab, agent, ex)  # the agent has read (and cached) the namespaces since the apply

    expected = drift(lab, ex)
    via = agent.run("plan", "--detailed-exitcode", name)
    assert via.returncode == 2, via.stdout + via.stderr
    assert any(line.startswith(expected) for line in lab.lines(via.stdout)), via.stdout
    assert_same_run(via, agent.local("plan", "--detailed-exitcode", name))
    assert agent.run("show", "--check", name).returncode == 3

    repaired = agent.run("apply", name)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    converged(lab, agent, ex)
    assert agent.run("show", "--check", name).returncode == 0


# 3. namespaces deleted and made by hand


def test_a_namespace_deleted_by_hand_is_not_pinned_and_a_foreign_one_is_refused(lab, agent):
    ex = lab.example()
    name = ex.path.name
    assert agent.run("apply", name).returncode == 0
    converged(lab, agent, ex)

    lab.ip("netns", "del", ex.web1)
    # the agent keeps no fd or socket of the namespace: it goes, and its veth with it
    assert lab.wait_until(lambda: lab.link(ex.host_veth(ex.web1)) is None, timeout=30), (
        f"host end {ex.host_veth(ex.web1)} still there: the namespace is kept alive"
    )
    via = agent.run("plan", "--detailed-exitcode", name)
    assert via.returncode == 2, via.stdout + via.stderr
    assert f"+ namespace {ex.web1}" in lab.lines(via.stdout), via.stdout
    assert_same_run(via, agent.local("plan", "--detailed-exitcode", name))

    lab.ip("netns", "add", ex.web1)  # unlabelled: not nsnet's
    try:
        for command in ("plan", "apply"):
            refused = agent.run(command, name)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("nsnet: "), refused.stderr
            assert ex.web1 in refused.stderr and "not made by nsnet" in refused.stderr, refused.stderr
            assert_same_run(refused, agent.local(command, name))
        assert lab.ip("-n", ex.web1, "-o", "link").count("\n") == 1  # only its lo: nothing was made in it
    finally:
        subprocess.run(["ip", "netns", "del", ex.web1], capture_output=True)
    assert ex.web1 not in lab.netns_names()

    assert agent.run("apply", name).returncode == 0
    converged(lab, agent, ex)


def test_a_namespace_replaced_by_hand_between_two_commands_is_refused(lab, agent):
    ex = lab.example()
    name = ex.path.name
    assert agent.run("apply", name).returncode == 0
    converged(lab, agent, ex)
    path = f"/run/netns/{ex.web1}"
    old = os.stat(path).st_ino
    try:
        for _ in range(20):  # no command in between: the agent does not see the namespace go
            lab.ip("netns", "del", ex.web1)
            assert lab.wait_until(lambda: lab.link(ex.host_veth(ex.web1)) is None, timeout=30)
            time.sleep(0.2)  # the deleted namespace's inode number is freed with it, a moment later
            lab.ip("netns", "add", ex.web1)
            if os.stat(path).st_ino == old:
                break
        else:
            pytest.skip("the kernel gave the re-created namespace another inode number")
        via = agent.run("plan", name)
        local = agent.local("plan", name)
        assert local.returncode == 1 and "not made by nsnet" in local.stderr, local.stdout + local.stderr
        assert_same_run(via, local)
    finally:
        subprocess.run(["ip", "netns", "del", ex.web1], capture_output=True)


# 4. errors


def test_errors_in_the_topology_pass_through(lab, agent):
    bad = lab.dir / "bad.yaml"
    bad.write_text(f"name: {lab.prefix}\nbridges:\n  {lab.prefix}br: {{subnet: {lab.subnet}, colour: red}}\n")
    for args in (("plan", "bad.yaml"), ("apply", "bad.yaml"), ("apply", "missing.yaml"), ("destroy", "missing.yaml")):
        via = agent.run(*args)
        assert via.returncode == 1 and via.stdout == "", via.stdout + via.stderr
        assert via.stderr.count("\n") == 1, via.stderr
        assert_same_run(via, agent.local(*args))
    located = agent.run("plan", "bad.yaml").stderr
    assert located.startswith("nsnet: bad.yaml:3:") and "unknown key 'colour'" in located, located
    assert agent.run("apply", "missing.yaml").stderr == "nsnet: missing.yaml: no such file\n"

    as_json = agent.run("plan", "--json", "bad.yaml")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["valid"] is False
    assert_same_run(as_json, agent.local("plan", "--json", "bad.yaml"))
    assert lab.link(f"{lab.prefix}br") is None


# 5. running without the agent


@pytest.mark.parametrize("where", ["stale socket", "missing path"])
def test_nothing_listening_runs_the_command_here(lab, where):
    ex = lab.example()
    sock = lab.dir / SOCKET_NAME
    if where == "stale socket":  # what an agent killed by SIGKILL leaves: bound, nobody listening
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(sock))
        stale.close()
        assert sock.is_socket()
    args = [sys.executable, "-m", "netplan_lite", "plan", "--detailed-exitcode", ex.path.name]
    here = subprocess.run(args, env=agent_env(sock), cwd=lab.dir, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    off = subprocess.run(args, env=agent_env(sock, NSNET_AGENT="off"), cwd=lab.dir, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert here.returncode == 2 and here.stdout.startswith("nsnet will perform"), here.stdout + here.stderr
    assert_same_run(here, off)
    assert here.stderr == ""


def test_an_agent_replaces_a_stale_socket(lab):
    sock = lab.dir / SOCKET_NAME
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()
    started = start_agent(lab, sock, lab.dir / LOG_NAME)
    try:
        ex = lab.example()
        assert started.run("plan", "--detailed-exitcode", ex.path.name).returncode == 2
    finally:
        started.stop()


def test_nsnet_agent_off_and_local_commands_run_without_the_agent(lab, agent):
    ex = lab.example()
    off = agent.local("apply", ex.path.name)
    assert off.returncode == 0, off.stdout + off.stderr
    valid = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "validate", ex.path.name],
        env=agent.env(),
        cwd=lab.dir,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert valid.returncode == 0, valid.stderr  # validate never goes to the agent
    assert agent.local("plan", "--detailed-exitcode", ex.path.name).returncode == 0
    assert agent.served() == [], agent.log_text()
    assert agent.run("plan", "--detailed-exitcode", ex.path.name).returncode == 0  # it was there all along
    assert agent.served() == [(f"plan --detailed-exitcode {ex.path.name}", 0)]


def test_an_agent_of_another_installation_is_not_used(lab, tmp_path):
    """An agent running another copy of nsnet (its files have other times: another fingerprint)
    refuses the command, which then runs here with a one-line notice."""
    other = tmp_path / "other"
    shutil.copytree(
        Path(netplan_lite.__file__).parent,
        other / "netplan_lite",  # copies get new times
        ignore=shutil.ignore_patterns("__pycache__"),
        copy_function=shutil.copy,
    )
    started = start_agent(lab, lab.dir / SOCKET_NAME, lab.dir / LOG_NAME, package_parent=other)
    try:
        ex = lab.example()
        args = [sys.executable, "-m", "netplan_lite", "plan", "--detailed-exitcode", ex.path.name]
        refused = subprocess.run(args, env=started.env(), cwd=lab.dir, capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr == ("nsnet: the agent runs another nsnet installation (restart it after an upgrade); running without the agent\n"), (
            refused.stderr
        )
        assert refused.stdout == started.local("plan", "--detailed-exitcode", ex.path.name).stdout
        assert started.served() == []
    finally:
        started.stop()


@pytest.mark.parametrize("module", ["engine/diff.py", "kernel/observe.py"])
def test_an_agent_whose_code_changed_in_a_subpackage_is_not_used(lab, tmp_path, module):
    """A stale agent never runs old code: after a module of a subpackage changes under a running
    agent (an upgrade, a checkout), that installation's commands are refused by it and run here,
    with the new code (the edit announces itself on stderr when it is imported)."""
    copy = tmp_path / "copy"
    shutil.copytree(
        Path(netplan_lite.__file__).parent, copy / "netplan_lite", ignore=shutil.ignore_patterns("__pycache__"), copy_function=shutil.copy
    )
    started = start_agent(lab, lab.dir / SOCKET_NAME, lab.dir / LOG_NAME, package_parent=copy)
    try:
        ex = lab.example()
        plan = ("plan", "--detailed-exitcode", ex.path.name)
        served = started.run(*plan, PYTHONPATH=str(copy))  # the copy's own client, before the edit: served
        assert served.returncode == 2, served.stdout + served.stderr
        edited = copy / "netplan_lite" / module
        edited.write_text(edited.read_text() + '\nimport sys as _sys\n_sys.stderr.write("nsnet-test: new code\\n")\n')
        after = subprocess.run(
            [sys.executable, "-m", "netplan_lite", *plan],
            env=started.env(PYTHONPATH=str(copy)),
            cwd=lab.dir,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        assert after.returncode == 2, after.stdout + after.stderr
        assert after.stderr == (
            "nsnet: the agent runs another nsnet installation (restart it after an upgrade); running without the agent\nnsnet-test: new code\n"
        ), after.stderr
        assert after.stdout == served.stdout
        assert started.served() == [(" ".join(plan), 2)], started.log_text()  # the first only
    finally:
        started.stop()


# 6. fault injection


def test_a_command_killed_in_the_agent_recovers(lab, agent):
    ex = lab.example()
    killed = agent.run("apply", ex.path.name, logged=-signal.SIGKILL, NSNET_KILL_AT="2")  # logged: killed
    assert killed.returncode != 0, killed.stdout + killed.stderr
    plan = agent.run("plan", "--detailed-exitcode", ex.path.name)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert agent.run("apply", ex.path.name).returncode == 0
    converged(lab, agent, ex)


def test_the_client_dies_of_the_signal_that_killed_the_command(lab, agent):
    ex = lab.example()
    killed = agent.run("apply", ex.path.name, logged=-signal.SIGKILL, NSNET_KILL_AT="2")
    assert "Traceback" not in killed.stderr, killed.stderr
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert agent.run("apply", ex.path.name).returncode == 0  # and a plain apply converges
    converged(lab, agent, ex)


# 7. signals


def test_sigterm_to_the_client_stops_the_command_and_rolls_back(lab, agent):
    ex = lab.example()
    before = agent.served()
    client = agent.start("apply", ex.path.name, NSNET_STOP_AT="2")
    try:
        child = agent.stopped_child()
        assert lab.wait_until(lambda: catches(client.pid, signal.SIGTERM), timeout=10), "the client never started forwarding signals"
        client.send_signal(signal.SIGTERM)
        assert lab.wait_until(lambda: pending(child, signal.SIGTERM), timeout=10), "SIGTERM was not forwarded"
        os.kill(child, signal.SIGCONT)
        out, err = end(client)
    finally:
        release(agent, client)
    assert client.returncode == 1, out + err
    assert "interrupted by SIGTERM" in err and "rolled back" in err, err
    agent.wait_logged(before, f"apply {ex.path.name}", 1)
    assert lab.wait_until(lambda: not nothing_left(lab, ex)), nothing_left(lab, ex)


def test_sigterm_to_the_agent_waits_for_running_commands(lab, agent):
    ex = lab.example()
    client = agent.start("apply", ex.path.name, NSNET_STOP_AT="1")
    try:
        child = agent.stopped_child()
        agent.proc.send_signal(signal.SIGTERM)
        # it stops accepting: a new command runs here
        assert lab.wait_until(lambda: not _accepts(agent.socket), timeout=10)
        here = subprocess.run(
            [sys.executable, "-m", "netplan_lite", "plan", ex.path.name],
            env=agent.env(),
            cwd=lab.dir,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        assert here.returncode == 0 and here.stderr == "", here.stderr
        assert agent.proc.poll() is None  # still waiting for the apply
        os.kill(child, signal.SIGCONT)
        out, err = end(client)
    finally:
        release(agent, client)
    assert client.returncode == 0, out + err
    assert agent.proc.wait(timeout=STOP_TIMEOUT) == 0, agent.log_text()
    assert agent.served() == [(f"apply {ex.path.name}", 0)]
    assert agent.log_text().splitlines()[-1] == "nsnet agent: stopped (SIGTERM)"
    agent.stop()  # exited 0, logged "stopped (SIGTERM)", removed its socket
    lab.assert_example_live(ex)


def _accepts(sock: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with probe:
        return probe.connect_ex(str(sock)) == 0


# 8. side by side


def test_two_topologies_applied_at_once_through_the_agent(lab, agent):
    first, second = lab.example(), lab.example("b")
    runs = [agent.start("apply", ex.path.name) for ex in (first, second)]
    try:
        results = [end(run) for run in runs]
    finally:
        release(agent, *runs)
    for run, (out, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, out + err
        assert WITHOUT_AGENT not in err
    assert sorted(agent.served()) == sorted([(f"apply {first.path.name}", 0), (f"apply {second.path.name}", 0)])
    converged(lab, agent, first)
    converged(lab, agent, second)


def test_an_apply_that_waited_for_the_lock_sees_what_the_holder_did(lab, agent):
    ex = lab.example()
    name = ex.path.name
    holder = agent.start("apply", name, NSNET_STOP_AT="1")  # stops holding the lock, before any change
    waiter = None
    try:
        holder_child = agent.stopped_child()
        waiter = agent.start("apply", name)
        assert lab.wait_until(lambda: catches(waiter.pid, signal.SIGTERM), timeout=10), (
            "the second apply was not started by the agent"
        )  # it has its pid: forked, snapshot taken
        time.sleep(0.5)  # waiting for the lock
        os.kill(holder_child, signal.SIGCONT)
        out, err = end(holder)
        assert holder.returncode == 0, out + err
        out, err = end(waiter)
    finally:
        release(agent, holder, *([waiter] if waiter else []))
    assert waiter.returncode == 0, out + err
    assert lab.no_changes(out), out
    converged(lab, agent, ex)


# 9. starting and stopping


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_an_idle_agent_stops_cleanly(lab, agent, sig):
    ex = lab.example()
    assert agent.run("plan", ex.path.name).returncode == 0  # it has served and is idle again
    agent.stop(sig)  # exit 0, "stopped (SIG...)" logged, socket removed
    assert agent.socket.name == SOCKET_NAME and not agent.socket.exists()


def test_a_second_agent_on_the_same_socket_is_refused(lab, agent):
    second = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "agent"], env=agent.env(), cwd=lab.dir, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert second.stderr == f"nsnet: an agent already serves {agent.socket}\n", second.stderr
    assert agent.socket.is_socket()  # the first one's socket is left alone
    ex = lab.example()
    assert agent.run("plan", ex.path.name).returncode == 0
