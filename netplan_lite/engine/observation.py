"""What a backend observed: owned state, and who holds the other names nsnet may want."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface
from typing import Mapping

from ..model.topology import InterfaceKey
from ..resources.ids import Kind
from ..resources.nat import Claim
from ..resources.state import State


@dataclass(frozen=True)
class Observation:
    state: State
    foreign_links: Mapping[str, str] = field(default_factory=dict)  # host link name -> owner
    foreign_namespaces: Mapping[str, str] = field(default_factory=dict)  # name -> owner
    assigned: Mapping[InterfaceKey, IPv4Interface] = field(default_factory=dict)
    foreign_claims: Mapping[Claim, str] = field(default_factory=dict)  # host port -> other topology
    # what a plan must never make local: the host's own addresses on links nsnet does not own
    # (address -> its link) and the host's default gateways; None: not read
    host_addresses: Mapping[IPv4Address | IPv6Address, str] | None = None
    host_gateways: frozenset[IPv4Address] = frozenset()
    # the networks the host reaches directly (connected routes) on links no nsnet topology owns,
    # (network, link), which a bridge subnet must not overlap unless told; None: not read
    host_networks: tuple[tuple[IPv4Network, str], ...] | None = None
    docker_chains: frozenset[Kind] = frozenset()  # the iptables kinds whose DOCKER-USER chain exists
    assigned6: Mapping[InterfaceKey, IPv6Interface] = field(default_factory=dict)  # nsnet's IPv6 addresses, as `assigned`
