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


@dataclass(frozen=True)
class NftTableState:
    """The topology's own nft table (family ip), replaced whole on every change."""

    kind: ClassVar[Kind] = Kind.NFT_TABLE
    name: str
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
