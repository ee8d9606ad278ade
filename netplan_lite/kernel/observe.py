"""observe: the live kernel -> State, restricted to what this topology owns.

`build_observation` is pure (records in, Observation out) so it is tested
without root; `observe` reads the records through a Netlink session.
"""

from __future__ import annotations

import contextlib
import errno
import functools
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from typing import Callable, Iterable, Iterator, Mapping

from . import hostsysctl, netns, nftables
from ..labels import ADDRESS_PROTO, label, owner_of
from ..model.topology import InterfaceKey
from .fanout import fan_out
from ..faults import changes_made
from ..engine.journal import Intents, read_intents
from ..engine.observation import Observation
from ..resources.nat import IP_FORWARD, route_localnet_key, table_name, taken_claims
from .netlink import Netlink, Snapshot
from .rtnl.link import LinkMsg as Link
from ..resources.state import (ORPHAN_NAMESPACE, BridgeState, InterfaceState, NamespaceState, NftTableState, Resource,
                               RouteState, State, SysctlState, state_of)

NOT_A_NAMESPACE = "a file in /run/netns that is not a namespace"


@dataclass(frozen=True)
class Prefetched:
    """The host and namespaces as the agent read them just before this process started
    (statecache.py); namespaces missing here are read as usual."""

    host: Snapshot | None  # None: read it
    namespaces: Mapping[str, Snapshot]
    nsids: Mapping[str, int] = field(default_factory=dict)  # the host's id of each namespace
    # asked just before they are used: ids changed since (None: the host), or None for "anything"
    changed_since: Callable[[], Iterable[int | None] | None] | None = None

    def without_changes(self) -> Prefetched | None:
        """What is still current of these snapshots; None if nothing can be trusted."""
        if self.changed_since is None:
            return self
        changed = self.changed_since()
        if changed is None:
            return None
        changed = set(changed)
        return Prefetched(None if None in changed else self.host,
                          {name: snap for name, snap in self.namespaces.items() if self.nsids.get(name) not in changed})


_prefetched: Prefetched | None = None


def use_prefetched(prefetched: Prefetched) -> None:
    """Serve the next observe from `prefetched`, unless this process changes the kernel first."""
    global _prefetched
    _prefetched = prefetched


def _take_prefetched() -> Prefetched | None:
    global _prefetched
    taken, _prefetched = _prefetched, None
    if taken is None or changes_made():
        return None
    return taken.without_changes()


def describe_owner(owner: str | None) -> str:
    return f"topology {owner!r}" if owner else "not made by nsnet"


def build_observation(
    topology: str,
    host: Snapshot,
    namespaces: Mapping[str, Snapshot | None],
    tables: Mapping[str, NftTableState] | None = None,
    sysctls: tuple[SysctlState, ...] = (),
    intents: Intents = Intents(),
    orphans: bool = True,
) -> Observation:
    """Our resources, and who holds every other name, from raw snapshots.

    `namespaces` maps each name under /run/netns to its snapshot, or None for
    a file that is not a namespace; `tables` are the nsnet nft tables on the
    host; `sysctls` the host sysctls this topology holds, as read; `intents`
    the names an interrupted run of this topology may have created unlabelled;
    `orphans` False when only some namespaces were read (their host ends would
    look orphaned).
    """
    ours = Ownership(label(topology), intents)
    by_index = {link.index: link for link in host.links}
    resources: list[Resource] = []
    foreign_ns: dict[str, str] = {}
    assigned: dict[InterfaceKey, IPv4Interface] = {}
    claimed_host_ends: set[int] = set()
    for name, snap in sorted(namespaces.items()):
        ns = ours.namespace(name, snap)
        if ns is None:
            lo = snap.link("lo") if snap else None
            foreign_ns[name] = NOT_A_NAMESPACE if snap is None else describe_owner(owner_of(lo.alias if lo else None))
            continue
        resources.append(ns)
        if snap is None:
            continue
        for iface, host_end in _interfaces(name, snap, by_index, ours):
            resources.append(iface)
            if host_end is not None:
                claimed_host_ends.add(host_end)
        resources.extend(_routes(name, snap))
        assigned.update(_assigned(name, snap))
    resources.extend(_bridges(host, ours))
    if orphans:
        resources.extend(_orphans(host, ours, claimed_host_ends))
    resources.extend(sysctls)
    tables = tables or {}
    own_table = table_name(topology)
    if own_table in tables:
        resources.append(tables[own_table])
    foreign_links = {l.name: describe_owner(owner_of(l.alias)) for l in host.links if not ours.link(l)}
    return Observation(state_of(resources), foreign_links, foreign_ns, assigned, taken_claims(tables, own_table))


@dataclass(frozen=True)
class Ownership:
    """Which objects are this topology's: labelled, or named by its journal and unlabelled."""

    label: str
    intents: Intents

    def link(self, link: Link) -> bool:
        return link.alias == self.label or (not link.alias and link.name in self.intents.links)

    def namespace(self, name: str, snap: Snapshot | None) -> NamespaceState | None:
        lo = snap.link("lo") if snap else None
        if lo is not None and lo.alias == self.label:
            return NamespaceState(name, lo.up)
        if name not in self.intents.namespaces or (lo is not None and lo.alias):
            return None
        return NamespaceState(name, lo.up if lo else False, owned=False, usable=snap is not None)


def _interfaces(ns: str, snap: Snapshot, host_links: Mapping[int, Link], ours: Ownership) -> Iterator[tuple[InterfaceState, int | None]]:
    for link in snap.links:
        if link.kind != "veth":
            continue
        host = host_links.get(link.peer) if link.peer else None
        if host is not None and (not ours.link(host) or host.peer != link.index):
            host = None  # the index belongs to an unrelated host link
        master = host_links.get(host.master) if host and host.master else None
        yield InterfaceState(
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
        ), (host.index if host else None)


def _cidrs(snap: Snapshot, index: int) -> tuple[str, ...]:
    cidrs = [a.cidr for a in snap.addresses_of(index)]
    return tuple(sorted(cidrs, key=IPv4Interface) if len(cidrs) > 1 else cidrs)


def _assigned(ns: str, snap: Snapshot) -> Iterator[tuple[InterfaceKey, IPv4Interface]]:
    names = {link.index: link.name for link in snap.links}
    for address in snap.addresses:
        if address.proto == ADDRESS_PROTO and address.index in names:
            yield (ns, names[address.index]), IPv4Interface(address.cidr)


def _routes(ns: str, snap: Snapshot) -> Iterator[RouteState]:
    seen = set()
    for route in snap.routes:
        if route.to not in seen:
            seen.add(route.to)
            yield RouteState(ns, route.to, route.via, route.proto)


def _bridges(host: Snapshot, ours: Ownership) -> Iterator[BridgeState]:
    for link in host.links:
        if ours.link(link) and link.kind == "bridge":
            yield BridgeState(link.name, _cidrs(host, link.index), link.mtu, link.up, owned=link.alias == ours.label)


def _orphans(host: Snapshot, ours: Ownership, claimed: set[int]) -> Iterator[InterfaceState]:
    """Our host veth ends whose namespace end was not found: only good for deleting."""
    for link in host.links:
        if ours.link(link) and link.kind == "veth" and link.index not in claimed:
            yield InterfaceState(ORPHAN_NAMESPACE, link.name, link.name, up=False, host_up=link.up)


def observe(topology: str, nl: Netlink, scope: frozenset[str] | None = None) -> Observation:
    """Read the host and the named namespaces (all, or those in `scope`); never creates anything.

    A namespace that is not this topology's costs one request (its links, to
    see whose its lo is); only ours have their addresses and routes read.
    """
    intents = read_intents(topology)
    ours = Ownership(label(topology), intents)
    prefetched = _take_prefetched()
    known = prefetched.namespaces if prefetched else {}
    names = [name for name in netns.list_names() if scope is None or name in scope]
    unknown = [name for name in names if name not in known]
    read = functools.partial(_read_namespace, nl, ours)
    found = {name: _known_namespace(ours, name, known[name]) for name in names if name in known}
    found.update(zip(unknown, fan_out(read, unknown)))
    namespaces = {name: snap for name, (seen, snap) in sorted(found.items()) if seen}
    if prefetched and prefetched.host:
        host = prefetched.host
    else:
        host = nl.snapshot(None) if scope is None else _host_part(nl, namespaces.values())
    tables = nftables.read_tables()
    observation = build_observation(topology, host, namespaces, tables, _held_sysctls(topology, host), intents,
                                    orphans=scope is None)
    _hold_ours(nl, namespaces.keys(), {r.name for r in observation.state.values() if isinstance(r, NamespaceState)})
    return observation


def _hold_ours(nl: Netlink, read: Iterable[str], ours: set[str]) -> None:
    """The session keeps an fd of each namespace of ours (a forked reader's are not the parent's)
    and none of the others."""
    for name in read:
        if name not in ours:
            nl.forget(name)
        elif not nl.is_open(name):
            with contextlib.suppress(FileNotFoundError):  # deleted since: the plan will say so
                nl.namespace_fd(name)


MAX_HOST_ENDS_BY_INDEX = 64  # beyond this one dump of every host link is cheaper


def _host_part(nl: Netlink, namespaces: Iterable[Snapshot | None]) -> Snapshot:
    """The host as far as `namespaces` need it: every bridge, and the host ends of their veths
    (a verification after a small change need not decode the host's thousand other veths)."""
    peers = {link.peer for snap in namespaces if snap for link in snap.links if link.peer}
    if len(peers) > MAX_HOST_ENDS_BY_INDEX:
        return nl.snapshot(None)
    links = {link.index: link for link in nl.links(None, kind="bridge")}
    for host_end in filter(None, (nl.link_by_index(None, peer) for peer in peers)):
        links[host_end.index] = host_end
    return nl.snapshot(None, tuple(links.values()))


def _known_namespace(ours: Ownership, name: str, snap: Snapshot) -> tuple[bool, Snapshot]:
    """What _read_namespace would have answered, from the agent's snapshot."""
    return True, snap if ours.namespace(name, snap) else Snapshot(snap.links, (), ())


def _read_namespace(nl: Netlink, ours: Ownership, name: str) -> tuple[bool, Snapshot | None]:
    """(found, snapshot): links of any namespace (its lo says whose it is); addresses and routes
    of ours only. Not found: removed since listdir. Snapshot None: a file that is not (yet) a
    namespace. (A plain tuple: the answer may come back pickled from a forked reader.)"""
    try:
        links = nl.links(name)
    except FileNotFoundError:
        return False, None
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        return True, None
    head = Snapshot(links, (), ())
    return True, nl.snapshot(name, links) if ours.namespace(name, head) else head


def _held_sysctls(topology: str, host: Snapshot) -> tuple[SysctlState, ...]:
    """ip_forward if this topology holds it; route_localnet of our bridges when set."""
    held = [SysctlState(IP_FORWARD, hostsysctl.read(IP_FORWARD))] if topology in hostsysctl.holders(IP_FORWARD) else []
    for link in host.links:
        if link.alias == label(topology) and link.kind == "bridge":
            key = route_localnet_key(link.name)
            value = hostsysctl.read(key)
            if value != "0":
                held.append(SysctlState(key, value))
    return tuple(held)
