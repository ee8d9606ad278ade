"""A network namespace, named under /run/netns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .ids import Kind, ResourceId


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
