"""Lower a Topology to the desired State, with the addresses allocated for it (addressing.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Interface, IPv6Interface
from typing import Mapping

from ..model.topology import InterfaceKey, Topology
from ..resources.nat import desired_nat, forward_targets
from ..resources.ids import Kind
from ..resources.nft_table import NftTableState
from ..resources.registry import KINDS
from ..resources.state import State, state_of
from ..resources.sysctl import SysctlState
from .addressing import allocate, allocated_interfaces, cidrs

__all__ = ["Assignment", "allocate", "allocated_interfaces", "assign", "desired_state"]


@dataclass(frozen=True)
class Assignment:
    """The addresses of a lab that is applied: every addressed interface's, as a plan of the whole
    topology allocates them, and which of the allocated ones the kernel has now (nsnet keeps those)."""

    addresses: Mapping[InterfaceKey, IPv4Interface]
    live: frozenset[InterfaceKey]


def assign(topology: Topology, assigned: Mapping[InterfaceKey, IPv4Interface]) -> Assignment:
    """What a plan of the whole topology allocates, `assigned` being nsnet's earlier assignments as
    the kernel has them (Observation.assigned); an allocated address is live if it is the one kept."""
    addresses = allocate(topology, assigned)
    return Assignment(addresses, frozenset(k for k in allocated_interfaces(topology) if k in addresses and assigned.get(k) == addresses[k]))


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
