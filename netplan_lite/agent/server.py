"""`nsnet agent`: an optional resident process that runs nsnet commands for `nsnet`.

Without it every command starts Python, imports nsnet and reads every
namespace: ~0.5 s at 1000 namespaces, whatever it changes. The agent imports
nsnet once and keeps the host's and every namespace's snapshot current from
the kernel's change announcements (statecache.py). For each command it:

1. receives the argv, working directory and environment of `nsnet`, and its
   stdin, stdout and stderr (SCM_RIGHTS; agentclient.py is the other end);
2. reads again only what changed since the last command;
3. forks: the child takes the client's files, directory and environment and
   runs the command exactly as `nsnet` would, its first observation taken
   from the snapshots (through the command line's main, which `nsnet agent`
   hands to serve(): same code, same locks);
4. sends the child's pid (the client forwards Ctrl-C and SIGTERM to it) and
   then its exit status.

The child uses a snapshot only if, when it is about to (after taking its
topology's lock), the agent has seen no change announced in it since it was taken
(agentclient.changed_since); it reads what did change itself.

Commands run side by side, as separate `nsnet` processes would. The socket is
/run/nsnet/agent.sock (NSNET_AGENT_SOCKET), 0600 in a root-only directory;
a client of another user is refused, and so is a client of another nsnet
installation (agentclient.code_fingerprint): it then runs the command itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import importlib
import json
import os
import pkgutil
import select
import signal
import socket
import sys
import time
import traceback
from types import FrameType
from typing import Any, Callable, Iterator, Sequence

from . import client as agentclient
from ..model import loader
from ..kernel import observe
from ..kernel.rtnl.listener import ChangeListener
from ..errors import NsnetError
from .cache import SnapshotCache

MAX_REQUEST = 1 << 20
REQUEST_FIELDS = {"argv": list, "cwd": str, "env": dict, "umask": int, "fingerprint": str}  # agentclient.run


class AgentError(NsnetError):
    """The agent cannot start."""


@dataclasses.dataclass
class Running:
    conn: socket.socket
    argv: list[str]
    started: float


def serve(run: Callable[[Sequence[str]], int]) -> int:
    """Serve `run` (the command line's main: argv -> exit code) until SIGTERM or Ctrl-C. It is handed
    in rather than imported: the command line starts the agent, so the agent must not import it."""
    path = agentclient.socket_path()
    fingerprint = agentclient.code_fingerprint()
    _refuse_if_served(path)
    _import_everything()
    cache = SnapshotCache()
    cache.refresh()  # before listening: the first command should not wait for the first read
    with _listening(path) as server, _wakeup_on_signals() as (wakeup, stop):
        _log(f"serving {path} (pid {os.getpid()}); stop with Ctrl-C or SIGTERM")
        running: dict[int, Running] = {}
        while not stop:
            watched: list[socket.socket | ChangeListener | int] = [server, cache.listener, wakeup]
            ready, _, _ = select.select(watched, [], [])
            if cache.listener in ready:
                cache.note_changes()
            if wakeup in ready:
                os.read(wakeup, 4096)
            _reap(running)
            if server in ready:
                _accept(server, cache, [server, cache.listener.sock, cache.host_sock.sock, wakeup], fingerprint, running, run)
        server.close()  # no new commands; the running ones finish, a second signal stops them
        _finish(running, wakeup, stop)
        cache.close()
        _log(f"stopped ({stop[0]})")
    return 0


def _finish(running: dict[int, Running], wakeup: int, stop: list[str]) -> None:
    forwarded = 1
    while running:
        if len(stop) > forwarded:
            forwarded = len(stop)
            for pid in running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        select.select([wakeup], [], [])
        os.read(wakeup, 4096)
        _reap(running)


def _import_everything() -> None:
    """What commands import when they need it, imported once here for every child."""
    import netplan_lite

    for module in pkgutil.walk_packages(netplan_lite.__path__, "netplan_lite."):
        if module.name != "netplan_lite.__main__":  # runs the command line when imported
            importlib.import_module(module.name)
    importlib.import_module("yaml")  # the loader imports it lazily


def _refuse_if_served(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(path) == 0:
            raise AgentError(f"an agent already serves {path}")


@contextlib.contextmanager
def _listening(path: str) -> Iterator[socket.socket]:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by an agent that did not stop cleanly (nothing answered above)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(old_umask)
    server.listen(64)
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _wakeup_on_signals() -> Iterator[tuple[int, list[str]]]:
    """A pipe select() wakes on for SIGCHLD, SIGINT and SIGTERM; the stop signal's name once received."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    stop: list[str] = []
    previous_fd = signal.set_wakeup_fd(write_end)
    handlers: dict[signal.Signals, Callable[[int, FrameType | None], None]] = {signal.SIGCHLD: lambda *_: None}
    handlers.update({s: lambda signum, _: stop.append(signal.Signals(signum).name) for s in (signal.SIGINT, signal.SIGTERM)})
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        yield read_end, stop
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, h in previous.items():
            signal.signal(s, h)
        os.close(read_end)
        os.close(write_end)


def _accept(
    server: socket.socket,
    cache: SnapshotCache,
    agent_files: list[socket.socket | int],
    fingerprint: str,
    running: dict[int, Running],
    run: Callable[[Sequence[str]], int],
) -> None:
    conn, _ = server.accept()
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError) as err:
        _log(f"bad request: {err}")
        conn.close()
        return
    if _is_changes_query(request):  # from a child about to use its snapshots: what changed since?
        _send(conn, {"changed": cache.changed_since(request["since"])})
        conn.close()
        return
    try:
        refusal = _refusal(conn, request, fingerprint)
        if refusal:
            _send(conn, {"refused": refusal})
            conn.close()
            return
        try:
            prefetched = dataclasses.replace(cache.refresh(), changed_since=_asker(server, cache.generation))
            _load_named_topologies(request)
            gc.freeze()  # the child's collections then skip the agent's objects (and copy fewer pages)
            pid = os.fork()
        except Exception as err:  # noqa: BLE001 - the client runs the command itself; the agent goes on
            cache.forget()
            _log(f"cannot run {' '.join(request['argv'])}: {type(err).__name__}: {err}")
            _send(conn, {"refused": f"the agent failed ({err})"})
            conn.close()
            return
        if pid == 0:
            _run_child(run, request, fds, prefetched, [*agent_files, conn, *(job.conn for job in running.values())])
        running[pid] = Running(conn, request["argv"], time.monotonic())
        _send(conn, {"pid": pid})
    finally:
        for fd in fds:
            os.close(fd)


def _asker(server: socket.socket, generation: int) -> Callable[[], list[int | None] | None]:
    """For the child: which namespaces the kernel announced changes in since its snapshots were
    taken. Asked when they are about to be used, after the child took its topology's lock: a run
    that held the lock until then may have changed what the snapshots show."""
    path = server.getsockname()

    def changed_since() -> list[int | None] | None:
        return agentclient.changed_since(path, generation)

    return changed_since


def _is_changes_query(request: Any) -> bool:
    return (
        isinstance(request, dict)
        and request.keys() == {"query", "since"}
        and request["query"] == agentclient.CHANGES_QUERY
        and isinstance(request["since"], int)
    )


def _load_named_topologies(request: dict[str, Any]) -> None:
    """Load the .yaml files the command names here, where the result outlives the child:
    `nsnet apply FILE` after `nsnet plan FILE` then finds FILE loaded."""
    for arg in request["argv"][1:]:
        path = os.path.join(request["cwd"], arg)
        if arg.endswith((".yaml", ".yml")) and os.path.isfile(path):
            with contextlib.suppress(Exception):  # the child reports whatever is wrong with it
                loader.remember(loader.read_source(path), arg)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    conn.settimeout(5)
    data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
    while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
        more = conn.recv(MAX_REQUEST)
        if not more:
            break
        data += more
    conn.settimeout(None)
    try:
        request = json.loads(data)
        if _is_changes_query(request) and not fds:
            return request, fds
        if len(fds) != 3:
            raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
        if not isinstance(request, dict) or any(not isinstance(request.get(k), t) for k, t in REQUEST_FIELDS.items()):
            raise ValueError("malformed request")
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _refusal(conn: socket.socket, request: dict[str, Any], fingerprint: str) -> str | None:
    if agentclient.peer_uid(conn) != os.geteuid():
        return "the agent runs commands only for its own user"
    if request.get("fingerprint") != fingerprint:
        return "the agent runs another nsnet installation (restart it after an upgrade)"
    return None


def _send(conn: socket.socket, doc: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the client went away: the command runs on regardless
        conn.sendall(json.dumps(doc).encode() + b"\n")


def _reap(running: dict[int, Running]) -> None:
    for pid in list(running):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: its status is lost
            done, status = pid, 1 << 8
        if done:
            job = running.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            _send(job.conn, {"exit": code})
            job.conn.close()
            _log(f"{' '.join(job.argv)}: exit {code} in {time.monotonic() - job.started:.2f} s")


def _run_child(
    run: Callable[[Sequence[str]], int],
    request: dict[str, Any],
    fds: list[int],
    prefetched: observe.Prefetched,
    agent_files: list[socket.socket | int],
) -> None:
    """In the forked child: become the client's `nsnet` process, run the command, exit."""
    code = 1
    try:
        for item in agent_files:  # the agent's sockets and pipe, and its connections to clients
            os.close(item.detach() if isinstance(item, socket.socket) else item)
        _become_client(request, fds)
        observe.use_prefetched(prefetched)
        code = run(request["argv"])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001 - report it on the client's stderr, as nsnet would
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _become_client(request: dict[str, Any], fds: list[int]) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in fds]  # none of them is 0-2 while those are set
    for target, fd in enumerate(high):
        os.dup2(fd, target)  # the duplicates are inheritable, like a process's own stdio
    for fd in {*fds, *high} - {0, 1, 2}:
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def _log(message: str) -> None:
    print(f"nsnet agent: {message}", file=sys.stderr, flush=True)
