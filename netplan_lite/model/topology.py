"""Frozen model objects of a loaded topology.

The loader is the only producer of these; raw YAML dicts never leave it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network


InterfaceKey = tuple[str, str]  # (namespace, interface)


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

    @property
    def gateway_interface(self) -> IPv4Interface | None:
        """The gateway with the subnet's prefix, as set on the bridge."""
        if self.subnet is None or self.gateway is None:
            return None
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")


@dataclass(frozen=True)
class Interface:
    """One veth pair: `name` inside the namespace, `host_name` enslaved to `bridge`."""

    name: str
    bridge: str
    host_name: str
    address: IPv4Interface | None = None  # None: allocated from the bridge subnet
    mtu: int | None = None
    mac: str | None = None


@dataclass(frozen=True)
class Route:
    to: IPv4Network
    via: IPv4Address

    @property
    def destination(self) -> str:
        return "default" if self.to.prefixlen == 0 else str(self.to)


@dataclass(frozen=True)
class Namespace:
    name: str
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] | None = None  # None: default route via the first gateway
    sysctls: tuple[tuple[str, str], ...] = ()  # (dotted key, value), `forwarding: true` expanded, by key
    path: str | None = None  # a data source: an existing namespace, used but never created or deleted

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
    host_address: IPv4Address | None = None  # None: every host address
    interface: str | None = None  # None: the namespace's first bridged interface


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

    def bridge(self, name: str) -> Bridge | None:
        return next((b for b in self.bridges if b.name == name), None)

    def namespace(self, name: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.name == name), None)
