"""A sysctl inside a namespace, e.g. net.ipv4.ip_forward = 1 for a router.

Owned by record: nsnet keeps the value a key had before it first set it
(kernel/nssysctl.py), so only keys it set are observed, and removing a key
from the file restores that value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from .ids import Kind, ResourceId
from .spec import Edge, KindSpec, Lowering, in_namespace_parent


@dataclass(frozen=True)
class NamespaceSysctlState:
    kind: ClassVar[Kind] = Kind.NAMESPACE_SYSCTL
    namespace: str
    key: str  # dotted, under net.ipv4 or net.ipv6
    value: str  # words joined by one space (model.topology.sysctl_text)

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.key, self.namespace)


def _lower(lowering: Lowering) -> Iterator[NamespaceSysctlState]:
    for ns in lowering.topology.namespaces:
        yield from (NamespaceSysctlState(ns.name, key, value) for key, value in ns.sysctls)


SPEC = KindSpec(
    Kind.NAMESPACE_SYSCTL,
    NamespaceSysctlState,
    _lower,
    lambda sysctl: f"= {sysctl.value}",
    after=(
        Edge(Kind.NAMESPACE, "it is set inside its namespace"),
        Edge(Kind.INTERFACE, "per-interface keys (net.ipv4.conf.eth0.*) exist once their interface does"),
        Edge(Kind.LINK, "so do a link end's"),
    ),
    parents=in_namespace_parent,
)
