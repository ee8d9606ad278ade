"""What the last converged run of a topology leaves for the next one: every interface's
address and the data-source namespaces it used.

A plan of the whole topology reads nsnet's earlier address assignments from
the kernel (nsnet's address protocol marks them). A targeted plan reads only
its namespaces, yet must allocate around the addresses of all the others: it
takes theirs from /run/nsnet/<topology>/addresses.json. Without that record,
a targeted plan reads every namespace (and still changes only its targets).

Data sources (`path:` namespaces) are not under /run/netns: the paths of those
the last run used (/run/nsnet/<topology>/sources.json) let the next plan or a
destroy read them, and remove what nsnet made inside, once they left the file.
"""

from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Mapping

from ..model.topology import InterfaceKey
from .rundir import ADDRESSES, SOURCES, read_record, write_record


def load(topology: str) -> dict[InterfaceKey, IPv4Interface] | None:
    """The recorded addresses, or None when there is no usable record."""
    data = read_record(topology, ADDRESSES)
    try:
        return {tuple(key.split("/", 1)): IPv4Interface(cidr) for key, cidr in data.items()}
    except (AttributeError, ValueError):
        return None


def load_sources(topology: str) -> dict[str, str]:
    data = read_record(topology, SOURCES)
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save(topology: str, addresses: Mapping[InterfaceKey, IPv4Interface], sources: Mapping[str, str]) -> None:
    """Record a converged run's addresses and data sources (none: forget them, as a destroy does)."""
    write_record(topology, ADDRESSES, {f"{ns}/{name}": str(cidr) for (ns, name), cidr in addresses.items()})
    write_record(topology, SOURCES, dict(sources))
