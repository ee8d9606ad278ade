"""plan: changes -> an ordered list of actions.

Order: deletes first, children before parents (reverse rank); then updates
and creates, parents before children (rank); ties broken by id, so the same
input always gives the same plan. A replace is lowered to a delete and a
create that share its reason. Destroy is a plan against an empty desired state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .diff import Change, FieldChange, Op
from ..resources.ids import ResourceId
from ..resources.registry import KINDS, RANKS, Resource
from ..resources.spec import Replacement


@dataclass(frozen=True)
class Action:
    op: Op  # create, update or delete: a replace is lowered to a delete and a create
    id: ResourceId
    before: Resource | None
    after: Resource | None
    fields: tuple[FieldChange, ...] = ()
    replacement: Replacement | None = None  # set on both halves of a replace
    implied_by: ResourceId | None = None  # deleted by the kernel along with this parent

    @property
    def is_replace(self) -> bool:
        return self.replacement is not None

    @property
    def reason(self) -> str | None:
        return None if self.replacement is None else self.replacement.text


@dataclass(frozen=True)
class Plan:
    topology: str
    actions: tuple[Action, ...] = ()
    partial: bool = False  # computed for a --target scope: the rest of the topology was not read

    @property
    def empty(self) -> bool:
        return not self.actions

    def counts(self) -> tuple[int, int, int]:
        """(to add, to change, to destroy), replaces counted as add + destroy."""
        add = sum(a.op is Op.CREATE for a in self.actions)
        change = sum(a.op is Op.UPDATE for a in self.actions)
        destroy = sum(a.op is Op.DELETE for a in self.actions)
        return add, change, destroy


def make_plan(topology: str, changes: list[Change], partial: bool = False) -> Plan:
    """Order `changes` into actions (see module docstring)."""
    deletes: list[Action] = []
    forwards: list[Action] = []
    for change in changes:
        op = change.op
        if op in (Op.DELETE, Op.REPLACE):  # a replace's halves keep its fields, for display
            deletes.append(Action(Op.DELETE, change.id, change.before, None, change.fields, change.replacement))
        if op in (Op.CREATE, Op.REPLACE):
            forwards.append(Action(Op.CREATE, change.id, None, change.after, change.fields, change.replacement))
        if op is Op.UPDATE:
            forwards.append(Action(Op.UPDATE, change.id, change.before, change.after, change.fields))
    # parents the kernel really deletes: a data source is only forgotten, its children go one by one
    deleted = {a.id for a in deletes if not a.is_replace and not KINDS[a.id.kind].data_source(a.before)}
    deletes = [_mark_implied(a, deleted) for a in deletes]
    deletes.sort(key=lambda a: (-RANKS[a.id.kind], a.id.key))
    forwards.sort(key=lambda a: (RANKS[a.id.kind], a.op is Op.CREATE, a.id.key))
    return Plan(topology, tuple(deletes + forwards), partial)


def _mark_implied(action: Action, deleted: set[ResourceId]) -> Action:
    """Objects whose parent (a namespace) is being deleted go with it: no kernel call."""
    parent = next((p for p in KINDS[action.id.kind].parents(action.id) if p in deleted), None)
    if parent is not None:
        return dataclasses.replace(action, implied_by=parent)
    return action
