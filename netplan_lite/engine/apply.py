"""apply: run a plan's actions through a kernel backend, journalled, with rollback.

The backend is anything with the Kernel protocol: the live one (kernel.py)
or the in-memory fake (fake.py), so convergence and rollback are testable
without root. On a failed action, an interruption (SIGINT/SIGTERM between
actions) or a failed verification, the actions this run performed are
undone in reverse from their recorded before-states.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .diff import Change, FieldChange, Op, diff
from ..errors import InternalError, KernelError, NsnetError
from .journal import Journal, names_of
from .observation import Observation
from .plan import Action, Plan
from .scope import EVERYTHING, Scope
from ..jsonable import plain
from ..resources.registry import KINDS
from ..resources.state import Resource, State

VERIFY_DELAYS = (0.0, 0.02, 0.05, 0.05, 0.1, 0.1, 0.2, 0.4, 0.6)  # changes show up asynchronously; short steps first


class Kernel(Protocol):
    """A backend. Changes may return a one-line note worth telling the user."""

    def observe(self, scope: Scope = EVERYTHING) -> Observation:
        """Owned state: every namespace's, or those of the scope (and the host, whole or in part)."""

    def create(self, resource: Resource) -> str | None: ...
    def update(self, before: Resource, after: Resource, fields: tuple[FieldChange, ...]) -> str | None: ...
    def delete(self, resource: Resource) -> str | None: ...


@dataclass(frozen=True)
class ActionResult:
    action: Action
    seconds: float
    note: str | None = None


ActionListener = Callable[[ActionResult], None]


def kernel_reason(err: BaseException) -> str:
    """A readable reason from an OSError (netlink refusals are OSErrors too)."""
    code = getattr(err, "errno", None) or getattr(err, "code", None)
    if isinstance(code, int) and code > 0:
        return f"{getattr(err, 'strerror', None) or os.strerror(code)} (errno {code})"
    return str(err) or type(err).__name__


class ActionFailed(KernelError):
    def __init__(self, action: Action, cause: BaseException):
        super().__init__(f"{action.op.value} {action.id} failed: {kernel_reason(cause)}")
        self.action = action
        self.cause = cause


class ActionBug(InternalError):
    """An action raised what no kernel refusal raises: a bug in nsnet, reported as an internal
    error once the run is rolled back."""

    def __init__(self, action: Action, cause: Exception):
        super().__init__(cause)
        self.args = (f"{action.op.value} {action.id}: {self.args[0]} (a bug in nsnet; the run was rolled back)",)
        self.action = action
        self.cause = cause


class Interrupted(NsnetError):
    def __init__(self, signal_name: str):
        super().__init__(f"interrupted by {signal_name}; stopped after the current action")


class VerificationFailed(NsnetError):
    def __init__(self, remaining: list[Change]):
        ids = ", ".join(str(c.id) for c in remaining[:5]) + (" ..." if len(remaining) > 5 else "")
        super().__init__(f"verification failed: the kernel still differs from the topology ({ids})")
        self.remaining = remaining


@dataclass
class Outcome:
    """What a run did: the results, and on failure what was undone and what was not."""

    results: list[ActionResult] = field(default_factory=list)
    failure: NsnetError | None = None
    rolled_back: list[Action] = field(default_factory=list)
    not_rolled_back: list[str] = field(default_factory=list)  # "<action>: <reason>"
    remaining: list[Change] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.failure is None and not self.remaining


def run_action(kernel: Kernel, action: Action) -> str | None:
    if action.implied_by is not None:
        return None  # the kernel removes it together with its parent
    try:
        if action.op is Op.CREATE:
            return kernel.create(action.after)  # type: ignore[arg-type]
        if action.op is Op.UPDATE:
            return kernel.update(action.before, action.after, action.fields)  # type: ignore[arg-type]
        return kernel.delete(action.before)  # type: ignore[arg-type]
    except (OSError, NsnetError) as err:  # what backends raise when the kernel refuses (netlink errors are OSErrors)
        raise ActionFailed(action, err) from err


def inverse(action: Action) -> Action:
    """The action that undoes `action`, from its recorded before-state."""
    if action.op is Op.CREATE:
        return Action(Op.DELETE, action.id, action.after, None)
    if action.op is Op.DELETE:
        return Action(Op.CREATE, action.id, None, action.before)
    fields = tuple(FieldChange(f.field, f.after, f.before) for f in action.fields)
    return Action(Op.UPDATE, action.id, action.after, action.before, fields)


def _record(journal: Journal | None, event: str, action: Action, **extra: object) -> None:
    """The begin record carries the states (what to undo); later ones only name the action."""
    if journal is None:
        return
    if event == "begin":
        extra.update(names=names_of(action.after), before=plain(action.before), after=plain(action.after))
    journal.record(event, op=action.op.value, id=str(action.id), **extra)


def _created_nothing(err: ActionFailed | ActionBug) -> bool:
    """A create refused because the name exists made nothing: the object is someone else's."""
    return err.action.op is Op.CREATE and getattr(err.cause, "errno", getattr(err.cause, "code", None)) == errno.EEXIST


def execute(
    plan: Plan, kernel: Kernel, listener: ActionListener | None = None, journal: Journal | None = None, stop: Callable[[], str | None] = lambda: None
) -> Outcome:
    """Run every action in order, journalled; stop at the first failure or at a stop request."""
    outcome = Outcome()
    for action in plan.actions:
        signal_name = stop()
        if signal_name:
            outcome.failure = Interrupted(signal_name)
            break
        _record(journal, "begin", action)
        started = time.monotonic()
        try:
            note = run_action(kernel, action)
        except ActionFailed as err:
            _record(journal, "failed", action, created_nothing=_created_nothing(err))
            outcome.failure = err
            break
        except Exception as err:  # noqa: BLE001 - a bug: still undo what this run did (the caller raises it after rollback)
            outcome.failure = ActionBug(action, err)
            _record(journal, "failed", action, created_nothing=False)
            break
        _record(journal, "done", action)
        result = ActionResult(action, time.monotonic() - started, note)
        outcome.results.append(result)
        if listener:
            listener(result)
    return outcome


def rollback(kernel: Kernel, outcome: Outcome, journal: Journal | None = None) -> None:
    """Undo, newest first, the actions of `outcome` (and the one that failed, best effort)."""
    undo = [r.action for r in outcome.results]
    failure = outcome.failure
    if isinstance(failure, (ActionFailed, ActionBug)) and failure.action.op is Op.CREATE and not _created_nothing(failure):
        _undo_partial_create(kernel, failure.action)
    for action in reversed(undo):
        back = inverse(action)
        try:
            run_action(kernel, dataclasses.replace(back, implied_by=None))
        except ActionFailed as err:
            outcome.not_rolled_back.append(f"{action.op.value} {action.id}: {kernel_reason(err.cause)}")
            continue
        _record(journal, "rolled-back", action)
        outcome.rolled_back.append(action)


def _undo_partial_create(kernel: Kernel, action: Action) -> None:
    """A create that failed half-way may have left its object: remove it if so."""
    try:
        kernel.delete(action.after)  # type: ignore[arg-type]
    except (OSError, NsnetError):
        pass  # nothing was made


def touched_namespaces(outcome: Outcome) -> frozenset[str]:
    """Namespaces the run's actions changed (a link: both ends'): the only ones verification must read again."""
    touched = {r.action.id.home for r in outcome.results}
    for r in outcome.results:
        touched.update(ns for resource in (r.action.before, r.action.after) if resource is not None for ns in KINDS[r.action.id.kind].spans(resource))
    return frozenset(ns for ns in touched if ns is not None)


def verify(kernel: Kernel, desired: State, scope: Scope = EVERYTHING) -> list[Change]:
    """Observe until the kernel matches `desired` (in `scope`); return what still differs."""
    desired = scope.of(desired)
    remaining: list[Change] = []
    for delay in VERIFY_DELAYS:
        time.sleep(delay)
        remaining = diff(desired, scope.of(kernel.observe(scope).state))
        if not remaining:
            break
    return remaining
