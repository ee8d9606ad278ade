"""What the last converged run of a topology leaves for the next one: every interface's,
link end's and loopback's addresses and the data-source namespaces it used.

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

from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Mapping

from ..model.topology import InterfaceKey
from .rundir import ADDRESSES, SOURCES, read_record, write_record


@dataclass(frozen=True)
class Recorded:
    """A converged run's addresses, per family."""

    v4: Mapping[InterfaceKey, IPv4Interface] = field(default_factory=dict)
    v6: Mapping[InterfaceKey, IPv6Interface] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)


def load(topology: str) -> Recorded | None:
    """The recorded addresses, or None when there is no usable record. A value is one CIDR (as
    records before dual-stack were) or a list of them, one per family."""
    data = read_record(topology, ADDRESSES)
    v4: dict[InterfaceKey, IPv4Interface] = {}
    v6: dict[InterfaceKey, IPv6Interface] = {}
    try:
        for key, value in data.items():
            ns, name = key.split("/", 1)
            for cidr in [value] if isinstance(value, str) else value:
                address = ip_interface(cidr)
                if isinstance(address, IPv4Interface):
                    v4[(ns, name)] = address
                else:
                    v6[(ns, name)] = address
    except (AttributeError, TypeError, ValueError):
        return None
    return Recorded(v4, v6)


def load_sources(topology: str) -> dict[str, str]:
    data = read_record(topology, SOURCES)
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save(topology: str, addresses: Recorded, sources: Mapping[str, str]) -> None:
    """Record a converged run's addresses and data sources (none: forget them, as a destroy does)."""
    doc: dict[str, list[str]] = {}
    for family in (addresses.v4, addresses.v6):
        for (ns, name), cidr in family.items():
            doc.setdefault(f"{ns}/{name}", []).append(str(cidr))
    write_record(topology, ADDRESSES, doc)
    write_record(topology, SOURCES, dict(sources))
