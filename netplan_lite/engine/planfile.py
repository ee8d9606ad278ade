"""Saved plans (`nsnet plan -o FILE`, `nsnet apply FILE`).

A saved plan embeds the topology text and fingerprints of that text and of
the observed kernel state. Applying it recomputes the plan and refuses when
either fingerprint moved: the plan shown is then no longer the plan run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import StalePlanError, TopologyError, Problem
from .reconcile import Planned

PLAN_KIND = "nsnet-plan"


@dataclass(frozen=True)
class SavedPlan:
    source: str
    topology_text: bytes
    observed: str  # fingerprint of the observed state
    targets: tuple[str, ...] = ()  # `--target` namespaces: the plan covers only those

    @property
    def topology_sha256(self) -> str:
        return sha256(self.topology_text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_plan_file(raw: bytes) -> bool:
    try:
        return json.loads(raw).get("kind") == PLAN_KIND
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def save(path: str, planned: Planned, plan_doc: dict, source: str, topology_text: bytes) -> None:
    doc = {
        "kind": PLAN_KIND,
        "source": os.path.abspath(source),
        "topology_text": topology_text.decode("utf-8"),
        "topology_sha256": sha256(topology_text),
        "observed_sha256": planned.fingerprint,
        "plan": plan_doc,
        "targets": sorted(planned.scope.namespaces or ()),
    }
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def load(path: str, raw: bytes) -> SavedPlan:
    try:
        doc = json.loads(raw)
        targets = tuple(doc.get("targets") or ())
        return SavedPlan(doc["source"], doc["topology_text"].encode("utf-8"), doc["observed_sha256"], targets)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TopologyError([Problem(path, None, None, "", "not a readable nsnet plan file")]) from None


def check_fresh(saved: SavedPlan, planned: Planned) -> None:
    """Refuse a saved plan whose topology file or observed state changed since."""
    try:
        current = Path(saved.source).read_bytes()
    except OSError:
        current = saved.topology_text  # the file moved: the embedded text still defines the plan
    if sha256(current) != saved.topology_sha256:
        raise StalePlanError(f"saved plan is stale: {saved.source} changed since the plan was made; run nsnet plan again")
    if planned.fingerprint != saved.observed:
        raise StalePlanError("saved plan is stale: the live state changed since the plan was made (already applied, or drift); run nsnet plan again")
