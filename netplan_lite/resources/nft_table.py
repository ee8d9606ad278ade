"""The topology's own nft table: its chains and rules."""

from __future__ import annotations

from dataclasses import dataclass
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
