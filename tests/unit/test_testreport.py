"""render/testreport.py: `nsnet test`'s table, JSON document and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from ipaddress import ip_address

from netplan_lite.engine import probes
from netplan_lite.engine.probes import Answer, Method, Outcome, Probe
from netplan_lite.model.topology import Expect
from netplan_lite.render import testreport
from netplan_lite.render.style import Style

R3 = ip_address("10.0.0.3")


def report() -> probes.Report:
    """Four probes: a ping that passed, a refused connection, an unreachable as expected, an address missing."""
    results = [
        (Probe(1, "h1", "r3", R3, 4, line=30), Answer(Outcome.REPLY, 0.0402, "echo reply", 1, 0.041)),
        (Probe(2, "h1", "h3", ip_address("fd00:20::2"), 6, Method.TCP, 80, line=31), Answer(Outcome.REFUSED, 0.0001, "connection refused", 25, 5.0)),
        (
            Probe(3, "h1", "10.66.0.5", ip_address("10.66.0.5"), 4, expect=Expect.UNREACHABLE, line=32),
            Answer(Outcome.UNREACHABLE, None, "not sent: a blackhole route (EINVAL)", 1, 0.0),
        ),
        (Probe(4, "h1", "r3", None, 6, line=33), Answer(Outcome.NO_ADDRESS)),
    ]
    return probes.Report("ring", "ring.yaml", tuple(probes.verdict(p, a) for p, a in results), 5.0, 5.012)


def test_the_table_has_a_row_per_probe_and_a_summary_naming_the_failed_checks():
    lines = testreport.table(report()).splitlines()
    assert lines[0].split() == ["CHECK", "FROM", "TO", "FAMILY", "RESULT", "RTT", "(ms)", "DETAIL"]
    assert lines[1].split() == ["1", "ping", "h1", "r3", "10.0.0.3", "IPv4", "pass", "40.200"]
    assert lines[2].split()[:8] == ["2", "tcp/80", "h1", "h3", "fd00:20::2", "IPv6", "FAIL", "0.100"] and lines[2].endswith("connection refused")
    assert "3 ping (expect unreachable)" in lines[3] and " pass " in lines[3] and "unreachable as expected: not sent" in lines[3]
    assert lines[4].split()[:6] == ["4", "ping", "h1", "r3", "IPv6", "FAIL"] and lines[4].endswith("r3 has no IPv6 address to probe")
    assert len({line.index(word) for line, word in zip(lines[:5], ["RESULT", "pass", "FAIL", "pass", "FAIL"], strict=True)}) == 1  # one column
    assert lines[-1] == "Topology ring: 2 of 4 probes failed (checks 2, 4) in 5.01 s."


def test_the_summary_when_everything_passed_and_when_ping_all_failed():
    passed = probes.verdict(Probe(1, "a", "b", R3, 4), Answer(Outcome.REPLY, 0.001))
    failed = probes.verdict(Probe(None, "a", "b", R3, 4), Answer(Outcome.TIMEOUT))
    assert testreport.summary(probes.Report("lab", "f", (passed,), 5, 0.2)) == "Topology lab: 1 probe, all passed in 0.20 s."
    assert testreport.summary(probes.Report("lab", "f", (passed, failed), 5, 5)) == "Topology lab: 1 of 2 probes failed (ping-all) in 5.00 s."


def test_colour_only_paints_the_result_and_keeps_the_columns():
    plain, painted = testreport.table(report()), testreport.table(report(), Style(True))
    assert "\033[32mpass  \033[0m" in painted and "\033[31mFAIL  \033[0m" in painted
    assert plain == painted.replace("\033[32m", "").replace("\033[31m", "").replace("\033[1m", "").replace("\033[0m", "")


def test_the_json_document():
    doc = testreport.report_json(report())
    assert (doc["passed"], doc["summary"], doc["wait_seconds"]) == (False, {"probes": 4, "passed": 2, "failed": 2}, 5.0)
    first, refused = doc["probes"][:2]
    assert first["rtt_ms"] == 40.2 and first["outcome"] == "reply" and first["check"] == 1 and first["line"] == 30 and first["reason"] == ""
    assert (refused["method"], refused["port"], refused["family"], refused["attempts"], refused["elapsed_ms"]) == ("tcp", 80, 6, 25, 5000.0)
    assert doc["probes"][3]["address"] is None and doc["probes"][3]["outcome"] == "no-address"


def test_junit_xml_parses_back_with_a_testcase_per_probe_and_failures_with_their_reason():
    text = testreport.junit_xml(report())
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    root = ET.fromstring(text)
    assert root.tag == "testsuites" and (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "2", "0")
    (suite,) = root
    assert suite.tag == "testsuite" and suite.get("name") == "ring" and (suite.get("tests"), suite.get("failures")) == ("4", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "1: h1 -> r3 10.0.0.3 ping",
        "2: h1 -> h3 fd00:20::2 tcp/80",
        "3: h1 -> 10.66.0.5 ping, expect unreachable",
        "4: h1 -> r3 ping",
    ]
    assert {c.get("classname") for c in cases} == {"ring.h1"} and [c.get("line") for c in cases] == ["30", "31", "32", "33"]
    assert all(c.get("file") == "ring.yaml" and float(c.get("time")) >= 0 for c in cases)
    failures = [c.find("failure") for c in cases]
    assert failures[0] is None and failures[2] is None
    assert (failures[1].get("message"), failures[1].get("type")) == ("connection refused", "refused")
    assert "25 attempts" in failures[1].text and failures[3].get("type") == "no-address"
    assert cases[0].find("system-out").text == "echo reply (rtt 40.200 ms, 1 attempt)"


def test_junit_escapes_what_it_quotes():
    odd = probes.verdict(Probe(1, "a", "b", R3, 4), Answer(Outcome.UNREACHABLE, detail='"<&>" unreachable'))
    root = ET.fromstring(testreport.junit_xml(probes.Report("x", "a&b.yaml", (odd,), 5, 1)))
    case = root.find("testsuite/testcase")
    assert case.get("file") == "a&b.yaml" and case.find("failure").get("message") == '"<&>" unreachable'
