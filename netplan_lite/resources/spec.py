"""What the engine knows about one kind of resource, declared once per kind.

Each kind module (bridge.py, namespace.py, ...) defines its state type and a
`SPEC`; registry.py collects them. Everything generic over kinds (desired
state, diff, plan order, implied deletes, the journal, plan text, JSON) reads
the spec instead of branching on the kind. What touches the kernel is not
here: each backend keeps one handler table per kind (kernel/live.py,
engine/fake.py) and the kernel layer one reader per kind (kernel/readers.py).
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from typing import Any, Callable, Iterable, Mapping, Protocol

from ..model.topology import InterfaceKey, Topology
from .ids import Kind, ResourceId


class ReplaceCode(enum.Enum):
    """Why a resource must be deleted and made again rather than changed in place."""

    HALF_CREATED = "half-created"  # left unusable by an interrupted run
    HOST_NAME_CHANGED = "host-name-changed"  # a veth's host end cannot be renamed while it is a port
    ROUTE_DROPPED = "route-dropped"  # the kernel drops a route with the address its gateway is reached by
    PEER_CHANGED = "peer-changed"  # a veth's peer cannot move: the pair is made again


@dataclass(frozen=True)
class Replacement:
    code: ReplaceCode
    text: str  # what the plan shows


@dataclass(frozen=True)
class Edge:
    """This kind is created after `kind` (and deleted before it), for `reason`."""

    kind: Kind
    reason: str


@dataclass(frozen=True)
class CreatedNames:
    """Kernel names a create makes: what a crashed run's journal lets the next run adopt,
    and what must not already belong to someone else."""

    links: tuple[str, ...] = ()  # host links
    namespaces: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {key: list(names) for key, names in (("links", self.links), ("namespaces", self.namespaces)) if names}


class Lowering(Protocol):
    """What lowering a topology can read: the model and what was derived from it once."""

    @property
    def topology(self) -> Topology: ...
    @property
    def addresses(self) -> Mapping[InterfaceKey, IPv4Interface]: ...  # allocated, for every addressed interface, link end and lo
    @property
    def addresses6(self) -> Mapping[InterfaceKey, IPv6Interface]: ...  # the same, IPv6
    def addresses_of(self, key: InterfaceKey) -> tuple[str, ...]: ...  # both families' as CIDRs, IPv4 first
    @property
    def forward_targets(self) -> set[InterfaceKey]: ...
    @property
    def nat(self) -> tuple[Any, list[Any]]: ...  # (nft table or None, host sysctls), resources/nat.py
    @property
    def docker_chains(self) -> frozenset[Kind]: ...  # the iptables kinds whose Docker chain the host has


def _no_parents(rid: ResourceId) -> tuple[ResourceId, ...]:
    return ()


def _creates_nothing(resource: Any) -> CreatedNames:
    return CreatedNames()


@dataclass(frozen=True)
class KindSpec:
    kind: Kind
    state: type
    lower: Callable[[Lowering], Iterable[Any]]  # the desired resources of this kind
    describe: Callable[[Any], str]  # the interesting attributes, one line (plan text)
    after: tuple[Edge, ...] = ()
    replaced_by: Mapping[str, Replacement] = field(default_factory=dict)  # field -> why it cannot change in place
    # the resources whose deletion makes the kernel delete this one too
    parents: Callable[[ResourceId], tuple[ResourceId, ...]] = _no_parents
    creates: Callable[[Any], CreatedNames] = _creates_nothing
    listed: Callable[[Any], tuple[str, ...]] = lambda resource: ()  # its members, a line each (plan text)
    # the host objects it uses (a plan targeting its namespace takes them in)
    needs: Callable[[Any], tuple[ResourceId, ...]] = lambda resource: ()
    host_wide: bool = False  # a host object of the whole topology, in every targeted plan
    # the namespaces it reaches besides its home (a link's peer end): a plan targeting either takes in both
    spans: Callable[[Any], tuple[str, ...]] = lambda resource: ()
    # set for a data source: where the object is; it is read and used, never created or deleted
    # (deleting it only forgets it, so what lives in it is deleted one by one)
    data_source: Callable[[Any], str | None] = lambda resource: None

    def decode(self, doc: Mapping[str, Any]) -> Any:
        """The resource a JSON object (schemas/state.schema.json) describes."""
        return _decode(self.state, doc)


def in_namespace_parent(rid: ResourceId) -> tuple[ResourceId, ...]:
    """Objects inside a namespace go when it goes."""
    assert rid.namespace is not None
    return (ResourceId(Kind.NAMESPACE, rid.namespace),)


def _decode(cls: type, doc: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    values = {f.name: _value(hints[f.name], doc[f.name]) for f in dataclasses.fields(cls) if f.name in doc}
    return cls(**values)


def _value(hint: Any, value: Any) -> Any:
    """A JSON value as the field's type: lists become tuples, objects the dataclass they encode."""
    if isinstance(value, list):
        item = next((a for a in typing.get_args(hint) if a is not Ellipsis), Any)
        return tuple(_value(item, v) for v in value)
    if isinstance(value, dict) and dataclasses.is_dataclass(hint):
        return _decode(hint, value)  # type: ignore[arg-type]
    return value
