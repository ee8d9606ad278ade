"""A Linux bridge on the host, the gateway of its namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from .ids import Kind, ResourceId
from .spec import CreatedNames, KindSpec, Lowering


@dataclass(frozen=True)
class BridgeState:
    kind: ClassVar[Kind] = Kind.BRIDGE
    name: str
    addresses: tuple[str, ...] = ()  # its gateways: "172.30.0.1/24", "fd00:10::1/64" (IPv4 first)
    mtu: int | None = None  # desired None: not managed
    up: bool = True
    owned: bool = True  # observed False: unlabelled, adopted from an interrupted run's journal

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)


def _lower(lowering: Lowering) -> Iterator[BridgeState]:
    for bridge in lowering.topology.bridges:
        gateways = (bridge.gateway_interface, bridge.gateway6_interface)
        yield BridgeState(bridge.name, tuple(str(g) for g in gateways if g is not None), bridge.mtu)


def _describe(bridge: BridgeState) -> str:
    return ", ".join([f"address {', '.join(bridge.addresses) or '(none)'}"] + ([f"mtu {bridge.mtu}"] if bridge.mtu else []))


SPEC = KindSpec(Kind.BRIDGE, BridgeState, _lower, _describe, creates=lambda bridge: CreatedNames(links=(bridge.name,)))
