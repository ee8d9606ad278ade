"""`nsnet test`, the pure part: checks and live addresses -> probes; answers -> verdicts.

A check names a namespace or an address; a probe is one packet exchange the
kernel side (kernel/reachability.py) runs: one source namespace, one target
address, one method. A check `to: <namespace>` becomes a probe per address
that namespace has (both families unless `family:`), `--ping-all` a ping from
every namespace to every address of every other namespace. What counts as an
answer, and when a probe is done, is decided here so that the kernel side
only sends, listens and reports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import ip_address, ip_interface
from typing import Iterable, Mapping, Sequence

from ..model.topology import Check, Expect, IPAddress, Protocol, Topology

DEFAULT_WAIT = 5.0  # seconds a probe that has not passed is retried (--wait)
RESEND = 0.2  # an unanswered echo or datagram is sent again after this long
UNREACHABLE_WAIT = 1.0  # `expect: unreachable` passes after this long without a reply (or --wait, if shorter)


class Method(enum.Enum):
    PING = "ping"
    TCP = "tcp"
    UDP = "udp"


class Outcome(enum.Enum):
    """What came back for a probe."""

    REPLY = "reply"  # an echo reply, an accepted connection, a datagram back
    REFUSED = "refused"  # the target said no: a TCP reset, an ICMP port unreachable
    UNREACHABLE = "unreachable"  # an ICMP error on the way, or the source's kernel would not send (no route, blackhole, prohibit)
    TIMEOUT = "timeout"  # nothing came back in time
    NO_ADDRESS = "no-address"  # the target namespace has no address of the family: nothing was sent


@dataclass(frozen=True)
class Probe:
    check: int | None  # the check's number in the file, from 1; None: --ping-all
    source: str  # the namespace it is sent from
    target: str  # the check's `to:`: a namespace or an address
    address: IPAddress | None  # None: the target namespace has no address of `family` (fails unsent)
    family: int | None  # 4 or 6 (None only with no address and no `family:`)
    method: Method = Method.PING
    port: int | None = None
    expect: Expect = Expect.REACHABLE
    line: int | None = None  # the check's line in the file

    @property
    def label(self) -> str:
        """What the check does: `ping`, `tcp/80`, `udp/53`."""
        return self.method.value if self.port is None else f"{self.method.value}/{self.port}"

    @property
    def name(self) -> str:
        """The probe in one line, as the table and JUnit name it: `1: h1 -> r3 10.0.0.3 ping`."""
        where = self.target if self.address is None or self.target == str(self.address) else f"{self.target} {self.address}"
        number = "ping-all" if self.check is None else str(self.check)
        unreachable = ", expect unreachable" if self.expect is Expect.UNREACHABLE else ""
        return f"{number}: {self.source} -> {where} {self.label}{unreachable}"

    def window(self, wait: float) -> float:
        """Seconds from the start of the run this probe may take: `--wait` (at least one resend interval)
        to pass; an `expect: unreachable` probe waits for a reply only UNREACHABLE_WAIT of it."""
        limit = wait if self.expect is Expect.REACHABLE else min(wait, UNREACHABLE_WAIT)
        return max(limit, RESEND)


@dataclass(frozen=True)
class Answer:
    """The kernel side's account of one probe."""

    outcome: Outcome
    rtt: float | None = None  # seconds from the send that was answered to its answer (none for a timeout)
    detail: str = ""  # what came back, e.g. "connection refused", "host unreachable (ICMP from 10.0.0.1)"
    attempts: int = 0  # packets (or connection attempts) sent
    elapsed: float = 0.0  # seconds from the probe's first send to its answer, or to giving up


@dataclass(frozen=True)
class Result:
    probe: Probe
    answer: Answer
    passed: bool
    reason: str  # why it passed or failed, in a few words


@dataclass(frozen=True)
class Report:
    topology: str
    file: str
    results: tuple[Result, ...]
    wait: float
    seconds: float  # the whole run

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if not r.passed)


# expansion


def usable_addresses(cidrs: Iterable[str]) -> tuple[IPAddress, ...]:
    """The addresses of a namespace that another namespace can probe, in family then address order:
    global ones (on lo too), without loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16,
    fe80::/10: they need an interface to be named), multicast or unspecified ones."""
    found = {ip_interface(cidr).ip for cidr in cidrs}
    usable = [a for a in found if not (a.is_loopback or a.is_link_local or a.is_multicast or a.is_unspecified)]
    return tuple(sorted(usable, key=lambda a: (a.version, a)))


def expand(topology: Topology, addresses: Mapping[str, Sequence[IPAddress]], ping_all: bool = False) -> list[Probe]:
    """Every probe of the file's checks (in file order), then those of --ping-all.
    `addresses` holds each namespace's usable addresses, read from the kernel."""
    probes = [p for number, check in enumerate(topology.checks, 1) for p in _check_probes(number, check, topology, addresses)]
    if ping_all:
        probes += [
            Probe(None, source.name, target.name, address, address.version)
            for source in topology.namespaces
            for target in topology.namespaces
            if target.name != source.name
            for address in addresses.get(target.name, ())
        ]
    return probes


def _check_probes(number: int, check: Check, topology: Topology, addresses: Mapping[str, Sequence[IPAddress]]) -> list[Probe]:
    method = Method.PING if check.ping else Method.UDP if check.protocol is Protocol.UDP else Method.TCP

    def probe(address: IPAddress | None, family: int | None) -> Probe:
        return Probe(number, check.source, check.to, address, family, method, None if check.ping else check.port, check.expect, check.line)

    if topology.namespace(check.to) is None:  # an address (the loader checked it is one)
        target = ip_address(check.to)
        return [probe(target, target.version)]
    wanted = [a for a in addresses.get(check.to, ()) if check.family in (None, a.version)]
    return [probe(a, a.version) for a in wanted] or [probe(None, check.family)]


# verdicts


def settled(probe: Probe, outcome: Outcome) -> bool:
    """Whether an answer ends the probe before its window does: a reply always (it passes a
    reachable probe, fails an unreachable one); a refusal or an ICMP error only an `expect:
    unreachable` probe (a reachable one is retried: a server may be starting, a route converging)."""
    return outcome is Outcome.REPLY or (probe.expect is Expect.UNREACHABLE and outcome in (Outcome.REFUSED, Outcome.UNREACHABLE))


def verdict(probe: Probe, answer: Answer) -> Result:
    """Pass or fail, and why. A probe that could not be sent (no address) always fails."""
    if answer.outcome is Outcome.NO_ADDRESS:
        family = f"IPv{probe.family} " if probe.family else ""
        return Result(probe, answer, False, f"{probe.target} has no {family}address to probe")
    replied = answer.outcome is Outcome.REPLY
    if probe.expect is Expect.REACHABLE:
        return Result(probe, answer, replied, "" if replied else _negative(answer))
    if replied:
        return Result(probe, answer, False, f"reached ({answer.detail or 'replied'}), expected unreachable")
    return Result(probe, answer, True, f"unreachable as expected: {_negative(answer)}")


def _negative(answer: Answer) -> str:
    if answer.outcome is Outcome.TIMEOUT:
        return answer.detail or "no reply"
    return answer.detail or answer.outcome.value
