"""The `nsnet` side of the agent (agent.py): hand the command to a running agent.

Kept to the standard library and imported before anything else, so that a
command the agent runs costs this process no more than Python's start. When no
agent answers, or it runs other code than this installation, `run` returns
None and the command runs here as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence  # not typing, nor contextlib: each costs a CNI call milliseconds of start-up

DEFAULT_SOCKET = "/run/nsnet/agent.sock"
# the commands that read the kernel; the others gain nothing from the agent, and
# `exec` must run here (the terminal's foreground process, for an interactive shell)
AGENT_COMMANDS = frozenset({"plan", "apply", "destroy", "show", "ls", "cni"})  # cni: the CNI plugin's calls
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # netplan_lite/


def socket_path() -> str:
    return os.environ.get("NSNET_AGENT_SOCKET") or DEFAULT_SOCKET


def code_fingerprint() -> str:
    """Which nsnet this is: its Python (not the name it was started by: python and python3 are
    one), its environment (a venv), and the size and time of every file of the package."""
    entries = [os.path.realpath(sys.executable), sys.prefix]
    for path in _code_files():
        st = os.stat(path)
        entries.append(f"{os.path.relpath(path, PACKAGE_DIR)} {st.st_size} {st.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _code_files() -> list[str]:
    """The .py files of the package and its subpackages, and the JSON Schemas it ships."""
    found = [os.path.join(PACKAGE_DIR, "schemas", name) for name in os.listdir(os.path.join(PACKAGE_DIR, "schemas")) if name.endswith(".json")]
    for folder, subfolders, files in os.walk(PACKAGE_DIR):
        subfolders[:] = [d for d in subfolders if os.path.exists(os.path.join(folder, d, "__init__.py"))]
        found += [os.path.join(folder, name) for name in files if name.endswith(".py")]
    return sorted(found)


CHANGES_QUERY = "changed-since"


def changed_since(path: str, generation: int) -> list[int | None] | None:
    """Ids of the namespaces (None: the host) the agent at `path` saw change after `generation`;
    None when it cannot tell (announcements lost, or no agent answers)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(10)
            sock.connect(path)
            if peer_uid(sock) != os.geteuid():
                return None
            sock.sendall(json.dumps({"query": CHANGES_QUERY, "since": generation}).encode() + b"\n")
            return json.loads(sock.makefile("rb").readline())["changed"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def run(argv: Sequence[str]) -> int | None:
    """The command's exit code, run by the agent; None when there is no agent to run it."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in AGENT_COMMANDS or os.environ.get("NSNET_AGENT") == "off":
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_path())
    except OSError:  # none, or a socket left by an agent that has stopped
        sock.close()
        return None
    with sock:
        if peer_uid(sock) != os.geteuid():
            return None  # not an agent of this user's: never hand it our files
        request = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(), "fingerprint": code_fingerprint()}
        socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], _standard_fds())
        replies = sock.makefile("rb")
        started = json.loads(replies.readline() or b'{"refused": "the agent closed the connection"}')
        if "refused" in started:
            print(f"nsnet: {started['refused']}; running without the agent", file=sys.stderr)
            return None
        return _wait(replies, started["pid"])


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _standard_fds() -> list[int]:
    """Our stdin, stdout and stderr, /dev/null for any that is closed."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    return fds


def _wait(replies, pid: int) -> int:
    """Forward our stop signals to the agent's process running the command; its exit status."""
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    line = replies.readline()
    if not line:
        print("nsnet: the agent stopped before the command finished; its outcome is unknown", file=sys.stderr)
        return 1
    code = json.loads(line)["exit"]
    if code < 0:  # killed by a signal: end the same way, as the command itself would have
        try:
            signal.signal(-code, signal.SIG_DFL)
        except OSError:  # SIGKILL and SIGSTOP take no handler
            pass
        os.kill(os.getpid(), -code)
    return code
