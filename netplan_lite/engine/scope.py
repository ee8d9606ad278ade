"""Scopes: which part of a topology a plan reads, compares and changes.

A scope is a predicate over resource ids. EVERYTHING is the whole topology.
`nsnet plan|apply --target NAMESPACE` is a scope of namespaces plus the host
objects they need: the bridges their interfaces join and the host-wide
objects (kinds whose spec says `host_wide`: the nft table, host sysctls) that
no namespace owns alone. A verification after a small change is a scope of
the namespaces it touched, reading only the part of the host they use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..resources.ids import ResourceId
from ..resources.registry import KINDS
from ..resources.state import State


@dataclass(frozen=True)
class Scope:
    namespaces: frozenset[str] | None = None  # None: every namespace
    host: frozenset[ResourceId] | None = None  # the host objects in scope; None: all of them
    whole_host: bool = True  # read every host link (a plan: conflicts need every name); False: only those used
    sources: Mapping[str, str] = field(default_factory=dict)  # data-source namespaces to read: name -> path
    # read Docker's DOCKER-USER chains (iptables, under its host-wide lock): a CNI attachment's plan
    # leaves the accept rules to its network's, so that no container's call waits for that lock
    docker: bool = True

    def __contains__(self, rid: object) -> bool:
        if not isinstance(rid, ResourceId) or self.namespaces is None:
            return True
        if rid.home is None:
            return self.host is None or rid in self.host
        return rid.home in self.namespaces

    @property
    def partial(self) -> bool:
        return self.namespaces is not None

    def of(self, state: State) -> State:
        return state if not self.partial else {rid: r for rid, r in state.items() if rid in self}

    def reading(self, namespaces: Iterable[str], whole_host: bool) -> Scope:
        """The same host objects, read for `namespaces` only (a verification)."""
        return Scope(frozenset(namespaces), self.host, whole_host, self.sources, self.docker)


EVERYTHING = Scope()


def with_partners(namespaces: Iterable[str], *states: State) -> frozenset[str]:
    """The namespaces and those their links reach (in any of `states`): a link end is told from
    a bridged interface only when its peer's namespace is read too."""
    targets = frozenset(namespaces)
    return targets | {ns for state in states for rid, r in state.items() for ns in _reach(rid, r, targets)}


def _reach(rid: ResourceId, resource: Any, targets: frozenset[str]) -> tuple[str, ...]:
    """Every namespace a resource spans, if it touches one of `targets`."""
    spans = KINDS[rid.kind].spans(resource)
    both = (rid.home, *spans) if spans else ()
    return tuple(ns for ns in both if ns is not None) if any(ns in targets for ns in both) else ()


def with_sources(scope: Scope, sources: Mapping[str, str]) -> Scope:
    return Scope(scope.namespaces, scope.host, scope.whole_host, sources, scope.docker)


def targeting(namespaces: Iterable[str], desired: State, observed: State, sources: Mapping[str, str], docker: bool = True) -> Scope:
    """The namespaces (and those their links reach), and the host objects they need (or that are
    host-wide), desired or live."""
    targets = with_partners(namespaces, desired, observed)
    host = {rid for rid in desired.keys() | observed.keys() if rid.home is None and KINDS[rid.kind].host_wide}
    for state in (desired, observed):
        host |= {need for rid, r in state.items() if rid.home in targets for need in KINDS[rid.kind].needs(r)}
    return Scope(targets, frozenset(host), sources=sources, docker=docker)
