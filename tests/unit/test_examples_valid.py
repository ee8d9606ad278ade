"""The example labs in examples/ are valid as they are, documented, and can run side by side.

No root needed: only `nsnet validate` (which touches nothing) and the files
themselves. tests/integration/test_examples.py applies each lab to the kernel.
"""

from __future__ import annotations

import subprocess
import sys
from ipaddress import ip_network
from itertools import combinations
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_the_main_example_and_at_least_five_labs():
    assert EXAMPLES / "topology.yaml" in FILES
    assert len(FILES) >= 6, [f.name for f in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_validates_as_it_is(path):
    done = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "validate", str(path)], capture_output=True, text=True, timeout=60, cwd=EXAMPLES.parent
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"{path}: valid topology "), done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_starts_with_a_comment_saying_what_it_shows(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, f"{path.name}: no header comment"


def test_the_index_lists_every_example():
    index = (EXAMPLES / "README.md").read_text()
    for path in FILES:
        assert f"]({path.name})" in index, f"examples/README.md does not link {path.name}"


def _listed(value: str | list[str]) -> list[str]:
    """A subnet, or a bridge's list of one per family."""
    return value if isinstance(value, list) else [value]


def _names(path: Path) -> dict[str, set]:
    doc = yaml.safe_load(path.read_text())
    forwards = doc.get("port_forwards") or []
    return {
        "topology": {doc["name"]},
        "bridge": set(doc.get("bridges") or {}),
        "namespace": set(doc.get("namespaces") or {}),
        "host port": {(f.get("protocol", "tcp"), f["host_port"]) for f in forwards},
        "subnets": {ip_network(s) for b in (doc.get("bridges") or {}).values() if "subnet" in b for s in _listed(b["subnet"])},
    }


@pytest.mark.parametrize("first, second", list(combinations(FILES, 2)), ids=lambda p: p.name)
def test_two_examples_can_be_applied_side_by_side(first, second):
    """Different topology, bridge and namespace names, host ports and subnets: no lab refuses another."""
    a, b = _names(first), _names(second)
    for kind in ("topology", "bridge", "namespace", "host port"):
        assert not a[kind] & b[kind], f"{first.name} and {second.name} share {kind}s {a[kind] & b[kind]}"
    overlaps = [(x, y) for x in a["subnets"] for y in b["subnets"] if x.overlaps(y)]
    assert not overlaps, f"{first.name} and {second.name}: overlapping subnets {overlaps}"
