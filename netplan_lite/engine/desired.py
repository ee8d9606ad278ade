"""Lower a Topology to the desired State, with the addresses allocated for it (addressing.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Interface, IPv6Interface
from typing import Mapping

from ..model.topology import LOOPBACK, InterfaceKey, IPInterface, Topology
from ..resources.nat import desired_nat, forward_targets
from ..resources.ids import Kind
from ..resources.nft_table import NftTableState
from ..resources.registry import KINDS
from ..resources.state import State, state_of
from ..resources.sysctl import SysctlState
from .addressing import allocate, allocate6, allocated_interfaces, cidrs, pinned

__all__ = ["Assignment", "allocate", "allocate6", "allocated_interfaces", "allocated_keys", "assign", "desired_state"]


@dataclass(frozen=True)
class Assignment:
    """The addresses of a lab that is applied: every addressed interface's, link end's and loopback's,
    per family, as a plan of the whole topology allocates them, and which of the allocated ones the
    kernel has now (nsnet keeps those)."""

    addresses: Mapping[InterfaceKey, IPv4Interface]
    live: frozenset[InterfaceKey]
    addresses6: Mapping[InterfaceKey, IPv6Interface] = field(default_factory=dict)
    live6: frozenset[InterfaceKey] = frozenset()


def allocated_keys(topology: Topology, family: int) -> frozenset[InterfaceKey]:
    """What nsnet allocates an address of `family` for (the file pins none): bridge ports, link ends
    and `loopback: auto` loopbacks; whether it gets one depends on the subnets and pools there are."""
    ports = {(ns.name, i.name) for ns in topology.namespaces for i in ns.interfaces if (i.address if family == 4 else i.address6) is None}
    ends = {end.endpoint.key for link in topology.links for end in link.ends if pinned(end.addresses, family) is None}
    loopbacks = {(ns.name, LOOPBACK) for ns in topology.namespaces if ns.loopback_auto and pinned(ns.loopback, family) is None}
    return frozenset(ports | ends | loopbacks)


def assign(
    topology: Topology, assigned: Mapping[InterfaceKey, IPv4Interface], assigned6: Mapping[InterfaceKey, IPv6Interface] | None = None
) -> Assignment:
    """What a plan of the whole topology allocates, in both families, `assigned`/`assigned6` being
    nsnet's earlier assignments as the kernel has them (Observation.assigned, .assigned6); an
    allocated address is live if it is the one kept."""
    assigned6 = assigned6 or {}
    addresses, addresses6 = allocate(topology, assigned), allocate6(topology, assigned6)

    def live(family: int, allocated: Mapping[InterfaceKey, IPInterface], kept: Mapping[InterfaceKey, IPInterface]) -> frozenset[InterfaceKey]:
        return frozenset(k for k in allocated_keys(topology, family) if k in allocated and kept.get(k) == allocated[k])

    return Assignment(addresses, live(4, addresses, assigned), addresses6, live(6, addresses6, assigned6))


@dataclass(frozen=True)
class _Lowering:
    """The spec's Lowering: the model, allocated addresses, and what is derived from them once."""

    topology: Topology
    addresses: Mapping[InterfaceKey, IPv4Interface]
    docker_chains: frozenset[Kind]
    addresses6: Mapping[InterfaceKey, IPv6Interface] = field(default_factory=dict)

    def addresses_of(self, key: InterfaceKey) -> tuple[str, ...]:
        return cidrs(key, self.addresses, self.addresses6)

    @cached_property
    def forward_targets(self) -> set[InterfaceKey]:
        return forward_targets(self.topology)

    @cached_property
    def nat(self) -> tuple[NftTableState | None, list[SysctlState]]:
        return desired_nat(self.topology, self.addresses, self.addresses6)


def desired_state(
    topology: Topology,
    addresses: Mapping[InterfaceKey, IPv4Interface],
    docker_chains: frozenset[Kind] = frozenset(),
    addresses6: Mapping[InterfaceKey, IPv6Interface] | None = None,
) -> State:
    """Every resource the topology asks for, with allocated addresses filled in; `docker_chains`:
    the iptables kinds whose DOCKER-USER chain the host has (resources/docker_user.py)."""
    lowering = _Lowering(topology, addresses, docker_chains, addresses6 or {})
    return state_of(resource for spec in KINDS.values() for resource in spec.lower(lowering))
