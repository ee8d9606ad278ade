"""The tables of `nsnet show` (one per namespace, drift marked) and `nsnet ls`."""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

from ..model.topology import PortForward
from ..resources.ids import ORPHAN_NAMESPACE
from ..engine.plan import Plan
from .plans import describe, field_texts, display_pairs, value_text, summary
from ..resources.bridge import BridgeState
from ..resources.docker_user import IptablesRulesState
from ..resources.ids import ResourceId
from ..resources.interface import InterfaceState
from ..resources.link import LinkState
from ..resources.namespace import NamespaceState
from ..resources.namespace_sysctl import NamespaceSysctlState
from ..resources.nft_table import NftTableState
from ..resources.registry import Resource
from ..resources.route import UNICAST, RouteState
from ..resources.state import State
from ..resources.sysctl import SysctlState
from .style import PLAIN, Style
from ..words import counted


MANY_NAMESPACES = 20  # past this, show's tables run off the screen: point to the one-row summary

Setting = SysctlState | NftTableState | IptablesRulesState  # a row of the host's settings table


def show_text(topology: str, state: State, drift: Plan, forwards: Sequence[PortForward] = (), style: Style = PLAIN) -> str:
    """The live objects of a topology as tables, the host first then one per namespace.

    The first column marks drift with the plan markers (what `nsnet apply` would
    do: `+` missing, `~` changed, `-` not in the file, `-/+` replaced), and the
    changed attributes follow their row."""
    marks = {action.id: marker for marker, action in display_pairs(drift.actions)}
    rows = dict(state)
    rows.update({a.id: a.after for a in drift.actions if a.after is not None and a.id not in rows})
    details = {a.id: [t for f in a.fields for t in field_texts(f)] for a in drift.actions}
    view = _ShowView(rows, marks, details, style)
    verdict = "in sync" if drift.empty else f"drifted: {summary(drift)[len('Plan: ') : -1]} (`nsnet apply` repairs it)"
    lines = [style.paint("bold", f"Topology {topology}: {verdict}")]
    lines += view.host()
    namespaces = _of_kind(rows, NamespaceState)
    for ns in namespaces:
        lines += view.namespace(ns, [f for f in forwards if f.namespace == ns.name])
    if not rows:
        lines += ["", "  (nothing live, nothing planned)"]
    if not drift.empty:
        lines += ["", "Marks: + missing, ~ changed, - not in the file, -/+ replaced; `nsnet plan` shows the actions."]
    if len(namespaces) > MANY_NAMESPACES:
        lines += [
            "",
            f"{counted(len(namespaces), 'namespace')}: `nsnet ls` sums each topology up in one row; `nsnet show --json` is all of this for scripts.",
        ]
    return "\n".join(lines) + "\n"


class _ShowView:
    """Table rows of `nsnet show`, each with its drift mark."""

    def __init__(self, rows: State, marks: dict[ResourceId, str], details: dict[ResourceId, list[str]], style: Style):
        self.rows, self.marks, self.details, self.style = rows, marks, details, style

    def host(self) -> list[str]:
        bridges = _of_kind(self.rows, BridgeState)
        settings: list[Setting] = [*_of_kind(self.rows, SysctlState), *_of_kind(self.rows, NftTableState), *_of_kind(self.rows, IptablesRulesState)]
        orphans = _of_kind(self.rows, InterfaceState, ORPHAN_NAMESPACE)  # host veth ends whose namespace end is gone
        if not bridges and not settings and not orphans:
            return []
        lines = ["", self._mark(None) + self.style.paint("bold", "host")]
        lines += self.table(
            ["BRIDGE", "ADDRESS", "MTU", "STATE"], [(b, [b.name, value_text(b.addresses), str(b.mtu or "-"), value_text(b.up)]) for b in bridges]
        )
        lines += self.table(["HOST SETTING", "VALUE"], [(r, self._setting(r)) for r in settings])
        lines += self.table(["ORPHANED VETH END", "STATE"], [(i, [i.name, value_text(i.host_up)]) for i in orphans])
        return lines

    def namespace(self, ns: NamespaceState, forwards: Sequence[PortForward]) -> list[str]:
        name = ns.name
        loopback = f", loopback {', '.join(ns.loopback)}" if ns.loopback else ""
        lines = ["", self._mark(ns) + self.style.paint("bold", f"namespace {name}") + f" (lo {value_text(ns.lo_up)}{loopback})"]
        lines += self.details_of(ns)
        interfaces = _of_kind(self.rows, InterfaceState, name)
        lines += self.table(
            ["INTERFACE", "ADDRESS", "BRIDGE", "HOST VETH", "STATE"],
            [(i, [i.name, value_text(i.addresses), value_text(i.bridge), value_text(i.host_name), value_text(i.up)]) for i in interfaces],
        )
        lines += self.table(["LINK", "PEER", "ADDRESS", "NETEM", "STATE"], [(link, _link_row(link, name)) for link in self._links(name)])
        lines += self.table(["ROUTE", "VIA"], [(r, [r.to, _route_text(r)]) for r in _of_kind(self.rows, RouteState, name)])
        lines += self.table(["SYSCTL", "VALUE"], [(s, [s.key, s.value]) for s in _of_kind(self.rows, NamespaceSysctlState, name)])
        lines += self.table(["FORWARD (host -> here)", ""], [(None, [_forward_text(f), ""]) for f in forwards])
        return lines

    def _links(self, namespace: str) -> list[LinkState]:
        """The links with an end here: those homed here, and those whose peer end is here."""
        links = _of_kind(self.rows, LinkState)
        return [link for link in links if namespace in (link.namespace, link.peer_namespace)]

    def table(self, headers: list[str], rows: Sequence[tuple[Resource | None, list[str]]]) -> list[str]:
        if not rows:
            return []
        widths = [max(len(cells[i]) for cells in [headers] + [c for _, c in rows]) for i in range(len(headers))]
        lines = ["      " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
        for resource, cells in rows:
            lines.append(self._mark(resource) + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
            if resource is not None:
                lines += self.details_of(resource)
        return lines

    def details_of(self, resource: Resource) -> list[str]:
        return [f"        {self.style.paint('change', text)}" for text in self.details.get(resource.id, [])]

    def _mark(self, resource: Resource | None) -> str:
        """The drift column: two spaces, the mark padded to three, one space."""
        mark = self.marks.get(resource.id, "") if resource is not None else ""
        return f"  {self.style.marker(mark)}{' ' * (4 - len(mark))}"

    @staticmethod
    def _setting(resource: Setting) -> list[str]:
        if isinstance(resource, SysctlState):
            return [f"sysctl {resource.key}", resource.value]
        if isinstance(resource, NftTableState):
            return [f"nft table {resource.family} {resource.name}", describe(resource)]
        return [str(resource.id), describe(resource)]  # rules in Docker's chain: `iptables rule DOCKER-USER`


def _forward_text(forward: PortForward) -> str:
    address = forward.host_address
    where = "*" if address is None else f"[{address}]" if address.version == 6 else str(address)
    target = f"{forward.interface} port" if forward.interface else "port"
    return f"{forward.protocol.value} {where}:{forward.host_port} -> {target} {forward.port}"


R = TypeVar("R", bound=Resource)


def _route_text(route: RouteState) -> str:
    """Its gateways; a route without one by its type or device (every route has a device in the kernel)."""
    text = ", ".join(route.via) or (route.type if route.type != UNICAST else f"dev {route.dev}")
    return f"{text} (metric {route.metric})" if route.metric else text


def _link_row(link: LinkState, namespace: str) -> list[str]:
    """One end of a link, as seen from its namespace."""
    if link.namespace == namespace:
        ends = (link.name, f"{link.peer_namespace}:{link.peer_name}", link.addresses, link.netem, link.up)
    else:
        ends = (link.peer_name or "?", f"{link.namespace}:{link.name}", link.peer_addresses, link.peer_netem, link.peer_up)
    name, peer, addresses, netem, up = ends
    return [name, peer, value_text(addresses), netem or "-", value_text(up)]


def _of_kind(state: State, kind: type[R], namespace: str | None = None) -> list[R]:
    """The resources of one kind (of one namespace, or all), by id."""
    found = [r for rid, r in state.items() if isinstance(r, kind) and (namespace is None or rid.home == namespace)]
    return sorted(found, key=lambda r: r.id.key)


def ls_rows(found: Sequence[Any], drifts: Sequence[Any]) -> list[dict[str, Any]]:
    """`nsnet ls --json` topologies (schemas/ls.schema.json)."""
    return [
        {
            "name": f.name,
            "bridges": f.bridges,
            "namespaces": f.namespaces,
            "veths": f.veths,
            "nft_table": f.nft_table,
            "file": f.file,
            "drifted": d.drifted,
            "changes": d.changes,
            "note": d.note,
        }
        for f, d in zip(found, drifts, strict=True)
    ]


def ls_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No nsnet topologies on this host.\n"
    headers = ["TOPOLOGY", "BRIDGES", "NAMESPACES", "VETHS", "NFT TABLE", "DRIFT", "FILE"]
    cells = [
        [r["name"], str(r["bridges"]), str(r["namespaces"]), str(r["veths"]), "yes" if r["nft_table"] else "no", _drift_cell(r), _file_cell(r)]
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [headers] + cells) for i in range(len(headers))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in [headers] + cells)


def _file_cell(row: dict[str, Any]) -> str:
    """The file of the last apply, or for a CNI network its attachments (their namespaces are the runtime's)."""
    if row.get("cni_attachments") is not None:
        return f"CNI network: {counted(row['cni_attachments'], 'attachment')} (runtime-owned namespaces)"
    return row["file"] or "-"


def _drift_cell(row: dict[str, Any]) -> str:
    if row["drifted"] is None:
        return f"unknown: {row['note']}"
    return f"yes ({counted(row['changes'], 'action')})" if row["drifted"] else "no"
