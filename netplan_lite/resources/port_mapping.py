"""A CNI attachment's published port: one element of its network's nft map.

The network's table holds the rules once, each looking the destination up in
a map (`dnat ip to meta l4proto . th dport map @fwd4`); a port mapping is
one element of such a map, commented with its attachment's name. An ADD or
DEL adds or removes its own elements, and never rewrites the table, so its
cost does not grow with the number of containers (the CNI portmap plugin
dumps and rewrites iptables chains on every call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from .ids import Kind, ResourceId
from .nat import port_mapping_elements
from .spec import Edge, KindSpec, Lowering


@dataclass(frozen=True)
class PortMappingState:
    kind: ClassVar[Kind] = Kind.PORT_MAPPING
    namespace: str  # the attachment it publishes (a data-source namespace)
    name: str  # "tcp *:8080", "udp 127.0.0.1:53", "tcp [fd00::1]:8080"
    map: str  # the map of the network's table holding it
    key: tuple[str | int, ...]  # its key in the map: (protocol, port) or (host address, protocol, port)
    target: tuple[str | int, ...]  # (address, port) in the attachment

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name, self.namespace)


def _lower(lowering: Lowering) -> Iterator[PortMappingState]:
    for namespace, name, nft_map, key, target in port_mapping_elements(lowering.topology, lowering.addresses, lowering.addresses6):
        yield PortMappingState(namespace, name, nft_map.name, key, target)


SPEC = KindSpec(
    Kind.PORT_MAPPING,
    PortMappingState,
    _lower,
    lambda m: f"to {m.target[0]}:{m.target[1]} (map {m.map})",
    after=(Edge(Kind.NFT_TABLE, "an element goes into its network's map"),),
)
