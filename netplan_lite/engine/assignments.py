"""The addresses of a topology's interfaces, recorded after every converged run.

A plan of the whole topology reads nsnet's earlier assignments from the
kernel (nsnet's address protocol marks them). A targeted plan reads only its
namespaces, yet must allocate around the addresses of all the others: it
takes theirs from this record, /run/nsnet/<topology>/addresses.json, which
the last converged run wrote. Without a record, a targeted plan reads every
namespace (and still changes only its targets).
"""

from __future__ import annotations

import contextlib
import json
import os
from ipaddress import IPv4Interface
from typing import Mapping

from ..model.topology import InterfaceKey
from .rundir import topology_dir, topology_file

RECORD = "addresses.json"


def load(topology: str) -> dict[InterfaceKey, IPv4Interface] | None:
    """The recorded addresses, or None when there is no usable record."""
    try:
        with open(topology_file(topology, RECORD)) as f:
            data = json.load(f)
        return {tuple(key.split("/", 1)): IPv4Interface(cidr) for key, cidr in data.items()}  # type: ignore[misc]
    except (OSError, ValueError, AttributeError):
        return None


def save(topology: str, addresses: Mapping[InterfaceKey, IPv4Interface]) -> None:
    """Record `addresses` (none: forget the record, as a destroy does)."""
    path = topology_file(topology, RECORD)
    if not addresses:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    topology_dir(topology)
    temp = path + ".new"
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({f"{ns}/{name}": str(cidr) for (ns, name), cidr in sorted(addresses.items())}, f, indent=1)
    os.replace(temp, path)
