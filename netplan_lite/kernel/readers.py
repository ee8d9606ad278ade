"""One reader per resource kind: how its resources are extracted from what was read.

Each reader names the netlink multicast groups that announce a change to what
it extracts; the agent's cache subscribes to exactly their union, so a kind
whose reader forgets its group is caught by the registry's completeness test,
not served stale. A kind read outside netlink (nft, /proc/sys) is never
cached: its reader says so with NOT_ANNOUNCED and every command reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Callable, Iterable, Iterator, Mapping

from ..labels import ROUTE_PROTO
from ..resources.bridge import BridgeState
from ..resources.docker_user import DOCKER_USER, Ip6tablesRulesState, IptablesRulesState
from ..resources.ids import DEFAULT_ROUTES, ORPHAN_NAMESPACE, Kind
from ..resources.interface import InterfaceState
from ..resources.namespace import NamespaceState
from ..resources.namespace_sysctl import NamespaceSysctlState
from ..resources.nft_table import NftTableState
from ..resources.registry import KINDS, Resource
from ..resources.route import RouteState
from ..resources.sysctl import SysctlState
from .netlink import Snapshot
from .ownership import Ownership
from .rtnl.address import RTMGRP_IPV4_IFADDR
from .rtnl.link import RTMGRP_LINK, LinkMsg
from .rtnl.route import RTMGRP_IPV4_ROUTE

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

    def is_source(self, name: str) -> bool:
        return self.namespaces[name][0].path is not None

    def snapshots(self) -> Iterator[tuple[str, Snapshot]]:
        return ((name, snap) for name, (_, snap) in self.namespaces.items() if snap is not None)


@dataclass(frozen=True)
class Reader:
    extract: Callable[[Read], Iterable[Resource]]
    groups: int  # RTMGRP_* bits announcing changes to what it extracts, or NOT_ANNOUNCED


def _namespaces(read: Read) -> Iterator[NamespaceState]:
    return (ns for ns, _ in read.namespaces.values())


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
        for iface, host_end in _veths(name, snap, host_links, read.ours, read.is_source(name)):
            claimed |= {host_end} if host_end is not None else set()
            yield iface
    if read.orphans:
        yield from _orphans(read.host, read.ours, claimed)


def _veths(ns: str, snap: Snapshot, host_links: Mapping[int, LinkMsg], ours: Ownership, source: bool) -> Iterator[tuple[InterfaceState, int | None]]:
    """Every veth of a namespace of ours; in a data source, only those nsnet labelled."""
    for link in snap.links:
        if link.kind != "veth" or (source and link.alias != ours.label):
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
            ),
            (host.index if host else None),
        )


def _orphans(host: Snapshot, ours: Ownership, claimed: set[int]) -> Iterator[InterfaceState]:
    """Our host veth ends whose namespace end was not found: only good for deleting."""
    for link in host.links:
        if ours.link(link) and link.kind == "veth" and link.index not in claimed:
            yield InterfaceState(ORPHAN_NAMESPACE, link.name, link.name, up=False, host_up=link.up)


def _cidrs(snap: Snapshot, index: int) -> tuple[str, ...]:
    cidrs = [a.cidr for a in snap.addresses_of(index) if a.family == 4]
    return tuple(sorted(cidrs, key=IPv4Interface) if len(cidrs) > 1 else cidrs)


def _routes(read: Read) -> Iterator[RouteState]:
    """The gateway routes of our namespaces; in a data source, only those nsnet made."""
    for name, snap in read.snapshots():
        seen = set()
        for route in snap.routes:
            if read.is_source(name) and route.proto != ROUTE_PROTO:
                continue
            if route.type != "unicast" or len(route.via) != 1 or route.family != 4:  # what RouteState holds so far
                continue
            if route.to not in seen:
                seen.add(route.to)
                yield RouteState(name, DEFAULT_ROUTES.get(route.to, route.to), route.via[0], route.proto)


def _docker_accepts(state: type[IptablesRulesState]) -> Callable[[Read], Iterable[IptablesRulesState]]:
    def extract(read: Read) -> Iterable[IptablesRulesState]:
        accepts = read.docker_chains.get(state.kind)
        return (state(DOCKER_USER, accepts),) if accepts else ()

    return extract


def _own_table(read: Read) -> Iterable[NftTableState]:
    table = read.tables.get(read.own_table)
    return () if table is None else (table,)


READERS: Mapping[Kind, Reader] = {
    kind: reader
    for kind, reader in sorted(
        {
            Kind.BRIDGE: Reader(_bridges, RTMGRP_LINK | RTMGRP_IPV4_IFADDR),
            Kind.NAMESPACE: Reader(_namespaces, RTMGRP_LINK),  # its lo carries the label
            Kind.INTERFACE: Reader(_interfaces, RTMGRP_LINK | RTMGRP_IPV4_IFADDR),
            Kind.ROUTE: Reader(_routes, RTMGRP_IPV4_ROUTE),
            Kind.NAMESPACE_SYSCTL: Reader(
                lambda read: (s for s in read.namespace_sysctls if s.namespace in read.namespaces), NOT_ANNOUNCED
            ),  # /proc/sys
            Kind.NFT_TABLE: Reader(_own_table, NOT_ANNOUNCED),  # nft, not rtnetlink
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
