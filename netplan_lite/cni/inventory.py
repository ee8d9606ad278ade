"""The CNI networks on this host as `nsnet ls` and `nsnet show NETWORK` list them: each attachment
(runtime-owned: nsnet never creates or deletes its namespace) and its drift, planned against the
configuration the last ADD recorded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import records, verbs
from .config import NetConf, Request, network_conf
from .records import Attachment
from .spec import CniError


@dataclass(frozen=True)
class Listed:
    attachment: Attachment
    changes: tuple[str, ...] | None  # None: cannot be planned (see note)
    note: str | None = None


@dataclass(frozen=True)
class Network:
    conf: NetConf
    attachments: tuple[Listed, ...] = field(default_factory=tuple)

    @property
    def drifted(self) -> bool | None:
        if any(a.changes is None for a in self.attachments):
            return None
        return any(a.changes for a in self.attachments)

    @property
    def changes(self) -> int:
        return sum(len(a.changes or ()) for a in self.attachments)


def is_network(name: str) -> bool:
    return records.load_network(name) is not None


def network(name: str) -> Network | None:
    """The CNI network `name` with every attachment's drift, or None if there is none of that name."""
    doc = records.load_network(name)
    if doc is None:
        return None
    try:
        conf = network_conf(doc, Request("DEL"))
    except CniError:
        return None
    return Network(conf, tuple(_listed(conf, a) for a in records.attachments(name)))


def _listed(conf: NetConf, attachment: Attachment) -> Listed:
    if not os.path.exists(attachment.netns):
        return Listed(attachment, None, f"its namespace {attachment.netns} is gone (the runtime's DEL removes the rest)")
    try:
        return Listed(attachment, tuple(verbs.drift(conf, attachment)))
    except CniError as err:
        return Listed(attachment, None, err.msg)


def show_json(net: Network) -> dict[str, Any]:
    """`nsnet show NETWORK --json` for a CNI network (schemas/cni-show.schema.json)."""
    return {
        "format_version": 1,
        "network": net.conf.name,
        "bridge": net.conf.bridge,
        "subnets": [str(r.subnet) for r in net.conf.ranges],
        "drifted": net.drifted,
        "attachments": [
            {
                "container_id": a.attachment.container_id,
                "ifname": a.attachment.ifname,
                "netns": a.attachment.netns,
                "runtime_owned": True,
                "host_veth": a.attachment.host_veth,
                "mac": a.attachment.mac,
                "addresses": list(a.attachment.addresses),
                "port_mappings": list(a.attachment.port_mappings),
                "drifted": None if a.changes is None else bool(a.changes),
                "changes": None if a.changes is None else list(a.changes),
                "note": a.note,
            }
            for a in net.attachments
        ],
    }


def show_text(net: Network) -> str:
    subnets = ", ".join(str(r.subnet) for r in net.conf.ranges) or "addresses from a delegated IPAM"
    lines = [
        f"CNI network {net.conf.name}: bridge {net.conf.bridge}, {subnets}; {len(net.attachments)} attachment(s), namespaces owned by the runtime"
    ]
    for a in net.attachments:
        att = a.attachment
        ports = ", ".join(f"{m['protocol']} {m['hostIP'] or '*'}:{m['hostPort']}->{m['containerPort']}" for m in att.port_mappings)
        state = f"unknown: {a.note}" if a.changes is None else ("drifted: " + "; ".join(a.changes) if a.changes else "in sync")
        where = f"{att.container_id[:12]} {att.ifname} in {att.netns} (runtime-owned)"
        lines.append(f"  {where}: {', '.join(att.addresses)}, mac {att.mac}, host veth {att.host_veth}")
        lines.append(f"    {'ports ' + ports + '; ' if ports else ''}{state}")
    return "\n".join(lines) + "\n"
