"""plan: changes -> an ordered list of actions.

Order: deletes first, children before parents (reverse rank); then updates
and creates, parents before children (rank); ties broken by id, so the same
input always gives the same plan. A replace is lowered to a delete and a
create that share its reason. Destroy is a plan against an empty desired state.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from .diff import Change, ChangeType, FieldChange
from ..resources.ids import ResourceId
from ..resources.state import Resource


class Op(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Action:
    op: Op
    id: ResourceId
    before: Resource | None
    after: Resource | None
    fields: tuple[FieldChange, ...] = ()
    reason: str | None = None  # set on both halves of a replace
    implied_by: ResourceId | None = None  # deleted by the kernel along with this parent

    @property
    def is_replace(self) -> bool:
        return self.reason is not None


@dataclass(frozen=True)
class Plan:
    topology: str
    actions: tuple[Action, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def counts(self) -> tuple[int, int, int]:
        """(to add, to change, to destroy), replaces counted as add + destroy."""
        add = sum(a.op is Op.CREATE for a in self.actions)
        change = sum(a.op is Op.UPDATE for a in self.actions)
        destroy = sum(a.op is Op.DELETE for a in self.actions)
        return add, change, destroy


def make_plan(topology: str, changes: list[Change]) -> Plan:
    """Order `changes` into actions (see module docstring)."""
    deletes: list[Action] = []
    forwards: list[Action] = []
    for change in changes:
        kind = change.type
        if kind in (ChangeType.DELETE, ChangeType.REPLACE):  # a replace's halves keep its fields, for display
            deletes.append(Action(Op.DELETE, change.id, change.before, None, change.fields, change.reason))
        if kind in (ChangeType.CREATE, ChangeType.REPLACE):
            forwards.append(Action(Op.CREATE, change.id, None, change.after, change.fields, change.reason))
        if kind is ChangeType.UPDATE:
            forwards.append(Action(Op.UPDATE, change.id, change.before, change.after, change.fields))
    deleted = {a.id for a in deletes if not a.is_replace}
    deletes = [_mark_implied(a, deleted) for a in deletes]
    deletes.sort(key=lambda a: (-a.id.kind.rank, a.id.name))
    forwards.sort(key=lambda a: (a.id.kind.rank, a.op is Op.CREATE, a.id.name))
    return Plan(topology, tuple(deletes + forwards))


def _mark_implied(action: Action, deleted: set[ResourceId]) -> Action:
    """Objects inside a namespace (or of a bridge) being deleted go with it: no kernel call."""
    parent = action.id.parent
    if parent in deleted:
        return dataclasses.replace(action, implied_by=parent)
    return action
