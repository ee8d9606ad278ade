"""Shared host sysctls (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding: nat.HELD_SYSCTLS):
who needs them, what to restore.

Several topologies, and other tools, may need the same host-wide switch.
nsnet records in /run/nsnet/sysctl.json (tmpfs: forgotten at reboot, like the
sysctls themselves) the value it found before it first changed a key, and
which topologies hold it. The last holder to let go restores the original
value, unless other firewall tables (Docker's, firewalld's) exist on the host
and may depend on it; every outcome is reported in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Any, Callable, Iterator

from ..engine.rundir import HOST_SYSCTLS, state_dir
from ..faults import checkpoint

REGISTRY = HOST_SYSCTLS


def _path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read(key: str) -> str:
    """Current value of a dotted key (link names in keys never contain dots)."""
    with open(_path(key)) as f:
        return f.read().strip()


def write(key: str, value: str) -> None:
    checkpoint()
    with open(_path(key), "w") as f:
        f.write(value)


@contextlib.contextmanager
def _registry() -> Iterator[dict[str, Any]]:
    """The registry, locked for the block and saved after it."""
    state_dir()
    fd = os.open(REGISTRY, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read()
        data = json.loads(text) if text.strip() else {}
        yield data
        f.seek(0)
        f.truncate()
        json.dump(data, f, indent=2, sort_keys=True)


def holders(key: str) -> list[str]:
    try:
        with open(REGISTRY) as f:
            return sorted(json.load(f).get(key, {}).get("holders", []))
    except (OSError, ValueError):
        return []


def claim(topology: str, key: str, value: str) -> None:
    """Record `topology` as needing key=value, remember the original, set it."""
    with _registry() as data:
        entry = data.setdefault(key, {"original": read(key), "holders": []})
        if topology not in entry["holders"]:
            entry["holders"].append(topology)
        if read(key) != value:
            write(key, value)


def release(topology: str, key: str, others_depend: Callable[[], str | None]) -> str:
    """Drop `topology`'s claim; restore the original if nobody else needs it. Returns what was done."""
    with _registry() as data:
        entry = data.get(key)
        if entry is None:
            return f"{key} left as is (nsnet has no record of changing it)"
        if topology in entry["holders"]:
            entry["holders"].remove(topology)
        if entry["holders"]:
            return f"{key} left at {read(key)}: still needed by topology {', '.join(sorted(entry['holders']))}"
        del data[key]
        reason = others_depend()
        if reason:
            return f"{key} left at {read(key)} (it was {entry['original']} before nsnet): {reason}"
        if read(key) != entry["original"]:
            write(key, entry["original"])
            return f"{key} restored to {entry['original']}"
        return f"{key} is {entry['original']}, as nsnet found it"
