"""Draw a topology: Graphviz DOT or Mermaid text.

`nsnet graph` must work anywhere (a laptop, CI, a docs build), so this module
is pure: Topology in, text out, no kernel, no root. From the file alone,
automatic addresses are the ones apply would give on an empty host
(`allocate(topology, {})`), marked "(auto)"; but on a host where nsnet
assigned addresses earlier they are sticky and may differ. So the command
hands in the live lab's Assignment when it can read one (the allocation a
plan makes now, engine/desired.py): its addresses are drawn instead, marked
"(live)", or "(next apply)" for those the kernel does not have yet. A caption
(the graph's second label line in DOT, a comment in Mermaid) says which
the markers mean; the same input always gives the same text.

Both formats are rendered from one neutral `Drawing` so that they always
show the same things; only ids, shapes and escaping differ.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Mapping

from ..engine.desired import Assignment, allocate, allocated_interfaces
from ..model.topology import Bridge, Interface, InterfaceKey, Namespace, PortForward, Topology
from ..resources.nat import forward_target

FORMATS = ("dot", "mermaid")
HOST = "host"

# how an allocated address is marked, and what the caption says the mark means (in this order)
AUTO, LIVE, NEXT = "(auto)", "(live)", "(next apply)"
MEANINGS = {LIVE: "(live) as applied on this host", NEXT: "(next apply) as the next apply would give them", AUTO: "(auto) as on an empty host"}


# the neutral drawing


@dataclass(frozen=True)
class Box:
    """A node: `key` identifies it across the drawing, `lines` is its label."""

    key: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """A namespace: a frame around its interfaces (or around one "no interfaces" box)."""

    key: str
    title: str
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    label: str


@dataclass(frozen=True)
class Drawing:
    title: str
    bridges: tuple[Box, ...]
    groups: tuple[Group, ...]
    uplinks: tuple[Edge, ...]  # host -- bridge (the gateway is the host's address on it)
    links: tuple[Edge, ...]  # bridge -- namespace interface (a veth pair)
    forwards: tuple[Edge, ...]  # host -> target interface
    host: Box | None = None
    caption: str | None = None  # what the address marks mean; None: no allocated address drawn


@dataclass(frozen=True)
class _Addresses:
    """Each addressed interface's address, and the mark of each allocated one."""

    addresses: Mapping[InterfaceKey, IPv4Interface]
    marks: Mapping[InterfaceKey, str]

    @classmethod
    def of(cls, topology: Topology, live: Assignment | None) -> _Addresses:
        """The live lab's, when it has any allocated address; else as on an empty host."""
        auto = allocated_interfaces(topology)
        if live is None or not live.live:
            addresses = allocate(topology, {})
            return cls(addresses, {k: AUTO for k in auto if k in addresses})
        return cls(live.addresses, {k: LIVE if k in live.live else NEXT for k in auto if k in live.addresses})

    @property
    def caption(self) -> str | None:
        used = set(self.marks.values())
        meanings = [text for mark, text in MEANINGS.items() if mark in used]
        return "allocated addresses: " + ", ".join(meanings) if meanings else None


def drawing(topology: Topology, live: Assignment | None = None) -> Drawing:
    """What to draw: the topology with the live lab's addresses (`live`, if it has any allocated
    address), else with those apply would give on an empty host."""
    addresses = _Addresses.of(topology, live)
    column = {b.name: n for n, b in enumerate(topology.bridges)}
    forwards = tuple(_forward_edge(topology, f) for f in topology.port_forwards)
    return Drawing(
        title=f"nsnet topology {topology.name}",
        bridges=tuple(_bridge_box(b) for b in topology.bridges),
        uplinks=tuple(_uplink(b) for b in topology.bridges),
        groups=tuple(_group(ns, addresses, column) for ns in _untangled(topology, column)),
        links=tuple(_link(ns, i) for ns in topology.namespaces for i in ns.interfaces),
        forwards=forwards,
        host=Box(HOST, ("host",)) if topology.bridges or forwards else None,
        caption=addresses.caption,
    )


def _bridge_key(name: str) -> str:
    return f"bridge/{name}"


def _iface_key(namespace: str, interface: str) -> str:
    return f"iface/{namespace}/{interface}"


def _empty_key(namespace: str) -> str:
    return f"empty/{namespace}"


def _bridge_box(bridge: Bridge) -> Box:
    """Name, subnet and masquerade; the gateway labels the bridge's edge to the host."""
    lines = [f"bridge {bridge.name}", f"subnet {bridge.subnet}" if bridge.subnet else "no subnet (layer 2)"]
    if bridge.masquerade:
        lines.append("masquerade")
    return Box(_bridge_key(bridge.name), tuple(lines))


def _uplink(bridge: Bridge) -> Edge:
    """The bridge is a host interface: its gateway address is the host's address on it."""
    gateway = bridge.gateway_interface
    return Edge(HOST, _bridge_key(bridge.name), f"gateway {gateway}" if gateway else "")


def _address_text(ns: Namespace, iface: Interface, addresses: _Addresses) -> str:
    """The interface's address as the file gives it, or as allocated, with its mark."""
    key = (ns.name, iface.name)
    address = addresses.addresses.get(key)
    if address is None:
        return "no address"
    mark = addresses.marks.get(key)
    return f"{address} {mark}" if mark else str(address)


def _untangled(topology: Topology, column: Mapping[str, int]) -> list[Namespace]:
    """Namespaces by the mean position of their bridges (then name), empty ones last.

    Graphviz and Mermaid lay out from the input order and keep a frame whole,
    so a namespace on two bridges drawn between each bridge's other namespaces
    keeps the veth links from crossing; name order would tangle them.
    """

    def key(ns: Namespace) -> tuple[float, str]:
        places = [column[i.bridge] for i in ns.interfaces]
        return (sum(places) / len(places) if places else float("inf"), ns.name)

    return sorted(topology.namespaces, key=key)


def _group(ns: Namespace, addresses: _Addresses, column: Mapping[str, int]) -> Group:
    """A namespace frame, interfaces in bridge order; an empty namespace gets a placeholder box (empty frames vanish in DOT)."""
    ifaces = sorted(ns.interfaces, key=lambda i: column[i.bridge])
    boxes = tuple(Box(_iface_key(ns.name, i.name), (i.name, _address_text(ns, i, addresses))) for i in ifaces)
    return Group(f"ns/{ns.name}", f"namespace {ns.name}", boxes or (Box(_empty_key(ns.name), ("no interfaces",)),))


def _link(ns: Namespace, iface: Interface) -> Edge:
    """The veth pair, labelled with its host end: the hashed name `ip link` shows on the host."""
    return Edge(_bridge_key(iface.bridge), _iface_key(ns.name, iface.name), f"veth {iface.host_name}")


def _forward_edge(topology: Topology, forward: PortForward) -> Edge:
    """host [address:]port -> namespace:port/proto, ending at the interface it targets: the box
    showing the address the forward's DNAT goes to (resources/nat.py picks the same interface).

    The loader guarantees the namespace and its target interface exist.
    """
    published = f"{forward.host_address}:{forward.host_port}" if forward.host_address else f"*:{forward.host_port}"
    label = f"{published} -> {forward.namespace}:{forward.port}/{forward.protocol.value}"
    return Edge(HOST, _iface_key(forward.namespace, forward_target(topology, forward).name), label)


# DOT


FONT = "Helvetica,Arial,sans-serif"
BRIDGE_STYLE = 'shape=box, style="rounded,filled,bold", fillcolor="#dbeafe", color="#1d4ed8", penwidth=1.5'
IFACE_STYLE = 'shape=box, style="filled", fillcolor="#ffffff", color="#6b7280"'
EMPTY_STYLE = 'shape=plaintext, fontcolor="#6b7280"'
HOST_STYLE = 'shape=box3d, style="filled", fillcolor="#fef3c7", color="#92400e"'
CLUSTER_STYLE = 'style="rounded,filled"; fillcolor="#f3f4f6"; color="#9ca3af"'
UPLINK_STYLE = 'dir=none, color="#1d4ed8", fontcolor="#1e3a8a", penwidth=2'
LINK_STYLE = 'dir=none, color="#1d4ed8", fontcolor="#1e3a8a"'
FORWARD_STYLE = 'style=dashed, color="#b45309", fontcolor="#92400e", penwidth=1.3'


def dot_quote(text: str) -> str:
    """A DOT double-quoted string: backslashes (label escapes like \\N), quotes and newlines escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_label(lines: tuple[str, ...] | list[str]) -> str:
    """Lines joined with DOT's centred line break, each line escaped on its own."""
    return '"' + "\\n".join(dot_quote(line)[1:-1] for line in lines) + '"'


def _dot_graph_label(d: Drawing) -> str:
    """The title, and under it the caption in a smaller font (an HTML-like label: its own escaping)."""
    if d.caption is None:
        return dot_quote(d.title)
    title, caption = (html.escape(" ".join(text.splitlines())) for text in (d.title, d.caption))
    return f'<{title}<BR/><FONT POINT-SIZE="11">{caption}</FONT>>'


def to_dot(topology: Topology, live: Assignment | None = None) -> str:
    """The topology as a Graphviz digraph, left to right: host, bridges, namespaces."""
    d = drawing(topology, live)
    lines = [
        f"digraph {dot_quote(d.title)} {{",
        f'  graph [rankdir=LR, label={_dot_graph_label(d)}, labelloc=t, fontname="{FONT}", fontsize=16, nodesep=0.35, ranksep=1.1, newrank=true];',
        f'  node [fontname="{FONT}", fontsize=11, margin="0.15,0.06"];',
        f'  edge [fontname="{FONT}", fontsize=11];',
    ]
    if d.host is not None:
        lines.append(_dot_node(d.host, HOST_STYLE))
    lines += [_dot_node(box, BRIDGE_STYLE) for box in d.bridges]
    for group in d.groups:
        lines += _dot_cluster(group)
    lines += [_dot_edge(e, UPLINK_STYLE) for e in d.uplinks]
    lines += [_dot_edge(e, LINK_STYLE) for e in d.links]
    lines += [_dot_edge(e, FORWARD_STYLE) for e in d.forwards]
    lines += _dot_align_empty(d)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(box: Box, style: str, indent: str = "  ") -> str:
    return f"{indent}{dot_quote(box.key)} [label={_dot_label(box.lines)}, {style}];"


def _dot_cluster(group: Group) -> list[str]:
    """A namespace as a cluster (the `cluster` prefix is what makes Graphviz draw a frame)."""
    style = EMPTY_STYLE if group.boxes[0].key.startswith("empty/") else IFACE_STYLE
    return [
        f"  subgraph {dot_quote('cluster_' + group.key)} {{",
        f"    label={dot_quote(group.title)}; fontsize=13; {CLUSTER_STYLE};",
        *(_dot_node(box, style, "    ") for box in group.boxes),
        "  }",
    ]


def _dot_align_empty(d: Drawing) -> list[str]:
    """Invisible edges that put namespaces without interfaces in the namespace column, not by the host."""
    if d.host is None:
        return []
    empty = [g.boxes[0].key for g in d.groups if g.boxes[0].key.startswith("empty/")]
    return [f"  {dot_quote(HOST)} -> {dot_quote(key)} [style=invis, minlen=2];" for key in empty]


def _dot_edge(edge: Edge, style: str) -> str:
    return f"  {dot_quote(edge.tail)} -> {dot_quote(edge.head)} [label={dot_quote(edge.label)}, {style}];"


# Mermaid


MERMAID_ENTITIES = {'"': "#quot;", "#": "#35;", "<": "#lt;", "&": "#amp;", "|": "#124;", "`": "#96;", "%": "#37;"}
MERMAID_CLASSES = (
    "classDef host fill:#fef3c7,stroke:#92400e",
    "classDef bridge fill:#dbeafe,stroke:#1d4ed8,stroke-width:2px",
    "classDef iface fill:#ffffff,stroke:#6b7280",
    "classDef empty fill:none,stroke:none,color:#6b7280",
)


def mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: quotes, tag and entity starts as entity codes.

    `%` too: Mermaid reads `%%{...}%%` anywhere as a directive. A lone `>` is
    plain text in HTML, so `*:8080 -> web1:80/tcp` stays readable in the source.
    """
    text = "".join(MERMAID_ENTITIES.get(c, c) for c in text)
    return " ".join(text.splitlines())


def _mermaid_label(lines: tuple[str, ...] | list[str]) -> str:
    return '"' + "<br/>".join(mermaid_text(line) for line in lines) + '"'


def mermaid_ids(d: Drawing) -> dict[str, str]:
    """Node and subgraph ids: a kind prefix and an index make them unique, the sanitised name readable.

    Names may hold `.` and `-` (not valid in Mermaid ids) and `a.b`/`a-b`/`a_b`
    would sanitise alike, hence the index; the prefixes also keep ids off
    Mermaid keywords (`end`) and off the `o`/`x` edge-end letters.
    """
    ids = {HOST: HOST}
    for n, box in enumerate(d.bridges):
        ids[box.key] = f"br{n}_{_sanitise(box.key)}"
    for n, group in enumerate(d.groups):
        ids[group.key] = f"ns{n}_{_sanitise(group.key)}"
        for k, box in enumerate(group.boxes):
            ids[box.key] = f"if{n}_{k}_{_sanitise(box.key)}"
    return ids


def _sanitise(key: str) -> str:
    """The name part of a key (after its kind), with anything but letters and digits as `_`."""
    return re.sub(r"[^A-Za-z0-9]", "_", key.split("/", 1)[1])


def to_mermaid(topology: Topology, live: Assignment | None = None) -> str:
    """The topology as a Mermaid flowchart, left to right: host, bridges, namespaces; the title
    and the caption are comments (Mermaid has no flowchart caption)."""
    d = drawing(topology, live)
    ids = mermaid_ids(d)
    lines = ["flowchart LR", f"  %% {mermaid_text(d.title)}"]
    if d.caption is not None:
        lines.append(f"  %% {mermaid_text(d.caption)}")
    if d.host is not None:
        lines.append(f"  {HOST}[[{_mermaid_label(d.host.lines)}]]:::host")
    lines += [f"  {ids[box.key]}{{{{{_mermaid_label(box.lines)}}}}}:::bridge" for box in d.bridges]
    for group in d.groups:
        lines += _mermaid_subgraph(group, ids)
    lines += [_mermaid_edge(e, "---", ids) for e in d.uplinks + d.links]
    lines += [_mermaid_edge(e, "-.->", ids) for e in d.forwards]
    lines += [f"  {c}" for c in MERMAID_CLASSES]
    return "\n".join(lines) + "\n"


def _mermaid_edge(edge: Edge, arrow: str, ids: Mapping[str, str]) -> str:
    label = f"|{_mermaid_label([edge.label])}|" if edge.label else ""
    return f"  {ids[edge.tail]} {arrow}{label} {ids[edge.head]}"


def _mermaid_subgraph(group: Group, ids: Mapping[str, str]) -> list[str]:
    css = "empty" if group.boxes[0].key.startswith("empty/") else "iface"
    return [
        f"  subgraph {ids[group.key]}[{_mermaid_label([group.title])}]",
        *(f"    {ids[box.key]}[{_mermaid_label(box.lines)}]:::{css}" for box in group.boxes),
        "  end",
    ]


def render(topology: Topology, fmt: str, live: Assignment | None = None) -> str:
    """The drawing in `fmt` (one of FORMATS), with the live lab's addresses if `live` is given."""
    if fmt == "dot":
        return to_dot(topology, live)
    if fmt == "mermaid":
        return to_mermaid(topology, live)
    raise ValueError(f"unknown graph format {fmt!r} (known: {', '.join(FORMATS)})")
