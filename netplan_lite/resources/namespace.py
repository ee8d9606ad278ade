"""A network namespace, named under /run/netns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from ..model.topology import LOOPBACK
from .ids import Kind, ResourceId
from .spec import CreatedNames, KindSpec, Lowering, ReplaceCode, Replacement


@dataclass(frozen=True)
class NamespaceState:
    kind: ClassVar[Kind] = Kind.NAMESPACE
    name: str
    lo_up: bool | None = True  # desired None for a data source: its lo is its owner's
    owned: bool = True
    usable: bool = True  # observed False: a /run/netns file that is not a mounted namespace
    path: str | None = None  # a data source: an existing namespace nsnet uses, never creates or deletes
    loopback: tuple[str, ...] = ()  # nsnet's addresses on lo (a router's loopbacks), IPv4 first

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)


def _lower(lowering: Lowering) -> Iterator[NamespaceState]:
    for ns in lowering.topology.namespaces:
        loopback = lowering.addresses_of((ns.name, LOOPBACK))
        yield NamespaceState(ns.name, lo_up=None, path=ns.path, loopback=loopback) if ns.path else NamespaceState(ns.name, loopback=loopback)


def _describe(ns: NamespaceState) -> str:
    parts = [f"data source {ns.path}"] if ns.path else []
    parts += [f"loopback {', '.join(ns.loopback)}"] if ns.loopback else []
    return ", ".join(parts)


SPEC = KindSpec(
    Kind.NAMESPACE,
    NamespaceState,
    _lower,
    _describe,
    replaced_by={"usable": Replacement(ReplaceCode.HALF_CREATED, "left half-created by an interrupted run")},
    creates=lambda ns: CreatedNames() if ns.path else CreatedNames(namespaces=(ns.name,)),
    data_source=lambda ns: ns.path,
)
