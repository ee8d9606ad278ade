"""What names a resource: its kind and its id."""

from __future__ import annotations

import enum
from typing import NamedTuple


class Kind(enum.Enum):
    """Resource kinds, in creation order (rank); deletes run in the reverse order.

    Sysctls come after the nft table: route_localnet=1 must never be on while
    the guard rule that makes it safe is missing (CVE-2020-8558).
    """

    BRIDGE = "bridge"
    NAMESPACE = "namespace"
    INTERFACE = "interface"
    ROUTE = "route"
    NFT_TABLE = "nft_table"
    SYSCTL = "sysctl"

    @property
    def rank(self) -> int:
        return list(Kind).index(self)


class ResourceId(NamedTuple):
    kind: Kind
    name: str  # unique within its kind: "br0", "web1", "web1/eth0", "web1/default"

    def __str__(self) -> str:
        return f"{self.kind.value.replace('_', ' ')} {self.name}"

    @property
    def namespace(self) -> str | None:
        """The namespace a resource lives in (None for host objects)."""
        if self.kind is Kind.NAMESPACE:
            return self.name
        if self.kind in (Kind.INTERFACE, Kind.ROUTE):
            return self.name.split("/", 1)[0]
        return None

    @property
    def parent(self) -> ResourceId | None:
        """The namespace whose deletion makes the kernel delete this resource too."""
        if self.kind in (Kind.INTERFACE, Kind.ROUTE):
            return ResourceId(Kind.NAMESPACE, self.name.split("/", 1)[0])
        return None  # route_localnet is switched off explicitly, before the guard goes


ORPHAN_NAMESPACE = "(host)"  # namespace field of a labelled host veth whose peer is lost
