"""A veth pair between a namespace and the host (usually a bridge port)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .ids import Kind, ResourceId


@dataclass(frozen=True)
class InterfaceState:
    """A veth pair: `name` in `namespace`, its peer `host_name` on the host."""

    kind: ClassVar[Kind] = Kind.INTERFACE
    REPLACED_BY: ClassVar[dict[str, str]] = {"host_name": "the host-side veth name changed"}
    namespace: str
    name: str
    host_name: str | None  # observed None: the host end is gone
    bridge: str | None = None  # the host end's master
    addresses: tuple[str, ...] = ()
    mtu: int | None = None
    mac: str | None = None
    up: bool = True
    host_up: bool = True
    hairpin: bool = False  # set on port-forward targets so a namespace reaches its own published port
    owned: bool = True  # the host end's label

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, f"{self.namespace}/{self.name}")
