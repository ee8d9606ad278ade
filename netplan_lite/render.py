"""All text and JSON output of nsnet. The library never prints; this renders."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from .apply import ActionResult
from .diff import FieldChange
from .plan import Action, Op, Plan
from .reconcile import Applied, Planned
from .state import BridgeState, InterfaceState, Kind, NamespaceState, Resource, RouteState, State

FORMAT_VERSION = 1
MARKERS = {Op.CREATE: "+", Op.UPDATE: "~", Op.DELETE: "-"}


def resource_json(resource: Resource | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    doc = dataclasses.asdict(resource)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in doc.items()}


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(none)"
    if isinstance(value, bool):
        return "up" if value else "down"
    return "(none)" if value is None else str(value)


def _field_name(name: str) -> str:
    return {"up": "state", "host_up": "host end state", "lo_up": "lo state", "host_name": "host veth"}.get(name, name)


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
    else:
        parts = []
    return ", ".join(parts)


def _field_line(change: FieldChange) -> str:
    return f"{_field_name(change.field)}: {_value(change.before)} -> {_value(change.after)}"


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
        lines += [f"      {_field_line(f)}" for f in action.fields]
    elif action.op is Op.CREATE and action.after is not None and describe(action.after):
        lines.append(f"      {describe(action.after)}")
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
    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

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
    note = f" ({action.reason})" if action.reason else " (with its namespace)" if action.implied_by else ""
    return f"  {marker} {action.id}{note}  [{result.seconds * 1000:.0f} ms]"


def applied_summary(applied: Applied, verb: str, seconds: float) -> str:
    if not applied.results:
        return "No changes."
    add, change, destroy = applied.planned.plan.counts()
    state = "verified" if applied.converged else "NOT verified"
    return f"{verb} complete: {add} added, {change} changed, {destroy} destroyed in {seconds:.2f} s; live state {state}."


def applied_json(applied: Applied, seconds: float) -> dict[str, Any]:
    doc = plan_json(applied.planned)
    doc["applied"] = [{"op": r.action.op.value, "id": str(r.action.id), "seconds": round(r.seconds, 6)} for r in applied.results]
    doc["converged"] = applied.converged
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
