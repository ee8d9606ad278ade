"""A host sysctl the topology needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .ids import Kind, ResourceId


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
