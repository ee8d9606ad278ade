"""diff: desired vs observed State -> changes, each with before and after.

A field whose desired value is None is not managed and never differs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

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


def _dropped_networks(change: Change) -> tuple[str, list[IPv4Network]] | None:
    """(reason, networks) when an interface change makes the kernel flush the routes via them."""
    if change.id.kind is not Kind.INTERFACE or change.before is None:
        return None
    before = set(change.before.addresses)  # type: ignore[union-attr]
    if change.op is Op.REPLACE:
        reason, removed = f"interface {change.id.key} is replaced", before
    elif change.op is Op.DELETE:
        reason, removed = f"interface {change.id.key} is removed", before
    else:
        reason, removed = f"interface {change.id.key} loses an address", before - set(change.after.addresses)  # type: ignore[union-attr]
    return (reason, [IPv4Interface(a).network for a in removed]) if removed else None


def _replan_routes_the_kernel_drops(changes: list[Change], desired: State, observed: State) -> list[Change]:
    """A route dies with the address its gateway is reached by: delete and create it again."""
    drops = [(c.id.namespace, d) for c in changes if (d := _dropped_networks(c))]
    if not drops:
        return changes
    by_id = {c.id: c for c in changes}
    for rid in desired.keys() & observed.keys():
        if rid.kind is not Kind.ROUTE:
            continue
        via = IPv4Address(observed[rid].via)  # type: ignore[union-attr]
        reason = next((r for ns, (r, nets) in drops if ns == rid.namespace and any(via in n for n in nets)), None)
        if reason:
            old = by_id.get(rid)
            why = Replacement(ReplaceCode.ROUTE_DROPPED, reason)
            by_id[rid] = Change(rid, observed[rid], desired[rid], old.fields if old else (), why)
    return sorted(by_id.values(), key=lambda c: sort_key(c.id))
