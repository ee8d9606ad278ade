"""A Linux bridge on the host, the gateway of its namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .ids import Kind, ResourceId


@dataclass(frozen=True)
class BridgeState:
    kind: ClassVar[Kind] = Kind.BRIDGE
    name: str
    addresses: tuple[str, ...] = ()  # "172.30.0.1/24", sorted
    mtu: int | None = None  # desired None: not managed
    up: bool = True
    owned: bool = True  # observed False: unlabelled, adopted from an interrupted run's journal

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)
