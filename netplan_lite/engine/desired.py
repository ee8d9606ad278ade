"""Lower a Topology to the desired State, allocating automatic addresses.

Automatic addresses are sticky: an address nsnet assigned earlier (it carries
nsnet's address protocol marker in the kernel) is kept as long as it is still
valid, so adding or removing other namespaces never moves it. New interfaces
take the lowest free host address of their bridge subnet, in name order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface
from typing import Iterator, Mapping

from ..model.topology import Bridge, InterfaceKey, Topology
from ..resources.nat import desired_nat, forward_targets
from ..resources.ids import Kind
from ..resources.nft_table import NftTableState
from ..resources.registry import KINDS
from ..resources.state import State, state_of
from ..resources.sysctl import SysctlState


def allocate(
    topology: Topology, kept: Mapping[InterfaceKey, IPv4Interface], reserved: frozenset[IPv4Address] = frozenset()
) -> dict[InterfaceKey, IPv4Interface]:
    """The address of every addressed interface; `kept` are nsnet's earlier assignments,
    `reserved` addresses held by interfaces out of the plan's scope (never given out)."""
    result: dict[InterfaceKey, IPv4Interface] = {}
    for bridge in topology.bridges:
        result.update(_allocate_bridge(topology, bridge, kept, reserved))
    for ns in topology.namespaces:
        for iface in ns.interfaces:
            if iface.address is not None:
                result[(ns.name, iface.name)] = iface.address
    return result


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


def allocated_interfaces(topology: Topology) -> list[InterfaceKey]:
    """The interfaces whose address nsnet allocates (no `address:` in the file)."""
    return [(ns.name, i.name) for ns in topology.namespaces for i in ns.interfaces if i.address is None]


def _allocate_bridge(
    topology: Topology, bridge: Bridge, kept: Mapping[InterfaceKey, IPv4Interface], reserved: frozenset[IPv4Address]
) -> dict[InterfaceKey, IPv4Interface]:
    subnet = bridge.subnet
    if subnet is None:
        return {}
    ports = [(ns.name, i) for ns in topology.namespaces for i in ns.interfaces if i.bridge == bridge.name]
    used = {i.address.ip for _, i in ports if i.address is not None} | {bridge.gateway} | reserved
    auto = sorted((ns, i.name) for ns, i in ports if i.address is None)
    result: dict[InterfaceKey, IPv4Interface] = {}
    for key in auto:
        previous = kept.get(key)
        if (
            previous is not None
            and previous.network == subnet
            and previous.ip not in used
            and previous.ip != subnet.broadcast_address
            and previous.ip != subnet.network_address
        ):
            result[key] = previous
            used.add(previous.ip)
    free = _free_hosts(subnet.hosts(), used)
    for key in auto:
        if key not in result:
            address = next(free, None)
            if address is None:
                raise ValueError(f"bridge {bridge.name}: subnet {subnet} has no free address left for {key[0]}/{key[1]}")
            result[key] = IPv4Interface(f"{address}/{subnet.prefixlen}")
    return result


def _free_hosts(hosts: Iterator[IPv4Address], used: set[IPv4Address | None]) -> Iterator[IPv4Address]:
    return (h for h in hosts if h not in used)


@dataclass(frozen=True)
class _Lowering:
    """The spec's Lowering: the model, allocated addresses, and what is derived from them once."""

    topology: Topology
    addresses: Mapping[InterfaceKey, IPv4Interface]
    docker_chains: frozenset[Kind]

    @cached_property
    def forward_targets(self) -> set[InterfaceKey]:
        return forward_targets(self.topology)

    @cached_property
    def nat(self) -> tuple[NftTableState | None, list[SysctlState]]:
        return desired_nat(self.topology, self.addresses)


def desired_state(topology: Topology, addresses: Mapping[InterfaceKey, IPv4Interface], docker_chains: frozenset[Kind] = frozenset()) -> State:
    """Every resource the topology asks for, with allocated addresses filled in; `docker_chains`:
    the iptables kinds whose DOCKER-USER chain the host has (resources/docker_user.py)."""
    lowering = _Lowering(topology, addresses, docker_chains)
    return state_of(resource for spec in KINDS.values() for resource in spec.lower(lowering))
