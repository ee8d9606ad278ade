"""All text and JSON output of nsnet. The library never prints; this renders."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..engine.apply import ActionResult, Outcome, VerificationFailed
from ..engine.diff import FieldChange
from ..jsonable import plain
from ..resources.state import ORPHAN_NAMESPACE
from ..engine.plan import Action, Op, Plan
from ..engine.reconcile import Applied, Planned
from .style import PLAIN, Style
from ..resources.state import (BridgeState, InterfaceState, Kind, NftRule, NftTableState, Resource, ResourceId, RouteState, State, SysctlState)

if TYPE_CHECKING:
    from ..engine.warnings import PreflightWarning  # in annotations only

FORMAT_VERSION = 1
MARKERS = {Op.CREATE: "+", Op.UPDATE: "~", Op.DELETE: "-"}


def resource_json(resource: Resource | None) -> dict[str, Any] | None:
    """A resource as schemas/state.schema.json describes it, `kind` first."""
    return None if resource is None else {"kind": resource.kind.value, **plain(resource)}


LINK_STATES = {"up", "host_up", "lo_up"}
YES_NO = {"owned", "usable"}


def value_text(value: Any, field: str = "up") -> str:
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(none)"
    if isinstance(value, bool):
        if field in LINK_STATES:
            return "up" if value else "down"
        return ("yes" if value else "no") if field in YES_NO else ("on" if value else "off")
    return "(none)" if value is None else str(value)


FIELD_NAMES = {"addresses": "address", "up": "state", "host_up": "host end state", "lo_up": "lo state",
               "host_name": "host veth", "owned": "nsnet label"}


def resource_label(rid: ResourceId) -> str:
    """Where a resource lives, then what it is: `namespace web1 / interface eth0`."""
    if rid.kind not in (Kind.INTERFACE, Kind.ROUTE):
        return str(rid)
    namespace, _, name = rid.name.partition("/")
    where = "host (orphaned veth end)" if namespace == ORPHAN_NAMESPACE else f"namespace {namespace}"
    return f"{where} / {rid.kind.value} {name}"


def describe(resource: Resource) -> str:
    """The interesting attributes of a resource, on one line."""
    if isinstance(resource, BridgeState):
        parts = [f"address {value_text(resource.addresses)}"] + ([f"mtu {resource.mtu}"] if resource.mtu else [])
    elif isinstance(resource, InterfaceState):
        parts = [f"bridge {resource.bridge}", f"address {value_text(resource.addresses)}", f"host veth {resource.host_name}"]
        parts += [f"mtu {resource.mtu}"] if resource.mtu else []
        parts += [f"mac {resource.mac}"] if resource.mac else []
    elif isinstance(resource, RouteState):
        parts = [f"via {resource.via}"]
    elif isinstance(resource, SysctlState):
        parts = [f"= {resource.value}"]
    elif isinstance(resource, NftTableState):
        parts = [f"{len(resource.chains)} chains, {len(resource.rules)} rules"]
    else:
        parts = []
    return ", ".join(parts)


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
            texts.append(f"rule {chain} \"{comment}\" changed: {'; '.join(detail.splitlines())}")
        else:
            texts.append(f"rule {chain} \"{comment}\" {'added' if key in new else 'removed'}")
    return texts


def display_pairs(actions: Iterable[Action]) -> Iterator[tuple[str, Action]]:
    """Actions for display: the two halves of a replace become one `-/+` entry."""
    actions = list(actions)
    replaced = {a.id for a in actions if a.op is Op.CREATE and a.is_replace}
    for action in actions:
        if action.is_replace and action.id in replaced:
            if action.op is Op.DELETE:
                yield "-/+", action
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
    if action.op is Op.CREATE and isinstance(action.after, NftTableState):
        lines += [f"      {style.marker('+')} rule {r.chain} \"{r.comment}\"" for r in action.after.rules]
    return lines


def _groups(actions: tuple[Action, ...]) -> list[tuple[str, list[Action]]]:
    """Actions by where they happen: the host first, then each namespace by name."""
    groups: dict[str, list[Action]] = {}
    for action in actions:
        namespace = action.id.namespace
        key = "host" if namespace in (None, ORPHAN_NAMESPACE) else f"namespace {namespace}"
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
    if plan.empty:
        return "\n".join([f"No changes. The kernel matches topology {plan.topology!r}.", *notes]) + "\n"
    lines = [f"nsnet will perform these actions on topology {plan.topology!r}:", *change_lines(plan.actions, style)]
    lines += [*notes, "", style.paint("bold", summary(plan))]
    return "\n".join(lines) + "\n"


def action_json(action: Action) -> dict[str, Any]:
    return {
        "op": action.op.value,
        "kind": action.id.kind.value,
        "name": action.id.name,
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
    }


def applied_line(result: ActionResult, style: Style = PLAIN) -> str:
    """An action as it ran, with its duration: `+ namespace web1 / route default  [0 ms]`."""
    action = result.action
    line = f"  {style.marker(MARKERS[action.op])} {resource_label(action.id)}{_why(action)}  {style.paint('dim', f'[{result.seconds * 1000:.0f} ms]')}"
    return line + (f"\n      {result.note}" if result.note else "")


def failure_lines(outcome: Outcome, rollback: bool) -> list[str]:
    """What failed, what was undone, what could not be: one line each."""
    lines = [str(outcome.failure)] if outcome.failure else []
    if isinstance(outcome.failure, VerificationFailed):
        lines += [f"still differs: {c.id}" + (f" ({', '.join(f.field for f in c.fields)})" if c.fields else "")
                  for c in outcome.failure.remaining]
    if not rollback:
        lines.append(f"kept the partial progress ({len(outcome.results)} actions done, --no-rollback); `nsnet plan` shows the rest")
        return lines
    if outcome.rolled_back:
        lines.append(f"rolled back {len(outcome.rolled_back)} actions: " + ", ".join(f"{a.op.value} {a.id}" for a in outcome.rolled_back))
    elif not outcome.not_rolled_back:
        lines.append("nothing to roll back: no action had completed")
    lines += [f"could not roll back {item}" for item in outcome.not_rolled_back]
    return lines


def applied_summary(applied: Applied, verb: str, seconds: float) -> str:
    if applied.outcome.failure is not None:
        return f"{verb} failed after {len(applied.results)} of {len(applied.planned.plan.actions)} actions in {seconds:.2f} s."
    if not applied.results:
        return "No changes."
    add, change, destroy = applied.planned.plan.counts()
    state = "verified" if applied.converged else "NOT verified"
    return f"{verb} complete: {add} added, {change} changed, {destroy} destroyed in {seconds:.2f} s; live state {state}."


def applied_json(applied: Applied, seconds: float, warnings: Sequence[PreflightWarning] = ()) -> dict[str, Any]:
    """The plan that ran, with its outcome under `run` (schemas/plan.schema.json)."""
    doc = plan_json(applied.planned, warnings)
    outcome = applied.outcome
    doc["run"] = {
        "applied": [{"op": r.action.op.value, "id": str(r.action.id), "seconds": round(r.seconds, 6), "note": r.note}
                    for r in applied.results],
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
        "resources": [resource_json(r) for rid, r in sorted(state.items(), key=lambda i: (i[0].kind.rank, i[0].name))],
        "drifted": not drift.empty,
        "drift": [action_json(a) for a in drift.actions],
    }
