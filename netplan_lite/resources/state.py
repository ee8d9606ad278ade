"""The one state type shared by desired and observed: resources keyed by id.

A topology lowers to a State (desired); the observer reads the kernel into a
State (observed); diff compares the two as values of one type.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, Union

from .bridge import BridgeState
from .ids import ResourceId
from .interface import InterfaceState
from .namespace import NamespaceState
from .nft_table import NftTableState
from .route import RouteState
from .sysctl import SysctlState

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
