"""An in-memory kernel with the Kernel protocol, for tests without root.

It models the cascades the real kernel performs: deleting a namespace
removes its interfaces and routes; deleting an interface, or removing an
address, removes the routes through it. Fields left unmanaged (None) get
kernel-like defaults. Like IFA_PROTO in the kernel, it remembers which
addresses it wrote itself: only those count as nsnet's assignments.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any, Callable, Iterable

from .diff import FieldChange
from .observation import Observation
from .scope import EVERYTHING, Scope
from ..model.topology import InterfaceKey
from ..resources.ids import Kind, ResourceId
from ..resources.registry import KINDS, Resource


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
        assigned = {key: IPv4Interface(a) for r in self.resources.values() for key, a in _addresses(r) if (key, a) in self.written}
        return Observation(resources, self.foreign_links, self.foreign_namespaces, assigned, docker_chains=self.docker_chains)

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
        for rid in [rid for rid in self.resources if resource.id in KINDS[rid.kind].parents(rid)]:
            del self.resources[rid]  # the kernel deletes what lives in a deleted namespace
        HANDLERS[resource.kind].changed(self, resource, None)

    def drop_routes(self, namespace: str, removed: set[str]) -> None:
        """Routes via a removed address's network die with it."""
        networks = [IPv4Interface(a).network for a in removed]
        for rid, r in list(self.resources.items()):
            via = getattr(r, "via", None) if rid.kind is Kind.ROUTE and rid.namespace == namespace else None
            if via is not None and any(IPv4Address(via) in n for n in networks):
                del self.resources[rid]


def _addresses(resource: Resource) -> Iterable[tuple[InterfaceKey, str]]:
    return HANDLERS[resource.kind].addresses(resource)


def _stable_mac(rid: ResourceId) -> str:
    digest = hashlib.sha256(rid.key.encode()).digest()
    return "02:00:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def _interface_changed(kernel: FakeKernel, before: Any, after: Any | None) -> None:
    kept = set(after.addresses) if after is not None else set()
    kernel.drop_routes(before.namespace, set(before.addresses) - kept)


HANDLERS: dict[Kind, FakeHandler] = {
    Kind.BRIDGE: FakeHandler(defaults=lambda bridge: bridge if bridge.mtu else dataclasses.replace(bridge, mtu=1500)),
    Kind.NAMESPACE: FakeHandler(),
    Kind.INTERFACE: FakeHandler(
        defaults=lambda iface: dataclasses.replace(iface, mtu=iface.mtu or 1500, mac=iface.mac or _stable_mac(iface.id)),
        changed=_interface_changed,
        addresses=lambda iface: (((iface.namespace, iface.name), a) for a in iface.addresses),
    ),
    Kind.ROUTE: FakeHandler(),
    Kind.NAMESPACE_SYSCTL: FakeHandler(),
    Kind.NFT_TABLE: FakeHandler(),
    Kind.SYSCTL: FakeHandler(),
    Kind.IPTABLES_RULE: FakeHandler(),
    Kind.IP6TABLES_RULE: FakeHandler(),
}
