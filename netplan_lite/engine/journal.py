"""The apply journal: every action recorded before and after it runs.

/run/nsnet/<topology>/journal.jsonl (0600), one JSON object a line:
`{"event": "begin", "op", "id", "names", "before", "after"}`, then
`{"event": "done"|"failed"|"rolled-back", "op", "id"}` for the same id.
A "begin" record is written before the kernel call, so a run killed at any
point leaves the names of what it may have created: the observer adopts
unlabelled objects with those names as this topology's (`owned: false`), and
the next apply labels them or destroy removes them. The journal is removed
when a run ends cleanly (converged, or fully rolled back).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..resources.registry import KINDS, Resource
from .rundir import topology_dir, topology_file


def journal_path(topology: str) -> str:
    return topology_file(topology, "journal.jsonl")


@dataclass(frozen=True)
class Intents:
    """Names a (possibly interrupted) run of this topology may have created."""

    links: frozenset[str] = field(default_factory=frozenset)
    namespaces: frozenset[str] = field(default_factory=frozenset)


def names_of(resource: Resource | None) -> dict[str, list[str]]:
    """The kernel names a create of `resource` makes (what to adopt after a crash)."""
    return {} if resource is None else KINDS[resource.kind].creates(resource).as_json()


def read_intents(topology: str, path: str | None = None) -> Intents:
    """Names recorded by begin records of a journal left behind (empty if none): the topology's,
    or the one at `path` (a CNI attachment's)."""
    names: dict[str, dict[str, list[str]]] = {}  # action id -> names its begin record gave
    try:
        with open(path or journal_path(topology)) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                if record.get("event") == "begin":
                    names[record["id"]] = record.get("names") or {}
                elif record.get("created_nothing"):  # the name was taken by someone else
                    names.pop(record["id"], None)
    except OSError:
        pass
    return Intents(
        frozenset(n for entry in names.values() for n in entry.get("links", [])),
        frozenset(n for entry in names.values() for n in entry.get("namespaces", [])),
    )


class Journal:
    """Appends records for one run; `close(clean=True)` removes the file."""

    def __init__(self, topology: str, path: str | None = None):
        self.topology = topology
        self.path = path or journal_path(topology)  # a CNI call's own: many run at once on one network
        self._file: TextIO | None = None  # opened by the first record: a run that fails before acting leaves none

    def record(self, event: str, **fields: Any) -> None:
        if self._file is None:
            topology_dir(self.topology)
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            self._file = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
        self._file.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self._file.flush()  # a SIGKILL keeps what reached the kernel's page cache

    def close(self, clean: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if clean:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
