"""nsnet's ACCEPT rules for the topology's bridges in Docker's DOCKER-USER chain.

Docker sets the FORWARD policy of iptables' filter table to DROP when it
turned ip_forward on itself, and with br_netfilter even frames between two
namespaces on one bridge cross that chain. DOCKER-USER is the chain Docker
provides for the host's own rules (its FORWARD jumps there first), so where
it exists nsnet accepts each bridge's traffic there (`-i BR` and `-o BR`), as
containerlab does. One resource per family holds the topology's rules in the
chain; they carry the comment `nsnet:<topology>`, which is what makes them
nsnet's (kernel/iptables.py reads and writes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable

from .ids import Kind, ResourceId
from .spec import Edge, KindSpec, Lowering

DOCKER_USER = "DOCKER-USER"
DIRECTIONS = ("in", "out")  # -i BRIDGE, -o BRIDGE


def accept(bridge: str, direction: str) -> str:
    """One rule as the state holds it: "br0 in"."""
    return f"{bridge} {direction}"


def parse_accept(rule: str) -> tuple[str, str]:
    bridge, direction = rule.rsplit(" ", 1)
    return bridge, direction


@dataclass(frozen=True)
class IptablesRulesState:
    """The topology's rules in Docker's chain of iptables (IPv4)."""

    kind: ClassVar[Kind] = Kind.IPTABLES_RULE
    chain: str
    accepts: tuple[str, ...]  # sorted "BRIDGE in" / "BRIDGE out"

    @property
    def id(self) -> ResourceId:
        return ResourceId(self.kind, self.chain)


@dataclass(frozen=True)
class Ip6tablesRulesState(IptablesRulesState):
    """The same in ip6tables: Docker has the chain there too, and a dual-stack lab must not
    inherit the IPv6 FORWARD drop that netlab and containerlab users hit most."""

    kind: ClassVar[Kind] = Kind.IP6TABLES_RULE


def _spec(state: type[IptablesRulesState]) -> KindSpec:
    def lower(lowering: Lowering) -> Iterable[IptablesRulesState]:
        topology = lowering.topology
        if state.kind not in lowering.docker_chains or not topology.firewall.docker_user or not topology.bridges:
            return ()
        return (state(DOCKER_USER, tuple(sorted(accept(b.name, d) for b in topology.bridges for d in DIRECTIONS))),)

    return KindSpec(
        state.kind,
        state,
        lower,
        describe,
        after=(Edge(Kind.BRIDGE, "they accept a bridge's traffic: added once it exists, removed before it goes"),),
        host_wide=True,  # one chain holds every bridge's rules
    )


def describe(rules: IptablesRulesState) -> str:
    """`accept br0 in/out, br1 in`."""
    directions: dict[str, list[str]] = {}
    for rule in rules.accepts:
        bridge, direction = parse_accept(rule)
        directions.setdefault(bridge, []).append(direction)
    return "accept " + ", ".join(f"{bridge} {'/'.join(ds)}" for bridge, ds in directions.items())


IPV4_SPEC = _spec(IptablesRulesState)
IPV6_SPEC = _spec(Ip6tablesRulesState)
