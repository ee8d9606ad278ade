"""What names a resource: its kind, the namespace it lives in, and its name there."""

from __future__ import annotations

import enum
from typing import NamedTuple


class Kind(enum.Enum):
    """Resource kinds. Their order of creation comes from the specs' edges (registry.py)."""

    BRIDGE = "bridge"
    NAMESPACE = "namespace"
    INTERFACE = "interface"
    LINK = "link"
    ROUTE = "route"
    NAMESPACE_SYSCTL = "namespace_sysctl"
    NFT_TABLE = "nft_table"
    PORT_MAPPING = "port_mapping"
    SYSCTL = "sysctl"
    IPTABLES_RULE = "iptables_rule"
    IP6TABLES_RULE = "ip6tables_rule"

    @property
    def label(self) -> str:
        """How plans name the kind: a namespace's sysctl is a sysctl there, as the host's is on the host."""
        return "sysctl" if self is Kind.NAMESPACE_SYSCTL else self.value.replace("_", " ")


DEFAULT_ROUTES = {"0.0.0.0/0": "default"}  # route ids are destinations; "default" is how IPv4's is shown (IPv6's: ::/0)


class ResourceId(NamedTuple):
    """`name` is unique within its kind and namespace: "br0", "web1", "eth0", a route's
    destination CIDR ("0.0.0.0/0", "fd00::/64"), a sysctl's dotted key, a link's first end."""

    kind: Kind
    name: str
    namespace: str | None = None  # where it lives; None: the host (a namespace is a host object)

    @property
    def shown_name(self) -> str:
        return DEFAULT_ROUTES.get(self.name, self.name) if self.kind is Kind.ROUTE else self.name

    @property
    def key(self) -> str:
        """The id as one string ("web1/eth0", "web1/default"): the `name` of JSON documents."""
        return self.shown_name if self.namespace is None else f"{self.namespace}/{self.shown_name}"

    @property
    def home(self) -> str | None:
        """The namespace a resource belongs to for scoping and grouping: a namespace's own name."""
        return self.name if self.kind is Kind.NAMESPACE else self.namespace

    def __str__(self) -> str:
        return f"{self.kind.label} {self.key}"


ORPHAN_NAMESPACE = "(host)"  # namespace of a labelled host veth whose peer is lost
