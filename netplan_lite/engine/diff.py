"""diff: desired vs observed State -> changes, each with before and after.

A field whose desired value is None is not managed and never differs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import ip_address, ip_interface
from typing import Any, Iterable

from ..model.topology import IPNetwork
from ..resources.ids import Kind, ResourceId
from ..resources.registry import Resource, sort_key
from ..resources.spec import ReplaceCode, Replacement
from ..resources.state import State, attributes, replacement


class Op(enum.Enum):
    """What diff finds and plan does. A plan lowers a replace to a delete and a create."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    """One resource's difference (Terraform's Change: before None creates, after None deletes)."""

    id: ResourceId
    before: Resource | None
    after: Resource | None
    fields: tuple[FieldChange, ...] = ()
    replacement: Replacement | None = None  # set: it cannot change in place

    @property
    def op(self) -> Op:
        if self.before is None:
            return Op.CREATE
        if self.after is None:
            return Op.DELETE
        return Op.UPDATE if self.replacement is None else Op.REPLACE

    @property
    def reason(self) -> str | None:
        return None if self.replacement is None else self.replacement.text


def field_changes(before: Resource, after: Resource) -> tuple[FieldChange, ...]:
    """Fields where `after` (desired) asks for something `before` does not have."""
    old = attributes(before)
    return tuple(FieldChange(name, old[name], value) for name, value in attributes(after).items() if value is not None and old[name] != value)


def diff(desired: State, observed: State) -> list[Change]:
    """Every difference, sorted by resource id (stable across runs)."""
    changes = []
    for rid in sorted(desired.keys() | observed.keys(), key=sort_key):
        before, after = observed.get(rid), desired.get(rid)
        if before is None or after is None:
            changes.append(Change(rid, before, after))
            continue
        fields = field_changes(before, after)
        if fields:
            changes.append(Change(rid, before, after, fields, replacement(before, after)))
    return _replan_routes_the_kernel_drops(changes, desired, observed)


@dataclass(frozen=True)
class _Drop:
    """What the kernel takes with an interface change in one namespace: the routes via the networks
    of the addresses that go, and every route through a device that goes."""

    namespace: str
    reason: str
    networks: tuple[IPNetwork, ...]
    device: str | None = None


def _ends(resource: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """(namespace, device, addresses) of the namespace-side devices a resource holds."""
    if resource.kind is Kind.INTERFACE:
        return [(resource.namespace, resource.name, resource.addresses)]
    if resource.kind is Kind.LINK:
        ends = [(resource.namespace, resource.name, resource.addresses)]
        return ends + ([(resource.peer_namespace, resource.peer_name, resource.peer_addresses)] if resource.peer_namespace else [])
    return []


def _drops(change: Change) -> list[_Drop]:
    if change.before is None or change.id.kind not in (Kind.INTERFACE, Kind.LINK):
        return []
    label = f"{change.id.kind.label} {change.id.key}"
    before = _ends(change.before)
    if change.op in (Op.REPLACE, Op.DELETE):
        reason = f"{label} is {'replaced' if change.op is Op.REPLACE else 'removed'}"
        return [_Drop(ns, reason, _networks(addresses), device) for ns, device, addresses in before]
    after = _ends(change.after)
    drops = []
    for (ns, _, old), (_, _, new) in zip(before, after, strict=False):  # an observed link may lack its peer
        removed = [a for a in old if a not in new]
        if removed:
            drops.append(_Drop(ns, f"{label} loses an address", _networks(removed)))
    return drops


def _networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ip_interface(a).network for a in cidrs)


def _dropped_by(route: Any, drops: list[_Drop]) -> str | None:
    """Why the kernel drops `route` (observed), if one of `drops` takes it."""
    for drop in drops:
        if drop.namespace != route.namespace:
            continue
        if (drop.device is not None and route.dev == drop.device) or any(ip_address(v) in n for v in route.via for n in drop.networks):
            return drop.reason
    return None


def _replan_routes_the_kernel_drops(changes: list[Change], desired: State, observed: State) -> list[Change]:
    """A route dies with the address its gateway is reached by, or the device it goes through:
    delete and create it again."""
    drops = [d for c in changes for d in _drops(c)]
    if not drops:
        return changes
    by_id = {c.id: c for c in changes}
    for rid in desired.keys() & observed.keys():
        if rid.kind is not Kind.ROUTE:
            continue
        reason = _dropped_by(observed[rid], drops)
        if reason:
            old = by_id.get(rid)
            why = Replacement(ReplaceCode.ROUTE_DROPPED, reason)
            by_id[rid] = Change(rid, observed[rid], desired[rid], old.fields if old else (), why)
    return sorted(by_id.values(), key=lambda c: sort_key(c.id))
