"""Draw a topology: Graphviz DOT or Mermaid text.

What is drawn: the host, the bridges (a switch when nsnet gives the host no
address on it, `gateway: none`), each namespace as a frame around its bridged
interfaces and its loopback, and each point-to-point link as a line from one
frame to the other through a small box (its impairments, `down`), each half
labelled with its end and the end's addresses, so that they sit by their
namespace; addresses in both families, IPv4 first.

`nsnet graph` must work anywhere (a laptop, CI, a docs build), so this module
is pure: Topology in, text out, no kernel, no root. From the file alone,
automatic addresses are the ones apply would give on an empty host
(`allocate(topology, {})`, `allocate6`), marked "(auto)"; but on a host where nsnet
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
from typing import Mapping

from ..engine.desired import Assignment, allocate, allocate6, allocated_keys
from ..model.topology import LOOPBACK, Bridge, Interface, InterfaceKey, IPInterface, Link, LinkEnd, Namespace, PortForward, Topology
from ..resources.link import netem_text
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
    """A namespace: a frame around its bridged interfaces and loopback (or one placeholder box)."""

    key: str
    title: str
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    lines: tuple[str, ...] = ()  # the label

    @property
    def label(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Wire:
    """A point-to-point link: its box (impairments both ends share, `down`) and one half from each
    end's namespace frame (a group key) to the box, labelled with that end."""

    box: Box
    halves: tuple[Edge, Edge]
    down: bool = False


@dataclass(frozen=True)
class Drawing:
    title: str
    bridges: tuple[Box, ...]
    groups: tuple[Group, ...]
    uplinks: tuple[Edge, ...]  # host -- bridge (the gateway is the host's address on it)
    ports: tuple[Edge, ...]  # bridge -- namespace interface (a veth pair)
    links: tuple[Wire, ...]  # namespace -- link -- namespace
    forwards: tuple[Edge, ...]  # host -> target interface
    host: Box | None = None
    caption: str | None = None  # what the address marks mean; None: no allocated address drawn


@dataclass(frozen=True)
class _Addresses:
    """The addresses of each interface, link end and loopback, per family (IPv4 first), and the
    mark of each allocated one."""

    families: tuple[Mapping[InterfaceKey, IPInterface], ...]
    marks: tuple[Mapping[InterfaceKey, str], ...]  # per family, as `families`

    @classmethod
    def of(cls, topology: Topology, live: Assignment | None) -> _Addresses:
        """The live lab's, when it has any allocated address; else as on an empty host."""
        auto = (allocated_keys(topology, 4), allocated_keys(topology, 6))
        if live is None or not (live.live or live.live6):
            empty: tuple[Mapping[InterfaceKey, IPInterface], ...] = (allocate(topology, {}), allocate6(topology, {}))
            return cls(empty, tuple({k: AUTO for k in keys if k in a} for keys, a in zip(auto, empty, strict=True)))
        found: tuple[Mapping[InterfaceKey, IPInterface], ...] = (live.addresses, live.addresses6)
        marked = zip(auto, found, (live.live, live.live6), strict=True)
        return cls(found, tuple({k: LIVE if k in now else NEXT for k in keys if k in a} for keys, a, now in marked))

    def texts(self, key: InterfaceKey) -> list[str]:
        """The addresses of `key`, IPv4 first, each allocated one with its mark."""
        return [f"{a[key]} {m[key]}" if key in m else str(a[key]) for a, m in zip(self.families, self.marks, strict=True) if key in a]

    @property
    def caption(self) -> str | None:
        used = {mark for marks in self.marks for mark in marks.values()}
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
        groups=tuple(_group(topology, ns, addresses, column) for ns in _untangled(topology, column)),
        ports=tuple(_port(ns, i) for ns in topology.namespaces for i in ns.interfaces),
        links=tuple(_wire(n, link, addresses) for n, link in enumerate(topology.links)),
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


def _group_key(namespace: str) -> str:
    return f"ns/{namespace}"


def _bridge_box(bridge: Bridge) -> Box:
    """Name, subnets and masquerade; the gateways label the bridge's edge to the host, and a
    bridge with subnets but no gateway is a switch: the host has no address on it."""
    lines = [f"bridge {bridge.name}", *(f"subnet {subnet}" for subnet in bridge.subnets)]
    if not bridge.subnets:
        lines.append("no subnet (layer 2)")
    elif bridge.gateway_interface is None and bridge.gateway6_interface is None:
        lines.append("switch (gateway: none)")
    if bridge.masquerade:
        lines.append("masquerade")
    return Box(_bridge_key(bridge.name), tuple(lines))


def _uplink(bridge: Bridge) -> Edge:
    """The bridge is a host interface: its gateway addresses are the host's addresses on it."""
    gateways = (bridge.gateway_interface, bridge.gateway6_interface)
    return Edge(HOST, _bridge_key(bridge.name), tuple(f"gateway {g}" for g in gateways if g))


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


def _group(topology: Topology, ns: Namespace, addresses: _Addresses, column: Mapping[str, int]) -> Group:
    """A namespace frame: its interfaces in bridge order, then its loopback if it has addresses;
    without either, a placeholder box (empty frames vanish in DOT; a link needs a frame to end at)."""
    ifaces = sorted(ns.interfaces, key=lambda i: column[i.bridge])
    boxes = [Box(_iface_key(ns.name, i.name), (i.name, *(addresses.texts((ns.name, i.name)) or ["no address"]))) for i in ifaces]
    if loopback := addresses.texts((ns.name, LOOPBACK)):
        boxes.append(Box(_iface_key(ns.name, LOOPBACK), (LOOPBACK, *loopback)))
    linked = any(key[0] == ns.name for key in topology.link_ends())
    placeholder = Box(_empty_key(ns.name), ("links only" if linked else "no interfaces",))
    return Group(_group_key(ns.name), f"namespace {ns.name}", tuple(boxes) or (placeholder,))


def _port(ns: Namespace, iface: Interface) -> Edge:
    """The veth pair, labelled with its host end: the hashed name `ip link` shows on the host."""
    return Edge(_bridge_key(iface.bridge), _iface_key(ns.name, iface.name), (f"veth {iface.host_name}",))


def _wire(index: int, link: Link, addresses: _Addresses) -> Wire:
    """A link (keyed by its place in the file, as links have no names): the box shows the
    impairments both ends share; each half its end as `namespace:interface`, the end's addresses,
    and its own impairments when the other end's differ."""
    impairments = [netem_text(end.netem) for end in link.ends]
    shared = impairments[0] if impairments[0] == impairments[1] else ""
    box = Box(f"link/{index}", ("link", *_netem_lines(shared), *([] if link.up else ["down"])))

    def half(end: LinkEnd, impairment: str) -> Edge:
        lines = (str(end.endpoint), *(addresses.texts(end.endpoint.key) or ["no address"]), *_netem_lines("" if shared else impairment))
        return Edge(_group_key(end.namespace), box.key, lines)

    return Wire(box, (half(link.ends[0], impairments[0]), half(link.ends[1], impairments[1])), down=not link.up)


def _netem_lines(impairment: str) -> list[str]:
    return [f"netem {impairment}"] if impairment else []


def _forward_edge(topology: Topology, forward: PortForward) -> Edge:
    """host [address:]port -> namespace:port/proto, ending at the interface it targets: the box
    showing the address the forward's DNAT goes to (resources/nat.py picks the same interface).

    The loader guarantees the namespace and its target interface exist.
    """
    address = forward.host_address
    published = f"{'*' if address is None else f'[{address}]' if address.version == 6 else address}:{forward.host_port}"
    label = f"{published} -> {forward.namespace}:{forward.port}/{forward.protocol.value}"
    return Edge(HOST, _iface_key(forward.namespace, forward_target(topology, forward).name), (label,))


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
WIRE_BOX_STYLE = 'shape=box, style="rounded,filled", fillcolor="#ecfdf5", color="#047857", fontcolor="#065f46"'
WIRE_STYLE = 'dir=none, color="#047857", fontcolor="#065f46", penwidth=2'
DOWN_BOX_STYLE = 'shape=box, style="rounded,dashed,filled", fillcolor="#f9fafb", color="#9ca3af", fontcolor="#6b7280"'
DOWN_STYLE = 'dir=none, style=dashed, color="#9ca3af", fontcolor="#6b7280", penwidth=2'


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
    layout = f'rankdir=LR, label={_dot_graph_label(d)}, labelloc=t, fontname="{FONT}", fontsize=16, nodesep=0.35, ranksep=1.1, newrank=true'
    layout += ", compound=true" if d.links else ""  # link halves start at a cluster's frame
    lines = [
        f"digraph {dot_quote(d.title)} {{",
        f"  graph [{layout}];",
        f'  node [fontname="{FONT}", fontsize=11, margin="0.15,0.06"];',
        f'  edge [fontname="{FONT}", fontsize=11];',
    ]
    if d.host is not None:
        lines.append(_dot_node(d.host, HOST_STYLE))
    lines += [_dot_node(box, BRIDGE_STYLE) for box in d.bridges]
    for group in d.groups:
        lines += _dot_cluster(group)
    lines += [_dot_edge(e, UPLINK_STYLE) for e in d.uplinks]
    lines += [_dot_edge(e, LINK_STYLE) for e in d.ports]
    lines += _dot_links(d)
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
    """Invisible edges that put the boxes on no bridge (loopbacks, placeholders) in the namespace
    column, not by the host."""
    if d.host is None:
        return []
    bridged = {e.head for e in d.ports}
    loose = [b.key for g in d.groups for b in g.boxes if b.key not in bridged]
    return [f"  {dot_quote(HOST)} -> {dot_quote(key)} [style=invis, minlen=2];" for key in loose]


def _dot_links(d: Drawing) -> list[str]:
    """Each link's box, and its halves: a DOT edge joins nodes, so each half starts at its frame's
    first box, clipped at the frame (ltail). The boxes take the column right of the namespaces,
    which keeps the halves from looping around the namespace column."""
    first = {g.key: g.boxes[0].key for g in d.groups}
    lines = []
    for wire in d.links:
        lines.append(_dot_node(wire.box, DOWN_BOX_STYLE if wire.down else WIRE_BOX_STYLE))
        for half in wire.halves:
            style = f"ltail={dot_quote('cluster_' + half.tail)}, {DOWN_STYLE if wire.down else WIRE_STYLE}"
            lines.append(f"  {dot_quote(first[half.tail])} -> {dot_quote(half.head)} [label={_dot_label(half.lines)}, {style}];")
    return lines


def _dot_edge(edge: Edge, style: str) -> str:
    return f"  {dot_quote(edge.tail)} -> {dot_quote(edge.head)} [label={_dot_label(edge.lines)}, {style}];"


# Mermaid


MERMAID_ENTITIES = {'"': "#quot;", "#": "#35;", "<": "#lt;", "&": "#amp;", "|": "#124;", "`": "#96;", "%": "#37;"}
MERMAID_CLASSES = (
    "classDef host fill:#fef3c7,stroke:#92400e",
    "classDef bridge fill:#dbeafe,stroke:#1d4ed8,stroke-width:2px",
    "classDef iface fill:#ffffff,stroke:#6b7280",
    "classDef empty fill:none,stroke:none,color:#6b7280",
)
MERMAID_LINK_CLASSES = (
    "classDef link fill:#ecfdf5,stroke:#047857,color:#065f46",
    "classDef linkdown fill:#f9fafb,stroke:#9ca3af,stroke-dasharray:4,color:#6b7280",
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
    for n, wire in enumerate(d.links):
        ids[wire.box.key] = f"ln{n}"
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
    lines += [_mermaid_edge(e, "---", ids) for e in d.uplinks + d.ports]
    for wire in d.links:  # from a subgraph: the half starts at the namespace's frame
        lines.append(f"  {ids[wire.box.key]}([{_mermaid_label(wire.box.lines)}]):::{'linkdown' if wire.down else 'link'}")
        lines += [_mermaid_edge(e, "-.-" if wire.down else "---", ids) for e in wire.halves]
    lines += [_mermaid_edge(e, "-.->", ids) for e in d.forwards]
    lines += [f"  {c}" for c in MERMAID_CLASSES + (MERMAID_LINK_CLASSES if d.links else ())]
    return "\n".join(lines) + "\n"


def _mermaid_edge(edge: Edge, arrow: str, ids: Mapping[str, str]) -> str:
    label = f"|{_mermaid_label(edge.lines)}|" if edge.lines else ""
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
