"""engine/probes.py: checks and live addresses -> probes, answers -> verdicts (no kernel)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from netplan_lite.engine import probes
from netplan_lite.engine.probes import Answer, Method, Outcome, Probe
from netplan_lite.model.topology import Check, Expect, Namespace, Protocol, Topology

A4, A6, B4, B6, LO4 = map(ip_address, ("172.31.10.2", "fd00:10::2", "172.31.10.3", "fd00:10::3", "10.0.0.2"))


def lab(*checks: Check, names: tuple[str, ...] = ("a", "b", "c")) -> Topology:
    return Topology("lab", namespaces=tuple(Namespace(n) for n in names), checks=checks)


ADDRESSES = {"a": (A4, A6), "b": (B4, LO4, B6), "c": ()}


def test_usable_addresses_skip_loopback_link_local_and_repeats_and_sort_by_family():
    cidrs = ["127.0.0.1/8", "::1/128", "fe80::1/64", "169.254.1.1/16", "fd00::2/64", "10.0.0.2/32", "172.31.10.3/24", "10.0.0.2/32", "ff02::1/128"]
    assert probes.usable_addresses(cidrs) == tuple(map(ip_address, ("10.0.0.2", "172.31.10.3", "fd00::2")))


def test_a_namespace_target_is_every_address_in_both_families_and_family_narrows_it():
    both = probes.expand(lab(Check("a", "b", ping=True)), ADDRESSES)
    assert [(p.check, p.address, p.family, p.method) for p in both] == [(1, B4, 4, Method.PING), (1, LO4, 4, Method.PING), (1, B6, 6, Method.PING)]
    (only6,) = probes.expand(lab(Check("a", "b", port=80, family=6, line=7)), ADDRESSES)
    assert (only6.address, only6.method, only6.port, only6.line, only6.target) == (B6, Method.TCP, 80, 7, "b")


def test_an_address_target_is_that_address_and_its_family():
    (v6,) = probes.expand(lab(Check("a", "fd00::9", port=53, protocol=Protocol.UDP, expect=Expect.UNREACHABLE)), ADDRESSES)
    assert (v6.address, v6.family, v6.method, v6.expect, v6.target) == (ip_address("fd00::9"), 6, Method.UDP, Expect.UNREACHABLE, "fd00::9")


def test_a_namespace_without_an_address_of_the_family_is_one_probe_that_fails_unsent():
    no_v6, nothing = probes.expand(lab(Check("b", "a", ping=True, family=6), Check("a", "c", ping=True)), {"a": (A4,), "c": ()})
    assert (no_v6.address, no_v6.family, nothing.address, nothing.family) == (None, 6, None, None)
    assert probes.verdict(no_v6, Answer(Outcome.NO_ADDRESS)).reason == "a has no IPv6 address to probe"
    assert probes.verdict(nothing, Answer(Outcome.NO_ADDRESS)).reason == "c has no address to probe"
    unreachable = Probe(1, "a", "c", None, None, expect=Expect.UNREACHABLE)
    assert not probes.verdict(unreachable, Answer(Outcome.NO_ADDRESS)).passed  # nothing was shown unreachable


def test_ping_all_pings_every_other_namespaces_addresses_after_the_checks():
    found = probes.expand(lab(Check("c", "a", ping=True)), ADDRESSES, ping_all=True)
    assert found[0].check == 1
    pairs = [(p.source, p.target, str(p.address)) for p in found[2:]]
    assert pairs == [
        ("a", "b", "172.31.10.3"), ("a", "b", "10.0.0.2"), ("a", "b", "fd00:10::3"),
        ("b", "a", "172.31.10.2"), ("b", "a", "fd00:10::2"),
        ("c", "a", "172.31.10.2"), ("c", "a", "fd00:10::2"), ("c", "b", "172.31.10.3"), ("c", "b", "10.0.0.2"), ("c", "b", "fd00:10::3"),
    ]  # fmt: skip
    assert all(p.check is None and p.method is Method.PING and p.expect is Expect.REACHABLE for p in found[2:])


def test_names_and_labels():
    ping = Probe(2, "h1", "r3", B4, 4)
    assert (ping.label, ping.name) == ("ping", "2: h1 -> r3 172.31.10.3 ping")
    tcp = Probe(None, "h1", "10.66.0.5", ip_address("10.66.0.5"), 4, Method.TCP, 80, Expect.UNREACHABLE)
    assert (tcp.label, tcp.name) == ("tcp/80", "ping-all: h1 -> 10.66.0.5 tcp/80, expect unreachable")


def test_windows_wait_is_for_reachable_and_unreachable_waits_a_second_at_most():
    reachable, unreachable = Probe(1, "a", "b", B4, 4), Probe(1, "a", "b", B4, 4, expect=Expect.UNREACHABLE)
    assert (reachable.window(5), unreachable.window(5), unreachable.window(0.5)) == (5, probes.UNREACHABLE_WAIT, 0.5)
    assert reachable.window(0) == unreachable.window(0) == probes.RESEND  # --wait 0: one send and one resend interval


@pytest.mark.parametrize(
    ("outcome", "reachable", "unreachable"),
    [
        (Outcome.REPLY, True, True),
        (Outcome.REFUSED, False, True),
        (Outcome.UNREACHABLE, False, True),
        (Outcome.TIMEOUT, False, False),
    ],
)
def test_which_answers_settle_a_probe_before_its_window_ends(outcome, reachable, unreachable):
    assert probes.settled(Probe(1, "a", "b", B4, 4), outcome) is reachable
    assert probes.settled(Probe(1, "a", "b", B4, 4, expect=Expect.UNREACHABLE), outcome) is unreachable


@pytest.mark.parametrize(
    ("answer", "passed", "reason"),
    [
        (Answer(Outcome.REPLY, 0.001, "echo reply"), True, ""),
        (Answer(Outcome.REFUSED, 0.001, "connection refused"), False, "connection refused"),
        (Answer(Outcome.TIMEOUT, detail="no reply in 5 s"), False, "no reply in 5 s"),
        (Answer(Outcome.UNREACHABLE, detail="not sent: no route (ENETUNREACH)"), False, "not sent: no route (ENETUNREACH)"),
    ],
)
def test_verdicts_of_a_reachable_probe(answer, passed, reason):
    result = probes.verdict(Probe(1, "a", "b", B4, 4), answer)
    assert (result.passed, result.reason) == (passed, reason)


@pytest.mark.parametrize(
    ("answer", "passed", "reason"),
    [
        (Answer(Outcome.REPLY, 0.001, "echo reply"), False, "reached (echo reply), expected unreachable"),
        (Answer(Outcome.TIMEOUT, detail="no reply in 1 s"), True, "unreachable as expected: no reply in 1 s"),
        (
            Answer(Outcome.UNREACHABLE, detail="not sent: a blackhole route (EINVAL)"),
            True,
            "unreachable as expected: not sent: a blackhole route (EINVAL)",
        ),
        (Answer(Outcome.REFUSED, detail="connection refused"), True, "unreachable as expected: connection refused"),
    ],
)
def test_verdicts_of_an_unreachable_probe(answer, passed, reason):
    result = probes.verdict(Probe(1, "a", "b", B4, 4, expect=Expect.UNREACHABLE), answer)
    assert (result.passed, result.reason) == (passed, reason)


def test_a_report_passes_only_when_every_probe_does():
    good = probes.verdict(Probe(1, "a", "b", B4, 4), Answer(Outcome.REPLY, 0.001))
    bad = probes.verdict(Probe(2, "a", "b", B4, 4), Answer(Outcome.TIMEOUT))
    assert probes.Report("lab", "f.yaml", (good,), 5, 0.1).passed
    report = probes.Report("lab", "f.yaml", (good, bad), 5, 0.1)
    assert not report.passed and report.failures == (bad,)
