"""All text and JSON output of nsnet. The library never prints; this renders."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..engine.apply import ActionResult, Outcome, VerificationFailed
from ..engine.diff import FieldChange, Op
from ..jsonable import plain
from ..engine.plan import Action, Plan
from ..engine.reconcile import Applied, Planned
from .style import PLAIN, Style
from ..resources.ids import ORPHAN_NAMESPACE, ResourceId
from ..resources.nft_table import NftRule
from ..resources.registry import KINDS, Resource, sort_key
from ..resources.state import State, resource_json
from ..words import counted

if TYPE_CHECKING:
    from ..engine.warnings import PreflightWarning  # in annotations only

FORMAT_VERSION = 1
MARKERS = {Op.CREATE: "+", Op.UPDATE: "~", Op.DELETE: "-", Op.REPLACE: "-/+"}


LINK_STATES = {"peer_up", "up", "host_up", "lo_up"}
YES_NO = {"owned", "usable"}


def value_text(value: Any, field: str = "up") -> str:
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(none)"
    if isinstance(value, bool):
        if field in LINK_STATES:
            return "up" if value else "down"
        return ("yes" if value else "no") if field in YES_NO else ("on" if value else "off")
    return "(none)" if value is None or value == "" else str(value)


FIELD_NAMES = {
    "addresses": "address",
    "up": "state",
    "host_up": "host end state",
    "peer_up": "peer end state",
    "peer_addresses": "peer end address",
    "peer_netem": "peer end netem",
    "peer_mac": "peer end mac",
    "peer_namespace": "peer namespace",
    "peer_name": "peer interface",
    "lo_up": "lo state",
    "host_name": "host veth",
    "owned": "nsnet label",
    "accepts": "accept",
}


def resource_label(rid: ResourceId) -> str:
    """Where a resource lives, then what it is: `namespace web1 / interface eth0`."""
    if rid.namespace is None:
        return str(rid)
    where = "host (orphaned veth end)" if rid.namespace == ORPHAN_NAMESPACE else f"namespace {rid.namespace}"
    return f"{where} / {rid.kind.label} {rid.shown_name}"


def describe(resource: Resource) -> str:
    """The interesting attributes of a resource, on one line."""
    return KINDS[resource.kind].describe(resource)


def field_texts(change: FieldChange) -> list[str]:
    """One phrase per changed attribute: `address 172.30.0.10/24 -> 172.30.0.11/24`."""
    if change.field == "rules":
        return _rule_texts(change.before, change.after)
    if change.field == "chains":
        return [f"chains {', '.join(c.name for c in change.before) or '(none)'} -> {', '.join(c.name for c in change.after)}"]
    name = FIELD_NAMES.get(change.field, change.field)
    return [f"{name} {value_text(change.before, change.field)} -> {value_text(change.after, change.field)}"]


def _rule_texts(before: tuple[NftRule, ...], after: tuple[NftRule, ...]) -> list[str]:
    """Rule-level changes; a rule whose comment stayed but whose match changed gets deepdiff's detail."""
    from deepdiff import DeepDiff  # field-level detail of nested JSON is what deepdiff is for

    old = {(r.chain, r.comment): r for r in before if r not in after}
    new = {(r.chain, r.comment): r for r in after if r not in before}
    texts = []
    for key in sorted(old.keys() | new.keys()):
        chain, comment = key
        if key in old and key in new:
            detail = DeepDiff(json.loads(old[key].expr), json.loads(new[key].expr), verbose_level=2).pretty()
            texts.append(f'rule {chain} "{comment}" changed: {"; ".join(detail.splitlines())}')
        else:
            texts.append(f'rule {chain} "{comment}" {"added" if key in new else "removed"}')
    return texts


def display_pairs(actions: Iterable[Action]) -> Iterator[tuple[str, Action]]:
    """Actions for display: the two halves of a replace become one `-/+` entry."""
    actions = list(actions)
    replaced = {a.id for a in actions if a.op is Op.CREATE and a.is_replace}
    for action in actions:
        if action.is_replace and action.id in replaced:
            if action.op is Op.DELETE:
                yield MARKERS[Op.REPLACE], action
            continue
        yield MARKERS[action.op], action


def _why(action: Action) -> str:
    if action.reason:
        return f" ({action.reason})"
    return f" (goes with {action.implied_by})" if action.implied_by else ""


def action_lines(marker: str, action: Action, style: Style = PLAIN) -> list[str]:
    """`~ namespace web1 / interface eth0: address A -> B`, one line per changed attribute."""
    head = f"  {style.marker(marker)} {resource_label(action.id)}"
    if action.fields:
        return [f"{head}: {text}{_why(action)}" for f in action.fields for text in field_texts(f)]
    detail = describe(action.after) if action.op is Op.CREATE and action.after is not None else ""
    joiner = " " if detail.startswith("=") else ": "  # `+ sysctl net.ipv4.ip_forward = 1`
    lines = [f"{head}{joiner + detail if detail else ''}{_why(action)}"]
    if action.op is Op.CREATE and action.after is not None:
        lines += [f"      {style.marker('+')} {member}" for member in KINDS[action.after.kind].listed(action.after)]
    return lines


def _groups(actions: tuple[Action, ...]) -> list[tuple[str, list[Action]]]:
    """Actions by where they happen: the host first, then each namespace by name."""
    groups: dict[str, list[Action]] = {}
    for action in actions:
        namespace = action.id.home
        key = "host" if namespace is None or namespace == ORPHAN_NAMESPACE else f"namespace {namespace}"
        groups.setdefault(key, []).append(action)
    return sorted(groups.items(), key=lambda item: (item[0] != "host", item[0]))


def change_lines(actions: tuple[Action, ...], style: Style = PLAIN) -> list[str]:
    lines: list[str] = []
    for group, members in _groups(actions):
        lines += ["", style.paint("bold", f"{group}:")]
        for marker, action in display_pairs(members):
            lines += action_lines(marker, action, style)
    return lines


def summary(plan: Plan) -> str:
    if plan.empty:
        return "No changes."
    add, change, destroy = plan.counts()
    return f"Plan: {add} to add, {change} to change, {destroy} to destroy."


def warning_lines(warnings: Sequence[PreflightWarning], style: Style = PLAIN) -> list[str]:
    return [style.paint("warn", w.line()) for w in warnings]


def plan_text(planned: Planned, style: Style = PLAIN, warnings: Sequence[PreflightWarning] = ()) -> str:
    """Grouped by where the actions happen, pre-flight warnings, then the summary line."""
    plan = planned.plan
    notes = ["", *warning_lines(warnings, style)] if warnings else []
    notes += ["", style.paint("warn", partial_note(planned))] if plan.partial else []
    where = f" in {_targets_text(planned)}" if plan.partial else ""
    if plan.empty:
        return "\n".join([f"No changes. The kernel matches topology {plan.topology!r}{where}.", *notes]) + "\n"
    lines = [f"nsnet will perform these actions on topology {plan.topology!r}{where}:", *change_lines(plan.actions, style)]
    lines += [*notes, "", style.paint("bold", summary(plan))]
    return "\n".join(lines) + "\n"


def _targets_text(planned: Planned) -> str:
    names = sorted(planned.scope.namespaces or ())
    return ("namespace " if len(names) == 1 else "namespaces ") + ", ".join(names)


def partial_note(planned: Planned) -> str:
    return (
        f"This plan is partial (--target): only {_targets_text(planned)} and the host objects it needs were "
        "read and compared; `nsnet plan` without --target shows the whole topology."
    )


def action_json(action: Action) -> dict[str, Any]:
    return {
        "op": action.op.value,
        "kind": action.id.kind.value,
        "name": action.id.key,
        "reason": action.reason,
        "implied_by": str(action.implied_by) if action.implied_by else None,
        "before": resource_json(action.before),
        "after": resource_json(action.after),
        "fields": [_field_json(f) for f in action.fields],
    }


def _field_json(change: FieldChange) -> dict[str, Any]:
    return {"field": change.field, "before": plain(change.before), "after": plain(change.after)}


def plan_json(planned: Planned, warnings: Sequence[PreflightWarning] = ()) -> dict[str, Any]:
    """The document of schemas/plan.schema.json."""
    add, change, destroy = planned.plan.counts()
    return {
        "format_version": FORMAT_VERSION,
        "topology": planned.topology,
        "changes": not planned.plan.empty,
        "summary": {"add": add, "change": change, "destroy": destroy},
        "actions": [action_json(a) for a in planned.plan.actions],
        "warnings": [{"code": w.code, "message": w.message, "hint": w.hint} for w in warnings],
        **({"targets": sorted(planned.scope.namespaces or ())} if planned.plan.partial else {}),
    }


def applied_line(result: ActionResult, style: Style = PLAIN) -> str:
    """An action as it ran, with its duration: `+ namespace web1 / route default  [0 ms]`."""
    action = result.action
    line = (
        f"  {style.marker(MARKERS[action.op])} {resource_label(action.id)}{_why(action)}  {style.paint('dim', f'[{result.seconds * 1000:.0f} ms]')}"
    )
    return line + (f"\n      {result.note}" if result.note else "")


def failure_lines(outcome: Outcome, rollback: bool) -> list[str]:
    """What failed, what was undone, what could not be: one line each."""
    lines = [str(outcome.failure)] if outcome.failure else []
    if isinstance(outcome.failure, VerificationFailed):
        lines += [f"still differs: {c.id}" + (f" ({', '.join(f.field for f in c.fields)})" if c.fields else "") for c in outcome.failure.remaining]
    if not rollback:
        lines.append(f"kept the partial progress ({counted(len(outcome.results), 'action')} done, --no-rollback); `nsnet plan` shows the rest")
        return lines
    if outcome.rolled_back:
        lines.append(f"rolled back {counted(len(outcome.rolled_back), 'action')}: " + ", ".join(f"{a.op.value} {a.id}" for a in outcome.rolled_back))
    elif not outcome.not_rolled_back:
        lines.append("nothing to roll back: no action had completed")
    lines += [f"could not roll back {item}" for item in outcome.not_rolled_back]
    return lines


def applied_summary(applied: Applied, verb: str, seconds: float) -> str:
    """The last line of a run; a partial one (--target) says which namespaces it covered."""
    partial = f" (partial: only {_targets_text(applied.planned)}, --target)" if applied.planned.plan.partial else ""
    if applied.outcome.failure is not None:
        return f"{verb} failed after {len(applied.results)} of {counted(len(applied.planned.plan.actions), 'action')} in {seconds:.2f} s{partial}."
    if not applied.results:
        return f"No changes{partial}."
    add, change, destroy = applied.planned.plan.counts()
    state = "verified" if applied.converged else "NOT verified"
    return f"{verb} complete: {add} added, {change} changed, {destroy} destroyed in {seconds:.2f} s; live state {state}{partial}."


def applied_json(applied: Applied, seconds: float, warnings: Sequence[PreflightWarning] = ()) -> dict[str, Any]:
    """The plan that ran, with its outcome under `run` (schemas/plan.schema.json)."""
    doc = plan_json(applied.planned, warnings)
    outcome = applied.outcome
    doc["run"] = {
        "applied": [{"op": r.action.op.value, "id": str(r.action.id), "seconds": round(r.seconds, 6), "note": r.note} for r in applied.results],
        "converged": applied.converged,
        "failure": str(outcome.failure) if outcome.failure else None,
        "rolled_back": [str(a.id) for a in outcome.rolled_back],
        "not_rolled_back": list(outcome.not_rolled_back),
        "remaining": [str(c.id) for c in applied.remaining],
        "seconds": round(seconds, 6),
    }
    return doc


def state_json(topology: str, state: State, drift: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "topology": topology,
        "resources": [resource_json(r) for rid, r in sorted(state.items(), key=lambda i: sort_key(i[0]))],
        "drifted": not drift.empty,
        "drift": [action_json(a) for a in drift.actions],
    }
