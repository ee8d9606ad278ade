"""A veth pair between a namespace and the host (usually a bridge port)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from .ids import Kind, ResourceId
from .spec import CreatedNames, Edge, KindSpec, Lowering, ReplaceCode, Replacement, in_namespace_parent


@dataclass(frozen=True)
class InterfaceState:
    """A veth pair: `name` in `namespace`, its peer `host_name` on the host."""

    kind: ClassVar[Kind] = Kind.INTERFACE
    namespace: str
    name: str
    host_name: str | None  # observed None: the host end is gone
    bridge: str | None = None  # the host end's master
    addresses: tuple[str, ...] = ()
    mtu: int | None = None
    mac: str | None = None
    up: bool = True
    host_up: bool = True
    hairpin: bool = False  # set on port-forward targets so a namespace reaches its own published port
    owned: bool = True  # the host end's label
    host_mac: str | None = None  # desired None: not managed

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name, self.namespace)


def _lower(lowering: Lowering) -> Iterator[InterfaceState]:
    targets = lowering.forward_targets
    for ns in lowering.topology.namespaces:
        for iface in ns.interfaces:
            yield InterfaceState(
                namespace=ns.name,
                name=iface.name,
                host_name=iface.host_name,
                bridge=iface.bridge,
                addresses=lowering.addresses_of((ns.name, iface.name)),
                mtu=iface.mtu,
                mac=iface.mac,
                hairpin=iface.hairpin or (ns.name, iface.name) in targets,
                host_mac=iface.host_mac,
            )


def _describe(iface: InterfaceState) -> str:
    parts = [f"bridge {iface.bridge}", f"address {', '.join(iface.addresses) or '(none)'}", f"host veth {iface.host_name}"]
    parts += [f"mtu {iface.mtu}"] if iface.mtu else []
    parts += [f"mac {iface.mac}"] if iface.mac else []
    return ", ".join(parts)


SPEC = KindSpec(
    Kind.INTERFACE,
    InterfaceState,
    _lower,
    _describe,
    after=(Edge(Kind.BRIDGE, "the host end joins its bridge as it is made"), Edge(Kind.NAMESPACE, "the namespace end is made inside its namespace")),
    replaced_by={"host_name": Replacement(ReplaceCode.HOST_NAME_CHANGED, "the host-side veth name changed")},
    parents=in_namespace_parent,
    creates=lambda iface: CreatedNames(links=(iface.host_name,) if iface.host_name else ()),
    needs=lambda iface: (ResourceId(Kind.BRIDGE, iface.bridge),) if iface.bridge else (),
)
