"""A host sysctl the topology needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable

from .ids import Kind, ResourceId
from .spec import Edge, KindSpec, Lowering


LINK_SYSCTL_PREFIX = "net.ipv4.conf."


@dataclass(frozen=True)
class SysctlState:
    """A host sysctl the topology needs: a shared switch (net.ipv4.ip_forward = 1,
    net.ipv6.conf.all.forwarding = 1) or a per-link key of one of its bridges."""

    kind: ClassVar[Kind] = Kind.SYSCTL
    key: str  # dotted; per-link keys are net.ipv4.conf.<link>.<name>
    value: str

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.key)


def _lower(lowering: Lowering) -> Iterable[SysctlState]:
    return lowering.nat[1]


SPEC = KindSpec(
    Kind.SYSCTL,
    SysctlState,
    _lower,
    lambda sysctl: f"= {sysctl.value}",
    after=(
        Edge(Kind.BRIDGE, "per-link keys exist once their bridge does"),
        Edge(Kind.NFT_TABLE, "route_localnet=1 must never be on while the guard rule that makes it safe is missing (CVE-2020-8558)"),
    ),
    host_wide=True,
)
