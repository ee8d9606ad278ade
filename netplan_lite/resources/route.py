"""A route in a namespace's main table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from ..labels import ROUTE_PROTO
from .ids import DEFAULT_ROUTES, Kind, ResourceId
from .spec import Edge, KindSpec, Lowering, in_namespace_parent


def destination_cidr(to: str) -> str:
    """A route's id is its destination as a CIDR: family-safe, where "default" is not."""
    return next((cidr for cidr, shown in DEFAULT_ROUTES.items() if shown == to), to)


@dataclass(frozen=True)
class RouteState:
    kind: ClassVar[Kind] = Kind.ROUTE
    namespace: str
    to: str  # "default" or a CIDR
    via: str
    proto: int = ROUTE_PROTO  # a route replaced by hand (proto static, boot) is drift

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, destination_cidr(self.to), self.namespace)


def _lower(lowering: Lowering) -> Iterator[RouteState]:
    topology = lowering.topology
    for ns in topology.namespaces:
        if ns.routes is not None:
            yield from (RouteState(ns.name, route.destination, str(route.via[0])) for route in ns.routes)
            continue
        for iface in ns.interfaces[:1]:  # default: via the first interface's gateway, if bridged
            bridge = topology.bridge(iface.bridge)
            if bridge is not None and bridge.gateway is not None:
                yield RouteState(ns.name, "default", str(bridge.gateway))


SPEC = KindSpec(
    Kind.ROUTE,
    RouteState,
    _lower,
    lambda route: f"via {route.via}",
    after=(Edge(Kind.INTERFACE, "its gateway is reached through an interface's address"),),
    parents=in_namespace_parent,
)
