"""Golden plans: a desired topology and an observed state (resources as JSON, decoded through
the registry; `docker_chains`: the iptables kinds whose Docker chain the host has) in, the exact
plan text out. One file per case in tests/golden/plans/;
NSNET_REGOLD=1 rewrites the expected text (then read the diff before committing it)."""

from __future__ import annotations

import dataclasses
import os
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from pathlib import Path

import pytest
import yaml
from builders import topology

from netplan_lite.engine import reconcile
from netplan_lite.engine.observation import Observation
from netplan_lite.render.plans import plan_text, resource_json
from netplan_lite.resources.ids import Kind
from netplan_lite.resources.registry import decode
from netplan_lite.resources.state import state_of

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plans"
CASES = sorted(GOLDEN.glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


class _Literal(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a golden plan reads as the plan it is."""


_Literal.add_representer(str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def planned(case: dict) -> reconcile.Planned:
    observed = state_of(decode(doc) for doc in case.get("observed") or [])
    assigned = [(tuple(key.split("/")), ip_interface(value)) for key, value in (case.get("assigned") or {}).items()]
    v4 = {key: a for key, a in assigned if isinstance(a, IPv4Interface)}
    v6 = {key: a for key, a in assigned if isinstance(a, IPv6Interface)}
    chains = frozenset(Kind(kind) for kind in case.get("docker_chains") or ())  # the host has Docker's chain there
    desired = topology(case["topology"])
    if case.get("forward_maps"):  # a CNI network (cni/network.py builds it; no file says so)
        desired = dataclasses.replace(desired, forward_maps=True)
    return reconcile.compute(desired, Observation(observed, assigned=v4, docker_chains=chains, assigned6=v6))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_plan(path: Path):
    case = load(path)
    text = plan_text(planned(case))
    if os.environ.get("NSNET_REGOLD"):
        case["plan"] = text
        path.write_text(yaml.dump(case, Dumper=_Literal, sort_keys=False, width=200))
    assert text == case["plan"]


def test_observed_resources_round_trip_through_json():
    for path in CASES:
        for doc in load(path).get("observed") or []:
            resource = decode(doc)
            assert decode(resource_json(resource)) == resource, path.name
            assert {k: v for k, v in resource_json(resource).items() if k in doc} == doc, path.name


def kinds_planned() -> set[str]:
    return {action.id.kind.value for path in CASES for action in planned(load(path)).plan.actions}
