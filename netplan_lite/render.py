"""All text and JSON output of nsnet. The library never prints; this renders."""

from __future__ import annotations

import json
from typing import Any, Iterator

from .apply import ActionResult, Outcome, VerificationFailed
from .diff import FieldChange
from .jsonable import plain
from .plan import Action, Op, Plan
from .reconcile import Applied, Planned
from .state import (BridgeState, InterfaceState, Kind, NamespaceState, NftRule, NftTableState, Resource, RouteState,
                    State, SysctlState)

FORMAT_VERSION = 1
MARKERS = {Op.CREATE: "+", Op.UPDATE: "~", Op.DELETE: "-"}


def resource_json(resource: Resource | None) -> dict[str, Any] | None:
    return None if resource is None else plain(resource)


LINK_STATES = {"up", "host_up", "lo_up"}
YES_NO = {"owned", "usable"}


def _value(value: Any, field: str = "up") -> str:
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(none)"
    if isinstance(value, bool):
        if field in LINK_STATES:
            return "up" if value else "down"
        return ("yes" if value else "no") if field in YES_NO else ("on" if value else "off")
    return "(none)" if value is None else str(value)


def _field_name(name: str) -> str:
    return {"up": "state", "host_up": "host end state", "lo_up": "lo state", "host_name": "host veth",
            "owned": "nsnet label"}.get(name, name)


def describe(resource: Resource) -> str:
    """The interesting attributes of a resource, on one line."""
    if isinstance(resource, BridgeState):
        parts = [f"address {_value(resource.addresses)}"] + ([f"mtu {resource.mtu}"] if resource.mtu else [])
    elif isinstance(resource, InterfaceState):
        parts = [f"bridge {resource.bridge}", f"address {_value(resource.addresses)}", f"host veth {resource.host_name}"]
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


def _field_lines(change: FieldChange) -> list[str]:
    if change.field == "rules":
        return _rule_lines(change.before, change.after)
    if change.field == "chains":
        return [f"chains: {', '.join(c.name for c in change.before) or '(none)'} -> {', '.join(c.name for c in change.after)}"]
    return [f"{_field_name(change.field)}: {_value(change.before, change.field)} -> {_value(change.after, change.field)}"]


def _rule_lines(before: tuple[NftRule, ...], after: tuple[NftRule, ...]) -> list[str]:
    """Rule-level changes; a rule whose comment stayed but whose match changed gets deepdiff's detail."""
    from deepdiff import DeepDiff  # field-level detail of nested JSON is what deepdiff is for

    old = {(r.chain, r.comment): r for r in before if r not in after}
    new = {(r.chain, r.comment): r for r in after if r not in before}
    lines = []
    for key in sorted(old.keys() | new.keys()):
        chain, comment = key
        if key in old and key in new:
            detail = DeepDiff(json.loads(old[key].expr), json.loads(new[key].expr), verbose_level=2).pretty()
            lines.append(f"~ rule {chain}: {comment}: {'; '.join(detail.splitlines())}")
        else:
            lines.append(f"{'+' if key in new else '-'} rule {chain}: {comment}")
    return lines


def _pairs(actions: tuple[Action, ...]) -> Iterator[tuple[str, Action]]:
    """Actions for display: the two halves of a replace become one `-/+` line."""
    replaced = {a.id for a in actions if a.op is Op.CREATE and a.is_replace}
    for action in actions:
        if action.is_replace and action.id in replaced:
            if action.op is Op.DELETE:
                yield "-/+", action
            continue
        yield MARKERS[action.op], action


def action_lines(marker: str, action: Action) -> list[str]:
    head = f"  {marker} {action.id}"
    if action.reason:
        head += f" ({action.reason})"
    elif action.implied_by:
        head += f" (goes with {action.implied_by})"
    lines = [head]
    if action.op is Op.UPDATE:
        lines += [f"      {line}" for f in action.fields for line in _field_lines(f)]
    elif action.op is Op.CREATE and action.after is not None:
        if describe(action.after):
            lines.append(f"      {describe(action.after)}")
        if isinstance(action.after, NftTableState):
            lines += [f"      + rule {r.chain}: {r.comment}" for r in action.after.rules]
    return lines


def summary(plan: Plan) -> str:
    if plan.empty:
        return "No changes."
    add, change, destroy = plan.counts()
    return f"Plan: {add} to add, {change} to change, {destroy} to destroy."


def plan_text(planned: Planned) -> str:
    plan = planned.plan
    if plan.empty:
        return f"No changes. The kernel matches topology {plan.topology!r}.\n"
    lines = [f"nsnet will perform these actions on topology {plan.topology!r}:", ""]
    for marker, action in _pairs(plan.actions):
        lines += action_lines(marker, action)
    lines += ["", summary(plan)]
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


def plan_json(planned: Planned) -> dict[str, Any]:
    add, change, destroy = planned.plan.counts()
    return {
        "format_version": FORMAT_VERSION,
        "topology": planned.topology,
        "changes": not planned.plan.empty,
        "summary": {"add": add, "change": change, "destroy": destroy},
        "actions": [action_json(a) for a in planned.plan.actions],
    }


def applied_line(result: ActionResult) -> str:
    action = result.action
    marker = MARKERS[action.op]
    why = f" ({action.reason})" if action.reason else f" (goes with {action.implied_by})" if action.implied_by else ""
    line = f"  {marker} {action.id}{why}  [{result.seconds * 1000:.0f} ms]"
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


def applied_json(applied: Applied, seconds: float) -> dict[str, Any]:
    doc = plan_json(applied.planned)
    doc["applied"] = [
        {"op": r.action.op.value, "id": str(r.action.id), "seconds": round(r.seconds, 6), "note": r.note}
        for r in applied.results
    ]
    doc["converged"] = applied.converged
    doc["failure"] = str(applied.outcome.failure) if applied.outcome.failure else None
    doc["rolled_back"] = [str(a.id) for a in applied.outcome.rolled_back]
    doc["not_rolled_back"] = list(applied.outcome.not_rolled_back)
    doc["remaining"] = [str(c.id) for c in applied.remaining]
    doc["seconds"] = round(seconds, 6)
    return doc


def state_json(topology: str, state: State, drift: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "topology": topology,
        "resources": [dict(kind=rid.kind.value, **resource_json(r)) for rid, r in sorted(state.items(), key=lambda i: (i[0].kind.rank, i[0].name))],  # type: ignore[arg-type]
        "drift": [action_json(a) for a in drift.actions],
    }


def show_text(topology: str, state: State, drift: Plan) -> str:
    """Live objects of a topology, one block per namespace, then the drift."""
    lines = [f"topology {topology}"]
    for r in _of_kind(state, Kind.BRIDGE):
        lines.append(f"  bridge {r.name}: {describe(r)}, {_value(r.up)}")  # type: ignore[attr-defined]
    for ns in _of_kind(state, Kind.NAMESPACE):
        assert isinstance(ns, NamespaceState)
        lines.append(f"  namespace {ns.name} (lo {_value(ns.lo_up)})")
        for r in _of_kind(state, Kind.INTERFACE, ns.name):
            lines.append(f"    {r.name:<10} {_value(r.addresses):<20} bridge {r.bridge}, host veth {r.host_name}, {_value(r.up)}")  # type: ignore[attr-defined]
        for r in _of_kind(state, Kind.ROUTE, ns.name):
            lines.append(f"    route {r.to} via {r.via}")  # type: ignore[attr-defined]
    for r in _of_kind(state, Kind.SYSCTL):
        lines.append(f"  sysctl {r.key} = {r.value}")  # type: ignore[attr-defined]
    for r in _of_kind(state, Kind.NFT_TABLE):
        lines.append(f"  nft table ip {r.name}:")
        lines += [f"    {rule.chain}: {rule.comment}" for rule in r.rules]  # type: ignore[attr-defined]
    if len(lines) == 1:
        lines.append("  (nothing live)")
    if drift.empty:
        lines.append("No drift: the live state matches the topology.")
    else:
        lines += ["", "Drift (nsnet apply would do this):"]
        for marker, action in _pairs(drift.actions):
            lines += action_lines(marker, action)
        lines += [summary(drift)]
    return "\n".join(lines) + "\n"


def _of_kind(state: State, kind: Kind, namespace: str | None = None) -> list[Resource]:
    found = [r for rid, r in state.items() if rid.kind is kind and (namespace is None or rid.namespace == namespace)]
    return sorted(found, key=lambda r: r.id.name)
