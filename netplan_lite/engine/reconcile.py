"""The library's entry points: plan, apply and destroy a topology.

Glue only: observe -> allocate -> desired -> diff -> plan -> execute -> verify.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

from .apply import ActionBug, ActionListener, ActionResult, Kernel, Outcome, VerificationFailed, execute, rollback, touched_namespaces, verify
from .journal import Journal
from .addressing import AllocationError, allocate6
from .assignments import Recorded
from .desired import Assignment, allocate, assign, desired_state
from .diff import Change, Op, diff
from ..errors import ConflictError, KernelError, TopologyError, Problem
from ..model.topology import Topology
from ..resources.nat import LOOPBACK, claim_clashes, desired_claims
from .observation import Observation
from .plan import Plan, make_plan
from ..resources.registry import KINDS
from . import assignments
from .rundir import forget_records
from .scope import EVERYTHING, Scope, targeting, with_partners, with_sources
from ..model.topology import LOOPBACK as LOOPBACK_NAME, InterfaceKey, IPInterface
from ..resources.state import State, resource_json

A = TypeVar("A", bound=IPInterface)


@dataclass(frozen=True)
class Planned:
    topology: str
    plan: Plan
    desired: State  # in the scope
    observation: Observation
    scope: Scope = EVERYTHING
    addresses: Mapping[InterfaceKey, IPv4Interface] = field(default_factory=dict)  # every interface's, allocated
    sources: Mapping[str, str] = field(default_factory=dict)  # the file's data-source namespaces: name -> path
    addresses6: Mapping[InterfaceKey, IPv6Interface] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Digest of the observed state the plan was computed from."""
        return state_fingerprint(self.observation)


@dataclass(frozen=True)
class Applied:
    planned: Planned
    outcome: Outcome = field(default_factory=Outcome)

    @property
    def results(self) -> list[ActionResult]:
        return self.outcome.results

    @property
    def remaining(self) -> list[Change]:
        return self.outcome.remaining

    @property
    def converged(self) -> bool:
        return self.outcome.converged


def compute(
    topology: Topology,
    observation: Observation,
    targets: frozenset[str] | None = None,
    recorded: Recorded | None = None,
    read: Scope = EVERYTHING,
) -> Planned:
    """The plan that makes `observation` match `topology`: all of it, or only the `targets`
    namespaces (and the host objects they need). `recorded` are the addresses of the
    namespaces a targeted observation did not read (assignments.py); `read` what was observed."""
    recorded = recorded or Recorded()
    kept = {**_others(recorded.v4, targets), **observation.assigned}
    kept6 = {**_others(recorded.v6, targets), **observation.assigned6}
    with _allocation(topology):
        addresses = allocate(topology, kept, _out_of_scope(topology, kept, targets))
        addresses6 = allocate6(topology, kept6, _out_of_scope(topology, kept6, targets))
    desired = desired_state(topology, addresses, observation.docker_chains, addresses6)
    scope = read if targets is None else targeting(targets, desired, observation.state, read.sources, read.docker)
    desired = scope.of(desired)
    _refuse_conflicts(topology, desired, observation)
    plan = make_plan(topology.name, diff(desired, scope.of(observation.state)), scope.partial)
    return Planned(topology.name, plan, desired, observation, scope, addresses, data_sources(topology), addresses6)


def _others(recorded: Mapping[InterfaceKey, A], targets: frozenset[str] | None) -> dict[InterfaceKey, A]:
    """The recorded addresses of the namespaces a targeted plan does not read."""
    return {k: a for k, a in recorded.items() if k[0] not in (targets or ())}


@contextlib.contextmanager
def _allocation(topology: Topology) -> Iterator[None]:
    """A subnet or pool too small for its users is a problem with the file."""
    try:
        yield
    except AllocationError as err:
        raise TopologyError([Problem(topology.source, None, None, err.key, str(err))]) from None


def live_assignment(topology: Topology, kernel: Kernel) -> Assignment:
    """The addresses a plan of the whole topology gives now, in both families (those nsnet assigned
    earlier are sticky), and which of them are live, as `nsnet graph` draws them. Reads only the file's
    namespaces (their addresses are all a full plan's allocation depends on) and the bridges;
    changes nothing, takes no lock, and any drift is fine."""
    names = frozenset(ns.name for ns in topology.namespaces)
    observation = kernel.observe(Scope(names, frozenset(), whole_host=False, sources=data_sources(topology)))
    with _allocation(topology):
        return assign(topology, observation.assigned, observation.assigned6)


def _out_of_scope(topology: Topology, kept: Mapping[InterfaceKey, A], targets: frozenset[str] | None) -> frozenset[Any]:
    """Addresses a targeted plan leaves alone: those of live namespaces outside it that left the file."""
    if targets is None:
        return frozenset()
    in_file = {(ns.name, i.name) for ns in topology.namespaces for i in ns.interfaces} | topology.link_ends().keys()
    in_file |= {(ns.name, LOOPBACK_NAME) for ns in topology.namespaces}
    return frozenset(a.ip for key, a in kept.items() if key[0] not in targets and key not in in_file)


def compute_destroy(topology: str, observation: Observation, read: Scope = EVERYTHING) -> Planned:
    """Destroy is a plan against an empty desired state."""
    return Planned(topology, make_plan(topology, diff({}, observation.state)), {}, observation, read)


def data_sources(topology: Topology) -> dict[str, str]:
    return {ns.name: ns.path for ns in topology.namespaces if ns.path}


def _reading(topology: str, sources: Mapping[str, str] | None = None) -> Scope:
    """Every namespace, and the data sources the file names and those the last run used (once
    they leave the file, what nsnet made in them is deleted)."""
    return Scope(sources={**assignments.load_sources(topology), **(sources or {})})


def _foreign_destinations(topology: Topology, observation: Observation) -> list[Problem]:
    """A forward's host_address must be this host's (or a gateway nsnet gives a bridge): a DNAT
    to another address would capture the host's own connections to it."""
    if observation.host_addresses is None:
        return []
    local = observation.host_addresses.keys() | {g for b in topology.bridges for g in (b.gateway, b.gateway6) if g is not None}
    return [
        Problem(
            topology.source,
            None,
            None,
            f"port_forwards.{index}.host_address",
            f"{f.host_address} is not an address of this host: forwarding it would capture the host's own "
            f"{f.protocol.value} connections to {f.host_address}:{f.host_port}; use one of this host's "
            "addresses, or omit host_address to publish on all of them",
        )
        for index, f in enumerate(topology.port_forwards)
        if f.host_address is not None and f.host_address not in LOOPBACK and f.host_address not in local
    ]


def _taken_gateways(topology: Topology, observation: Observation) -> list[Problem]:
    """A bridge's gateway becomes an address of the host: one the host already has elsewhere,
    or its default gateway, would cut it off its uplink."""
    taken = {a: f"on {link}" for a, link in (observation.host_addresses or {}).items()}
    taken.update({a: "the host's default gateway" for a in observation.host_gateways})
    return [
        Problem(
            topology.source,
            None,
            None,
            f"bridges.{b.name}",
            f"gateway {b.gateway} is already {taken[b.gateway]}: giving it to bridge {b.name} could cut the host "
            "off its network; pick a subnet (or `gateway:`) this host does not use",
        )
        for b in topology.bridges
        if b.gateway is not None and b.gateway in taken
    ]


def _overlapping_subnets(topology: Topology, observation: Observation) -> list[Problem]:
    """A bridge's subnet becomes a connected route of the host: overlapping a network the host
    reaches directly on a link nsnet does not own, it takes part of that network's traffic (or
    the host cannot reach some of the bridge's namespaces), unless the file says it is intended."""
    return [
        Problem(topology.source, None, None, f"bridges.{b.name}.subnet", _overlap_message(b.name, b.subnet, network, link))
        for b in topology.bridges
        if b.subnet is not None and not b.allow_overlap
        for network, link in observation.host_networks or ()
        if network.overlaps(b.subnet)
    ]


def _overlap_message(bridge: str, subnet: IPv4Network, network: IPv4Network, link: str) -> str:
    """What the host loses depends on which route is the more specific (the kernel picks it)."""
    held = f"the host's network on {link} (route {network} dev {link} proto kernel)"
    if subnet == network:
        what = f"{subnet} is already {held}: a second route to it, on bridge {bridge}, could take the host's traffic for it away from {link}"
    elif subnet.subnet_of(network):
        what = (
            f"{subnet} lies inside {network}, {held}: the host would send its traffic for {subnet} to bridge {bridge} "
            f"(more specific) and lose the machines on {link} with those addresses"
        )
    else:
        what = (
            f"{subnet} contains {network}, {held}: the host keeps {network} on {link} (more specific), so namespaces on "
            f"bridge {bridge} given addresses in it would be unreachable and could hold those of machines on {link}"
        )
    return f"{what}; pick a subnet this host does not reach directly, or set `allow_overlap: true` on bridge {bridge} if the overlap is intended"


def _refuse_host_cutoff(topology: Topology, observation: Observation) -> None:
    """What would cut the host off or capture its traffic: every problem at once, like the loader's."""
    problems = [*_foreign_destinations(topology, observation), *_taken_gateways(topology, observation), *_overlapping_subnets(topology, observation)]
    if problems:
        raise TopologyError(problems)


def _refuse_conflicts(topology: Topology, desired: State, observation: Observation) -> None:
    _refuse_host_cutoff(topology, observation)
    problems = claim_clashes(desired_claims(topology), observation.foreign_claims)
    missing = [
        f"namespace {rid.name}: nothing at {path} is a network namespace (a `path:` namespace is used, never created)"
        for rid, r in desired.items()
        if (path := KINDS[rid.kind].data_source(r)) and rid not in observation.state
    ]
    if missing:
        raise KernelError("; ".join(missing))
    for rid, resource in desired.items():
        names = KINDS[rid.kind].creates(resource)
        problems += [
            f"namespace {name} already exists ({observation.foreign_namespaces[name]})"
            for name in names.namespaces
            if name in observation.foreign_namespaces
        ]
        problems += [
            f"link {link} (for {rid}) already exists on the host ({observation.foreign_links[link]})"
            for link in names.links
            if link in observation.foreign_links
        ]
    if problems:
        raise ConflictError("refusing to take over what nsnet does not own: " + "; ".join(problems))


def plan(topology: Topology, kernel: Kernel, targets: Iterable[str] = ()) -> Planned:
    """Read the kernel and plan; with `targets`, read and change only those namespaces."""
    everything = _reading(topology.name, data_sources(topology))
    if not targets:
        return compute(topology, kernel.observe(everything), read=everything)
    wanted = frozenset(targets)
    recorded = assignments.load(topology.name)
    if recorded is None:  # the others' addresses are unknown: read them all, change only the targets
        return compute(topology, kernel.observe(everything), wanted, read=everything)
    scope = Scope(wanted | link_partners(topology, wanted), sources=everything.sources)
    return compute(topology, kernel.observe(scope), wanted, recorded, scope)


def link_partners(topology: Topology, namespaces: frozenset[str]) -> frozenset[str]:
    """The namespaces at the other end of the links of `namespaces` (a read must take them in)."""
    ends = [{end.namespace for end in link.ends} for link in topology.links]
    return frozenset(ns for pair in ends if pair & namespaces for ns in pair)


@dataclass(frozen=True)
class RunOptions:
    listener: ActionListener | None = None
    journal: Journal | None = None
    rollback: bool = True  # False: keep partial progress (--no-rollback)
    stop: Callable[[], str | None] = lambda: None  # the name of a pending stop signal
    records: bool = True  # keep the topology's address and data-source records (a CNI call keeps its own)


def run(planned: Planned, kernel: Kernel, options: RunOptions = RunOptions()) -> Applied:
    """Execute a computed plan and verify it; on any failure roll back (unless told not to)."""
    outcome = execute(planned.plan, kernel, options.listener, options.journal, options.stop)
    if outcome.failure is None and outcome.results:
        read = with_sources(planned.scope, planned.sources)  # a data source left out is forgotten: not read
        outcome.remaining = verify(kernel, planned.desired, _verify_scope(read, outcome, planned))
        if outcome.remaining:
            outcome.failure = VerificationFailed(outcome.remaining)
    if outcome.converged and options.journal is not None and options.records:  # a run that keeps records on the host
        assignments.save(planned.topology, Recorded(planned.addresses, planned.addresses6), planned.sources)
        if not planned.desired and not planned.scope.partial:
            forget_records(planned.topology)
    if outcome.failure is not None and options.rollback:
        rollback(kernel, outcome, options.journal)
    if options.journal is not None:
        undone = options.rollback and not outcome.not_rolled_back
        options.journal.close(clean=outcome.failure is None or undone)
    if isinstance(outcome.failure, ActionBug):
        raise outcome.failure  # an internal error, not a kernel's refusal: after the rollback
    return Applied(planned, outcome)


def _verify_scope(scope: Scope, outcome: Outcome, planned: Planned) -> Scope:
    """Read again only the namespaces the run touched, unless it removed host links (a veth
    goes with its namespace too): the kernel removes a deleted namespace's host veth ends a
    moment later, and only a full read (of the plan's scope) sees one still there."""
    if any(r.action.op is Op.DELETE and KINDS[r.action.id.kind].creates(r.action.before).links for r in outcome.results):
        return scope
    touched = with_partners(touched_namespaces(outcome), planned.desired, planned.observation.state)
    return scope.reading(touched, whole_host=False)


def apply(topology: Topology, kernel: Kernel, options: RunOptions = RunOptions()) -> Applied:
    return run(plan(topology, kernel), kernel, options)


def plan_destroy(topology: str, kernel: Kernel) -> Planned:
    scope = _reading(topology)
    return compute_destroy(topology, kernel.observe(scope), scope)


def destroy(topology: str, kernel: Kernel, options: RunOptions = RunOptions()) -> Applied:
    return run(plan_destroy(topology, kernel), kernel, options)


def state_fingerprint(observation: Observation) -> str:
    """A stable digest of what a plan depends on in the kernel."""
    doc: dict[str, Any] = {str(rid): resource_json(r) for rid, r in sorted(observation.state.items(), key=lambda i: str(i[0]))}
    assigned = [*observation.assigned.items(), *observation.assigned6.items()]
    doc["assigned"] = sorted(f"{ns}/{i}={a}" for (ns, i), a in assigned)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
