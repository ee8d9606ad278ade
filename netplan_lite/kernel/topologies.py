"""Every nsnet topology on this host (`nsnet ls`), found by its labels alone.

Host links and each namespace's `lo` carry `nsnet:<topology>` (labels.py),
nft tables are named `nsnet-<topology>`. Whether a topology has drifted needs
its file: a successful apply remembers the file's path in
/run/nsnet/<topology>/source.json, and `ls` plans against it when it is
still there.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

from . import netns, nftables
from .fanout import fan_out
from ..engine.rundir import topology_dir, topology_file
from ..labels import owner_of
from ..resources.nat import TABLE_PREFIX
from .netlink import Netlink

SOURCE_FILE = "source.json"


@dataclass
class Found:
    name: str
    bridges: int = 0
    namespaces: int = 0
    veths: int = 0  # host ends
    nft_table: bool = False
    file: str | None = None  # as the last successful apply read it


def _source_record(topology: str) -> str:
    return topology_file(topology, SOURCE_FILE)


def remember_source(topology: str, path: str) -> None:
    topology_dir(topology)
    with os.fdopen(os.open(_source_record(topology), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({"file": os.path.abspath(path)}, f)


def forget_source(topology: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_source_record(topology))


def remembered_source(topology: str) -> str | None:
    try:
        with open(_source_record(topology)) as f:
            return json.load(f)["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_topologies(nl: Netlink) -> list[Found]:
    """Topologies with at least one labelled object on the host, by name."""
    found: dict[str, Found] = {}

    def of(name: str) -> Found:
        return found.setdefault(name, Found(name))

    for link in nl.links(None):
        owner = owner_of(link.alias)
        if owner and link.kind == "bridge":
            of(owner).bridges += 1
        elif owner and link.kind == "veth":
            of(owner).veths += 1
    for owner in fan_out(lambda name: _namespace_owner(nl, name), netns.list_names()):
        if owner:
            of(owner).namespaces += 1
    for table in nftables.list_tables():
        of(table[len(TABLE_PREFIX) :]).nft_table = True
    for item in found.values():
        item.file = remembered_source(item.name)
    return sorted(found.values(), key=lambda f: f.name)


def _namespace_owner(nl: Netlink, name: str) -> str | None:
    try:
        lo = next((link for link in nl.links(name) if link.name == "lo"), None)
    except OSError:  # vanished, or not a namespace
        return None
    finally:
        nl.forget(name)
    return owner_of(lo.alias) if lo else None


@dataclass(frozen=True)
class Drift:
    drifted: bool | None  # None: unknown
    changes: int | None = None
    note: str | None = None  # why unknown


def drift_of(found: Found) -> Drift:
    """Plan the topology against its remembered file; unknown when the file is not usable."""
    from ..engine import reconcile
    from ..errors import NsnetError
    from .live import open_kernel
    from ..model.loader import load_file

    if found.file is None:
        return Drift(None, note="no file recorded (not applied by this nsnet version)")
    if not os.path.exists(found.file):
        return Drift(None, note=f"{found.file} is gone")
    try:
        topology = load_file(found.file)
        if topology.name != found.name:
            return Drift(None, note=f"{found.file} now defines topology {topology.name!r}")
        with open_kernel(found.name) as kernel:
            plan = reconcile.plan(topology, kernel).plan
    except NsnetError as err:
        return Drift(None, note=f"cannot plan: {err.lines()[0]}")
    return Drift(not plan.empty, len(plan.actions))
