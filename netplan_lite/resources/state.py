"""The one state type shared by desired and observed: resources keyed by id.

A topology lowers to a State (desired); the observer reads the kernel into a
State (observed); diff compares the two as values of one type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Mapping, NamedTuple, Union

from ..labels import ROUTE_PROTO


class Kind(enum.Enum):
    """Resource kinds, in creation order (rank); deletes run in the reverse order.

    Sysctls come after the nft table: route_localnet=1 must never be on while
    the guard rule that makes it safe is missing (CVE-2020-8558).
    """

    BRIDGE = "bridge"
    NAMESPACE = "namespace"
    INTERFACE = "interface"
    ROUTE = "route"
    NFT_TABLE = "nft_table"
    SYSCTL = "sysctl"

    @property
    def rank(self) -> int:
        return list(Kind).index(self)


class ResourceId(NamedTuple):
    kind: Kind
    name: str  # unique within its kind: "br0", "web1", "web1/eth0", "web1/default"

    def __str__(self) -> str:
        return f"{self.kind.value.replace('_', ' ')} {self.name}"

    @property
    def namespace(self) -> str | None:
        """The namespace a resource lives in (None for host objects)."""
        if self.kind is Kind.NAMESPACE:
            return self.name
        if self.kind in (Kind.INTERFACE, Kind.ROUTE):
            return self.name.split("/", 1)[0]
        return None

    @property
    def parent(self) -> ResourceId | None:
        """The namespace whose deletion makes the kernel delete this resource too."""
        if self.kind in (Kind.INTERFACE, Kind.ROUTE):
            return ResourceId(Kind.NAMESPACE, self.name.split("/", 1)[0])
        return None  # route_localnet is switched off explicitly, before the guard goes


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


@dataclass(frozen=True)
class NamespaceState:
    kind: ClassVar[Kind] = Kind.NAMESPACE
    REPLACED_BY: ClassVar[dict[str, str]] = {"usable": "left half-created by an interrupted run"}
    name: str
    lo_up: bool = True
    owned: bool = True
    usable: bool = True  # observed False: a /run/netns file that is not a mounted namespace

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)


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


ORPHAN_NAMESPACE = "(host)"  # namespace field of a labelled host veth whose peer is lost
LINK_SYSCTL_PREFIX = "net.ipv4.conf."


@dataclass(frozen=True)
class SysctlState:
    """A host sysctl the topology needs, e.g. net.ipv4.ip_forward = 1."""

    kind: ClassVar[Kind] = Kind.SYSCTL
    key: str  # dotted; per-link keys are net.ipv4.conf.<link>.<name>
    value: str

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.key)


@dataclass(frozen=True, order=True)
class NftRule:
    chain: str
    comment: str  # says what the rule is for; shown in plans
    expr: str  # the rule's expressions as canonical JSON (what `nft -j` prints)


@dataclass(frozen=True, order=True)
class NftChain:
    name: str
    type: str
    hook: str
    prio: int


@dataclass(frozen=True)
class NftTableState:
    """The topology's own nft table (family ip), replaced whole on every change."""

    kind: ClassVar[Kind] = Kind.NFT_TABLE
    name: str
    chains: tuple[NftChain, ...] = ()
    rules: tuple[NftRule, ...] = ()

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)


Resource = Union[BridgeState, NamespaceState, InterfaceState, RouteState, SysctlState, NftTableState]
State = Mapping[ResourceId, Resource]


def state_of(resources: list[Resource]) -> dict[ResourceId, Resource]:
    return {r.id: r for r in resources}


def attributes(resource: Resource) -> dict[str, Any]:
    """The comparable fields of a resource, in declaration order."""
    return {f.name: getattr(resource, f.name) for f in fields(resource)}


def replace_reason(before: Resource, after: Resource) -> str | None:
    """Why `before` cannot become `after` in place, or None if it can."""
    for name, reason in getattr(type(after), "REPLACED_BY", {}).items():
        if getattr(after, name) is not None and getattr(before, name) != getattr(after, name):
            return reason
    return None
