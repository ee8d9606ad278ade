"""Frozen model objects of a loaded topology.

The loader is the only producer of these; raw YAML dicts never leave it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from .netem import Netem


InterfaceKey = tuple[str, str]  # (namespace, interface); a namespace's loopback is (namespace, "lo")
LOOPBACK = "lo"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
IPInterface = IPv4Interface | IPv6Interface


class Protocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True)
class Bridge:
    name: str
    subnet: IPv4Network | None = None
    gateway: IPv4Address | None = None
    mtu: int | None = None
    masquerade: bool = False
    allow_overlap: bool = False  # the subnet may overlap a network the host reaches on a link nsnet does not own
    subnet6: IPv6Network | None = None
    gateway6: IPv6Address | None = None  # None with subnet6 set: `gateway: none`, no address on the bridge

    @property
    def gateway_interface(self) -> IPv4Interface | None:
        """The gateway with the subnet's prefix, as set on the bridge."""
        if self.subnet is None or self.gateway is None:
            return None
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    @property
    def gateway6_interface(self) -> IPv6Interface | None:
        if self.subnet6 is None or self.gateway6 is None:
            return None
        return IPv6Interface(f"{self.gateway6}/{self.subnet6.prefixlen}")

    @property
    def subnets(self) -> tuple[IPNetwork, ...]:
        """Its networks, IPv4 first."""
        return tuple(n for n in (self.subnet, self.subnet6) if n is not None)


@dataclass(frozen=True)
class Interface:
    """One veth pair: `name` inside the namespace, `host_name` enslaved to `bridge`."""

    name: str
    bridge: str
    host_name: str
    address: IPv4Interface | None = None  # None: allocated from the bridge subnet
    mtu: int | None = None
    mac: str | None = None
    address6: IPv6Interface | None = None  # None: allocated from the bridge's IPv6 subnet, if it has one
    hairpin: bool = False  # the bridge port sends frames back out of itself (CNI `hairpinMode`; port-forward targets always)
    host_mac: str | None = None  # the host end's MAC (CNI attachments: derived); None: the kernel's


class RouteType(enum.Enum):
    UNICAST = "unicast"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"


@dataclass(frozen=True, order=True)
class Endpoint:
    """`namespace:interface`: one end of a link (or an interface), as a file names it."""

    namespace: str
    interface: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.interface}"

    @property
    def key(self) -> InterfaceKey:
        return (self.namespace, self.interface)


Gateway = IPv4Address | IPv6Address | Endpoint  # an endpoint: its address in the route's family


@dataclass(frozen=True)
class Route:
    to: IPNetwork
    via: tuple[Gateway, ...] = ()  # more than one: ECMP
    type: RouteType = RouteType.UNICAST
    dev: str | None = None
    metric: int | None = None

    @cached_property  # a lab may have a million routes: made into text once
    def destination(self) -> str:
        """The route's destination as plans show it: "default" for IPv4's (as before dual-stack)."""
        return "default" if self.to.version == 4 and self.to.prefixlen == 0 else str(self.to)

    @cached_property
    def family(self) -> int:
        return self.to.version


@dataclass(frozen=True)
class Namespace:
    name: str
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] | None = None  # None: default route via the first gateway
    sysctls: tuple[tuple[str, str], ...] = ()  # (dotted key, value), `forwarding: true` expanded, by key
    path: str | None = None  # a data source: an existing namespace, used but never created or deleted
    loopback: tuple[IPInterface, ...] = ()  # pinned addresses on lo, at most one per family
    loopback_auto: bool = False  # `loopback: auto`: one address per family of the loopback pool

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)


FORWARDING_KEYS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")  # what `forwarding: true` sets
FORWARDING_ON = "1"


def sysctl_text(value: int | str) -> str:
    """A sysctl value as compared: its words joined by one space (the kernel separates some with tabs)."""
    return " ".join(str(value).split())


@dataclass(frozen=True)
class PortForward:
    host_port: int
    namespace: str
    port: int
    protocol: Protocol = Protocol.TCP
    host_address: IPv4Address | IPv6Address | None = None  # None: every host address, both families
    interface: str | None = None  # None: the namespace's first bridged interface


@dataclass(frozen=True)
class Pool:
    """Where automatic link or loopback addresses come from: each user takes one block of
    `prefix` (IPv4) and `prefix6` (IPv6) bits."""

    ipv4: IPv4Network | None = None
    prefix: int = 32
    ipv6: IPv6Network | None = None
    prefix6: int = 128

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        return tuple(n for n in (self.ipv4, self.ipv6) if n is not None)


P2P_PREFIXES = (31, 127)  # a point-to-point pool's default blocks: two addresses each
LOOPBACK_PREFIXES = (32, 128)


@dataclass(frozen=True)
class Addressing:
    p2p: Pool | None = None
    loopback: Pool | None = None


@dataclass(frozen=True)
class LinkEnd:
    namespace: str
    interface: str
    addresses: tuple[IPInterface, ...] = ()  # pinned, at most one per family; () : from the p2p pool
    netem: Netem | None = None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.namespace, self.interface)


@dataclass(frozen=True)
class Link:
    """A point-to-point veth pair between two namespaces, each end made inside its namespace."""

    ends: tuple[LinkEnd, LinkEnd]  # as the file lists them: the first takes the lower pool address
    mtu: int | None = None
    up: bool = True


class Expect(enum.Enum):
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Check:
    """One reachability check of `nsnet test`: from a namespace to a namespace (each of its
    addresses) or to one address, by ping or by connecting to a port."""

    source: str  # `from:`, a namespace
    to: str  # a namespace, or an address
    ping: bool = False
    port: int | None = None
    protocol: Protocol = Protocol.TCP
    expect: Expect = Expect.REACHABLE
    family: int | None = None  # 4 or 6: only that family's addresses; None: both
    line: int | None = field(default=None, compare=False)  # where the file has it (test reports name it)


@dataclass(frozen=True)
class Firewall:
    """What nsnet adds to the host's firewall for the topology (`firewall:`)."""

    docker_user: bool = True  # accept the bridges' traffic in Docker's DOCKER-USER chain


@dataclass(frozen=True)
class Topology:
    name: str
    bridges: tuple[Bridge, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    port_forwards: tuple[PortForward, ...] = ()
    firewall: Firewall = Firewall()
    source: str = field(default="<memory>", compare=False)
    addressing: Addressing = Addressing()
    links: tuple[Link, ...] = ()
    checks: tuple[Check, ...] = ()
    forward_maps: bool = False  # a CNI network: its forwards are elements of the table's maps, its rules fixed

    def bridge(self, name: str) -> Bridge | None:
        return next((b for b in self.bridges if b.name == name), None)

    def namespace(self, name: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def link_ends(self) -> dict[InterfaceKey, tuple[Link, LinkEnd]]:
        """Every link end by (namespace, interface), with its link."""
        return {end.endpoint.key: (link, end) for link in self.links for end in link.ends}
