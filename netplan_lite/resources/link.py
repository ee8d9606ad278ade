"""A point-to-point veth pair between two namespaces (`links:`), each end made inside its own.

One resource per pair. Its id names the end that sorts first by (namespace,
interface): the pair is found the same way from either side, and a plan
scoped to namespaces takes in a link through its first end (a target takes
in the namespaces its links reach, so both ends are read: engine/scope.py).
An end's root netem qdisc is a field of the link: it lives and dies with its
device, and is changed in place like any other attribute. A link that carries
IPv6 has each end's link-local address among its addresses: nsnet sets it
(macs.link_local, no DAD), and the kernel flushes it when the end goes down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from ..model.netem import Netem, shown, summary
from ..model.topology import Link, LinkEnd
from .ids import Kind, ResourceId
from .macs import link_local, stable_mac
from .spec import Edge, KindSpec, Lowering, ReplaceCode, Replacement, in_namespace_parent

NO_NETEM = ""  # an end without a root netem qdisc
FOREIGN_QDISC = "qdisc "  # observed: a root qdisc of another kind ("qdisc tbf"), never a netem's text


@dataclass(frozen=True)
class LinkState:
    """Both ends: the first (`namespace`/`name`) and its peer. `netem` is the root qdisc as
    model.netem.summary writes it (NO_NETEM: none), so plans show it as a file writes it."""

    kind: ClassVar[Kind] = Kind.LINK
    namespace: str
    name: str
    peer_namespace: str | None  # observed None: the peer is not in one of this topology's namespaces
    peer_name: str | None
    addresses: tuple[str, ...] = ()
    peer_addresses: tuple[str, ...] = ()
    netem: str = NO_NETEM
    peer_netem: str = NO_NETEM
    mtu: int | None = None
    mac: str | None = None
    peer_mac: str | None = None
    up: bool = True
    peer_up: bool = True
    owned: bool = True

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name, self.namespace)

    @property
    def endpoints(self) -> tuple[str, str]:
        return f"{self.namespace}:{self.name}", f"{self.peer_namespace}:{self.peer_name}"


@dataclass(frozen=True)
class EndState:
    """One end of a link, as its namespace sees it."""

    namespace: str
    name: str
    addresses: tuple[str, ...]
    netem: str
    mac: str | None
    up: bool


def link_ends(link: LinkState) -> tuple[EndState, ...]:
    """The first end, then its peer (if observed)."""
    ends = [EndState(link.namespace, link.name, link.addresses, link.netem, link.mac, link.up)]
    if link.peer_namespace is not None and link.peer_name is not None:
        ends.append(EndState(link.peer_namespace, link.peer_name, link.peer_addresses, link.peer_netem, link.peer_mac, link.peer_up))
    return tuple(ends)


def netem_text(netem: Netem | None) -> str:
    """What the state holds of an end's impairments: an empty `netem:` asks for no qdisc."""
    return summary(netem) if netem is not None and shown(netem) else NO_NETEM


def ordered_ends(link: Link) -> tuple[LinkEnd, LinkEnd]:
    """The ends in id order (the file's order decides only which end takes the lower address)."""
    a, b = link.ends
    return (a, b) if (a.namespace, a.interface) <= (b.namespace, b.interface) else (b, a)


def _lower(lowering: Lowering) -> Iterator[LinkState]:
    topology = lowering.topology.name
    for link in lowering.topology.links:
        a, b = ordered_ends(link)
        mac, peer_mac = (stable_mac(topology, end.namespace, end.interface) for end in (a, b))
        addresses, peer_addresses = lowering.addresses_of(a.endpoint.key), lowering.addresses_of(b.endpoint.key)
        if any(":" in cidr for cidr in addresses + peer_addresses):  # IPv6 routes over a link-local address
            addresses, peer_addresses = (*addresses, link_local(mac)), (*peer_addresses, link_local(peer_mac))
        yield LinkState(
            namespace=a.namespace,
            name=a.interface,
            peer_namespace=b.namespace,
            peer_name=b.interface,
            addresses=addresses,
            peer_addresses=peer_addresses,
            netem=netem_text(a.netem),
            peer_netem=netem_text(b.netem),
            mtu=link.mtu,
            mac=mac,
            peer_mac=peer_mac,
            up=link.up,
            peer_up=link.up,
        )


def _describe(link: LinkState) -> str:
    parts = [f"to {link.peer_namespace}:{link.peer_name}"]
    for end, addresses, netem in ((link.name, link.addresses, link.netem), (link.peer_name, link.peer_addresses, link.peer_netem)):
        shown = [a for a in addresses if not a.startswith("fe80:")]  # the plan shows what the file asks for
        parts.append(f"{end} {', '.join(shown) or '(no address)'}" + (f" netem {netem}" if netem else ""))
    parts += [f"mtu {link.mtu}"] if link.mtu else []
    parts += [] if link.up else ["down"]
    return ", ".join(parts)


_PEER_CHANGED = Replacement(ReplaceCode.PEER_CHANGED, "its peer end is not where the file puts it")

SPEC = KindSpec(
    Kind.LINK,
    LinkState,
    _lower,
    _describe,
    after=(Edge(Kind.NAMESPACE, "each end is made inside its namespace"),),
    replaced_by={"peer_namespace": _PEER_CHANGED, "peer_name": _PEER_CHANGED},
    parents=in_namespace_parent,
    spans=lambda link: (link.peer_namespace,) if link.peer_namespace else (),
)
