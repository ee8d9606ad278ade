"""Reading YAML safely while keeping every key's position.

PyYAML keeps the last of two duplicate keys and expands aliases without
limit; both are refused here, before any value is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import yaml

MAX_BYTES = 64 << 20  # a 500-router ring with all its 517,216 routes written out is 28 MiB
MAX_NODES = 200_000  # counted with aliases expanded: stops "billion laughs"...
MAX_DEPTH = 32
BYTES_PER_NODE = 4  # ...or one node per 4 bytes of a bigger file, so work stays linear in its size (plain text is 5-10 bytes a node)


def node_limit(size: int) -> int:
    """How many nodes, aliases expanded, a file of `size` bytes may hold."""
    return max(MAX_NODES, size // BYTES_PER_NODE)


class SourceError(Exception):
    """A problem with the YAML text itself, with its position (1-based)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, path: str = ""):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.path = path


class Mark(Protocol):
    """A position in the text (0-based), as PyYAML's parser marks events: its own marks and libyaml's alike."""

    @property
    def index(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


def start_of(event: yaml.Event) -> Mark:
    """Where a parsed event starts (the parser marks every event it emits)."""
    assert event.start_mark is not None, "the YAML parser marks every event"
    return event.start_mark


def end_of(event: yaml.Event) -> Mark:
    """Where a parsed event ends (the parser marks every event it emits)."""
    assert event.end_mark is not None, "the YAML parser marks every event"
    return event.end_mark


@dataclass(frozen=True)
class Document:
    """A parsed YAML document: plain data plus the node tree to locate keys."""

    data: Any
    root: yaml.Node
    _keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = field(default_factory=dict, compare=False, repr=False)

    def locate(self, path: tuple[Any, ...]) -> tuple[int, int]:
        """Line and column (1-based) of the deepest node along `path`."""
        node = self.root
        for step in path:
            child = self._child(node, step)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1, node.start_mark.column + 1

    def locate_key(self, path: tuple[Any, ...]) -> tuple[int, int]:
        """Position of the key (not the value) that ends `path`."""
        parent = self.root
        for step in path[:-1]:
            parent = self._child(parent, step) or parent
        if isinstance(parent, yaml.MappingNode) and str(path[-1]) in self._pairs(parent):
            key = self._pairs(parent)[str(path[-1])][0]
            return key.start_mark.line + 1, key.start_mark.column + 1
        return self.locate(path)

    def _pairs(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key text -> (key node, value node), indexed once so thousands of problems stay linear."""
        if id(node) not in self._keys:
            self._keys[id(node)] = {k.value: (k, v) for k, v in reversed(node.value) if isinstance(k, yaml.ScalarNode)}
        return self._keys[id(node)]

    def _child(self, node: yaml.Node, step: Any) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            pair = self._pairs(node).get(str(step))
            return pair[1] if pair else None
        if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
            return node.value[step]
        return None


# libyaml's parser is ~20x faster than PyYAML's pure-Python one (0.05 s against
# 0.9 s for a 1000-namespace file); both keep every node's position.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _events(text: str) -> Iterator[yaml.Event]:
    """The parser's events; a scanner crash on an odd escape becomes a located SourceError."""
    loader = _Loader(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    except (ValueError, OverflowError) as err:  # PyYAML's pure-Python scanner calls chr() unguarded
        line = getattr(loader, "line", None)
        raise SourceError(f"invalid YAML: {err}", None if line is None else line + 1) from None
    finally:
        loader.dispose()


def _check_depth(text: str, limit: int) -> None:
    """Refuse absurd nesting and node counts from the event stream, before composing (and holding) any of it."""
    depth = nodes = 0
    for event in _events(text):
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > limit:
                raise SourceError(f"document has over {limit} nodes")
        if isinstance(event, _OPEN):
            depth += 1
            if depth > 2 * MAX_DEPTH:  # the tree check reports MAX_DEPTH precisely below this
                mark = start_of(event)
                raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", mark.line + 1, mark.column + 1)
        elif isinstance(event, _CLOSE):
            depth -= 1


def parse(raw: bytes) -> Document:
    """Parse one YAML document from bytes; raise SourceError on anything unsafe."""
    if len(raw) > MAX_BYTES:
        raise SourceError(f"file is {len(raw)} bytes, over the {MAX_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"not UTF-8 text (byte {err.start})") from None
    if "\x00" in text:
        raise SourceError("binary data (NUL byte) in a topology file")
    try:
        limit = node_limit(len(raw))
        _check_depth(text, limit)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise SourceError("file is empty: a topology needs at least `name:`")
            _check_tree(root, limit)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as err:
        code = err.character if isinstance(err.character, int) else ord(err.character[:1] or "\0")
        raise SourceError(f"invalid YAML: unacceptable character U+{code:04X}", text.count("\n", 0, err.position) + 1) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = err.problem or err.context or ""
        if "maximum nesting depth" in problem:  # libyaml >= 0.2.5 stops at 1000 levels itself
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", line, col) from None
        raise SourceError(f"invalid YAML: {problem}", line, col) from None
    except yaml.YAMLError as err:
        raise SourceError(f"invalid YAML: {err}") from None
    except RecursionError:
        raise SourceError(f"nesting deeper than {MAX_DEPTH} levels") from None
    return Document(data, root)


def _check_tree(root: yaml.Node, limit: int) -> None:
    """Refuse duplicate keys, deep nesting and alias expansion bombs."""
    count = 0
    stack: list[tuple[yaml.Node, int, tuple[str, ...]]] = [(root, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        count += 1
        if count > limit:
            raise SourceError(f"document expands to over {limit} nodes (alias bomb?)")
        if depth > MAX_DEPTH:
            mark = node.start_mark
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", mark.line + 1, mark.column + 1, ".".join(path))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "<complex key>"
                if name in seen:
                    first = seen[name].start_mark.line + 1
                    raise SourceError(
                        f"duplicate key (first defined on line {first})",
                        key.start_mark.line + 1,
                        key.start_mark.column + 1,
                        ".".join((*path, name)),
                    )
                seen[name] = key
                stack.append((value, depth + 1, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1, (*path, str(i))) for i, item in enumerate(node.value))
