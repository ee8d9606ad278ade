"""A CNI network as an nsnet topology: the bridge the configuration describes, and the attachment
of one call as a data-source namespace (the runtime's: nsnet never creates or deletes it, nor
touches its `lo`).

Each call's topology holds only its own attachment: the engine then reads,
compares and changes that attachment and the host objects it needs (the
bridge, the network's nft table, the forwarding switch), never the other
containers, so a call costs the same on a network of ten containers or of a
thousand. Names and the MAC are derived from (network, container ID, ifname),
so a DEL needs neither the namespace nor the ADD's result.
"""

from __future__ import annotations

import hashlib
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network, ip_address, ip_interface
from typing import Any

from ..model.topology import Bridge, Interface, Namespace, PortForward, Protocol, Route, Topology
from ..resources.macs import stable_mac
from .config import NetConf, Range
from .records import Attachment

HOST_VETH_PREFIX = "nsv"  # + 12 hex digits: 15 characters, the kernel's longest link name


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def attachment_name(container_id: str, ifname: str) -> str:
    """The attachment's nsnet namespace name: readable (the container ID's start) and unique (a digest of both)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "", container_id)[:12] or "c"
    return f"{readable}-{_digest(container_id, ifname)[:10]}"


def host_veth(network: str, container_id: str, ifname: str) -> str:
    return HOST_VETH_PREFIX + _digest(network, container_id, ifname)[:12]


def container_mac(network: str, container_id: str, ifname: str) -> str:
    return stable_mac(network, container_id, ifname)


def host_mac(network: str, container_id: str, ifname: str) -> str:
    return stable_mac(network, container_id, ifname, "host")


def bridge_of(conf: NetConf) -> Bridge:
    """The network's bridge: its gateways (when `isGateway`), MTU and masquerade."""
    v4, v6 = _range(conf, 4), _range(conf, 6)
    return Bridge(
        name=conf.bridge,
        subnet=v4.subnet if v4 else None,  # type: ignore[arg-type]
        gateway=v4.gateway if v4 and conf.is_gateway else None,  # type: ignore[arg-type]
        mtu=conf.mtu,
        masquerade=conf.ip_masq,
        allow_overlap=True,  # a runtime's networks are what the cluster's operator chose
        subnet6=v6.subnet if v6 else None,  # type: ignore[arg-type]
        gateway6=v6.gateway if v6 and conf.is_gateway else None,  # type: ignore[arg-type]
    )


def _range(conf: NetConf, family: int) -> Range | None:
    return next((r for r in conf.ranges if r.subnet.version == family), None)


def routes_of(conf: NetConf) -> tuple[Route, ...]:
    """The container's routes: the default route per family via the gateway (`isDefaultGateway`),
    and the `ipam.routes` (via their `gw`, else the range's gateway)."""
    routes = []
    if conf.is_default_gateway:
        routes += [Route(IPv4Network("0.0.0.0/0") if r.subnet.version == 4 else IPv6Network("::/0"), (r.gateway,)) for r in conf.ranges if r.gateway]
    for route in conf.routes:
        gateway = route.gw or next((r.gateway for r in conf.ranges if r.subnet.version == route.dst.version), None)
        if any(existing.to == route.dst for existing in routes):
            continue  # isDefaultGateway already gave it
        routes.append(Route(route.dst, (gateway,) if gateway else ()))
    return tuple(routes)


def topology_of(conf: NetConf, attachment: Attachment | None) -> Topology:
    """The network with one attachment (or none: its host objects alone), as the engine plans it."""
    bridge = bridge_of(conf)
    source = f"CNI network {conf.name}"
    if attachment is None:
        return Topology(conf.name, bridges=(bridge,), source=source, forward_maps=True)
    by_family = {ip_interface(a).version: ip_interface(a) for a in attachment.addresses}
    v4, v6 = by_family.get(4), by_family.get(6)
    interface = Interface(
        name=attachment.ifname,
        bridge=bridge.name,
        host_name=attachment.host_veth,
        address=v4 if isinstance(v4, IPv4Interface) else None,
        mtu=conf.mtu,
        mac=attachment.mac,
        address6=v6 if isinstance(v6, IPv6Interface) else None,
        hairpin=conf.hairpin,
        host_mac=host_mac(conf.name, attachment.container_id, attachment.ifname),
    )
    namespace = Namespace(attachment.name, interfaces=(interface,), routes=routes_of(conf), path=attachment.netns)
    forwards = tuple(_forward(attachment, m) for m in attachment.port_mappings)
    return Topology(conf.name, bridges=(bridge,), namespaces=(namespace,), port_forwards=forwards, source=source, forward_maps=True)


def _forward(attachment: Attachment, mapping: dict[str, Any]) -> PortForward:
    host_ip = ip_address(mapping["hostIP"]) if mapping.get("hostIP") else None
    return PortForward(mapping["hostPort"], attachment.name, mapping["containerPort"], Protocol(mapping["protocol"]), host_ip, attachment.ifname)


def gateway_of(conf: NetConf, family: int) -> IPv4Address | IPv6Address | None:
    r = _range(conf, family)
    return r.gateway if r and conf.is_gateway else None
