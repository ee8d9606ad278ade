"""The topology's own nft table: its chains and rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .ids import Kind, ResourceId


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
