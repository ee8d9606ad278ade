"""A route in a namespace's main table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..labels import ROUTE_PROTO
from .ids import Kind, ResourceId


@dataclass(frozen=True)
class RouteState:
    kind: ClassVar[Kind] = Kind.ROUTE
    namespace: str
    to: str  # "default" or a CIDR
    via: str
    proto: int = ROUTE_PROTO  # a route replaced by hand (proto static, boot) is drift

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, f"{self.namespace}/{self.to}")
