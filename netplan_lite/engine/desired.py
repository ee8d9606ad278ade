"""Lower a Topology to the desired State, allocating automatic addresses.

Automatic addresses are sticky: an address nsnet assigned earlier (it carries
nsnet's address protocol marker in the kernel) is kept as long as it is still
valid, so adding or removing other namespaces never moves it. New interfaces
take the lowest free host address of their bridge subnet, in name order.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from typing import Iterator, Mapping

from ..model.topology import Bridge, InterfaceKey, Namespace, Topology
from ..resources.nat import desired_nat, forward_targets
from ..resources.bridge import BridgeState
from ..resources.interface import InterfaceState
from ..resources.namespace import NamespaceState
from ..resources.route import RouteState
from ..resources.state import Resource, State, state_of


def allocate(topology: Topology, kept: Mapping[InterfaceKey, IPv4Interface]) -> dict[InterfaceKey, IPv4Interface]:
    """The address of every addressed interface; `kept` are nsnet's earlier assignments."""
    result: dict[InterfaceKey, IPv4Interface] = {}
    for bridge in topology.bridges:
        result.update(_allocate_bridge(topology, bridge, kept))
    for ns in topology.namespaces:
        for iface in ns.interfaces:
            if iface.address is not None:
                result[(ns.name, iface.name)] = iface.address
    return result


def _allocate_bridge(topology: Topology, bridge: Bridge, kept: Mapping[InterfaceKey, IPv4Interface]) -> dict[InterfaceKey, IPv4Interface]:
    subnet = bridge.subnet
    if subnet is None:
        return {}
    ports = [(ns.name, i) for ns in topology.namespaces for i in ns.interfaces if i.bridge == bridge.name]
    used = {i.address.ip for _, i in ports if i.address is not None} | {bridge.gateway}
    auto = sorted((ns, i.name) for ns, i in ports if i.address is None)
    result: dict[InterfaceKey, IPv4Interface] = {}
    for key in auto:
        previous = kept.get(key)
        if previous is not None and previous.network == subnet and previous.ip not in used and previous.ip != subnet.broadcast_address and previous.ip != subnet.network_address:
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


def desired_state(topology: Topology, addresses: Mapping[InterfaceKey, IPv4Interface]) -> State:
    """Every resource the topology asks for, with allocated addresses filled in."""
    resources: list[Resource] = []
    for bridge in topology.bridges:
        gateway = bridge.gateway_interface
        resources.append(BridgeState(bridge.name, (str(gateway),) if gateway else (), bridge.mtu))
    for ns in topology.namespaces:
        resources.append(NamespaceState(ns.name))
        resources.extend(_interfaces(ns, addresses, forward_targets(topology)))
        resources.extend(_routes(topology, ns))
    table, sysctls = desired_nat(topology, addresses)
    resources.extend(sysctls)
    if table is not None:
        resources.append(table)
    return state_of(resources)


def _interfaces(ns: Namespace, addresses: Mapping[InterfaceKey, IPv4Interface], targets: set[InterfaceKey]) -> Iterator[InterfaceState]:
    for iface in ns.interfaces:
        address = addresses.get((ns.name, iface.name))
        yield InterfaceState(
            namespace=ns.name,
            name=iface.name,
            host_name=iface.host_name,
            bridge=iface.bridge,
            addresses=(str(address),) if address else (),
            mtu=iface.mtu,
            mac=iface.mac,
            hairpin=(ns.name, iface.name) in targets,
        )


def _routes(topology: Topology, ns: Namespace) -> Iterator[RouteState]:
    if ns.routes is not None:
        for route in ns.routes:
            yield RouteState(ns.name, route.destination, str(route.via))
        return
    for iface in ns.interfaces:  # default: via the first bridged interface's gateway
        bridge = topology.bridge(iface.bridge)
        if bridge is not None and bridge.gateway is not None:
            yield RouteState(ns.name, "default", str(bridge.gateway))
        return
