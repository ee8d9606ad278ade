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

import os

STATE_DIR = "/run/nsnet"
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
