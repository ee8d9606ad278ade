"""nsnet fmt: rewrite a topology file in one canonical form, keeping its comments.

The canonical form (what `nsnet fmt` writes and `nsnet fmt --check` expects):

- Key order: `name, addressing, bridges, namespaces, links, port_forwards, firewall,
  checks` at the top level and the schema's order inside every object (pool: ipv4,
  prefix, ipv6, prefix6; bridge: subnet, gateway, mtu, masquerade, allow_overlap;
  namespace: interfaces, routes, sysctls, path, forwarding, loopback; interface:
  bridge, address, mtu, mac; route: to, via, type, dev, metric; link: endpoints,
  netem, addresses, mtu, up; netem: delay, jitter, loss, duplicate, reorder,
  corrupt, rate, limit; port forward: host_port, namespace, port, protocol,
  host_address, interface; check: from, to, ping, port, protocol, expect, family).
  A merge key (`<<`) comes first in its mapping, where PyYAML applies it
  anyway (explicit keys win wherever `<<` is written).
- The user's order of bridges, namespaces and interfaces is kept, never
  sorted: the order of interfaces carries meaning (the first one gives the
  default route and the port-forward target), and for bridges and namespaces
  sorting would turn the first `fmt` of a hand-grouped file into a wholesale
  move of blocks and their comments. Keeping the order, fmt only ever changes
  layout, so its diff is small, reviewable and leaves `git blame` intact;
  a new namespace lands where its author put it. List order (routes, links,
  port forwards, checks) is meaningful and kept, and so is the order of a
  link's per-end `netem` and `addresses` (keyed by endpoints).
- Layout: two-space indentation, sequences indented under their key.
  Containers (the top level, `addressing:`, `bridges:`, `namespaces:`, a
  namespace, `interfaces:`, `routes:`, `links:`, `port_forwards:`, `checks:`)
  are block style. Leaf objects (a pool, a bridge, an interface, a route, a
  link, a port forward, a check: every value a scalar or a flat list or
  mapping) are one flow mapping on one line,
  `eth0: {bridge: br0, address: 10.0.0.2}`, as
  in the project's examples: one line per object keeps a 1000-namespace lab
  readable and a change to an object a one-line diff. A leaf object stays
  block style when a comment sits inside it (a flow mapping cannot hold
  one) or when its line would pass 100 columns. Empty mappings and lists are
  `{}` and `[]`; an empty bridge or namespace written as nothing (`web1:`)
  becomes `web1: {}` (the same thing to the loader).
- Scalars: plain when YAML reads the plain text back as the same string
  (IPv6 addresses, `namespace:interface` endpoints and percentages included,
  `fd00::1`, `r1:e12`, `1%`; not an address that starts or ends with `:`),
  else double-quoted (`mac: "02:00:00:00:00:01"`, `"::1"`); integers in decimal,
  booleans `true`/`false` (YAML 1.1's `yes`/`on`/`0x50`/`0o17` are
  normalised to what they mean).
- Anchors, aliases and merge keys are kept as written (`&client`,
  `*client`, `<<: *defaults`).
- UTF-8 without a byte-order mark, `\\n` line ends, no `%YAML` directive or
  `---`/`...` markers, one newline at the end.

Comments: PyYAML drops comments, and ruamel.yaml's round-trip mode would be
a new runtime dependency whose comment attachment does not survive key
reordering and flow/block changes well. fmt finds every comment itself: the
text between two of the scanner's tokens holds only blanks and comments, so
comments are exactly the `#...` runs in those gaps (plus a comment on a block
scalar's `|`/`>` header line). Each one is attached to an entry (a mapping key
or a sequence item) and moves with it:

- a comment at the end of a line belongs to the outermost entry that starts
  on that line (`eth0: {bridge: br0}  # ...` to eth0), and keeps its column
  when the formatted line still ends before it;
- a comment on its own line belongs to the next entry, re-indented to it,
  unless it is indented deeper than that entry and the block it is indented
  into ends there: then it closes that block (a comment after a namespace's
  last line stays in that namespace);
- comments before the first key are the file's header and stay on top.

Single blank lines between entries are kept (runs of blank lines become
one; none at the start of a block). Before anything is written, the result
is loaded again and must give the same topology, the same data and the same
comments as the input, so a bug here refuses to write instead of changing a
file's meaning.
"""

from __future__ import annotations

import bisect
import collections
import difflib
import ipaddress
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from . import loader, yamlsource
from ..errors import NsnetError

WIDTH = 100  # a flow mapping longer than this (with its indentation and key) is written in block style
INDENT = 2

MERGE_TAG = "tag:yaml.org,2002:merge"
VALUE_TAG = "tag:yaml.org,2002:value"
STR_TAG = "tag:yaml.org,2002:str"
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_COMMENT = re.compile(r"#[^\r\n\x85\u2028\u2029]*")
_BLOCK_HEADER = re.compile(r"[|>][-+0-9]*[ \t]+(#[^\r\n\x85\u2028\u2029]*)")
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_PERCENT = re.compile(r"[0-9]+(?:\.[0-9]+)?%")
_ENDPOINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z][A-Za-z0-9_-]*")


class FmtError(NsnetError):
    """fmt cannot format this file (or would change its meaning: a bug, nothing is written)."""


# the source: nodes, entries and comments


class _Blank:
    """A blank line between entries."""

    def __repr__(self) -> str:
        return "BLANK"


BLANK = _Blank()


@dataclass(eq=False)
class Comment:
    text: str  # from `#` to the end of the line, trailing blanks removed
    index: int
    line: int
    column: int
    standalone: bool  # alone on its line (else at the end of a line with content)


@dataclass(eq=False)
class Node:
    kind: str  # scalar, map, seq, alias
    anchor: str | None
    line: int
    column: int
    end_line: int = 0
    value: Any = None  # scalar: the constructed value; alias: the anchor it names
    tag: str | None = None
    context: str | None = None  # which kind of topology object or section this is
    entries: list[Entry] = field(default_factory=list)
    footer: list[Any] = field(default_factory=list)  # comments closing this block
    owner: Entry | None = None  # the entry this node is the value of


@dataclass(eq=False)
class Entry:
    """One key of a mapping or one item of a sequence: what comments attach to."""

    key: Node | None
    parent: Node
    start: int  # character index where the entry starts
    line: int
    column: int
    depth: int
    value: Node = None  # type: ignore[assignment]
    leading: list[Any] = field(default_factory=list)  # comments and BLANKs on the lines before it
    trailing: list[Comment] = field(default_factory=list)  # comments at the end of its line

    @property
    def end_line(self) -> int:
        return self.value.end_line

    def ancestors(self) -> Iterator[Entry]:
        """This entry, then each entry it sits inside, outwards."""
        entry: Entry | None = self
        while entry is not None:
            yield entry
            entry = entry.parent.owner


# what each part of a topology is, for key order and layout

_USER_KEYED = {"bridges": "bridge", "namespaces": "namespace", "interfaces": "interface"}  # map -> its values
_LISTS = {"routes": "route", "port_forwards": "port_forward", "links": "link", "checks": "check"}  # list -> its items
_FIELDS_OF = {
    "top": {"addressing", "bridges", "namespaces", "links", "port_forwards", "checks"},
    "namespace": {"interfaces", "routes"},
    "link": {"netem"},
}
_NESTED = {"addressing": "pool", "netem": "netem"}  # an object whose keys that hold objects hold these (pools, an end's impairments)
_BLOCK = {"top", "addressing"}  # objects written in block style, as the containers are
_NULL_IS_EMPTY_MAP = {"bridge", "namespace", "interfaces"}  # the loader reads `web1:` as `web1: {}`


def _field_order() -> dict[str, list[str]]:
    schema = loader.topology_schema()
    defs = schema["$defs"]
    order = {"top": list(schema["properties"])}
    for kind in ("addressing", "pool", "bridge", "namespace", "interface", "route", "link", "netem", "port_forward", "check"):
        order[kind] = list(defs[kind]["properties"])
    return order


def _child_context(context: str | None, key: Any) -> str | None:
    if context in _USER_KEYED:
        return _USER_KEYED[context]
    if context in _LISTS:
        return _LISTS[context]
    if context in _NESTED:
        return _NESTED[context]
    if context in _FIELDS_OF and key in _FIELDS_OF[context]:
        return key
    return None


def _scalar_key(entry: Entry) -> Any:
    """The value of an entry's key if it is a scalar (not an alias), else None."""
    key = entry.key
    return key.value if key is not None and key.kind == "scalar" else None


class _Source:
    """The parsed file: a tree of nodes and entries, with every comment attached."""

    def __init__(self, text: str, tree: bool = True):
        self.text = text
        self.entries: list[Entry] = []
        self.header: list[Any] = []
        self._line_starts = [0] + [m.end() for m in _BREAK.finditer(text)]
        self.comments, blanks = self._trivia()
        if not tree:  # only the comments are wanted
            return
        self._events = list(yaml.parse(text, Loader=yamlsource._Loader))
        self._next = 0
        self._resolver = yaml.resolver.Resolver()
        self._constructor = yaml.constructor.SafeConstructor()
        self.root = self._document()
        self._attach(self.comments, blanks)

    # the tree, from the parser's events

    def _document(self) -> Node:
        while not isinstance(self._events[self._next], (yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.ScalarEvent, yaml.AliasEvent)):
            self._next += 1
        return self._node("top", None, 0)

    def _node(self, context: str | None, owner: Entry | None, depth: int) -> Node:
        event = self._events[self._next]
        self._next += 1
        mark, end_mark = yamlsource.start_of(event), yamlsource.end_of(event)
        if isinstance(event, yaml.AliasEvent):
            return Node("alias", None, mark.line, mark.column, end_mark.line, value=event.anchor, owner=owner)
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self._resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag in (MERGE_TAG, VALUE_TAG, STR_TAG):
                value: Any = event.value
            else:
                value = self._constructor.construct_object(yaml.ScalarNode(tag, event.value, style=event.style))
            return Node("scalar", event.anchor, mark.line, mark.column, end_mark.line, value=value, tag=tag, context=context, owner=owner)
        assert isinstance(event, yaml.CollectionStartEvent), "a node starts with an alias, a scalar, a mapping or a sequence"
        kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
        node = Node(kind, event.anchor, mark.line, mark.column, mark.line, context=context, owner=owner)
        end_kind = yaml.MappingEndEvent if kind == "map" else yaml.SequenceEndEvent
        while not isinstance(self._events[self._next], end_kind):
            if kind == "map":
                key_event = self._events[self._next]
                key = self._node(None, None, depth)
                if key.kind not in ("scalar", "alias"):
                    raise FmtError(f"line {key.line + 1}: a mapping or list used as a key cannot be formatted")
                entry = Entry(key, node, yamlsource.start_of(key_event).index, key.line, key.column, depth)
                self.entries.append(entry)
                child = context if key.tag == MERGE_TAG else _child_context(context, key.value)
                entry.value = self._node(child, entry, depth + 1)
                if key.tag == MERGE_TAG and entry.value.kind == "seq":
                    for item in entry.value.entries:
                        item.value.context = context
            else:
                item_mark = yamlsource.start_of(self._events[self._next])
                column = node.column if not event.flow_style else item_mark.column
                entry = Entry(None, node, item_mark.index, item_mark.line, column, depth)
                self.entries.append(entry)
                entry.value = self._node(_child_context(context, None), entry, depth + 1)
            node.entries.append(entry)
        end = self._events[self._next]
        self._next += 1
        if event.flow_style:
            node.end_line = yamlsource.end_of(end).line
        else:
            node.end_line = max([node.line] + [e.end_line for e in node.entries])
        return node

    # comments and blank lines, from the gaps between the scanner's tokens

    def _trivia(self) -> tuple[list[Comment], list[int]]:
        text = self.text
        covered: list[list[int]] = []
        block_headers: list[Comment] = []
        for token in yaml.scan(text, Loader=yamlsource._Loader):
            start, end = token.start_mark.index, token.end_mark.index
            if isinstance(token, yaml.ScalarToken) and token.style in ("|", ">"):
                found = _BLOCK_HEADER.match(text, start)
                if found:
                    block_headers.append(self._comment(found.group(1).rstrip(), found.start(1)))
            if end <= start:
                continue
            if covered and start <= covered[-1][1]:
                covered[-1][1] = max(covered[-1][1], end)
            else:
                covered.append([start, end])
        comments = list(block_headers)
        gaps: list[tuple[int, int]] = []
        position = 0
        for start, end in covered + [[len(text), len(text)]]:
            if start > position:
                gaps.append((position, start))
                comments += [self._comment(m.group().rstrip(), m.start()) for m in _COMMENT.finditer(text, position, start)]
            position = max(position, end)
        blanks = []
        for number, line_start in enumerate(self._line_starts):
            line_end = self._line_end(number)
            if text[line_start:line_end].strip(" \t\ufeff") == "" and _inside(gaps, line_start, line_end):
                blanks.append(line_start)
        end = len(text.rstrip())
        while blanks and blanks[-1] >= end:  # blank lines at the end of the file (and the "line" after its last newline)
            blanks.pop()
        return sorted(comments, key=lambda c: c.index), blanks

    def _line_end(self, number: int) -> int:
        if number + 1 < len(self._line_starts):
            match = _BREAK.search(self.text, self._line_starts[number])
            return match.start() if match else len(self.text)
        return len(self.text)

    def _comment(self, text: str, index: int) -> Comment:
        line = bisect.bisect_right(self._line_starts, index) - 1
        line_start = self._line_starts[line]
        before = self.text[line_start:index]
        column = len(before.replace("\ufeff", ""))
        return Comment(text, index, line, column, before.strip(" \t\ufeff") == "")

    # attaching comments to entries

    def _attach(self, comments: list[Comment], blanks: list[int]) -> None:
        entries = self.entries
        starts = [e.start for e in entries]
        by_line: dict[int, Entry] = {}
        for entry in entries:
            best = by_line.get(entry.line)
            if best is None or entry.depth < best.depth:
                by_line[entry.line] = entry
        trivia = sorted([(c.index, c) for c in comments] + [(b, BLANK) for b in blanks], key=lambda t: t[0])
        pending_blank = False
        flushed = 0  # entries before this index have been passed
        for index, item in trivia:
            while flushed < len(entries) and entries[flushed].start < index:
                if pending_blank:
                    self._blank_before(entries[flushed])
                    pending_blank = False
                flushed += 1
            if isinstance(item, _Blank):  # BLANK
                pending_blank = True
                continue
            comment = item
            following = bisect.bisect_right(starts, index)
            previous = entries[following - 1] if following else None
            nxt = entries[following] if following < len(entries) else None
            if not comment.standalone:
                owner = by_line.get(comment.line) or self._containing(previous, comment.line)
                if owner is None:
                    self.header.append(comment)
                else:
                    owner.trailing.append(comment)
                continue
            target = self._standalone_target(comment, previous, nxt)
            if pending_blank:
                target.append(BLANK)
                pending_blank = False
            target.append(comment)
        if pending_blank and flushed < len(entries):
            self._blank_before(entries[flushed])

    def _blank_before(self, entry: Entry) -> None:
        if entry is self.entries[0] and self.header:
            self.header.append(BLANK)  # between the header and the first key
        else:
            entry.leading.append(BLANK)

    @staticmethod
    def _containing(previous: Entry | None, line: int) -> Entry | None:
        """The innermost entry spanning `line` (an ancestor of the last entry before it), else that entry."""
        if previous is None:
            return None
        for entry in previous.ancestors():
            if entry.end_line >= line:
                return entry
        return previous

    def _standalone_target(self, comment: Comment, previous: Entry | None, nxt: Entry | None) -> list[Any]:
        if previous is None:
            return self.header
        if nxt is not None and comment.column <= nxt.column:
            return nxt.leading
        # indented deeper than the next entry: it closes the block it is indented into, unless
        # that block goes on after it (then it belongs to what follows, in that block)
        block = next((e.parent for e in previous.ancestors() if e.column <= comment.column), self.root)
        if nxt is not None and any(e.parent is block for e in nxt.ancestors()):
            return nxt.leading
        return block.footer


def _inside(gaps: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect.bisect_right(gaps, (start, float("inf"))) - 1
    return i >= 0 and gaps[i][0] <= start and end <= gaps[i][1]


# the canonical text


def _has_comments(items: list[Any]) -> bool:
    return any(isinstance(i, Comment) for i in items)


def _tidy(items: list[Any], strip_start: bool, strip_end: bool = False) -> list[Any]:
    """Runs of blank lines as one; none at the start of a block (or end of a footer)."""
    out: list[Any] = []
    for item in items:
        if item is BLANK and (not out and strip_start or out and out[-1] is BLANK):
            continue
        out.append(item)
    while strip_end and out and out[-1] is BLANK:
        out.pop()
    return out


def scalar_text(value: Any) -> str:
    """A scalar as canonical YAML that reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _plain(value) and _resolve(value) == STR_TAG:
            return value
        return _quoted(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _plain(text: str) -> bool:
    """Text that reads back as itself when written plain, in block and flow style alike (if YAML resolves it to a string)."""
    if _PLAIN.fullmatch(text) or _PERCENT.fullmatch(text) or _ENDPOINT.fullmatch(text):
        return True
    if text[:1] == ":" or text[-1:] == ":":  # `::1` opens a mapping key, `fd00::` ends one
        return False
    try:
        return isinstance(ipaddress.ip_interface(text), ipaddress.IPv6Interface)
    except ValueError:
        return False


_RESOLVER = yaml.resolver.Resolver()


def _resolve(plain: str) -> str:
    return _RESOLVER.resolve(yaml.ScalarNode, plain, (True, False))


def _quoted(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


class _Writer:
    def __init__(self, source: _Source):
        self.source = source
        self.order = _field_order()
        self.lines: list[tuple[str, Comment | None]] = []

    def text(self) -> str:
        header = _tidy(self.source.header, strip_start=True, strip_end=not self.source.root.entries)
        self._trivia(header, 0)
        root = self.source.root
        if root.kind != "map":
            raise FmtError("the top level must be a mapping")
        self._block_map(root, 0)
        rendered = [self._render(text, comment) for text, comment in self.lines]
        return "\n".join(rendered).rstrip("\n") + "\n"

    @staticmethod
    def _render(text: str, comment: Comment | None) -> str:
        if comment is None:
            return text
        if len(text) < comment.column:
            return text.ljust(comment.column) + comment.text
        return f"{text}  {comment.text}"

    def _trivia(self, items: list[Any], indent: int) -> None:
        for item in items:
            self.lines.append(("", None) if item is BLANK else (" " * indent + item.text, None))

    # order and layout decisions

    def ordered(self, node: Node) -> list[Entry]:
        merges = [e for e in node.entries if e.key is not None and e.key.tag == MERGE_TAG]
        rest = [e for e in node.entries if e not in merges]
        fields = self.order.get(node.context or "")
        if fields and node.kind == "map":
            rank = {name: i for i, name in enumerate(fields)}
            rest.sort(key=lambda e: rank.get(_scalar_key(e), len(fields)))
        return merges + rest

    def _compact(self, item: Entry) -> None:
        """A mapping written `- key: value` under its dash: its first key's comments are the item's."""
        value = item.value
        if item.key is not None or value.kind != "map" or value.anchor or not value.entries:
            return
        first = self.ordered(value)[0]
        item.leading += first.leading
        item.trailing += first.trailing
        first.leading, first.trailing = [], []

    def inline(self, node: Node, room: int) -> str | None:
        """The node on one line (a scalar, an alias, a small flow collection), or None for block style."""
        anchor = f"&{node.anchor} " if node.anchor else ""
        if node.kind == "alias":
            return f"*{node.value}"
        if node.kind == "scalar":
            if node.value is None and node.context in _NULL_IS_EMPTY_MAP:
                return anchor + "{}"
            if node.tag in (MERGE_TAG, VALUE_TAG):
                return anchor + str(node.value)
            return anchor + scalar_text(node.value)
        if not node.entries:
            return anchor + ("{}" if node.kind == "map" else "[]")
        if node.context in _USER_KEYED or node.context in _LISTS or node.context in _BLOCK:
            return None
        if _has_comments(node.footer):
            return None
        parts = []
        for entry in self.ordered(node):
            if _has_comments(entry.leading) or entry.trailing:
                return None
            value = entry.value
            if value.kind in ("map", "seq") and any(e.value.kind in ("map", "seq") for e in value.entries):
                return None  # only one level of flow nesting (`<<: [*a, *b]`)
            text = self.inline(value, room)
            if text is None:
                return None
            parts.append(f"{self._key(entry)}: {text}" if node.kind == "map" else text)
        text = anchor + ("{" + ", ".join(parts) + "}" if node.kind == "map" else "[" + ", ".join(parts) + "]")
        return text if len(text) <= room else None

    def _key(self, entry: Entry) -> str:
        key = entry.key
        assert key is not None
        if key.kind == "alias":
            return f"*{key.value} "  # `*a:` would read as an alias named `a:`
        text = str(key.value) if key.tag in (MERGE_TAG, VALUE_TAG) else scalar_text(key.value)
        return f"&{key.anchor} {text}" if key.anchor else text

    # block style

    def _block_map(self, node: Node, indent: int, first_prefix: str | None = None, first_comment: Comment | None = None) -> None:
        for i, entry in enumerate(self.ordered(node)):
            compact = i == 0 and first_prefix is not None
            self._trivia(_tidy(entry.leading + entry.trailing[1:], strip_start=i == 0), indent)
            prefix = first_prefix if compact else " " * indent
            comment = first_comment if compact else (entry.trailing[0] if entry.trailing else None)
            self._pair(entry, prefix, indent, comment)  # type: ignore[arg-type]
        self._trivia(_tidy(node.footer, strip_start=False, strip_end=True), indent)

    def _pair(self, entry: Entry, prefix: str, indent: int, comment: Comment | None) -> None:
        key = self._key(entry)
        value = entry.value
        text = self.inline(value, WIDTH - len(prefix) - len(key) - 2)
        if text is not None:
            self.lines.append((f"{prefix}{key}: {text}", comment))
            return
        self.lines.append((f"{prefix}{key}:" + (f" &{value.anchor}" if value.anchor else ""), comment))
        self._block(value, indent + INDENT)

    def _block(self, node: Node, indent: int) -> None:
        if node.kind == "map":
            self._block_map(node, indent)
        else:
            self._block_seq(node, indent)

    def _block_seq(self, node: Node, indent: int) -> None:
        for i, entry in enumerate(node.entries):
            self._compact(entry)
            self._trivia(_tidy(entry.leading + entry.trailing[1:], strip_start=i == 0), indent)
            comment = entry.trailing[0] if entry.trailing else None
            value = entry.value
            dash = " " * indent + "- "
            text = self.inline(value, WIDTH - len(dash))
            if text is not None:
                self.lines.append((dash + text, comment))
            elif value.kind == "map" and not value.anchor:
                self._block_map(value, indent + INDENT, first_prefix=dash, first_comment=comment)
            else:
                self.lines.append(((dash + (f"&{value.anchor}" if value.anchor else "")).rstrip(), comment))
                self._block(value, indent + INDENT)
        self._trivia(_tidy(node.footer, strip_start=False, strip_end=True), indent)


# the public functions


def format_text(raw: bytes, source: str = "<memory>") -> str:
    """The canonical text of a topology; TopologyError if it is invalid, FmtError if it cannot be formatted safely."""
    before = loader.load_bytes(raw, source)  # refuses invalid files with the usual located problems
    text = raw.decode("utf-8")
    parsed = _Source(text)
    out = _Writer(parsed).text()
    if out != text:  # an unchanged file trivially means what it meant
        _check_same(raw, before, parsed, out, source)
    return out


def _check_same(raw: bytes, before: Any, parsed: _Source, out: str, source: str) -> None:
    """The formatted text must mean exactly what the input meant, comments included."""
    problem = None
    try:
        after = loader.load_bytes(out.encode(), source)
    except NsnetError as err:
        problem = f"the result does not load ({err.lines()[0]})"
    else:
        if after != before:
            problem = "the result is a different topology"
        elif _data(out.encode()) != _data(raw):
            problem = "the result holds different data"
        else:
            kept = collections.Counter(c.text for c in _Source(out, tree=False).comments)
            if kept != collections.Counter(c.text for c in parsed.comments):
                problem = "a comment would be lost"
    if problem:
        raise FmtError(f"{source}: cannot format safely: {problem} (a bug in nsnet fmt; the file is left as it is)")


def _data(raw: bytes) -> Any:
    return loader._empty_maps_as_mappings(yamlsource.parse(raw).data)


def unified_diff(old: str, new: str, path: str) -> str:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=path, tofile=f"{path} (formatted)")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass(frozen=True)
class Result:
    path: str
    old: str  # the input as text (undecodable bytes replaced: only for the diff)
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        return unified_diff(self.old, self.new, self.path)


def format_file(path: str) -> Result:
    """Format one file in memory (nothing written)."""
    if path == "-":
        raw = sys.stdin.buffer.read(yamlsource.MAX_BYTES + 1)
    else:
        raw = loader.read_source(path)
    new = format_text(raw, "<stdin>" if path == "-" else path)
    return Result(path, raw.decode("utf-8", errors="replace"), new)


def write(result: Result) -> None:
    """Replace the file with its formatted text atomically, keeping its mode, owner and any symlink."""
    target = os.path.realpath(result.path)
    directory = os.path.dirname(target) or "."
    try:
        info = os.stat(target)
        fd, temp = tempfile.mkstemp(prefix=".nsnet-fmt-", suffix=".yaml", dir=directory)
    except OSError as err:
        raise FmtError(f"{result.path}: cannot write: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(result.new)
        os.chmod(temp, info.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(temp, info.st_uid, info.st_gid)
        os.replace(temp, target)
    except OSError as err:
        Path(temp).unlink(missing_ok=True)
        raise FmtError(f"{result.path}: cannot write: {err.strerror}") from None
