"""The topology's own nft table: its chains, rules and maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterable

from .ids import Kind, ResourceId
from .spec import KindSpec, Lowering
from ..words import counted


@dataclass(frozen=True, order=True)
class NftRule:
    chain: str
    comment: str  # says what the rule is for; shown in plans
    expr: str  # the rule's expressions as canonical JSON (what `nft -j` prints)


@dataclass(frozen=True, order=True)
class NftChain:
    name: str
    type: str
    hook: str
    prio: int


@dataclass(frozen=True, order=True)
class NftElement:
    """One element of a map, as nft lists it: `tcp . 8080 comment "<owner>" : 10.88.0.5 . 80`."""

    key: tuple[str | int, ...]
    value: tuple[str | int, ...]
    comment: str = ""


@dataclass(frozen=True, order=True)
class NftMap:
    """A map of the table; its elements are resources of their own (port mappings), so they take
    no part in comparing the table: a CNI call adds or removes one element, never the table."""

    name: str
    key: tuple[str, ...]  # the key's nft types: ("inet_proto", "inet_service")
    value: tuple[str, ...]  # the value's: ("ipv4_addr", "inet_service")
    elements: tuple[NftElement, ...] = field(default=(), compare=False)  # observed only


FAMILY = "inet"  # one table for both IP versions
LEGACY_FAMILY = "ip"  # nsnet's tables before dual-stack


@dataclass(frozen=True)
class NftTableState:
    """The topology's own nft table, replaced whole on every change. Observed with family ip when
    such a table is there (an earlier nsnet's, IPv4 only): then the plan replaces it with the inet one."""

    kind: ClassVar[Kind] = Kind.NFT_TABLE
    name: str
    family: str = FAMILY  # first, so that a plan moving a table to inet says so before its rules
    chains: tuple[NftChain, ...] = ()
    rules: tuple[NftRule, ...] = ()
    maps: tuple[NftMap, ...] = ()  # a CNI network's port mappings (their elements: resources/port_mapping.py)

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.name)


def _lower(lowering: Lowering) -> Iterable[NftTableState]:
    table = lowering.nat[0]
    return () if table is None else (table,)


SPEC = KindSpec(
    Kind.NFT_TABLE,
    NftTableState,
    _lower,
    lambda table: f"{counted(len(table.chains), 'chain')}, {counted(len(table.rules), 'rule')}",
    listed=lambda table: tuple(f'rule {r.chain} "{r.comment}"' for r in table.rules),
    host_wide=True,  # one table holds every namespace's forwards
)
