"""One reader per resource kind: how its resources are extracted from what was read.

Each reader names the netlink multicast groups that announce a change to what
it extracts; the agent's cache subscribes to exactly their union, so a kind
whose reader forgets its group is caught by the registry's completeness test,
not served stale. A kind read outside netlink (nft, /proc/sys) is never
cached: its reader says so with NOT_ANNOUNCED and every command reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from ipaddress import ip_interface
from typing import Callable, Iterable, Iterator, Mapping

from ..labels import ADDRESS_PROTO, ROUTE_PROTO
from ..model.netem import summary
from ..resources.bridge import BridgeState
from ..resources.docker_user import DOCKER_USER, Ip6tablesRulesState, IptablesRulesState
from ..resources.ids import ORPHAN_NAMESPACE, Kind
from ..resources.interface import InterfaceState
from ..resources.link import NO_NETEM, LinkState
from ..resources.namespace import NamespaceState
from ..resources.namespace_sysctl import NamespaceSysctlState
from ..resources.nat import observed_mappings
from ..resources.nft_table import NftTableState
from ..resources.port_mapping import PortMappingState
from ..resources.registry import KINDS, Resource
from ..resources.route import RouteState, sorted_gateways
from ..resources.sysctl import SysctlState
from .netlink import Snapshot
from .ownership import Ownership
from .rtnl.address import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR
from .rtnl.link import RTMGRP_LINK, LinkMsg
from .rtnl.qdisc import RTMGRP_TC
from .rtnl.route import RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RouteMsg

ADDRESSES = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
End = tuple[str, int]  # (namespace, ifindex) of a link end

NOT_ANNOUNCED = 0  # no netlink group announces its changes: read by every command, never cached


@dataclass(frozen=True)
class Read:
    """What observe read of the kernel, restricted to this topology's namespaces."""

    ours: Ownership
    host: Snapshot
    namespaces: Mapping[str, tuple[NamespaceState, Snapshot | None]]  # ours, by name (None: unusable)
    tables: Mapping[str, NftTableState]  # every nsnet table on the host
    own_table: str
    sysctls: tuple[SysctlState, ...]  # the host sysctls this topology holds, as read
    namespace_sysctls: tuple[NamespaceSysctlState, ...]  # the keys nsnet set in our namespaces, as read
    orphans: bool  # every namespace was read: an unclaimed host veth end of ours is an orphan
    docker_chains: Mapping[Kind, tuple[str, ...]]  # families with Docker's chain -> our accepts there
    peers: Mapping[End, End] = field(default_factory=dict)  # link ends, each to its peer (observe.link_peers)

    def is_source(self, name: str) -> bool:
        return self.namespaces[name][0].path is not None

    def snapshots(self) -> Iterator[tuple[str, Snapshot]]:
        return ((name, snap) for name, (_, snap) in self.namespaces.items() if snap is not None)


@dataclass(frozen=True)
class Reader:
    extract: Callable[[Read], Iterable[Resource]]
    groups: int  # RTMGRP_* bits announcing changes to what it extracts, or NOT_ANNOUNCED


def _namespaces(read: Read) -> Iterator[NamespaceState]:
    """Each with nsnet's addresses on its lo (the kernel's own, 127.0.0.1 and ::1, are not nsnet's)."""
    for ns, snap in read.namespaces.values():
        lo = snap.link("lo") if snap else None
        mine = [a.cidr for a in snap.addresses_of(lo.index) if a.proto == ADDRESS_PROTO and not a.tentative] if snap and lo else []
        yield dataclasses.replace(ns, loopback=sorted_cidrs(mine)) if mine else ns


def _bridges(read: Read) -> Iterator[BridgeState]:
    host, ours = read.host, read.ours
    for link in host.links:
        if ours.link(link) and link.kind == "bridge":
            yield BridgeState(link.name, _cidrs(host, link.index), link.mtu, link.up, owned=link.alias == ours.label)


def _interfaces(read: Read) -> Iterator[InterfaceState]:
    """The veths of our namespaces, then (after a full read) our host ends whose namespace end is gone."""
    host_links = {link.index: link for link in read.host.links}
    claimed: set[int] = set()
    for name, snap in read.snapshots():
        for iface, host_end in _veths(name, snap, host_links, read.ours, read.is_source(name), read.peers):
            claimed |= {host_end} if host_end is not None else set()
            yield iface
    if read.orphans:
        yield from _orphans(read.host, read.ours, claimed)


def _veths(
    ns: str, snap: Snapshot, host_links: Mapping[int, LinkMsg], ours: Ownership, source: bool, peers: Mapping[End, End]
) -> Iterator[tuple[InterfaceState, int | None]]:
    """Every veth of a namespace of ours that is not a link end; in a data source, only those nsnet labelled."""
    for link in snap.links:
        if link.kind != "veth" or (source and link.alias != ours.label) or (ns, link.index) in peers:
            continue
        host = host_links.get(link.peer) if link.peer else None
        if host is not None and (not ours.link(host) or host.peer != link.index):
            host = None  # the index belongs to an unrelated host link
        master = host_links.get(host.master) if host and host.master else None
        yield (
            InterfaceState(
                namespace=ns,
                name=link.name,
                host_name=host.name if host else None,
                bridge=master.name if master else None,
                addresses=_cidrs(snap, link.index),
                mtu=link.mtu,
                mac=link.mac,
                up=link.up,
                host_up=host.up if host else False,
                hairpin=host.hairpin if host else False,
                owned=host.alias == ours.label if host else True,
                host_mac=host.mac if host else None,
            ),
            (host.index if host else None),
        )


def _orphans(host: Snapshot, ours: Ownership, claimed: set[int]) -> Iterator[InterfaceState]:
    """Our host veth ends whose namespace end was not found: only good for deleting."""
    for link in host.links:
        if ours.link(link) and link.kind == "veth" and link.index not in claimed:
            yield InterfaceState(ORPHAN_NAMESPACE, link.name, link.name, up=False, host_up=link.up)


def sorted_cidrs(cidrs: Iterable[str]) -> tuple[str, ...]:
    """IPv4 first, then by address: one order on both sides of a diff."""
    return tuple(sorted(cidrs, key=lambda c: (ip_interface(c).version, ip_interface(c))))


def _cidrs(snap: Snapshot, index: int, link_local: bool = False) -> tuple[str, ...]:
    """A link's addresses, as nsnet compares them: none tentative (an IPv6 address that is still in,
    or failed, duplicate address detection does not work yet), and link-local ones only where nsnet
    sets them (link ends)."""
    return sorted_cidrs(a.cidr for a in snap.addresses_of(index) if not a.tentative and (link_local or not a.cidr.startswith("fe80:")))


def _links(read: Read) -> Iterator[LinkState]:
    """Each link once, from the end that sorts first (the id's)."""
    names = {name: {link.index: link for link in snap.links} for name, snap in read.snapshots()}
    snaps = dict(read.snapshots())
    for (ns, index), (peer_ns, peer_index) in read.peers.items():
        end, peer = names[ns][index], names[peer_ns][peer_index]
        if (ns, end.name) > (peer_ns, peer.name):
            continue
        yield LinkState(
            namespace=ns,
            name=end.name,
            peer_namespace=peer_ns,
            peer_name=peer.name,
            addresses=_cidrs(snaps[ns], index, link_local=True),
            peer_addresses=_cidrs(snaps[peer_ns], peer_index, link_local=True),
            netem=_netem(snaps[ns], index),
            peer_netem=_netem(snaps[peer_ns], peer_index),
            mtu=end.mtu,
            mac=end.mac,
            peer_mac=peer.mac,
            up=end.up,
            peer_up=peer.up,
            owned=end.alias == read.ours.label,
        )


def _netem(snap: Snapshot, index: int) -> str:
    """An end's root qdisc: a netem as a file writes it; any other kind but the veth's default
    (noqueue) by its kind, so that it differs from every netem (a `tc` edit by hand is drift)."""
    root = next((q for q in snap.qdiscs if q.index == index), None)
    if root is None or root.kind == "noqueue":
        return NO_NETEM
    return summary(root.netem) if root.netem is not None else f"qdisc {root.kind}"


def _routes(read: Read) -> Iterator[RouteState]:
    """The routes of our namespaces that are not the kernel's own; in a data source, only those nsnet made."""
    for name, snap in read.snapshots():
        devices = {link.index: link.name for link in snap.links}
        seen = set()
        for route in snap.routes:
            if read.is_source(name) and route.proto != ROUTE_PROTO:
                continue
            if route.to not in seen:
                seen.add(route.to)
                yield route_state(name, route, devices)


def route_state(namespace: str, route: RouteMsg, devices: Mapping[int, str]) -> RouteState:
    to = "default" if route.to == "0.0.0.0/0" else route.to
    dev = devices.get(route.dev) if route.dev is not None else None
    return RouteState(namespace, to, sorted_gateways(list(route.via)), route.type, dev, route.metric or 0, route.proto)


def _docker_accepts(state: type[IptablesRulesState]) -> Callable[[Read], Iterable[IptablesRulesState]]:
    def extract(read: Read) -> Iterable[IptablesRulesState]:
        accepts = read.docker_chains.get(state.kind)
        return (state(DOCKER_USER, accepts),) if accepts else ()

    return extract


def _own_table(read: Read) -> Iterable[NftTableState]:
    table = read.tables.get(read.own_table)
    return () if table is None else (table,)


def _port_mappings(read: Read) -> Iterable[PortMappingState]:
    """The mappings in the own table's maps, each its attachment's (the elements' comment)."""
    table = read.tables.get(read.own_table)
    for owner, name, nft_map, key, target in observed_mappings(table) if table else ():
        if owner:
            yield PortMappingState(owner, name, nft_map.name, key, target)


READERS: Mapping[Kind, Reader] = {
    kind: reader
    for kind, reader in sorted(
        {
            Kind.BRIDGE: Reader(_bridges, RTMGRP_LINK | ADDRESSES),
            Kind.NAMESPACE: Reader(_namespaces, RTMGRP_LINK | ADDRESSES),  # its lo carries the label and the loopbacks
            Kind.INTERFACE: Reader(_interfaces, RTMGRP_LINK | ADDRESSES),
            Kind.LINK: Reader(_links, RTMGRP_LINK | ADDRESSES | RTMGRP_TC),  # an end's netem is a root qdisc
            Kind.ROUTE: Reader(_routes, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE),
            Kind.NAMESPACE_SYSCTL: Reader(
                lambda read: (s for s in read.namespace_sysctls if s.namespace in read.namespaces), NOT_ANNOUNCED
            ),  # /proc/sys
            Kind.NFT_TABLE: Reader(_own_table, NOT_ANNOUNCED),  # nft, not rtnetlink
            Kind.PORT_MAPPING: Reader(_port_mappings, NOT_ANNOUNCED),
            Kind.SYSCTL: Reader(lambda read: read.sysctls, NOT_ANNOUNCED),  # /proc/sys
            Kind.IPTABLES_RULE: Reader(_docker_accepts(IptablesRulesState), NOT_ANNOUNCED),  # iptables
            Kind.IP6TABLES_RULE: Reader(_docker_accepts(Ip6tablesRulesState), NOT_ANNOUNCED),
        }.items(),
        key=lambda item: list(KINDS).index(item[0]),
    )
}


def announcing_groups() -> int:
    """The groups a cache of snapshots must listen to: every reader's."""
    groups = 0
    for reader in READERS.values():
        groups |= reader.groups
    return groups
