"""diff: desired vs observed State -> changes, each with before and after.

A field whose desired value is None is not managed and never differs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .state import Kind, Resource, ResourceId, State, attributes, replace_reason


class ChangeType(enum.Enum):
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
    reason: str | None = None  # why a replace cannot happen in place

    @property
    def type(self) -> ChangeType:
        if self.before is None:
            return ChangeType.CREATE
        if self.after is None:
            return ChangeType.DELETE
        return ChangeType.REPLACE if self.reason else ChangeType.UPDATE


def field_changes(before: Resource, after: Resource) -> tuple[FieldChange, ...]:
    """Fields where `after` (desired) asks for something `before` does not have."""
    old = attributes(before)
    return tuple(
        FieldChange(name, old[name], value)
        for name, value in attributes(after).items()
        if value is not None and old[name] != value
    )


def diff(desired: State, observed: State) -> list[Change]:
    """Every difference, sorted by resource id (stable across runs)."""
    changes = []
    for rid in sorted(desired.keys() | observed.keys(), key=_sort_key):
        before, after = observed.get(rid), desired.get(rid)
        if before is None or after is None:
            changes.append(Change(rid, before, after))
            continue
        fields = field_changes(before, after)
        if fields:
            changes.append(Change(rid, before, after, fields, replace_reason(before, after)))
    return _replace_routes_of_replaced_interfaces(changes, desired, observed)


def _replace_routes_of_replaced_interfaces(changes: list[Change], desired: State, observed: State) -> list[Change]:
    """The kernel drops a namespace's routes with its interface: plan them again."""
    replaced = {c.id.namespace: c.id.name for c in changes if c.id.kind is Kind.INTERFACE and c.type is ChangeType.REPLACE}
    if not replaced:
        return changes
    by_id = {c.id: c for c in changes}
    for rid in desired.keys() & observed.keys():
        if rid.kind is Kind.ROUTE and rid.namespace in replaced:
            old = by_id.get(rid)
            reason = f"interface {replaced[rid.namespace]} is replaced"
            by_id[rid] = Change(rid, observed[rid], desired[rid], old.fields if old else (), reason)
    return sorted(by_id.values(), key=lambda c: _sort_key(c.id))


def _sort_key(rid: ResourceId) -> tuple[int, str]:
    return rid.kind.rank, rid.name
