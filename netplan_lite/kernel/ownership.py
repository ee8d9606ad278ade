"""Which kernel objects are a topology's: labelled, or named by its journal and unlabelled."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.journal import Intents
from .netlink import Link, Snapshot
from ..resources.namespace import NamespaceState


def describe_owner(owner: str | None) -> str:
    return f"topology {owner!r}" if owner else "not made by nsnet"




@dataclass(frozen=True)
class Ownership:
    """Which objects are this topology's: labelled, or named by its journal and unlabelled."""

    label: str
    intents: Intents

    def link(self, link: Link) -> bool:
        return link.alias == self.label or (not link.alias and link.name in self.intents.links)

    def namespace(self, name: str, snap: Snapshot | None) -> NamespaceState | None:
        lo = snap.link("lo") if snap else None
        if lo is not None and lo.alias == self.label:
            return NamespaceState(name, lo.up)
        if name not in self.intents.namespaces or (lo is not None and lo.alias):
            return None
        return NamespaceState(name, lo.up if lo else False, owned=False, usable=snap is not None)


