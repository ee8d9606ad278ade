"""observe: the live kernel -> State, restricted to what this topology owns.

`build_observation` is pure (records in, Observation out) so it is tested
without root; `observe` reads the records through a Netlink session.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, ip_interface
from typing import Callable, Iterable, Iterator, Mapping

from . import hostsysctl, iptables, netns, nftables, nssysctl
from ..labels import ADDRESS_PROTO, label, owner_of
from ..model.topology import InterfaceKey, IPInterface
from .fanout import fan_out
from ..faults import changes_made
from ..engine.journal import Intents, read_intents
from ..engine.observation import Observation
from ..engine.scope import EVERYTHING, Scope
from ..resources.nat import HELD_SYSCTLS, route_localnet_key, table_name, taken_claims
from .netlink import Netlink, Snapshot
from .rtnl.link import LinkMsg
from ..resources.ids import Kind
from ..resources.namespace import NamespaceState
from ..resources.namespace_sysctl import NamespaceSysctlState
from ..resources.nft_table import NftTableState
from ..resources.state import state_of
from ..resources.sysctl import SysctlState
from .ownership import Ownership, describe_owner
from .readers import READERS, End, Read

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
        return Prefetched(
            None if None in changed else self.host, {name: snap for name, snap in self.namespaces.items() if self.nsids.get(name) not in changed}
        )


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


def build_observation(
    topology: str,
    host: Snapshot,
    namespaces: Mapping[str, Snapshot | None],
    tables: Mapping[str, NftTableState] | None = None,
    sysctls: tuple[SysctlState, ...] = (),
    intents: Intents = Intents(),
    orphans: bool = True,
    namespace_sysctls: tuple[NamespaceSysctlState, ...] = (),
    sources: Mapping[str, str] | None = None,
    whole_host: bool = True,
    docker_chains: Mapping[Kind, tuple[str, ...]] | None = None,
    nsid: Callable[[str, str], int | None] | None = None,
) -> Observation:
    """Our resources, and who holds every other name, from raw snapshots.

    `namespaces` maps each name under /run/netns to its snapshot, or None for
    a file that is not a namespace; `tables` are the nsnet nft tables on the
    host; `sysctls` the host sysctls this topology holds, as read; `intents`
    the names an interrupted run of this topology may have created unlabelled;
    `orphans` False when only some namespaces were read (their host ends would
    look orphaned); `namespace_sysctls` the keys nsnet set in our namespaces, as read;
    `sources` the data-source namespaces among `namespaces` (name -> path); `whole_host` False
    when `host` holds only some links (then the host's own addresses and networks are unknown);
    `docker_chains` the families whose iptables has Docker's DOCKER-USER chain, each with
    nsnet's accept rules in it (kernel/iptables.py); `nsid(a, b)` the id namespace a gives
    namespace b (Netlink.nsid), which tells a link end's peer (link_peers).
    """
    sources = sources or {}
    ours = Ownership(label(topology), intents, frozenset(sources))
    owned: dict[str, tuple[NamespaceState, Snapshot | None]] = {}
    foreign_ns: dict[str, str] = {}
    for name, snap in sorted(namespaces.items()):
        ns = ours.namespace(name, snap, sources.get(name))
        if ns is not None:
            owned[name] = ns, snap
        else:
            lo = snap.link("lo") if snap else None
            foreign_ns[name] = NOT_A_NAMESPACE if snap is None else describe_owner(owner_of(lo.alias if lo else None))
    tables = tables or {}
    chains = docker_chains or {}
    snapshots = {name: snap for name, (_, snap) in owned.items() if snap}
    peers = link_peers(snapshots, nsid) if nsid else {}
    read = Read(ours, host, owned, tables, table_name(topology), sysctls, namespace_sysctls, orphans, chains, peers)
    resources = [resource for reader in READERS.values() for resource in reader.extract(read)]
    assigned = [(key, address) for name, snap in snapshots.items() for key, address in _assigned(name, snap)]
    foreign = [link for link in host.links if not ours.link(link)]
    foreign_links = {link.name: describe_owner(owner_of(link.alias)) for link in foreign}
    names = {link.index: link.name for link in foreign}
    host_addresses = {ip_interface(a.cidr).ip: names[a.index] for a in host.addresses if a.index in names} if whole_host else None
    gateways = frozenset(IPv4Address(v) for r in host.routes if r.to == "0.0.0.0/0" for v in r.via)
    networks = _host_networks(host, foreign) if whole_host else None
    claims = taken_claims(tables, read.own_table)
    v4 = {key: a for key, a in assigned if isinstance(a, IPv4Interface)}
    v6 = {key: a for key, a in assigned if isinstance(a, IPv6Interface)}
    return Observation(state_of(resources), foreign_links, foreign_ns, v4, claims, host_addresses, gateways, networks, frozenset(chains), v6)


def link_peers(snapshots: Mapping[str, Snapshot], nsid: Callable[[str, str], int | None]) -> dict[End, End]:
    """Each link end of these namespaces, to its peer: a veth whose peer is in another namespace
    (IFLA_LINK_NETNSID), found where that namespace's veth of the peer's index points back, and
    confirmed by asking each namespace which id it gives the other (an index alone is not unique
    across namespaces). A veth whose peer is on the host (a bridged interface) has no candidate."""
    ends = [(name, link) for name, snap in snapshots.items() for link in snap.links if link.kind == "veth" and link.link_netnsid is not None]
    by_index: dict[int, list[tuple[str, LinkMsg]]] = {}
    for name, link in ends:
        by_index.setdefault(link.index, []).append((name, link))
    peers: dict[End, End] = {}
    for name, link in ends:
        if link.peer is None or (name, link.index) in peers:
            continue
        for other, peer in by_index.get(link.peer, ()):
            if other == name or peer.peer != link.index or (other, peer.index) in peers:
                continue
            if nsid(name, other) == link.link_netnsid and nsid(other, name) == peer.link_netnsid:  # each names the other
                peers[(name, link.index)] = (other, peer.index)
                peers[(other, peer.index)] = (name, link.index)
                break
    return peers


def _host_networks(host: Snapshot, foreign: Iterable[LinkMsg]) -> tuple[tuple[IPv4Network, str], ...]:
    """(network, link) of the host's connected routes on links no nsnet topology labelled: another
    topology's bridge is a lab, not the host's way to a network (pre-flight warns about it)."""
    names = {link.index: link.name for link in foreign if owner_of(link.alias) is None}
    return tuple(sorted((IPv4Network(r.to), names[r.index]) for r in host.connected if r.index in names))


def _assigned(ns: str, snap: Snapshot) -> Iterator[tuple[InterfaceKey, IPInterface]]:
    names = {link.index: link.name for link in snap.links}
    for address in snap.addresses:
        if address.proto == ADDRESS_PROTO and address.index in names and not address.cidr.startswith("fe80:"):
            yield (ns, names[address.index]), ip_interface(address.cidr)


def observe(topology: str, nl: Netlink, scope: Scope = EVERYTHING) -> Observation:
    """Read the host and the named namespaces (all, or those in `scope`); never creates anything.

    A namespace that is not this topology's costs one request (its links, to
    see whose its lo is); only ours have their addresses and routes read.
    """
    intents = read_intents(topology)
    sources = _open_sources(nl, scope)
    ours = Ownership(label(topology), intents, frozenset(sources))
    prefetched = _take_prefetched()
    known = {n: s for n, s in prefetched.namespaces.items() if n not in sources} if prefetched else {}
    wanted = scope.namespaces
    names = [name for name in dict.fromkeys([*netns.list_names(), *sources]) if wanted is None or name in wanted]
    unknown = [name for name in names if name not in known]
    read = functools.partial(_read_namespace, nl, ours)
    found: dict[str, tuple[bool, Snapshot | None]] = {name: _known_namespace(ours, name, known[name]) for name in names if name in known}
    found.update(zip(unknown, fan_out(read, unknown), strict=True))
    namespaces = {name: snap for name, (seen, snap) in sorted(found.items()) if seen}
    if prefetched and prefetched.host:
        host = prefetched.host
    else:
        host = nl.snapshot(None) if scope.whole_host else _host_part(nl, namespaces.values())
    whole_host = bool(prefetched and prefetched.host) or scope.whole_host  # the agent reads the whole host
    tables = nftables.read_tables()
    inside = _namespace_sysctls(nl, topology, namespaces.keys())
    observation = build_observation(
        topology,
        host,
        namespaces,
        tables,
        _held_sysctls(topology, host),
        intents,
        orphans=not scope.partial,
        namespace_sysctls=inside,
        sources=sources,
        whole_host=whole_host,
        docker_chains=iptables.docker_chains(label(topology)) if scope.docker else {},
        nsid=nl.nsid,
    )
    _hold_ours(nl, namespaces.keys(), {rid.name for rid in observation.state if rid.kind is Kind.NAMESPACE})
    return observation


def _open_sources(nl: Netlink, scope: Scope) -> dict[str, str]:
    """The data sources that can be opened, each adopted by the session under its name (a path that
    is gone, or is not a namespace, is left out: the plan says so)."""
    opened = {}
    for name, path in scope.sources.items():
        if scope.namespaces is not None and name not in scope.namespaces:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        nl.forget(name)
        nl.adopt(name, fd)
        opened[name] = path
    return opened


def _namespace_sysctls(nl: Netlink, topology: str, read: Iterable[str]) -> tuple[NamespaceSysctlState, ...]:
    """The sysctls nsnet set in the namespaces read, as they are now (none recorded: nothing read).
    A namespace made again under a recorded name (another tool's, or ours anew) has another inode,
    so its record does not count (nssysctl.held_keys)."""
    record = nssysctl.read_record(topology)
    fds = {}
    for name in record.keys() & set(read):
        with contextlib.suppress(FileNotFoundError):  # deleted since: the plan will say so
            fds[name] = nl.namespace_fd(name)
    return tuple(NamespaceSysctlState(*held) for held in nssysctl.held(record, fds))


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
    """The shared switches (ip_forward, IPv6 forwarding) this topology holds; route_localnet of our bridges when set."""
    held = [SysctlState(key, hostsysctl.read(key)) for key in HELD_SYSCTLS if topology in hostsysctl.holders(key)]
    for link in host.links:
        if link.alias == label(topology) and link.kind == "bridge":
            key = route_localnet_key(link.name)
            value = hostsysctl.read(key)
            if value != "0":
                held.append(SysctlState(key, value))
    return tuple(held)
