"""A route in a namespace's main table: via gateways (more than one: ECMP), through a device,
or of a type that drops what it matches (blackhole, unreachable, prohibit)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Callable, ClassVar, Iterator

from ..labels import ROUTE_PROTO
from ..model.topology import Endpoint, Gateway, Namespace, Route, RouteType
from .ids import DEFAULT_ROUTES, Kind, ResourceId
from .spec import Edge, KindSpec, Lowering, in_namespace_parent

UNICAST = RouteType.UNICAST.value
IPV6_DEFAULT = "::/0"


def destination_cidr(to: str) -> str:
    """A route's id is its destination as a CIDR: family-safe, where "default" is not."""
    return next((cidr for cidr, shown in DEFAULT_ROUTES.items() if shown == to), to)


def sorted_gateways(gateways: list[str]) -> tuple[str, ...]:
    """Gateways in one order on both sides of a diff (the kernel lists ECMP next hops its way)."""
    if len(gateways) < 2:  # nearly every route: no address parsed (a lab may have a million routes)
        return tuple(gateways)
    return tuple(sorted(gateways, key=lambda g: (ip_address(g).version, ip_address(g))))


@dataclass(frozen=True)
class RouteState:
    kind: ClassVar[Kind] = Kind.ROUTE
    namespace: str
    to: str  # "default" (IPv4's) or a CIDR
    via: tuple[str, ...] = ()
    type: str = UNICAST  # a RouteType value
    dev: str | None = None  # desired None: the kernel's choice (the device the gateway is on)
    metric: int = 0  # 0: the family's default (IPv6's 1024 is read back as 0)
    proto: int = ROUTE_PROTO  # a route replaced by hand (proto static, boot) is drift

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, destination_cidr(self.to), self.namespace)


def _gateway(lowering: Lowering, gateway: Gateway, family: int) -> str:
    """An endpoint's gateway is the end's address in the route's family."""
    if not isinstance(gateway, Endpoint):
        return str(gateway)
    allocated = lowering.addresses if family == 4 else lowering.addresses6
    return str(allocated[gateway.key].ip)


def _declared(ns: Namespace, route: Route, gateway: Callable[[Gateway, int], str]) -> RouteState:
    via = sorted_gateways([gateway(g, route.family) for g in route.via])
    return RouteState(ns.name, route.destination, via, route.type.value, route.dev, route.metric or 0)


def _defaults(lowering: Lowering, ns: Namespace) -> Iterator[RouteState]:
    """Without `routes:`, a default route per family via the first interface's bridge gateways."""
    bridge = lowering.topology.bridge(ns.interfaces[0].bridge) if ns.interfaces else None
    if bridge is not None and bridge.gateway is not None:
        yield RouteState(ns.name, "default", (str(bridge.gateway),))
    if bridge is not None and bridge.gateway6 is not None and bridge.subnet6 is not None:
        yield RouteState(ns.name, IPV6_DEFAULT, (str(bridge.gateway6),))


def _lower(lowering: Lowering) -> Iterator[RouteState]:
    gateway = functools.cache(functools.partial(_gateway, lowering))  # a lab names each gateway many times
    for ns in lowering.topology.namespaces:
        if ns.routes is None:
            yield from _defaults(lowering, ns)
        else:
            yield from (_declared(ns, route, gateway) for route in ns.routes)


def _describe(route: RouteState) -> str:
    parts = [f"via {', '.join(route.via)}"] if route.via else []
    parts += [route.type] if route.type != UNICAST else []
    parts += [f"dev {route.dev}"] if route.dev else []
    parts += [f"metric {route.metric}"] if route.metric else []
    return ", ".join(parts)


SPEC = KindSpec(
    Kind.ROUTE,
    RouteState,
    _lower,
    _describe,
    after=(
        Edge(Kind.INTERFACE, "its gateway is reached through an interface's address"),
        Edge(Kind.LINK, "its gateway or device may be a link's"),
    ),
    parents=in_namespace_parent,
)
