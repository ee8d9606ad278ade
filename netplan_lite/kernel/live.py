"""The live kernel backend: executes plan actions through Netlink.

Each create labels what it makes in the first request after making it (the
kernel ignores IFLA_IFALIAS on creation). Every link gets `addrgenmode none`:
IPv6 autoconfiguration on hundreds of bridge ports floods the bridge, and
nsnet's IPv6 addresses are set, not learned (docs/design.md, "IPv6"); the
ends of a link that carries IPv6 get their link-local address from nsnet,
without duplicate address detection (resources/macs.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from . import hostsysctl, iptables, netns, nftables, nssysctl
from ..engine.apply import kernel_reason
from ..engine.diff import FieldChange
from ..errors import ConflictError, KernelError, PermissionDenied
from ..labels import ADDRESS_PROTO, ROUTE_PROTO, label
from .netlink import Netlink
from ..engine.lock import host_lock
from ..resources.nat import (
    FORWARD_MAPS,
    HELD_SYSCTLS,
    claim_clashes,
    element_claim,
    forward_claims,
    port_map,
    port_map_name,
    table_name,
    taken_claims,
)
from ..engine.observation import Observation
from ..engine.scope import EVERYTHING, Scope
from ..resources.ids import ORPHAN_NAMESPACE, Kind
from .observe import observe
from ..resources.bridge import BridgeState
from ..resources.macs import stable_mac
from ..resources.docker_user import IptablesRulesState
from ..resources.interface import InterfaceState
from ..resources.link import FOREIGN_QDISC, EndState, LinkState, link_ends
from ..resources.namespace import NamespaceState
from ..resources.namespace_sysctl import NamespaceSysctlState
from ..resources.nft_table import NftElement, NftTableState
from ..resources.port_mapping import PortMappingState
from ..resources.route import RouteState, destination_cidr
from ..model.netem import from_summary as netem_of
from .rtnl.route import RouteMsg
from ..resources.registry import Resource
from ..resources.sysctl import SysctlState

LOOPBACK_INDEX = 1  # lo is always ifindex 1 in a new namespace


@dataclass(frozen=True)
class LiveHandler:
    """How the live kernel makes, changes and removes one kind; each may return a note for the user."""

    create: Callable[[Any], str | None]
    update: Callable[[Any, Any], str | None]
    delete: Callable[[Any], str | None]


def _by_creating(create: Callable[[Any], str | None]) -> Callable[[Any, Any], str | None]:
    """An update of a kind that is set or replaced whole."""
    return lambda before, after: create(after)


class LiveKernel:
    """Kernel protocol (see apply.py) over netlink for one topology."""

    def __init__(self, topology: str, nl: Netlink):
        self.topology = topology
        self.label = label(topology)
        self.nl = nl
        self._holders: dict[str, list[int]] | None = None
        self._handlers = self.handlers()

    def observe(self, scope: Scope = EVERYTHING) -> Observation:
        try:
            return observe(self.topology, self.nl, scope)
        except KernelError:
            raise
        except Exception as err:  # a refusal or a vanished object, whatever raised it
            raise KernelError(f"reading the kernel failed: {kernel_reason(err)}") from err

    def handlers(self) -> dict[Kind, LiveHandler]:
        """Create, update and delete of each kind; a kind set or replaced whole updates by creating."""
        return {
            Kind.BRIDGE: LiveHandler(self._create_bridge, self._update_bridge, self._delete_bridge),
            Kind.NAMESPACE: LiveHandler(self._create_namespace, self._update_namespace, self._delete_namespace),
            Kind.INTERFACE: LiveHandler(self._create_interface, self._update_interface, self._delete_interface),
            Kind.LINK: LiveHandler(self._create_link, self._update_link, self._delete_p2p_link),
            Kind.ROUTE: LiveHandler(self._create_route, self._update_route, self._delete_route),
            Kind.NAMESPACE_SYSCTL: LiveHandler(self._set_namespace_sysctl, _by_creating(self._set_namespace_sysctl), self._restore_namespace_sysctl),
            Kind.NFT_TABLE: LiveHandler(self._publish_table, _by_creating(self._publish_table), self._delete_table),
            Kind.PORT_MAPPING: LiveHandler(self._add_port_mapping, self._update_port_mapping, self._delete_port_mapping),
            Kind.SYSCTL: LiveHandler(self._set_sysctl, _by_creating(self._set_sysctl), self._release_sysctl),
            Kind.IPTABLES_RULE: LiveHandler(self._add_accepts, self._update_accepts, self._remove_accepts),
            Kind.IP6TABLES_RULE: LiveHandler(self._add_accepts, self._update_accepts, self._remove_accepts),
        }

    def create(self, resource: Resource) -> str | None:
        return self._handlers[resource.kind].create(resource)

    def update(self, before: Resource, after: Resource, fields: tuple[FieldChange, ...]) -> str | None:
        return self._handlers[after.kind].update(before, after)

    def delete(self, resource: Resource) -> str | None:
        return self._handlers[resource.kind].delete(resource)

    # create

    def _set_sysctl(self, sysctl: SysctlState) -> None:
        if sysctl.key in HELD_SYSCTLS:
            hostsysctl.claim(self.topology, sysctl.key, sysctl.value)
        else:  # a per-link key of one of our bridges
            hostsysctl.write(sysctl.key, sysctl.value)

    def _set_namespace_sysctl(self, sysctl: NamespaceSysctlState) -> None:
        fd = self.nl.namespace_fd(sysctl.namespace)
        nssysctl.set_value(self.topology, sysctl.namespace, fd, sysctl.key, sysctl.value)

    def _publish_table(self, table: NftTableState) -> None:
        """Write the table under a host-wide lock, after checking its host ports against the
        other topologies' tables once more: the plan's check cannot see an apply of another
        topology that publishes the same port between this run's read and this write."""
        with host_lock("forwards"):
            tables = nftables.read_tables()
            clashes = claim_clashes(forward_claims(table), taken_claims(tables, table.name))
            if clashes:
                raise ConflictError("refusing to forward a host port twice: " + "; ".join(clashes))
            nftables.replace_table(table, kept=tables.get(table.name))

    def _add_port_mapping(self, mapping: PortMappingState) -> None:
        """One element into the network's map, after the same check against the other topologies' ports."""
        with host_lock("forwards"):
            nft_map = next(m for m in FORWARD_MAPS.values() if m.name == mapping.map)
            clashes = claim_clashes([element_claim(nft_map, mapping.key)], taken_claims(nftables.read_tables(), table_name(self.topology)))
            if clashes:
                raise ConflictError("refusing to forward a host port twice: " + "; ".join(clashes))
            address, port = mapping.target
            elements = [
                (nft_map.name, NftElement(mapping.key, (address,), mapping.namespace)),
                (port_map(nft_map).name, NftElement(mapping.key, (port,), mapping.namespace)),
            ]
            nftables.add_elements(table_name(self.topology), elements)

    def _update_port_mapping(self, before: PortMappingState, after: PortMappingState) -> None:
        self._delete_port_mapping(before)
        self._add_port_mapping(after)

    def _delete_port_mapping(self, mapping: PortMappingState) -> None:
        nftables.delete_elements(table_name(self.topology), [(mapping.map, mapping.key), (port_map_name(mapping.map), mapping.key)])

    def _add_accepts(self, rules: IptablesRulesState) -> None:
        iptables.add(rules, rules.accepts, self.label)

    def _create_bridge(self, bridge: BridgeState) -> None:
        index = self.nl.add_bridge(bridge.name)
        self.nl.set_link(None, index, alias=self.label, mtu=bridge.mtu, mac=stable_mac(self.topology, bridge.name), ipv6_link_local=False)
        for cidr in bridge.addresses:
            self.nl.add_address(None, index, cidr, ADDRESS_PROTO)
        self.nl.set_link(None, index, up=bridge.up)

    def _create_namespace(self, ns: NamespaceState) -> None:
        if ns.path:  # a data source is never created, only taken up again (undoing a forget)
            self.nl.forget(ns.name)
            self.nl.adopt(ns.name, os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC))
            self.nl.links(ns.name)  # EINVAL: not a namespace
            return
        self.nl.adopt(ns.name, netns.create(ns.name))
        self.nl.set_link(ns.name, LOOPBACK_INDEX, alias=self.label, up=ns.lo_up)
        for cidr in ns.loopback:
            self.nl.add_address(ns.name, LOOPBACK_INDEX, cidr, ADDRESS_PROTO)

    def _create_interface(self, iface: InterfaceState) -> None:
        """Few requests: each /proc/sys write costs ~5 ms at scale, a netlink request ~0.05 ms."""
        assert iface.host_name is not None
        ns = iface.namespace
        self.nl.add_veth(iface.host_name, ns, iface.name)
        host, inner = self.nl.lookup(None, iface.host_name), self.nl.lookup(ns, iface.name)
        if host is None or inner is None:
            raise KernelError(f"the new veth of {ns}/{iface.name} disappeared")
        master = self.nl.lookup(None, iface.bridge) if iface.bridge else None
        self.nl.set_link(None, host, alias=self.label, master=master, mtu=iface.mtu, mac=iface.host_mac, ipv6_link_local=False)
        if iface.hairpin:
            self.nl.set_link(None, host, hairpin=True)
        mac = iface.mac or stable_mac(self.topology, ns, iface.name)
        self.nl.set_link(ns, inner, alias=self.label, mtu=iface.mtu, mac=mac, ipv6_link_local=False)
        for cidr in iface.addresses:
            self.nl.add_address(ns, inner, cidr, ADDRESS_PROTO)
        self.nl.set_link(None, host, up=iface.host_up)
        self.nl.set_link(ns, inner, up=iface.up)

    def _create_link(self, link: LinkState) -> None:
        """Both ends made inside their namespaces in one request, then each set up in as few."""
        assert link.peer_namespace is not None and link.peer_name is not None
        self.nl.add_veth_pair(link.namespace, link.name, link.peer_namespace, link.peer_name)
        ends = [(end, self._link_end(end, link)) for end in link_ends(link)]
        for end, index in ends:
            mac = end.mac or stable_mac(self.topology, end.namespace, end.name)
            self.nl.set_link(end.namespace, index, alias=self.label, mtu=link.mtu, mac=mac, ipv6_link_local=False)
            for cidr in end.addresses:  # a link-local one among them (resources/link.py)
                self.nl.add_address(end.namespace, index, cidr, ADDRESS_PROTO)
            if end.netem:
                self.nl.set_netem(end.namespace, index, netem_of(end.netem), "add")
        for end, index in ends:
            self.nl.set_link(end.namespace, index, up=end.up)

    def _link_end(self, end: EndState, link: LinkState) -> int:
        index = self.nl.lookup(end.namespace, end.name)
        if index is None:
            raise KernelError(f"link {link.id.key} has no end {end.namespace}:{end.name} (it disappeared during apply?)")
        return index

    def _create_route(self, route: RouteState) -> None:
        self.nl.replace_route(route.namespace, self._route_msg(route, ROUTE_PROTO))

    def _route_msg(self, route: RouteState, proto: int) -> RouteMsg:
        dev = self.nl.lookup(route.namespace, route.dev) if route.dev else None
        if route.dev and dev is None:
            raise KernelError(f"route {route.id.key}: namespace {route.namespace} has no device {route.dev}")
        return RouteMsg(destination_cidr(route.to), route.via, proto, route.type, dev, route.metric or None)

    # update

    def _update_accepts(self, before: IptablesRulesState, after: IptablesRulesState) -> None:
        """Only the rules that differ: the others (and Docker's) stay where they are."""
        iptables.add(after, tuple(r for r in after.accepts if r not in before.accepts), self.label)
        iptables.remove(before, tuple(r for r in before.accepts if r not in after.accepts), self.label)

    def _update_namespace(self, before: NamespaceState, after: NamespaceState) -> None:
        lo = self.nl.lookup(after.name, "lo")
        if lo is None:
            raise KernelError(f"namespace {after.name} has no lo (it disappeared during apply?)")
        if after.owned and not before.owned:
            self.nl.set_link(after.name, lo, alias=self.label)
        self.nl.set_link(after.name, lo, up=after.lo_up)
        self._sync_addresses(after.name, lo, before.loopback, after.loopback)

    def _update_bridge(self, before: BridgeState, after: BridgeState) -> None:
        index = self.nl.lookup(None, after.name)
        if index is None:
            raise KernelError(f"bridge {after.name} disappeared during apply")
        if after.owned and not before.owned:
            self.nl.set_link(None, index, alias=self.label)
        if after.mtu is not None and after.mtu != before.mtu:
            self.nl.set_link(None, index, mtu=after.mtu)
        self._sync_addresses(None, index, before.addresses, after.addresses)
        if after.up != before.up:
            self.nl.set_link(None, index, up=after.up)

    def _update_interface(self, before: InterfaceState, after: InterfaceState) -> None:
        ns, host_name = after.namespace, after.host_name
        inner = self.nl.lookup(ns, after.name)
        host = self.nl.lookup(None, host_name) if host_name else None
        if inner is None or host is None:
            raise KernelError(f"interface {ns}/{after.name} disappeared during apply")
        host_attrs: dict[str, Any] = {}
        if after.owned and not before.owned:
            self.nl.set_link(None, host, alias=self.label)
            self.nl.set_link(ns, inner, alias=self.label)
        if after.bridge != before.bridge:
            host_attrs["master"] = self.nl.lookup(None, after.bridge) if after.bridge else 0
        if after.mtu is not None and after.mtu != before.mtu:
            host_attrs["mtu"] = after.mtu
            self.nl.set_link(ns, inner, mtu=after.mtu)
        if after.host_mac is not None and after.host_mac != before.host_mac:
            host_attrs["mac"] = after.host_mac
        if host_attrs:
            self.nl.set_link(None, host, **host_attrs)
        if after.mac is not None and after.mac != before.mac:
            self.nl.set_link(ns, inner, mac=after.mac)
        self._sync_addresses(ns, inner, before.addresses, after.addresses)
        if after.hairpin != before.hairpin and after.bridge:
            self.nl.set_link(None, host, hairpin=after.hairpin)
        if after.host_up != before.host_up:
            self.nl.set_link(None, host, up=after.host_up)
        if after.up != before.up:
            self.nl.set_link(ns, inner, up=after.up)

    def _update_link(self, before: LinkState, after: LinkState) -> None:
        for old, new in zip(link_ends(before), link_ends(after), strict=True):
            index = self._link_end(new, after)
            attrs: dict[str, Any] = {}
            if after.owned and not before.owned:
                attrs["alias"] = self.label
            if after.mtu is not None and after.mtu != before.mtu:
                attrs["mtu"] = after.mtu
            if new.mac is not None and new.mac != old.mac:
                attrs["mac"] = new.mac
            if attrs:
                self.nl.set_link(new.namespace, index, **attrs)
            self._sync_addresses(new.namespace, index, old.addresses, new.addresses)
            self._sync_netem(new.namespace, index, old.netem, new.netem)
            if new.up != old.up:
                self.nl.set_link(new.namespace, index, up=new.up)

    def _sync_netem(self, ns: str, index: int, before: str, after: str) -> None:
        """Changed in place (`tc qdisc change`: the queue and its packets stay), added, or removed;
        another kind of root qdisc (a `tc` edit by hand) is replaced."""
        if before == after:
            return
        if not after:
            self.nl.delete_qdisc(ns, index)
        elif not before:
            self.nl.set_netem(ns, index, netem_of(after), "add")
        else:
            self.nl.set_netem(ns, index, netem_of(after), "replace" if before.startswith(FOREIGN_QDISC) else "change")

    def _update_route(self, before: RouteState, after: RouteState) -> None:
        """A replace finds the route by destination and metric: another metric is another route."""
        if before.metric != after.metric:
            self._delete_route(before)
        self._create_route(after)

    def _sync_addresses(self, ns: str | None, index: int, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        for cidr in before:
            if cidr not in after:
                self.nl.delete_address(ns, index, cidr)
        for cidr in after:
            if cidr not in before:
                self.nl.add_address(ns, index, cidr, ADDRESS_PROTO)

    # delete

    def _remove_accepts(self, rules: IptablesRulesState) -> None:
        iptables.remove(rules, rules.accepts, self.label)

    def _delete_table(self, table: NftTableState) -> None:
        nftables.delete_table(table.name)

    def _delete_bridge(self, bridge: BridgeState) -> None:
        self._delete_link(None, bridge.name)

    def _release_sysctl(self, sysctl: SysctlState) -> str | None:
        if sysctl.key in HELD_SYSCTLS:
            return hostsysctl.release(self.topology, sysctl.key, nftables.other_firewall_tables)
        hostsysctl.write(sysctl.key, "0")  # the default of a per-link key
        return None

    def _restore_namespace_sysctl(self, sysctl: NamespaceSysctlState) -> str:
        return nssysctl.restore(self.topology, sysctl.namespace, self.nl.namespace_fd(sysctl.namespace), sysctl.key)

    def _delete_namespace(self, ns: NamespaceState) -> str | None:
        """Unmount the namespace; if a process still lives in it, delete its veths first.
        A data source is only forgotten (what nsnet made in it was deleted before)."""
        if ns.path:
            self.nl.forget(ns.name)
            nssysctl.forget(self.topology, ns.name)
            return f"namespace {ns.name} ({ns.path}) is not nsnet's: left as it is"
        note = None
        if ns.usable:
            pids = self._namespace_holders().get(ns.name)
            if pids:
                snap = self.nl.snapshot(ns.name)
                for link in snap.links:
                    if link.kind == "veth":
                        self.nl.delete_link(ns.name, link.index)
                note = (
                    f"process {', '.join(map(str, pids))} still runs in namespace {ns.name}: "
                    "its veths were deleted; the namespace goes when the process exits"
                )
        self.nl.forget(ns.name)
        netns.remove(ns.name)
        nssysctl.forget(self.topology, ns.name)
        return note

    def _namespace_holders(self) -> dict[str, list[int]]:
        """Which of our namespaces have processes in them, scanned once per run."""
        if self._holders is None:
            fds = {name: self.nl.namespace_fd(name) for name in netns.list_names() if self.nl.is_open(name)}
            self._holders = netns.holders(fds)
        return self._holders

    def _delete_interface(self, iface: InterfaceState) -> None:
        """Deleting either end of a veth deletes the pair."""
        if iface.host_name and self._delete_link(None, iface.host_name):
            return
        if iface.namespace != ORPHAN_NAMESPACE:
            self._delete_link(iface.namespace, iface.name)

    def _delete_link(self, ns: str | None, name: str) -> bool:
        index = self.nl.lookup(ns, name)
        if index is None:
            return False
        self.nl.delete_link(ns, index)
        return True

    def _delete_p2p_link(self, link: LinkState) -> None:
        """Deleting either end deletes the pair."""
        if not self._delete_link(link.namespace, link.name) and link.peer_namespace and link.peer_name:
            self._delete_link(link.peer_namespace, link.peer_name)

    def _delete_route(self, route: RouteState) -> None:
        try:
            msg = RouteMsg(
                destination_cidr(route.to), route.via, route.proto, route.type, None, route.metric or None
            )  # its own, found without its device
            self.nl.delete_route(route.namespace, msg)
        except OSError as err:  # already gone with its interface: the goal is met
            if err.errno != errno.ESRCH:
                raise


CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


def require_privileges() -> None:
    """nsnet needs CAP_NET_ADMIN (links) and CAP_SYS_ADMIN (setns, mounts)."""
    try:
        with open("/proc/self/status") as f:
            caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        caps = 0
    missing = [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")) if not caps >> bit & 1]
    if missing:
        raise PermissionDenied(f"nsnet needs root ({' and '.join(missing)} missing): run it with sudo")


@contextlib.contextmanager
def open_kernel(topology: str) -> Iterator[LiveKernel]:
    """A live kernel session for one topology; its sockets close on exit."""
    require_privileges()
    with Netlink() as nl:
        yield LiveKernel(topology, nl)
