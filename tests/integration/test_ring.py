"""The routed-lab example end to end (examples/ring.yaml, under the test's names and networks):
apply, `nsnet test`, a link end set down by hand (the checks fail with their own exit code, plan
shows the drift, apply repairs it), then, on a kernel with netem, the impairment: its RTT, a `tc`
change by hand (drift), repair, and the impairment removed from the file (changed in place);
and the examples/README.md block, pasted whole. Everything is destroyed and nothing is left."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from docblocks import Block, Clone, Swap, check_sh

from netplan_lite.kernel.capabilities import has_netem

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ring.yaml"
CHECKS_FAILED = 4
NO_NETEM = "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)"


class Ring:
    """examples/ring.yaml rewritten into a lab's names, IPv4 /24s and a random IPv6 ULA prefix."""

    def __init__(self, lab: Any):
        self.lab = lab
        text = EXAMPLE.read_text()
        self.names = {name: f"{lab.prefix}-{name.removeprefix('ring-')}" for name in set(re.findall(r"\bring-[rh][0-9]\b", text))}
        self.names |= {f"ring-lan{i}": f"{lab.prefix}l{i}" for i in (1, 2)}
        self.names["ring"] = f"{lab.prefix}-ring"
        thirds = sorted(set(re.findall(r"172\.30\.(6[0-9])\.", text)))
        subnets = [lab.subnet] + [lab.new_subnet() for _ in thirds[1:]]
        self.prefixes = {f"172.30.{third}.": str(net.network_address).rsplit(".", 1)[0] + "." for third, net in zip(thirds, subnets, strict=True)}
        self.prefixes["fd00:30:"] = f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:"
        self.swap = Swap(names=self.names, prefixes=self.prefixes)
        self.path = lab.dir / "ring.yaml"
        self.write(yaml.safe_load(self.swap.forward(text)))

    def ns(self, name: str) -> str:
        return self.names[f"ring-{name}"]

    @property
    def doc(self) -> dict[str, Any]:
        return yaml.safe_load(self.path.read_text())

    def write(self, doc: dict[str, Any]) -> None:
        self.lab.write(doc, self.path)

    def without_netem(self) -> None:
        doc = self.doc
        for link in doc["links"]:
            link.pop("netem", None)
        self.write(doc)

    def test(self, *args: str) -> tuple[int, dict[str, Any]]:
        rc, out, err = self.lab.nsnet("test", "--json", "--wait", "5", *args, self.path)
        assert rc in (0, CHECKS_FAILED), out + err
        return rc, json.loads(out)

    def rtts(self, report: dict[str, Any], source: str, target: str) -> list[float]:
        return [p["rtt_ms"] for p in report["probes"] if (p["from"], p["to"], p["method"]) == (self.ns(source), self.ns(target), "ping")]

    def apply(self) -> str:
        rc, out, err = self.lab.nsnet("apply", self.path)
        assert rc == 0 and "live state verified" in out, out + err
        return out

    def destroyed(self) -> None:
        rc, out, err = self.lab.nsnet("destroy", self.path)
        assert rc == 0, out + err
        assert not {self.ns(n) for n in ("r1", "r2", "r3", "h1", "h2")} & self.lab.netns_names()
        assert not self.lab.links_with_alias(f"nsnet:{self.names['ring']}")
        assert f"nsnet-{self.names['ring']}" not in self.lab.nft_table_names()


@pytest.fixture
def ring(lab: Any) -> Ring:
    return Ring(lab)


def test_without_netem_the_impaired_lab_is_refused_before_any_change(ring: Ring) -> None:
    if has_netem():
        pytest.skip("this kernel has netem: the refusal cannot happen here")
    rc, out, err = ring.lab.nsnet("apply", ring.path)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "has no netem qdisc (CONFIG_NET_SCH_NETEM" in err, out + err
    assert not {ring.ns(n) for n in ("r1", "r2")} & ring.lab.netns_names()


def test_the_ring_is_built_tested_broken_by_hand_repaired_and_destroyed(ring: Ring) -> None:
    if not has_netem():
        ring.without_netem()
    ring.apply()
    assert ring.lab.ip("-d", "link", "show", ring.names["ring-lan1"]).count("mcast_snooping 0") == 1  # IPv6 neighbours stay found
    ring.lab.serve(ring.ns("h2"), "::", 80, "hello", lifetime=120)
    rc, report = ring.test()
    assert rc == 0, [p for p in report["probes"] if not p["passed"]]
    assert {p["family"] for p in report["probes"]} == {4, 6}
    assert any(p["expect"] == "unreachable" and p["passed"] for p in report["probes"])  # the blackhole

    ring.lab.ip("-n", ring.ns("r2"), "link", "set", "e23", "down")  # failure injection by hand
    rc, report = ring.test("--wait", "1")
    failed = {(p["from"], p["to"]) for p in report["probes"] if not p["passed"]}
    assert rc == CHECKS_FAILED and (ring.ns("h2"), ring.ns("r2")) in failed, failed
    rc, out, err = ring.lab.nsnet("plan", "--detailed-exitcode", ring.path)
    assert rc == 2 and re.search(rf"~ namespace {ring.ns('r2')} / link e23: state down -> up", out), out + err

    ring.apply()
    rc, report = ring.test()
    assert rc == 0, [p for p in report["probes"] if not p["passed"]]
    ring.destroyed()


@pytest.mark.skipif(not has_netem(), reason=NO_NETEM)
def test_an_impairment_is_measured_drifts_by_hand_is_repaired_and_removed_in_place(ring: Ring) -> None:
    r1 = ring.ns("r1")
    ring.apply()
    rc, report = ring.test()
    assert rc == 0 and min(ring.rtts(report, "h1", "r2")) >= 40 and max(ring.rtts(report, "h1", "r3")) < 20, report

    rc, _, err = ring.lab.run("tc", "-n", r1, "qdisc", "change", "dev", "e12", "root", "netem", "delay", "50ms")
    assert rc == 0, err
    rc, out, err = ring.lab.nsnet("plan", "--detailed-exitcode", ring.path)
    assert rc == 2 and "netem delay 50ms -> delay 20ms" in out, out + err
    ring.apply()
    handle = json.loads(ring.lab.run("tc", "-n", r1, "-j", "qdisc", "show", "dev", "e12")[1])[0]["handle"]

    doc = ring.doc
    del doc["links"][0]["netem"]
    ring.write(doc)
    rc, out, err = ring.lab.nsnet("plan", ring.path)
    assert rc == 0 and "1 to change, 0 to destroy" in out and "netem delay 20ms -> (none)" in out, out + err
    assert "link e12" in out and "+ namespace" not in out  # in place: the link is not made again
    ring.apply()
    qdiscs = json.loads(ring.lab.run("tc", "-n", r1, "-j", "qdisc", "show", "dev", "e12")[1])
    assert [q["kind"] for q in qdiscs] == ["noqueue"] and handle
    rc, report = ring.test()
    assert rc == 0 and max(ring.rtts(report, "h1", "r2")) < 20, report
    ring.destroyed()


@pytest.mark.skipif(not has_netem(), reason=NO_NETEM)
def test_the_readme_block_pasted_whole_does_what_its_comments_say(ring: Ring) -> None:
    text = (REPO / "examples" / "README.md").read_text()
    match = re.search(r"<!-- example: ring\.yaml -->\n```sh\n(.*?)```", text, re.S)
    assert match, "examples/README.md has no block marked `<!-- example: ring.yaml -->`"
    clone = Clone(ring.lab.dir / "clone", ring.swap, REPO)
    ring.lab.procs.append(clone.shell.proc)
    target = clone.root / ring.swap.forward("examples/ring.yaml")
    target.write_text(ring.path.read_text())
    ring.lab.register(ring.doc, target)
    try:
        check_sh(clone.shell, ring.swap, Block("sh", match.group(1), text.count("\n", 0, match.start()) + 2), timeout=300)
    finally:
        clone.close()
    assert not {ring.ns(n) for n in ("r1", "h2")} & ring.lab.netns_names()
