"""A network namespace, named under /run/netns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from .ids import Kind, ResourceId
from .spec import CreatedNames, KindSpec, Lowering, ReplaceCode, Replacement


@dataclass(frozen=True)
class NamespaceState:
    kind: ClassVar[Kind] = Kind.NAMESPACE
    name: str
    lo_up: bool = True
    owned: bool = True
    usable: bool = True  # observed False: a /run/netns file that is not a mounted namespace

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)


def _lower(lowering: Lowering) -> Iterator[NamespaceState]:
    return (NamespaceState(ns.name) for ns in lowering.topology.namespaces)


SPEC = KindSpec(
    Kind.NAMESPACE, NamespaceState, _lower, lambda ns: "",
    replaced_by={"usable": Replacement(ReplaceCode.HALF_CREATED, "left half-created by an interrupted run")},
    creates=lambda ns: CreatedNames(namespaces=(ns.name,)),
)
