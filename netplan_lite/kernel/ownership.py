"""Which kernel objects are a topology's: labelled, or named by its journal and unlabelled."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.journal import Intents
from .netlink import Snapshot
from .rtnl.link import LinkMsg
from ..resources.namespace import NamespaceState


def describe_owner(owner: str | None) -> str:
    return f"topology {owner!r}" if owner else "not made by nsnet"


@dataclass(frozen=True)
class Ownership:
    """Which objects are this topology's: labelled, or named by its journal and unlabelled.
    A data source is used, not owned: in it, only what nsnet labelled is its."""

    label: str
    intents: Intents
    sources: frozenset[str] = frozenset()  # the data-source namespaces read

    def link(self, link: LinkMsg) -> bool:
        return link.alias == self.label or (not link.alias and link.name in self.intents.links)

    def namespace(self, name: str, snap: Snapshot | None, path: str | None = None) -> NamespaceState | None:
        lo = snap.link("lo") if snap else None
        if name in self.sources:  # not a namespace (snap None): the plan says the data source is missing
            return NamespaceState(name, lo.up if lo else False, path=path) if snap is not None else None
        if lo is not None and lo.alias == self.label:
            return NamespaceState(name, lo.up)
        if name not in self.intents.namespaces or (lo is not None and lo.alias):
            return None
        return NamespaceState(name, lo.up if lo else False, owned=False, usable=snap is not None)
