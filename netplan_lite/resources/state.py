"""The one state type shared by desired and observed: resources keyed by id.

A topology lowers to a State (desired); the observer reads the kernel into a
State (observed); diff compares the two as values of one type.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..jsonable import plain
from .ids import ResourceId
from .registry import KINDS, Resource
from .spec import Replacement

State = Mapping[ResourceId, Resource]


def state_of(resources: Iterable[Resource]) -> dict[ResourceId, Resource]:
    return {r.id: r for r in resources}


def attributes(resource: Resource) -> Mapping[str, Any]:
    """The comparable fields of a resource, in declaration order (read only: the instance's own
    dict, which a frozen dataclass fills in field order; `kind` is a class variable, not in it)."""
    return vars(resource)


def replacement(before: Resource, after: Resource) -> Replacement | None:
    """Why `before` cannot become `after` in place, or None if it can."""
    for name, why in KINDS[after.kind].replaced_by.items():
        if getattr(after, name) is not None and getattr(before, name) != getattr(after, name):
            return why
    return None


def resource_json(resource: Resource | None) -> dict[str, Any] | None:
    """A resource as schemas/state.schema.json describes it, `kind` first."""
    return None if resource is None else {"kind": resource.kind.value, **plain(resource)}
