"""The one home of /run/nsnet's layout (tmpfs: what it records is forgotten at reboot, like the
kernel state it describes).

    /run/nsnet/                    0700, root only
      agent.sock                   the agent (agent/server.py)
      <name>.lock                  host-wide critical sections (lock.py)
      sysctl.json                  host sysctls nsnet changed: original values, holders
      <topology>/lock              one apply or destroy at a time
      <topology>/journal.jsonl     the apply journal (journal.py)
      <topology>/source.json       the file last applied (`nsnet ls`)
      <topology>/sysctls.json      namespace sysctls nsnet set: their original values
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

STATE_DIR = "/run/nsnet"
ADDRESSES, SOURCES, NAMESPACE_SYSCTLS = "addresses.json", "sources.json", "sysctls.json"
RECORDS = (ADDRESSES, SOURCES, NAMESPACE_SYSCTLS)  # what a run leaves for the next one
AGENT_SOCKET = os.path.join(STATE_DIR, "agent.sock")
HOST_SYSCTLS = os.path.join(STATE_DIR, "sysctl.json")


def state_dir() -> str:
    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    return STATE_DIR


def topology_dir(topology: str) -> str:
    path = os.path.join(STATE_DIR, topology)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def topology_file(topology: str, name: str) -> str:
    """The path of one of a topology's files (the directory is made when it is written)."""
    return os.path.join(STATE_DIR, topology, name)


def read_record(topology: str, name: str) -> Any:
    """One of a topology's JSON records, or None when it is missing or unreadable."""
    try:
        with open(topology_file(topology, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_record(topology: str, name: str, data: Any) -> None:
    """Replace a record atomically (0600); an empty one is removed (so a destroy leaves no directory)."""
    path = topology_file(topology, name)
    if not data:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    topology_dir(topology)
    temp = path + ".new"
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(temp, path)


def forget_records(topology: str) -> None:
    """Nothing of the topology is left (a converged destroy): its records go too, even those of
    a data source that vanished with its container."""
    for name in RECORDS:
        write_record(topology, name, None)
