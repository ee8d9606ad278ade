"""`nsnet test`'s output: the table, the JSON document (schemas/test.schema.json) and JUnit XML.

JUnit XML is the one test-result format GitHub (test-reporter actions) and
GitLab (`artifacts:reports:junit`) both read: a testsuite per topology, a
testcase per probe (classname `<topology>.<source namespace>`, so a report
groups the probes by where they ran), a <failure> with the reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ..engine.probes import Report, Result
from ..model.topology import Expect
from .style import PLAIN, Style
from ..words import counted

HEADERS = ["CHECK", "FROM", "TO", "FAMILY", "RESULT", "RTT (ms)", "DETAIL"]
RESULT_COLUMN, RTT_COLUMN = 4, 5


def _cells(result: Result) -> list[str]:
    probe, answer = result.probe, result.answer
    check = ("ping-all" if probe.check is None else f"{probe.check} {probe.label}") + (
        " (expect unreachable)" if probe.expect is Expect.UNREACHABLE else ""
    )
    to = probe.target if probe.address is None or probe.target == str(probe.address) else f"{probe.target} {probe.address}"
    rtt = "-" if answer.rtt is None else f"{answer.rtt * 1000:.3f}"
    return [check, probe.source, to, f"IPv{probe.family}" if probe.family else "-", "pass" if result.passed else "FAIL", rtt, result.reason]


def table(report: Report, style: Style = PLAIN) -> str:
    """One row per probe, then one line that says how it went (its last word, for a grep in CI)."""
    rows = [_cells(r) for r in report.results]
    widths = [max(len(cells[i]) for cells in [HEADERS, *rows]) for i in range(len(HEADERS))]
    lines = []
    for cells, result in zip([HEADERS, *rows], [None, *report.results], strict=True):
        padded = [c.rjust(w) if i == RTT_COLUMN else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        if result is not None:
            padded[RESULT_COLUMN] = style.paint("add" if result.passed else "destroy", padded[RESULT_COLUMN])
        lines.append("  ".join(padded).rstrip())
    lines += ["", style.paint("bold", summary(report))]
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    probes = counted(len(report.results), "probe")
    took = f"in {report.seconds:.2f} s"
    if report.passed:
        return f"Topology {report.topology}: {probes}, all passed {took}."
    failed = report.failures
    checks = sorted({r.probe.check for r in failed if r.probe.check is not None})
    parts = [f"check{'s' if len(checks) > 1 else ''} {', '.join(map(str, checks))}"] if checks else []
    parts += ["ping-all"] if any(r.probe.check is None for r in failed) else []
    return f"Topology {report.topology}: {len(failed)} of {probes} failed ({'; '.join(parts)}) {took}."


def report_json(report: Report) -> dict[str, Any]:
    """The document of schemas/test.schema.json."""
    return {
        "format_version": 1,
        "topology": report.topology,
        "file": report.file,
        "passed": report.passed,
        "wait_seconds": report.wait,
        "seconds": round(report.seconds, 3),
        "summary": {"probes": len(report.results), "passed": len(report.results) - len(report.failures), "failed": len(report.failures)},
        "probes": [_probe_json(r) for r in report.results],
    }


def _probe_json(result: Result) -> dict[str, Any]:
    probe, answer = result.probe, result.answer
    return {
        "name": probe.name,
        "check": probe.check,
        "line": probe.line,
        "from": probe.source,
        "to": probe.target,
        "address": None if probe.address is None else str(probe.address),
        "family": probe.family,
        "method": probe.method.value,
        "port": probe.port,
        "expect": probe.expect.value,
        "passed": result.passed,
        "outcome": answer.outcome.value,
        "rtt_ms": None if answer.rtt is None else round(answer.rtt * 1000, 3),
        "attempts": answer.attempts,
        "elapsed_ms": round(answer.elapsed * 1000, 3),
        "detail": answer.detail,
        "reason": result.reason,
    }


def junit_xml(report: Report) -> str:
    """JUnit XML: <testsuites><testsuite name=TOPOLOGY><testcase .../>...; a failed probe's
    testcase holds a <failure> whose message is the reason and whose type is the outcome."""
    counts = {"tests": str(len(report.results)), "failures": str(len(report.failures)), "errors": "0"}
    took = f"{report.seconds:.3f}"
    suites = ET.Element("testsuites", {"name": "nsnet test", **counts, "time": took})
    suite = ET.SubElement(suites, "testsuite", {"name": report.topology, **counts, "skipped": "0", "time": took})
    for result in report.results:
        probe, answer = result.probe, result.answer
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"{report.topology}.{probe.source}", "name": probe.name, "time": f"{answer.elapsed:.3f}", "file": report.file},
        )
        if probe.line is not None:
            case.set("line", str(probe.line))
        rtt = "no reply" if answer.rtt is None else f"rtt {answer.rtt * 1000:.3f} ms"
        if not result.passed:
            failure = ET.SubElement(case, "failure", {"message": result.reason, "type": answer.outcome.value})
            failure.text = f"{probe.name}: {result.reason} ({rtt}, {counted(answer.attempts, 'attempt')})"
        else:
            ET.SubElement(case, "system-out").text = f"{answer.detail or result.reason} ({rtt}, {counted(answer.attempts, 'attempt')})"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
