"""The `nsnet` side of the agent, without root or kernel: which commands go to an
agent and when they run here instead (agentclient.run), what a request carries
and how replies end the client, the installation fingerprint, the agent's
remembered topologies (loader.remember) and the one-time prefetched
observation (observe._take_prefetched).

Agents are played by a unix socket in tmp_path (a thread answers like agent.py
would); the environment is monkeypatched, so no test reaches a real agent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from netplan_lite.agent import server as agent, client as agentclient
from netplan_lite import faults
from netplan_lite.model import loader
from netplan_lite.kernel import observe
from netplan_lite.errors import TopologyError
from netplan_lite.kernel.netlink import Snapshot

AGENT_COMMANDS = ["plan", "apply", "destroy", "show", "ls"]
LOCAL_ARGVS = [
    ["validate", "t.yaml"],
    ["exec", "web1", "--", "true"],
    ["fmt", "t.yaml"],
    ["graph", "t.yaml"],
    ["init"],
    ["completion", "bash"],
    ["agent"],
    ["--debug", "validate", "t.yaml"],
    ["--version"],
    [],
]
TOPOLOGY = b"""name: demo
bridges:
  br0: {subnet: 172.30.0.0/24}
namespaces:
  web1:
    interfaces:
      eth0: {bridge: br0, address: 172.30.0.10}
"""
BAD_TOPOLOGY = b"""name: demo
bridges:
  br0: {subnet: 172.30.0.0/24, colour: red}
"""
REPLY_TIMEOUT = 10


# fake agents


@pytest.fixture
def env(monkeypatch, tmp_path: Path) -> Path:
    """The agent socket path of this test (nothing listens there yet), NSNET_AGENT unset."""
    path = tmp_path / "agent.sock"
    monkeypatch.setenv("NSNET_AGENT_SOCKET", str(path))
    monkeypatch.delenv("NSNET_AGENT", raising=False)
    return path


@pytest.fixture
def listening(env: Path) -> Iterator[socket.socket]:
    """A socket that listens at NSNET_AGENT_SOCKET and never answers (to count connections)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(env))
    server.listen(8)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def pending_connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.fixture
def restored_signals() -> Iterator[list[int]]:
    """agentclient._wait installs forwarding handlers: put this process's own back afterwards.
    SIGHUP and SIGTERM are noted (not fatal) until the client replaces the handlers."""
    noted: list[int] = []
    saved = {s: signal.getsignal(s) for s in agentclient.FORWARDED_SIGNALS}
    for s in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(s, lambda signum, _frame: noted.append(signum))
    try:
        yield noted
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class FakeAgent:
    """Accepts one connection at `path` and answers with `answer(conn, request, fds)` in a thread."""

    def __init__(self, path: Path, answer: Callable[[socket.socket, dict[str, Any], list[int]], None]):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.settimeout(REPLY_TIMEOUT)
        self.answer = answer
        self.request: dict[str, Any] | None = None
        self.fd_stats: list[os.stat_result] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                conn.settimeout(REPLY_TIMEOUT)
                data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                while not data.endswith(b"\n"):
                    more = conn.recv(1 << 20)
                    if not more:
                        break
                    data += more
                try:
                    self.fd_stats = [os.fstat(fd) for fd in fds]
                    self.request = json.loads(data)
                    self.answer(conn, self.request, fds)
                finally:
                    for fd in fds:
                        os.close(fd)
        except BaseException as err:  # noqa: BLE001 - reported by finish()
            self.error = err

    def finish(self) -> None:
        self.thread.join(REPLY_TIMEOUT)
        self.server.close()
        assert not self.thread.is_alive(), "the fake agent is still waiting"
        if self.error is not None:
            raise self.error


def send(conn: socket.socket, doc: dict[str, Any]) -> None:
    conn.sendall(json.dumps(doc).encode() + b"\n")


def replies(*docs: dict[str, Any]) -> Callable[[socket.socket, dict[str, Any], list[int]], None]:
    def answer(conn: socket.socket, _request: dict[str, Any], _fds: list[int]) -> None:
        for doc in docs:
            send(conn, doc)

    return answer


# which commands go to the agent


@pytest.mark.parametrize("argv", LOCAL_ARGVS, ids=lambda a: " ".join(a) or "(none)")
def test_commands_that_do_not_read_the_kernel_run_here(listening, argv):
    assert agentclient.run(argv) is None
    assert pending_connections(listening) == 0  # not even asked


@pytest.mark.parametrize("command", AGENT_COMMANDS)
def test_nsnet_agent_off_runs_here_even_with_an_agent_listening(listening, monkeypatch, command):
    monkeypatch.setenv("NSNET_AGENT", "off")
    assert agentclient.run([command, "t.yaml"] if command != "ls" else [command]) is None
    assert pending_connections(listening) == 0


@pytest.mark.parametrize("command", AGENT_COMMANDS)
def test_nothing_at_the_socket_path_runs_here(env, command, capsys):
    assert not env.exists()
    assert agentclient.run([command]) is None
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("leftover", ["stale socket", "plain file", "missing directory"])
def test_nothing_listening_runs_here_silently(env, monkeypatch, tmp_path, leftover, capsys):
    if leftover == "stale socket":  # bound, never listened: what an agent killed by SIGKILL leaves
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(env))
        stale.close()
        assert env.is_socket()
    elif leftover == "plain file":
        env.write_text("")
    else:
        monkeypatch.setenv("NSNET_AGENT_SOCKET", str(tmp_path / "gone" / "agent.sock"))
    assert agentclient.run(["plan", "t.yaml"]) is None
    assert capsys.readouterr() == ("", "")


def test_the_default_socket_path_and_the_override(monkeypatch):
    monkeypatch.delenv("NSNET_AGENT_SOCKET", raising=False)
    assert agentclient.socket_path() == agentclient.DEFAULT_SOCKET == "/run/nsnet/agent.sock"
    monkeypatch.setenv("NSNET_AGENT_SOCKET", "")
    assert agentclient.socket_path() == agentclient.DEFAULT_SOCKET
    monkeypatch.setenv("NSNET_AGENT_SOCKET", "/tmp/x/agent.sock")
    assert agentclient.socket_path() == "/tmp/x/agent.sock"


# the request and the replies


def test_the_request_carries_argv_cwd_env_umask_fingerprint_and_our_stdio(env, monkeypatch, tmp_path, restored_signals):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NSNET_TEST_MARKER", "agent-client")
    old_umask = os.umask(0o027)
    try:
        fake = FakeAgent(env, replies({"pid": 2**22 + 1}, {"exit": 2}))
        code = agentclient.run(["plan", "--detailed-exitcode", "t.yaml"])
    finally:
        os.umask(old_umask)
    fake.finish()
    assert code == 2
    request = fake.request
    assert request["argv"] == ["plan", "--detailed-exitcode", "t.yaml"]
    assert request["cwd"] == str(tmp_path)
    assert request["env"]["NSNET_TEST_MARKER"] == "agent-client"
    assert request["env"]["NSNET_AGENT_SOCKET"] == str(env)
    assert request["umask"] == 0o027
    assert request["fingerprint"] == agentclient.code_fingerprint()
    ours = [os.fstat(fd) for fd in (0, 1, 2)]
    assert [(s.st_dev, s.st_ino) for s in fake.fd_stats] == [(s.st_dev, s.st_ino) for s in ours]


def test_a_refusal_runs_the_command_here_and_says_why(env, capsys):
    fake = FakeAgent(env, replies({"refused": "the agent runs another nsnet installation"}))
    assert agentclient.run(["apply", "t.yaml"]) is None
    fake.finish()
    assert capsys.readouterr().err == ("nsnet: the agent runs another nsnet installation; running without the agent\n")


def test_a_connection_closed_without_an_answer_runs_the_command_here(env, capsys):
    fake = FakeAgent(env, replies())
    assert agentclient.run(["show", "t.yaml"]) is None
    fake.finish()
    assert "running without the agent" in capsys.readouterr().err


def test_an_agent_gone_before_the_exit_status_is_an_error(env, capsys, restored_signals):
    fake = FakeAgent(env, replies({"pid": 2**22 + 1}))
    assert agentclient.run(["destroy", "t.yaml"]) == 1
    fake.finish()
    assert "the agent stopped before the command finished" in capsys.readouterr().err


def test_stop_signals_are_forwarded_to_the_command(env, restored_signals):
    """SIGHUP received by `nsnet` while the agent's process runs the command reaches that process."""
    command = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ours = signal.getsignal(signal.SIGHUP)
    try:

        def answer(conn: socket.socket, _request: dict[str, Any], _fds: list[int]) -> None:
            send(conn, {"pid": command.pid})
            for _ in range(REPLY_TIMEOUT * 100):  # until the client has put its forwarding handler in
                if signal.getsignal(signal.SIGHUP) is not ours:
                    break
                threading.Event().wait(0.01)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGHUP)  # the client's thread
            command.wait(REPLY_TIMEOUT)
            send(conn, {"exit": 0})

        fake = FakeAgent(env, answer)
        code = agentclient.run(["apply", "t.yaml"])
        fake.finish()
    finally:
        if command.poll() is None:
            command.kill()
        command.wait()
    assert command.returncode == -signal.SIGHUP  # the command died of the forwarded SIGHUP
    assert code == 0
    assert restored_signals == []  # the client's handler took it, not ours


CLIENT = """
import sys
from netplan_lite.agent import client as agentclient
print("returned", agentclient.run(["apply", "t.yaml"]), flush=True)
"""


@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGKILL,
    ],
    ids=lambda s: s.name,
)
def test_a_command_killed_by_a_signal_kills_the_client_the_same_way(env, sig):
    def answer(conn: socket.socket, _request: dict[str, Any], _fds: list[int]) -> None:
        send(conn, {"pid": 2**22 + 1})
        send(conn, {"exit": -sig})

    fake = FakeAgent(env, answer)
    client = subprocess.run(
        [sys.executable, "-c", CLIENT], capture_output=True, text=True, timeout=30, env={k: v for k, v in os.environ.items() if k != "NSNET_AGENT"}
    )
    fake.finish()
    assert "Traceback" not in client.stderr, client.stderr
    assert client.returncode == -sig, client.stdout + client.stderr
    assert "returned" not in client.stdout


# the installation fingerprint


@pytest.fixture
def package(monkeypatch, tmp_path: Path) -> Path:
    """A copy of the package (times kept) that agentclient takes for its own."""
    copy = tmp_path / "netplan_lite"
    shutil.copytree(agentclient.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert (copy / "schemas").is_dir()
    (copy / "notes.txt").write_text("not code\n")
    monkeypatch.setattr(agentclient, "PACKAGE_DIR", str(copy))
    return copy


def _later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_the_fingerprint_is_the_code_not_the_place(package):
    copy = agentclient.code_fingerprint()
    assert copy == agentclient.code_fingerprint()
    assert len(copy) == 64 and int(copy, 16) >= 0
    # the copy keeps names, sizes and times: the same code wherever it lies
    # (an upgrade that changes no file in place is not told apart either)


@pytest.mark.parametrize(
    "change",
    [
        "edit a module",
        "touch a module",
        "edit a schema",
        "add a module",
        "remove a module",
        "another python",
        "another environment",
    ],
)
def test_the_fingerprint_changes_with_the_code(package, monkeypatch, change):
    before = agentclient.code_fingerprint()
    module = package / "model" / "loader.py"  # a module in a subpackage
    schema = next((package / "schemas").glob("*.json"))
    if change == "edit a module":
        st = module.stat()
        module.write_text(module.read_text() + "\n# changed\n")
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the content (and size) differ
    elif change == "touch a module":
        _later(module)
    elif change == "edit a schema":
        schema.write_text(schema.read_text() + " ")
    elif change == "add a module":
        (package / "engine" / "extra.py").write_text("")
    elif change == "remove a module":
        (package / "model" / "fmt.py").unlink()
    elif change == "another python":
        monkeypatch.setattr(sys, "executable", sys.executable + "-other")
    else:
        monkeypatch.setattr(sys, "prefix", sys.prefix + "-other")
    assert agentclient.code_fingerprint() != before


def test_the_fingerprint_is_the_same_for_every_name_of_the_interpreter(package, monkeypatch, tmp_path):
    """`nsnet` starts python3, `python -m netplan_lite` python: one interpreter, one fingerprint."""
    before = agentclient.code_fingerprint()
    alias = tmp_path / "python-alias"
    alias.symlink_to(os.path.realpath(sys.executable))
    monkeypatch.setattr(sys, "executable", str(alias))
    assert agentclient.code_fingerprint() == before


@pytest.mark.parametrize("change", ["notes", "bytecode", "nested schema folder"])
def test_the_fingerprint_ignores_what_is_not_code(package, change):
    before = agentclient.code_fingerprint()
    if change == "notes":
        (package / "notes.txt").write_text("still not code, longer\n")
    elif change == "bytecode":  # running any command writes these: they must not change it
        (package / "__pycache__").mkdir()
        (package / "__pycache__" / "loader.cpython-311.pyc").write_bytes(b"\0" * 64)
    else:
        (package / "schemas" / "old").mkdir()
        (package / "schemas" / "old" / "x.json").write_text("{}")
    assert agentclient.code_fingerprint() == before


def test_the_agent_refuses_another_fingerprint_and_accepts_its_own():
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert agent._refusal(left, {"fingerprint": "mine"}, "mine") is None
        refusal = agent._refusal(left, {"fingerprint": "theirs"}, "mine")
        assert refusal and "another nsnet installation" in refusal
        assert agent._refusal(left, {}, "mine") == refusal


# the agent's remembered topologies


@pytest.fixture
def remembered(monkeypatch) -> dict:
    table: dict = {}
    monkeypatch.setattr(loader, "_remembered", table)
    return table


def test_a_remembered_topology_is_served_for_the_same_bytes_and_name(remembered):
    loader.remember(TOPOLOGY, "x.yaml")
    first = loader.load_bytes(TOPOLOGY, "x.yaml")
    assert loader.load_bytes(TOPOLOGY, "x.yaml") is first
    assert first.name == "demo" and first.source == "x.yaml"
    assert len(remembered) == 1


def test_other_bytes_or_another_name_are_loaded_afresh(remembered):
    loader.remember(TOPOLOGY, "x.yaml")
    kept = loader.load_bytes(TOPOLOGY, "x.yaml")
    other_name = loader.load_bytes(TOPOLOGY, "y.yaml")
    assert other_name is not kept and other_name.source == "y.yaml"
    edited = TOPOLOGY.replace(b"172.30.0.10", b"172.30.0.20")
    fresh = loader.load_bytes(edited, "x.yaml")
    assert fresh is not kept
    assert str(fresh.namespaces[0].interfaces[0].address) != str(kept.namespaces[0].interfaces[0].address)
    assert loader.load_bytes(TOPOLOGY + b"\n", "x.yaml") is not kept  # any byte counts


def test_a_topology_with_errors_is_not_remembered(remembered):
    with pytest.raises(TopologyError) as raised:
        loader.remember(BAD_TOPOLOGY, "bad.yaml")
    assert "bad.yaml" in str(raised.value.lines()) and "colour" in str(raised.value.lines())
    assert remembered == {}
    with pytest.raises(TopologyError):  # and it keeps failing, located as before
        loader.load_bytes(BAD_TOPOLOGY, "bad.yaml")


def test_at_most_remember_at_most_topologies_are_kept_oldest_first_out(remembered):
    sources = [f"t{i}.yaml" for i in range(loader.REMEMBER_AT_MOST + 1)]
    kept = {}
    for source in sources:
        loader.remember(TOPOLOGY, source)
        kept[source] = loader.load_bytes(TOPOLOGY, source)
        assert len(remembered) <= loader.REMEMBER_AT_MOST
    assert len(remembered) == loader.REMEMBER_AT_MOST
    assert loader.load_bytes(TOPOLOGY, sources[0]) is not kept[sources[0]]  # the oldest went
    for source in sources[1:]:
        assert loader.load_bytes(TOPOLOGY, source) is kept[source]


def test_the_agent_remembers_the_yaml_files_a_command_names(remembered, tmp_path):
    (tmp_path / "t.yaml").write_bytes(TOPOLOGY)
    (tmp_path / "bad.yml").write_bytes(BAD_TOPOLOGY)
    (tmp_path / "saved.plan").write_bytes(TOPOLOGY)
    request = {"argv": ["plan", "--json", "t.yaml", "bad.yml", "saved.plan", "missing.yaml"], "cwd": str(tmp_path)}
    agent._load_named_topologies(request)  # errors are the child's to report: none raised here
    assert [source for source, _ in remembered] == ["t.yaml"]
    assert loader.load_bytes(TOPOLOGY, "t.yaml") is remembered[next(iter(remembered))]


# the prefetched observation


@pytest.fixture
def prefetch(monkeypatch) -> observe.Prefetched:
    monkeypatch.setattr(observe, "_prefetched", None)
    monkeypatch.setattr(faults, "_count", 0)
    empty = Snapshot((), (), ())
    return observe.Prefetched(empty, {"web1": empty})


def test_the_prefetched_observation_is_served_once(prefetch):
    assert observe._take_prefetched() is None
    observe.use_prefetched(prefetch)
    assert observe._take_prefetched() is prefetch
    assert observe._take_prefetched() is None


def test_no_prefetched_observation_after_a_kernel_change(prefetch, monkeypatch):
    observe.use_prefetched(prefetch)
    monkeypatch.setattr(faults, "_count", 1)
    assert faults.changes_made() == 1
    assert observe._take_prefetched() is None
    monkeypatch.setattr(faults, "_count", 0)
    assert observe._take_prefetched() is None  # dropped, not kept for later


def test_checkpoints_count_the_changes(monkeypatch):
    monkeypatch.setattr(faults, "_count", 0)
    for var in ("NSNET_KILL_AT", "NSNET_STOP_AT", "NSNET_FAIL_AT"):
        monkeypatch.delenv(var, raising=False)
    faults.checkpoint()
    faults.checkpoint()
    assert faults.changes_made() == 2


@pytest.mark.parametrize(
    "changed, host_kept, kept",
    [
        ([], True, {"web1", "web2"}),
        ([7], True, {"web2"}),  # web1 (id 7) changed since: read by the command itself
        ([None], False, {"web1", "web2"}),  # the host changed: read by the command itself
        ([None, 7, 8], False, set()),
        (None, None, None),  # announcements lost: nothing is trusted
    ],
)
def test_only_what_did_not_change_since_the_snapshots_is_used(changed, host_kept, kept):
    host, web1, web2 = (Snapshot((), (), ()) for _ in range(3))
    asked = []
    prefetched = observe.Prefetched(host, {"web1": web1, "web2": web2}, {"web1": 7, "web2": 8}, changed_since=lambda: asked.append(1) or changed)
    current = prefetched.without_changes()
    assert asked == [1]  # asked once, when about to be used
    if kept is None:
        assert current is None
        return
    assert (current.host is host) is host_kept and (current.host is None) is (not host_kept)
    assert set(current.namespaces) == kept
