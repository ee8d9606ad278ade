"""An in-memory kernel with the Kernel protocol, for tests without root.

It models the cascades the real kernel performs: deleting a namespace
removes its interfaces, links and routes; deleting an interface or a link, or
removing an address, removes the routes through it. Fields left unmanaged (None) get
kernel-like defaults. Like IFA_PROTO in the kernel, it remembers which
addresses it wrote itself: only those count as nsnet's assignments.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_interface
from typing import Any, Callable, Iterable

from .diff import FieldChange
from .observation import Observation
from .scope import EVERYTHING, Scope
from ..model.topology import LOOPBACK, InterfaceKey
from ..resources.ids import Kind, ResourceId
from ..resources.link import LinkState
from ..resources.registry import KINDS, Resource
from ..resources.route import RouteState


def _as_is(resource: Any) -> Any:
    return resource


def _nothing(kernel: FakeKernel, before: Any, after: Any | None) -> None:
    pass


@dataclass(frozen=True)
class FakeHandler:
    """How the fake kernel treats one kind beyond storing it."""

    defaults: Callable[[Any], Any] = _as_is  # what the kernel fills in for unmanaged (None) fields
    # (before, after) of an update, (resource, None) of a delete: the cascades the kernel performs
    changed: Callable[[FakeKernel, Any, Any | None], None] = _nothing
    # (interface, address) pairs a resource holds: the kernel remembers nsnet wrote them (IFA_PROTO)
    addresses: Callable[[Any], Iterable[tuple[InterfaceKey, str]]] = lambda resource: ()


class FakeKernel:
    def __init__(
        self,
        resources: Iterable[Resource] = (),
        foreign_links: dict[str, str] | None = None,
        foreign_namespaces: dict[str, str] | None = None,
        docker_chains: frozenset[Kind] = frozenset(),  # the iptables kinds whose Docker chain the host has
    ):
        self.resources: dict[ResourceId, Resource] = {r.id: r for r in resources}
        self.docker_chains = docker_chains
        self.foreign_links = dict(foreign_links or {})
        self.foreign_namespaces = dict(foreign_namespaces or {})
        self.calls: list[tuple[str, ResourceId]] = []
        self.fail_on: ResourceId | None = None
        self.written: set[tuple[InterfaceKey, str]] = {a for r in self.resources.values() for a in _addresses(r)}

    def observe(self, scope: Scope = EVERYTHING) -> Observation:
        resources = {rid: r for rid, r in self.resources.items() if rid.home is None or rid in scope}
        written = [(key, ip_interface(a)) for r in self.resources.values() for key, a in _addresses(r) if (key, a) in self.written]
        written = [(key, a) for key, a in written if not a.is_link_local]  # as kernel/observe.py: never an allocation
        assigned = {key: a for key, a in written if isinstance(a, IPv4Interface)}
        assigned6 = {key: a for key, a in written if isinstance(a, IPv6Interface)}
        return Observation(resources, self.foreign_links, self.foreign_namespaces, assigned, docker_chains=self.docker_chains, assigned6=assigned6)

    def _check_fail(self, rid: ResourceId) -> None:
        if rid == self.fail_on:
            raise OSError(1, "injected failure")

    def create(self, resource: Resource) -> None:
        self.calls.append(("create", resource.id))
        self._check_fail(resource.id)
        if resource.id in self.resources:
            raise OSError(17, "File exists")
        missing = [p for p in KINDS[resource.kind].parents(resource.id) if p not in self.resources]
        if missing:
            raise OSError(2, f"no {missing[0]}")
        self.resources[resource.id] = HANDLERS[resource.kind].defaults(resource)
        self.written |= set(_addresses(resource))

    def update(self, before: Resource, after: Resource, fields: tuple[FieldChange, ...]) -> None:
        self.calls.append(("update", after.id))
        self._check_fail(after.id)
        current = self.resources[after.id]
        changes = {f.name: getattr(after, f.name) for f in dataclasses.fields(after) if getattr(after, f.name) is not None}
        self.resources[after.id] = dataclasses.replace(current, **changes)
        self.written |= set(_addresses(after))
        HANDLERS[after.kind].changed(self, current, after)

    def delete(self, resource: Resource) -> None:
        self.calls.append(("delete", resource.id))
        self._check_fail(resource.id)
        if resource.id not in self.resources:
            raise OSError(2, f"no {resource.id}")
        del self.resources[resource.id]
        for rid, other in list(self.resources.items()):
            if resource.id in KINDS[rid.kind].parents(rid) or _peer_in(other, resource):
                del self.resources[rid]  # the kernel deletes what lives in a deleted namespace (a veth: either end)
        HANDLERS[resource.kind].changed(self, resource, None)

    def drop_routes(self, namespace: str | None, removed: set[str], device: str | None = None) -> None:
        """Routes via a removed address's network, or through a removed device, die with it."""
        networks = [ip_interface(a).network for a in removed]
        for rid, r in list(self.resources.items()):
            if not isinstance(r, RouteState) or rid.namespace != namespace:
                continue
            if (device is not None and r.dev == device) or any(ip_address(v) in n for v in r.via for n in networks):
                del self.resources[rid]


def _addresses(resource: Resource) -> Iterable[tuple[InterfaceKey, str]]:
    return HANDLERS[resource.kind].addresses(resource)


def _stable_mac(rid: ResourceId) -> str:
    digest = hashlib.sha256(rid.key.encode()).digest()
    return "02:00:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def _peer_in(resource: Any, namespace: Any) -> bool:
    return isinstance(resource, LinkState) and namespace.kind is Kind.NAMESPACE and resource.peer_namespace == namespace.name


def _interface_changed(kernel: FakeKernel, before: Any, after: Any | None) -> None:
    kept = set(after.addresses) if after is not None else set()
    kernel.drop_routes(before.namespace, set(before.addresses) - kept, before.name if after is None else None)


def _link_changed(kernel: FakeKernel, before: LinkState, after: LinkState | None) -> None:
    for ns, name, addresses, now in (
        (before.namespace, before.name, before.addresses, after.addresses if after else ()),
        (before.peer_namespace, before.peer_name, before.peer_addresses, after.peer_addresses if after else ()),
    ):
        kernel.drop_routes(ns, set(addresses) - set(now), name if after is None else None)


def _link_defaults(link: LinkState) -> LinkState:
    mac = link.mac or _stable_mac(ResourceId(Kind.INTERFACE, link.name, link.namespace))
    peer = ResourceId(Kind.INTERFACE, link.peer_name or "", link.peer_namespace)
    return dataclasses.replace(link, mtu=link.mtu or 1500, mac=mac, peer_mac=link.peer_mac or _stable_mac(peer))


def _link_addresses(link: LinkState) -> Iterable[tuple[InterfaceKey, str]]:
    yield from (((link.namespace, link.name), a) for a in link.addresses)
    yield from (((link.peer_namespace or "", link.peer_name or ""), a) for a in link.peer_addresses)


def _namespace_changed(kernel: FakeKernel, before: Any, after: Any | None) -> None:
    if after is not None:
        kernel.drop_routes(before.name, set(before.loopback) - set(after.loopback))


HANDLERS: dict[Kind, FakeHandler] = {
    Kind.BRIDGE: FakeHandler(defaults=lambda bridge: bridge if bridge.mtu else dataclasses.replace(bridge, mtu=1500)),
    Kind.NAMESPACE: FakeHandler(changed=_namespace_changed, addresses=lambda ns: (((ns.name, LOOPBACK), a) for a in ns.loopback)),
    Kind.INTERFACE: FakeHandler(
        defaults=lambda iface: dataclasses.replace(iface, mtu=iface.mtu or 1500, mac=iface.mac or _stable_mac(iface.id)),
        changed=_interface_changed,
        addresses=lambda iface: (((iface.namespace, iface.name), a) for a in iface.addresses),
    ),
    Kind.LINK: FakeHandler(defaults=_link_defaults, changed=_link_changed, addresses=_link_addresses),
    Kind.ROUTE: FakeHandler(),
    Kind.NAMESPACE_SYSCTL: FakeHandler(),
    Kind.NFT_TABLE: FakeHandler(),
    Kind.PORT_MAPPING: FakeHandler(),
    Kind.SYSCTL: FakeHandler(),
    Kind.IPTABLES_RULE: FakeHandler(),
    Kind.IP6TABLES_RULE: FakeHandler(),
}
