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
from ipaddress import IPv4Address, IPv4Interface

from .diff import FieldChange
from .observation import Observation
from ..resources.bridge import BridgeState
from ..resources.ids import Kind, ResourceId
from ..resources.interface import InterfaceState
from ..resources.namespace import NamespaceState
from ..resources.route import RouteState
from ..resources.state import Resource


class FakeKernel:
    def __init__(self, resources: list[Resource] = (), foreign_links: dict[str, str] | None = None,
                 foreign_namespaces: dict[str, str] | None = None):
        self.resources: dict[ResourceId, Resource] = {r.id: r for r in resources}
        self.foreign_links = dict(foreign_links or {})
        self.foreign_namespaces = dict(foreign_namespaces or {})
        self.calls: list[tuple[str, ResourceId]] = []
        self.fail_on: ResourceId | None = None
        self.written: set[tuple[str, str, str]] = {  # (namespace, interface, address) nsnet set
            (r.namespace, r.name, a) for r in resources if isinstance(r, InterfaceState) for a in r.addresses
        }

    def observe(self, scope: frozenset[str] | None = None) -> Observation:
        resources = {rid: r for rid, r in self.resources.items() if scope is None or rid.namespace in (None, *scope)}
        assigned = {
            (r.namespace, r.name): IPv4Interface(a)
            for r in self.resources.values() if isinstance(r, InterfaceState)
            for a in r.addresses if (r.namespace, r.name, a) in self.written
        }
        return Observation(resources, self.foreign_links, self.foreign_namespaces, assigned)

    def _wrote(self, resource: Resource) -> None:
        if isinstance(resource, InterfaceState):
            self.written |= {(resource.namespace, resource.name, a) for a in resource.addresses}

    def _check_fail(self, rid: ResourceId) -> None:
        if rid == self.fail_on:
            raise OSError(1, "injected failure")

    def create(self, resource: Resource) -> None:
        self.calls.append(("create", resource.id))
        self._check_fail(resource.id)
        if resource.id in self.resources:
            raise OSError(17, "File exists")
        if resource.id.kind in (Kind.INTERFACE, Kind.ROUTE) and ResourceId(Kind.NAMESPACE, resource.id.namespace) not in self.resources:
            raise OSError(2, f"no namespace {resource.id.namespace}")
        self.resources[resource.id] = _with_defaults(resource)
        self._wrote(resource)

    def update(self, before: Resource, after: Resource, fields: tuple[FieldChange, ...]) -> None:
        self.calls.append(("update", after.id))
        self._check_fail(after.id)
        current = self.resources[after.id]
        changes = {f.name: getattr(after, f.name) for f in dataclasses.fields(after) if getattr(after, f.name) is not None}
        self.resources[after.id] = dataclasses.replace(current, **changes)
        self._wrote(after)
        if isinstance(current, InterfaceState) and isinstance(after, InterfaceState):
            self._drop_routes(current.namespace, set(current.addresses) - set(after.addresses))

    def delete(self, resource: Resource) -> None:
        self.calls.append(("delete", resource.id))
        self._check_fail(resource.id)
        del self.resources[resource.id]
        if isinstance(resource, NamespaceState):
            for rid in [r for r in self.resources if r.namespace == resource.name and r.kind is not Kind.NAMESPACE]:
                del self.resources[rid]
        elif isinstance(resource, InterfaceState):
            self._drop_routes(resource.namespace, set(resource.addresses))

    def _drop_routes(self, namespace: str, removed: set[str]) -> None:
        """Routes via a removed address's network die with it."""
        networks = [IPv4Interface(a).network for a in removed]
        for rid, r in list(self.resources.items()):
            if isinstance(r, RouteState) and r.namespace == namespace and any(IPv4Address(r.via) in n for n in networks):
                del self.resources[rid]


def _with_defaults(resource: Resource) -> Resource:
    if isinstance(resource, BridgeState) and resource.mtu is None:
        return dataclasses.replace(resource, mtu=1500)
    if isinstance(resource, InterfaceState):
        digest = hashlib.sha256(resource.id.name.encode()).digest()
        mac = resource.mac or "02:00:00:" + ":".join(f"{b:02x}" for b in digest[:3])
        return dataclasses.replace(resource, mtu=resource.mtu or 1500, mac=mac)
    return resource
