"""Every resource kind's spec, in the order resources are created.

The order is the specs' edges sorted topologically, ties broken by the order
the kinds are declared here, so the same input always gives the same plan.
Deletes run in the reverse order.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Union

from . import bridge, docker_user, interface, link, namespace, namespace_sysctl, nft_table, port_mapping, route, sysctl
from .bridge import BridgeState
from .docker_user import Ip6tablesRulesState, IptablesRulesState
from .ids import Kind, ResourceId
from .interface import InterfaceState
from .link import LinkState
from .namespace import NamespaceState
from .namespace_sysctl import NamespaceSysctlState
from .nft_table import NftTableState
from .port_mapping import PortMappingState
from .route import RouteState
from .spec import KindSpec
from .sysctl import SysctlState

Resource = Union[
    BridgeState,
    NamespaceState,
    InterfaceState,
    LinkState,
    RouteState,
    NamespaceSysctlState,
    SysctlState,
    NftTableState,
    PortMappingState,
    IptablesRulesState,
    Ip6tablesRulesState,
]

DECLARED = (
    bridge.SPEC,
    namespace.SPEC,
    interface.SPEC,
    link.SPEC,
    route.SPEC,
    namespace_sysctl.SPEC,
    nft_table.SPEC,
    port_mapping.SPEC,
    sysctl.SPEC,
    docker_user.IPV4_SPEC,
    docker_user.IPV6_SPEC,
)


def _creation_order(specs: Iterable[KindSpec]) -> dict[Kind, KindSpec]:
    pending = list(specs)
    ordered: dict[Kind, KindSpec] = {}
    while pending:
        ready = next((s for s in pending if all(e.kind in ordered for e in s.after)), None)
        if ready is None:
            raise AssertionError(f"the kinds' edges form a cycle: {[s.kind.value for s in pending]}")
        ordered[ready.kind] = ready
        pending.remove(ready)
    return ordered


KINDS: Mapping[Kind, KindSpec] = _creation_order(DECLARED)
RANKS = {kind: rank for rank, kind in enumerate(KINDS)}


def sort_key(rid: ResourceId) -> tuple[int, str]:
    """Creation order, then the id's text: stable across runs."""
    return RANKS[rid.kind], rid.key


def decode(doc: Mapping[str, Any]) -> Resource:
    """A resource from its JSON object (`kind` names its spec)."""
    return KINDS[Kind(doc["kind"])].decode({k: v for k, v in doc.items() if k != "kind"})
