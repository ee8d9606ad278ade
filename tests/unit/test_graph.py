"""nsnet graph: DOT that Graphviz accepts, well-formed Mermaid, everything in the file drawn; no root, no kernel."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface
from pathlib import Path

import pytest
from builders import EXAMPLE, one_bridge, run_cli as run, topology

from netplan_lite.render import graph
from netplan_lite.model import loader, netem
from netplan_lite.engine import reconcile
from netplan_lite.engine.desired import Assignment, allocate, allocate6
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.model.topology import Bridge, Interface, Namespace, PortForward, Protocol, Topology

ROOT = Path(__file__).resolve().parents[2]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")

# Odd but valid names (`.`, `-`, `_`, a namespace called `end`, names that sanitise alike),
# three bridges (one without a subnet, one with a custom gateway), a namespace with two
# interfaces, one without any, a udp forward, a localhost-only forward to a named interface.
TRICKY = """\
name: tricky-lab
bridges:
  br-front_1: {subnet: 10.10.0.0/24, masquerade: true}
  br_back-2: {subnet: 10.20.0.0/29, gateway: 10.20.0.6}
  l2_only: {}
namespaces:
  app.v2-blue_x:
    interfaces:
      eth0: {bridge: br-front_1}
      eth-1_b: {bridge: br_back-2, address: 10.20.0.2}
  db-1:
    interfaces:
      eth0: {bridge: br_back-2}
  end:
    interfaces:
      e0: {bridge: l2_only}
  o.x:
    interfaces:
      x0: {bridge: l2_only, address: 192.168.7.5/24}
  a.b:
    interfaces:
      eth0: {bridge: br-front_1, address: 10.10.0.50}
  a-b:
    interfaces:
      eth0: {bridge: br-front_1}
  a_b: {}
port_forwards:
  - {host_port: 5353, namespace: app.v2-blue_x, port: 53, protocol: udp}
  - {host_port: 8443, namespace: app.v2-blue_x, port: 443, interface: eth-1_b, host_address: 127.0.0.1}
  - {host_port: 5432, namespace: db-1, port: 5432}
"""

# Names no topology file may hold (the schema forbids them), built in memory: the
# escaping must hold anyway, since graph.py takes any Topology.
HOSTILE_BRIDGE = 'br"<b>\\N#|`%%{init}%%'
HOSTILE_NS = 'ns "quoted" \\l & \u00e9'


def hostile() -> Topology:
    bridge = Bridge(HOSTILE_BRIDGE, IPv4Network("10.9.0.0/24"), IPv4Address("10.9.0.1"))
    ns = Namespace(HOSTILE_NS, (Interface('e"th\\0', HOSTILE_BRIDGE, "nsv0", IPv4Interface("10.9.0.7/24")), Interface("end", HOSTILE_BRIDGE, "nsv1")))
    forward = PortForward(80, HOSTILE_NS, 8080, Protocol.UDP, interface="end")
    return Topology('t"x', (bridge,), (ns, Namespace("end")), (forward,))


def tricky() -> Topology:
    return topology(TRICKY)


def example() -> Topology:
    return loader.load_file(EXAMPLE)


def ring() -> Topology:
    """The routed dual-stack lab: links (one impaired), pool loopbacks, switches, IPv6."""
    return loader.load_file(ROOT / "examples" / "ring.yaml")


# Two routers and a host: a link impaired the same on both ends, one with different impairments
# per end, one set down with pinned addresses; loopbacks from the pool and pinned; a dual-stack
# bridge with gateways and an IPv6 forward; a namespace with links only.
ROUTED = """\
name: routed
addressing:
  p2p: {ipv4: 10.1.0.0/24, prefix: 31, ipv6: "fd00:1::/64", prefix6: 127}
  loopback: {ipv4: 10.0.0.0/24, ipv6: "fd00::/64"}
bridges:
  lan: {subnet: [172.30.9.0/24, "fd00:9::/64"]}
namespaces:
  r1:
    loopback: auto
    interfaces:
      lan0: {bridge: lan, address: 172.30.9.10}
  r2:
    loopback: [10.9.9.9/32]
  r3: {}
links:
  - endpoints: ["r1:e12", "r2:e21"]
    netem: {delay: 20ms, loss: 1%}
  - endpoints: ["r2:e23", "r3:e32"]
    netem: {"r2:e23": {delay: 5ms}, "r3:e32": {rate: 100mbit}}
  - endpoints: ["r3:e31", "r1:e13"]
    addresses: {"r3:e31": [10.2.0.0/31], "r1:e13": [10.2.0.1/31]}
    up: false
port_forwards:
  - {host_port: 8080, namespace: r1, port: 80, host_address: "fd00:9::1"}
"""


def routed() -> Topology:
    return topology(ROUTED)


MAKERS = [example, tricky, hostile, ring, routed]
MAKER_IDS = ["example", "tricky", "hostile", "ring", "routed"]


def examples() -> list[Path]:
    return sorted((ROOT / "examples").glob("*.yaml"))


# what must be drawn


def expected_texts(topo: Topology) -> list[str]:
    """Every name, subnet, gateway, address in both families (allocated ones as apply would give
    them, loopbacks and link ends too), link end, impairment and forward."""
    addresses = [*allocate(topo, {}).values(), *allocate6(topo, {}).values()]
    texts = [topo.name, *(b.name for b in topo.bridges), *(n.name for n in topo.namespaces)]
    texts += [str(s) for b in topo.bridges for s in b.subnets] + [str(g) for b in topo.bridges for g in (b.gateway, b.gateway6) if g]
    texts += [i.name for n in topo.namespaces for i in n.interfaces] + [str(a) for a in addresses]
    texts += [str(end.endpoint) for link in topo.links for end in link.ends]
    texts += [f"netem {netem.summary(end.netem)}" for link in topo.links for end in link.ends if end.netem]
    for f in topo.port_forwards:
        address = f.host_address
        published = f"{'*' if address is None else f'[{address}]' if address.version == 6 else address}:{f.host_port}"
        texts.append(f"{published} -> {f.namespace}:{f.port}/{f.protocol.value}")
    return [" ".join(t.splitlines()) for t in texts]


def node_count(topo: Topology) -> int:
    """host, bridges, interfaces and loopbacks (one placeholder per namespace without either), links."""
    boxes = sum(max(1, len(n.interfaces) + bool(n.loopback or n.loopback_auto)) for n in topo.namespaces)
    return 1 + len(topo.bridges) + boxes + len(topo.links)


# DOT, checked by Graphviz itself


def dot(text: str, fmt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dot", f"-T{fmt}"], input=text, capture_output=True, text=True, timeout=60)


def drawn(layout: dict) -> tuple[list[str], list[str]]:
    """(node names, every text Graphviz drew) from `dot -Tjson`."""
    objects = layout.get("objects", [])
    nodes = [o["name"] for o in objects if not o["name"].startswith("cluster_")]
    texts = [op["text"] for item in [layout, *objects, *layout.get("edges", [])] for op in item.get("_ldraw_", []) if op["op"] == "T"]
    return nodes, texts


@needs_dot
@pytest.mark.parametrize("make", MAKERS, ids=MAKER_IDS)
def test_dot_renders_with_graphviz(make):
    topo = make()
    text = graph.to_dot(topo)
    done = dot(text, "svg")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("<?xml") and done.stderr == ""


@needs_dot
@pytest.mark.parametrize("make", MAKERS, ids=MAKER_IDS)
def test_dot_draws_every_node_and_text_exactly(make):
    """Quoting holds: no node merged or split, and each user string drawn as written."""
    topo = make()
    done = dot(graph.to_dot(topo), "json")
    assert done.returncode == 0, done.stderr
    nodes, texts = drawn(json.loads(done.stdout))
    assert len(nodes) == len(set(nodes)) == node_count(topo)
    joined = "\n".join(texts)
    for expected in expected_texts(topo):
        assert expected in joined


@needs_dot
@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_every_example_renders(path):
    done = dot(graph.to_dot(loader.load_file(path)), "svg")
    assert done.returncode == 0, done.stderr


def test_dot_quote_escapes_quotes_backslashes_and_newlines():
    assert graph.dot_quote('a"b\\N\nc') == '"a\\"b\\\\N\\nc"'


def test_dot_shape_of_the_example():
    text = graph.to_dot(example())
    assert text.startswith('digraph "nsnet topology demo" {\n') and text.endswith("}\n")
    assert 'subgraph "cluster_ns/web1" {' in text and 'subgraph "cluster_ns/web2" {' in text
    assert '"bridge/br-demo" [label="bridge br-demo\\nsubnet 172.30.0.0/24\\nmasquerade"' in text
    assert '"iface/web2/eth0" [label="eth0\\n172.30.0.2/24 (auto)"' in text
    assert '"host" -> "bridge/br-demo" [label="gateway 172.30.0.1/24"' in text
    assert '"host" -> "iface/web1/eth0" [label="*:8080 -> web1:80/tcp"' in text


# Mermaid, checked structurally

MERMAID_ID = r"[A-Za-z0-9_]+"
SHAPES = {"[": "]", "[[": "]]", "{{": "}}", "([": "])"}
NODE = re.compile(rf'^(?P<id>{MERMAID_ID})(?P<open>\[\[|\{{\{{|\(\[|\[)"(?P<label>[^"]*)"(?P<close>\]\]|\}}\}}|\]\)|\])(?::::{MERMAID_ID})?$')
EDGE = re.compile(rf'^(?P<tail>{MERMAID_ID}) (?:---|-->|-\.->|-\.-)(?:\|"(?P<label>[^"]*)"\|)? (?P<head>{MERMAID_ID})$')
SUBGRAPH = re.compile(rf'^subgraph (?P<id>{MERMAID_ID})\["(?P<label>[^"]*)"\]$')
CLASSDEF = re.compile(rf"^classDef {MERMAID_ID} [^\s\"]+$")
ENTITY = re.compile(r"#(quot|lt|amp|\d+);")


def decode(label: str) -> str:
    """A Mermaid label as it is displayed: entity codes decoded, <br/> as a line break."""
    named = {"quot": '"', "lt": "<", "amp": "&"}
    text = ENTITY.sub(lambda m: named.get(m[1]) or chr(int(m[1])), label.replace("<br/>", "\n"))
    return text


def balanced(line: str) -> bool:
    """Quotes paired, and brackets outside quotes nest properly."""
    stack: list[str] = []
    quoted = False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "([{":
            stack.append(c)
        elif not quoted and c in ")]}":
            if not stack or "([{"[")]}".index(c)] != stack.pop():
                return False
    return not quoted and not stack


def check_mermaid(text: str) -> dict[str, list]:
    """Parse the subset of Mermaid nsnet writes; fail on anything else.

    Returns the node ids, subgraph ids, edges (tail, head) and every displayed label.
    """
    lines = text.splitlines()
    assert re.fullmatch(r"(flowchart|graph) (TB|TD|BT|RL|LR)", lines[0]), lines[0]
    nodes: list[str] = []
    subgraphs: list[str] = []
    edges: list[tuple[str, str]] = []
    labels: list[str] = []
    depth = 0
    for line in (raw.strip() for raw in lines[1:]):
        assert balanced(line), line
        if not line or line.startswith("%%") or CLASSDEF.match(line):
            continue
        if line == "end":
            depth -= 1
            assert depth >= 0, "end without subgraph"
        elif m := SUBGRAPH.match(line):
            depth += 1
            subgraphs.append(m["id"])
            labels.append(decode(m["label"]))
        elif m := NODE.match(line):
            assert SHAPES[m["open"]] == m["close"], line
            nodes.append(m["id"])
            labels.append(decode(m["label"]))
        elif m := EDGE.match(line):
            edges.append((m["tail"], m["head"]))
            labels.append(decode(m["label"] or ""))
        else:
            raise AssertionError(f"not a line nsnet writes: {line!r}")
    assert depth == 0, "subgraph without end"
    declared = nodes + subgraphs
    assert len(declared) == len(set(declared)), "duplicate ids"
    assert "end" not in declared and not any(i[0] in "ox" for i in declared)
    for tail, head in edges:  # a link's halves start at a namespace's frame
        assert (tail in nodes or tail in subgraphs) and head in nodes, (tail, head)
    return {"nodes": nodes, "subgraphs": subgraphs, "edges": edges, "labels": labels}


@pytest.mark.parametrize("make", MAKERS, ids=MAKER_IDS)
def test_mermaid_is_well_formed_and_complete(make):
    topo = make()
    parsed = check_mermaid(graph.to_mermaid(topo))
    assert len(parsed["nodes"]) == node_count(topo)
    assert len(parsed["subgraphs"]) == len(topo.namespaces)
    forwards, veths, uplinks = len(topo.port_forwards), sum(len(n.interfaces) for n in topo.namespaces), len(topo.bridges)
    assert len(parsed["edges"]) == forwards + veths + uplinks + 2 * len(topo.links)
    shown = "\n".join(parsed["labels"])
    for expected in expected_texts(topo):
        if expected != topo.name:  # the title is a comment in Mermaid
            assert expected in shown


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_every_example_is_well_formed_mermaid(path):
    check_mermaid(graph.to_mermaid(loader.load_file(path)))


def test_mermaid_ids_stay_distinct_when_names_sanitise_alike():
    ids = graph.mermaid_ids(graph.drawing(tricky()))
    namespaces = {key: value for key, value in ids.items() if key in ("ns/a.b", "ns/a-b", "ns/a_b")}
    assert len(set(namespaces.values())) == 3
    assert all(re.fullmatch(MERMAID_ID, i) for i in ids.values())


def test_mermaid_text_escapes_quotes_markup_and_directives():
    assert graph.mermaid_text('a"b<c>&#|`%%{x}%%\nz') == "a#quot;b#lt;c>#amp;#35;#124;#96;#37;#37;{x}#37;#37; z"
    assert decode(graph.mermaid_text('a"b<c>&#|`%%{x}%%')) == 'a"b<c>&#|`%%{x}%%'


def test_mermaid_of_the_example():
    text = graph.to_mermaid(example())
    assert text.startswith("flowchart LR\n")
    assert '  br0_br_demo{{"bridge br-demo<br/>subnet 172.30.0.0/24<br/>masquerade"}}:::bridge' in text
    assert '  subgraph ns1_web2["namespace web2"]' in text
    assert '    if1_0_web2_eth0["eth0<br/>172.30.0.2/24 (auto)"]:::iface' in text
    assert '  host -.->|"*:8081 -> web2:80/tcp"| if1_0_web2_eth0' in text


# what is drawn


def test_addresses_are_those_apply_gives_on_an_empty_host():
    boxes = {b.key: b.lines for g in graph.drawing(tricky()).groups for b in g.boxes}
    assert boxes["iface/a-b/eth0"] == ("eth0", "10.10.0.2/24 (auto)")  # lowest free hosts, in name order
    assert boxes["iface/app.v2-blue_x/eth0"] == ("eth0", "10.10.0.3/24 (auto)")
    assert boxes["iface/a.b/eth0"] == ("eth0", "10.10.0.50/24")  # pinned: as written, no "(auto)"
    assert boxes["iface/db-1/eth0"] == ("eth0", "10.20.0.1/29 (auto)")  # the custom gateway .6 leaves .1 free
    assert boxes["iface/end/e0"] == ("e0", "no address")  # l2_only has no subnet
    assert boxes["empty/a_b"] == ("no interfaces",)


# routed labs: links, loopbacks, both families


def boxes_of(d: graph.Drawing) -> dict[str, tuple[str, ...]]:
    return {b.key: b.lines for g in d.groups for b in g.boxes}


def test_a_link_is_a_box_between_two_frames_each_half_labelled_with_its_end():
    first = graph.drawing(routed()).links[0]
    assert first.box == graph.Box("link/0", ("link", "netem delay 20ms loss 1%"))  # the same on both ends: once, on the link
    assert [(h.tail, h.head, h.lines) for h in first.halves] == [
        ("ns/r1", "link/0", ("r1:e12", "10.1.0.0/31 (auto)", "fd00:1::/127 (auto)")),  # the first endpoint takes the lower address
        ("ns/r2", "link/0", ("r2:e21", "10.1.0.1/31 (auto)", "fd00:1::1/127 (auto)")),
    ]
    assert not first.down


def test_impairments_that_differ_per_end_label_each_end():
    wire = graph.drawing(routed()).links[1]
    assert wire.box.lines == ("link",)
    assert [h.lines[0] for h in wire.halves] == ["r2:e23", "r3:e32"]
    assert [h.lines[-1] for h in wire.halves] == ["netem delay 5ms", "netem rate 100mbit"]


def test_a_link_set_down_is_dashed_and_says_so():
    topo = routed()
    wire = graph.drawing(topo).links[2]
    assert wire.down and wire.box.lines == ("link", "down")
    assert [h.lines for h in wire.halves] == [  # IPv4 pinned (no mark), IPv6 from the pool
        ("r3:e31", "10.2.0.0/31", "fd00:1::4/127 (auto)"),
        ("r1:e13", "10.2.0.1/31", "fd00:1::5/127 (auto)"),
    ]
    dot_text = graph.to_dot(topo)
    assert f'"link/2" [label="link\\ndown", {graph.DOWN_BOX_STYLE}];' in dot_text
    assert f'"empty/r3" -> "link/2" [label="r3:e31\\n10.2.0.0/31\\nfd00:1::4/127 (auto)", ltail="cluster_ns/r3", {graph.DOWN_STYLE}];' in dot_text
    mermaid = graph.to_mermaid(topo)
    assert '  ln2(["link<br/>down"]):::linkdown' in mermaid
    assert '  ns2_r3 -.-|"r3:e31<br/>10.2.0.0/31<br/>fd00:1::4/127 (auto)"| ln2' in mermaid
    assert '  ns0_r1 ---|"r1:e12<br/>10.1.0.0/31 (auto)<br/>fd00:1::/127 (auto)"| ln0' in mermaid


def test_loopbacks_are_boxes_in_their_namespace():
    boxes = boxes_of(graph.drawing(routed()))
    assert boxes["iface/r1/lan0"] == ("lan0", "172.30.9.10/24", "fd00:9::2/64 (auto)")  # IPv4 pinned, IPv6 from the bridge
    assert boxes["iface/r1/lo"] == ("lo", "10.0.0.1/32 (auto)", "fd00::1/128 (auto)")  # after the interfaces
    assert boxes["iface/r2/lo"] == ("lo", "10.9.9.9/32")  # pinned, one family
    assert boxes["empty/r3"] == ("links only",)  # a frame for its links to start at
    assert [b.key for g in graph.drawing(routed()).groups if g.key == "ns/r1" for b in g.boxes] == ["iface/r1/lan0", "iface/r1/lo"]


def test_dot_puts_loopbacks_and_links_right_of_the_bridges():
    """Boxes on no bridge get the invisible edge from the host that empty namespaces get, and the
    link halves start at the frames (compound edges), only in a lab that has links."""
    text = graph.to_dot(routed())
    assert '"host" -> "iface/r1/lo" [style=invis, minlen=2];' in text and '"host" -> "iface/r1/lan0" [style=invis' not in text
    assert ", newrank=true, compound=true];" in text and "compound" not in graph.to_dot(example())


def test_both_families_on_bridges_gateways_and_forwards():
    d = graph.drawing(routed())
    assert d.bridges[0].lines == ("bridge lan", "subnet 172.30.9.0/24", "subnet fd00:9::/64")
    assert d.uplinks[0].lines == ("gateway 172.30.9.1/24", "gateway fd00:9::1/64")
    assert [e.label for e in d.forwards] == ["[fd00:9::1]:8080 -> r1:80/tcp"]  # an IPv6 address in brackets, as a URL has it


def test_a_switch_is_drawn_without_an_address():
    d = graph.drawing(ring())
    assert d.bridges[0].lines == ("bridge ring-lan1", "subnet 172.30.60.0/24", "subnet fd00:30:60::/64", "switch (gateway: none)")
    assert d.uplinks[0].lines == () and '"host" -> "bridge/ring-lan1" [label="",' in graph.to_dot(ring())
    assert "  host --- br0_ring_lan1\n" in graph.to_mermaid(ring())


def test_the_ring_example():
    d = graph.drawing(ring())
    boxes = boxes_of(d)
    assert boxes["iface/ring-r2/lo"] == ("lo", "172.30.63.2/32 (auto)", "fd00:30:63::2/128 (auto)")  # the example's comment says so
    assert boxes["iface/ring-h1/eth0"] == ("eth0", "172.30.60.2/24 (auto)", "fd00:30:60::2/64 (auto)")
    assert [w.box.lines for w in d.links] == [("link", "netem delay 20ms"), ("link",), ("link",)]
    assert d.links[2].halves[1].lines == ("ring-r1:e13", "172.30.62.5/31 (auto)", "fd00:30:62::5/127 (auto)")
    assert d.caption == "allocated addresses: (auto) as on an empty host"


# a live lab: its sticky addresses, not the empty host's


def later_lab() -> tuple[Topology, FakeKernel]:
    """b applied alone (it got .2), then a added before it: on an empty host a would get .2."""
    kernel = FakeKernel()
    reconcile.apply(topology(one_bridge("b")), kernel)
    return topology(one_bridge("a", "b")), kernel


def test_a_live_lab_is_drawn_with_its_own_addresses_marked_live_or_next_apply():
    lab, kernel = later_lab()
    live = reconcile.live_assignment(lab, kernel)
    boxes = {b.key: b.lines for g in graph.drawing(lab, live).groups for b in g.boxes}
    assert boxes["iface/b/eth0"] == ("eth0", "172.30.0.2/24 (live)")
    assert boxes["iface/a/eth0"] == ("eth0", "172.30.0.3/24 (next apply)")  # what the next apply gives a
    assert graph.drawing(lab, live).caption == ("allocated addresses: (live) as applied on this host, (next apply) as the next apply would give them")
    from_file = {b.key: b.lines for g in graph.drawing(lab).groups for b in g.boxes}
    assert from_file["iface/a/eth0"] == ("eth0", "172.30.0.2/24 (auto)") and from_file["iface/b/eth0"] == ("eth0", "172.30.0.3/24 (auto)")
    assert graph.drawing(lab).caption == "allocated addresses: (auto) as on an empty host"


LINKED = """\
name: linked
addressing:
  p2p: {ipv4: 10.1.0.0/24, prefix: 31, ipv6: "fd00:1::/64", prefix6: 127}
  loopback: {ipv4: 10.0.0.0/24, ipv6: "fd00::/64"}
namespaces:
  b: {loopback: auto}
  c: {loopback: auto}
links:
  - endpoints: ["b:e0", "c:e0"]
"""


def test_a_live_routed_lab_keeps_its_link_and_loopback_addresses_in_both_families():
    """b-c applied, then a and the link a-b added first: on an empty host they would take the lowest
    blocks; live, b and c keep theirs and the new ones get the next (sticky, like bridge ports)."""
    kernel = FakeKernel()
    assert reconcile.apply(topology(LINKED), kernel).converged
    lab = topology(LINKED.replace("  b: {", "  a: {loopback: auto}\n  b: {").replace("links:\n", 'links:\n  - endpoints: ["a:e0", "b:e1"]\n'))
    live = reconcile.live_assignment(lab, kernel)
    assert live.live == live.live6 == {("b", "e0"), ("c", "e0"), ("b", "lo"), ("c", "lo")}
    assert live.addresses6[("a", "e0")] == IPv6Interface("fd00:1::2/127") and live.addresses[("a", "lo")] == IPv4Interface("10.0.0.3/32")
    d = graph.drawing(lab, live)
    assert boxes_of(d)["iface/b/lo"] == ("lo", "10.0.0.1/32 (live)", "fd00::1/128 (live)")
    assert boxes_of(d)["iface/a/lo"] == ("lo", "10.0.0.3/32 (next apply)", "fd00::3/128 (next apply)")
    assert [h.lines for h in d.links[1].halves] == [
        ("b:e0", "10.1.0.0/31 (live)", "fd00:1::/127 (live)"),
        ("c:e0", "10.1.0.1/31 (live)", "fd00:1::1/127 (live)"),
    ]
    assert d.links[0].halves[0].lines == ("a:e0", "10.1.0.2/31 (next apply)", "fd00:1::2/127 (next apply)")
    assert boxes_of(graph.drawing(lab))["iface/a/lo"] == ("lo", "10.0.0.1/32 (auto)", "fd00::1/128 (auto)")  # from the file alone
    check_mermaid(graph.to_mermaid(lab, live))


def test_an_assignment_without_ipv6_still_draws():
    """Callers that build an Assignment from IPv4 alone (as before dual-stack) keep working."""
    lab, kernel = later_lab()
    old = reconcile.live_assignment(lab, kernel)
    assert graph.drawing(lab, Assignment(old.addresses, old.live)) == graph.drawing(lab, old)


def test_the_caption_is_a_mermaid_comment_and_a_dot_subtitle():
    lab, kernel = later_lab()
    live = reconcile.live_assignment(lab, kernel)
    mermaid = graph.to_mermaid(lab, live)
    assert mermaid.splitlines()[2] == f"  %% {graph.drawing(lab, live).caption}"
    check_mermaid(mermaid)
    assert '<BR/><FONT POINT-SIZE="11">allocated addresses: (live) as applied on this host' in graph.to_dot(lab, live)
    pinned = topology(one_bridge("a", address="172.30.0.9"))
    assert graph.drawing(pinned).caption is None and "%%" not in graph.to_mermaid(pinned).splitlines()[2]


def test_a_lab_with_nothing_live_is_drawn_from_the_file():
    lab = topology(one_bridge("a", "b"))
    assert graph.to_mermaid(lab, reconcile.live_assignment(lab, FakeKernel())) == graph.to_mermaid(lab)


def test_the_command_draws_from_the_file_without_a_record_or_root(capsys, monkeypatch):
    from netplan_lite.cli import commands
    from netplan_lite.engine.assignments import Recorded
    from netplan_lite.errors import PermissionDenied

    assert commands._live_assignment(example()) is None  # no record of a run here: the kernel is not opened
    monkeypatch.setattr("netplan_lite.engine.assignments.load", lambda name: Recorded({("web1", "eth0"): IPv4Interface("172.30.0.9/24")}))

    def not_root(topology):
        raise PermissionDenied("nsnet needs root")

    monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", not_root)
    assert commands._live_assignment(example()) is None
    code, out, _ = run(capsys, "graph", "--format", "mermaid", str(EXAMPLE))
    assert code == 0 and out == graph.to_mermaid(example())


def test_from_file_never_reads_the_kernel(capsys, monkeypatch):
    monkeypatch.setattr("netplan_lite.cli.commands._live_assignment", lambda topology: pytest.fail("read the live lab"))
    code, out, _ = run(capsys, "graph", "--from-file", str(EXAMPLE))
    assert code == 0 and out == graph.to_dot(example())


def test_forwards_end_at_the_interface_they_target():
    d = graph.drawing(tricky())
    assert [(e.head, e.label) for e in d.forwards] == [
        ("iface/app.v2-blue_x/eth0", "*:5353 -> app.v2-blue_x:53/udp"),
        ("iface/app.v2-blue_x/eth-1_b", "127.0.0.1:8443 -> app.v2-blue_x:443/tcp"),
        ("iface/db-1/eth0", "*:5432 -> db-1:5432/tcp"),
    ]


def test_render_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        graph.render(example(), "svg")


# the command


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    def refuse(topology):
        raise AssertionError("nsnet graph tried to open the live kernel")

    monkeypatch.setattr("netplan_lite.kernel.live.open_kernel", refuse)
    monkeypatch.delenv("NSNET_FILE", raising=False)


def test_cli_mermaid(capsys):
    code, out, err = run(capsys, "graph", "--format", "mermaid", str(EXAMPLE))
    assert (code, err) == (0, "")
    assert out == graph.to_mermaid(example())
    check_mermaid(out)


def test_cli_default_format_is_dot(capsys):
    code, out, err = run(capsys, "graph", str(EXAMPLE))
    assert (code, err) == (0, "") and out == graph.to_dot(example())


def test_cli_file_defaults_to_nsnet_file(capsys, monkeypatch):
    monkeypatch.setenv("NSNET_FILE", str(EXAMPLE))
    code, out, _ = run(capsys, "graph")
    assert code == 0 and out.startswith('digraph "nsnet topology demo"')


def test_cli_out_writes_the_file(capsys, tmp_path):
    target = tmp_path / "lab.mmd"
    code, out, err = run(capsys, "graph", "--format", "mermaid", "-o", str(target), str(EXAMPLE))
    assert (code, out, err) == (0, "", "")
    assert target.read_text() == graph.to_mermaid(example())


def test_cli_unwritable_out_is_one_line(capsys, tmp_path):
    target = tmp_path / "missing" / "lab.dot"
    code, out, err = run(capsys, "graph", "-o", str(target), str(EXAMPLE))
    assert (code, out, err) == (1, "", f"nsnet: {target}: cannot write: No such file or directory\n")


@pytest.mark.parametrize("argv, shown", [(["--format", "svg"], "'svg'"), (["--format", "json"], "'json'")])
def test_cli_bad_format_is_one_line(capsys, argv, shown):
    code, out, err = run(capsys, "graph", *argv, str(EXAMPLE))
    assert (code, out, err) == (1, "", f"nsnet: graph: unknown format {shown} (known: dot, mermaid)\n")


def test_cli_missing_file_is_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    code, out, err = run(capsys, "graph", str(missing))
    assert (code, out, err) == (1, "", f"nsnet: {missing}: no such file\n")


def test_cli_bad_file_is_one_line_per_problem(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: demo\nnamespaces:\n  a:\n    interfaces:\n      eth0: {bridge: nope}\n")
    code, out, err = run(capsys, "graph", str(path))
    assert (code, out) == (1, "")
    assert err == f"nsnet: {path}:5:14: namespaces.a.interfaces.eth0.bridge: unknown bridge 'nope' (not under bridges:)\n"


def test_cli_needs_no_kernel_modules(tmp_path):
    """Run as a user would: the kernel, netlink and pyroute2 are never imported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NSNET_FILE", None)
    probe = (
        "import sys; from netplan_lite.engine import rundir; rundir.STATE_DIR = sys.argv[2]; "  # no record of this host's runs
        "from netplan_lite.cli import main as cli; code = cli.main(['graph', '--format', 'mermaid', sys.argv[1]]); "
        "bad = [m for m in sys.modules if m.startswith('netplan_lite.kernel') or m == 'pyroute2']; "
        "sys.exit(code or (3 if bad else 0))"
    )
    argv = [sys.executable, "-c", probe, str(EXAMPLE), str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart LR\n")
