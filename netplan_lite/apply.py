"""apply: run a plan's actions through a kernel backend, then verify.

The backend is anything with the Kernel protocol: the live one (kernel.py)
or the in-memory fake (fake.py), so convergence is testable without root.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .diff import Change, FieldChange, diff
from .errors import KernelError
from .observe import Observation
from .plan import Action, Op, Plan
from .state import Resource, State

VERIFY_DELAYS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # netlink changes show up asynchronously


class Kernel(Protocol):
    """A backend. Changes may return a one-line note worth telling the user."""

    def observe(self) -> Observation: ...
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
    """A readable reason from an OSError or a pyroute2 NetlinkError."""
    code = getattr(err, "errno", None) or getattr(err, "code", None)
    if isinstance(code, int) and code > 0:
        return f"{os.strerror(code)} (errno {code})"
    return str(err) or type(err).__name__


class ActionFailed(KernelError):
    def __init__(self, action: Action, cause: Exception):
        super().__init__(f"{action.op.value} {action.id} failed: {kernel_reason(cause)}")
        self.action = action
        self.cause = cause


def run_action(kernel: Kernel, action: Action) -> str | None:
    if action.implied_by is not None:
        return None  # the kernel removes it together with its parent
    try:
        if action.op is Op.CREATE:
            return kernel.create(action.after)  # type: ignore[arg-type]
        if action.op is Op.UPDATE:
            return kernel.update(action.before, action.after, action.fields)  # type: ignore[arg-type]
        return kernel.delete(action.before)  # type: ignore[arg-type]
    except Exception as err:  # a refusal from the kernel, whatever the backend raised
        raise ActionFailed(action, err) from err


def execute(plan: Plan, kernel: Kernel, listener: ActionListener | None = None) -> list[ActionResult]:
    """Run every action in order; stop at the first failure (ActionFailed)."""
    results = []
    for action in plan.actions:
        started = time.monotonic()
        note = run_action(kernel, action)
        result = ActionResult(action, time.monotonic() - started, note)
        results.append(result)
        if listener:
            listener(result)
    return results


def verify(kernel: Kernel, desired: State) -> list[Change]:
    """Observe until the kernel matches `desired`; return what still differs."""
    remaining: list[Change] = []
    for delay in VERIFY_DELAYS:
        time.sleep(delay)
        remaining = diff(desired, kernel.observe().state)
        if not remaining:
            break
    return remaining
