"""What an operator sees against the real kernel: ls, show tables, colour on a terminal only,
the apply progress bar, and --json documents that match the published schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"


def assert_valid(schema: str, doc: dict) -> None:
    docs = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources((n, Resource.from_contents(d)) for n, d in docs.items())
    errors = list(Draft202012Validator(docs[schema], registry=registry).iter_errors(doc))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def on_terminal(lab, *args: str, env: dict[str, str] | None = None) -> str:
    """Run nsnet with its stdout on a pseudo-terminal; what it wrote there."""
    main, child = os.openpty()
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env = {**base, "TERM": "xterm", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "netplan_lite", *args], stdout=child, stderr=subprocess.PIPE, cwd=REPO, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) in (0, 2), proc.stderr.read()
    return b"".join(chunks).decode()


def test_ls_lists_the_topology_with_counts_and_drift(lab):
    ex = lab.example()
    assert lab.nsnet("apply", ex.path)[0] == 0

    def mine() -> dict:
        rc, out, err = lab.nsnet("ls", "--json")
        assert rc == 0, err
        doc = json.loads(out)
        assert_valid("ls.schema.json", doc)
        return next((t for t in doc["topologies"] if t["name"] == ex.topology), None)

    assert mine() == {
        "name": ex.topology,
        "bridges": 1,
        "namespaces": 2,
        "veths": 2,
        "nft_table": False,
        "file": str(ex.path),
        "drifted": False,
        "changes": 0,
        "note": None,
        "cni_attachments": None,
    }
    lab.ip("-n", ex.web1, "route", "del", "default")
    found = mine()
    assert (found["drifted"], found["changes"]) == (True, 1)
    rc, out, _ = lab.nsnet("ls")
    row = next(line for line in out.splitlines() if line.startswith(ex.topology + " "))
    assert row.split()[1:5] == ["1", "2", "2", "no"] and "yes (1 action)" in row

    assert lab.nsnet("destroy", ex.path)[0] == 0
    assert mine() is None


def test_show_marks_drift_in_the_namespace_table(lab, applied):
    ex = applied
    lab.ip("-n", ex.web2, "link", "set", "eth0", "down")
    rc, out, err = lab.nsnet("show", ex.path)
    assert rc == 0, err
    block = out.split(f"namespace {ex.web2}")[1]
    row = next(line for line in block.splitlines() if " eth0 " in line)
    assert row.split()[:3] == ["~", "eth0", ex.cidr(2)] and row.split()[-1] == "down"
    assert "state down -> up" in block


def test_colour_on_a_terminal_and_never_in_a_pipe(lab):
    ex = lab.example()
    assert "\033[" not in lab.nsnet("plan", ex.path)[1]
    coloured = on_terminal(lab, "plan", str(ex.path))
    assert "\033[32m+\033[0m namespace" in coloured
    assert "\033[" not in on_terminal(lab, "plan", "--no-color", str(ex.path))
    assert "\033[" not in on_terminal(lab, "plan", str(ex.path), env={"NO_COLOR": "1"})


def test_apply_shows_a_progress_bar_when_the_actions_do_not_fit_the_screen(lab):
    ex = lab.example()
    out = on_terminal(lab, "apply", str(ex.path), env={"LINES": "4", "COLUMNS": "100"})
    assert "actions, " in out and "s left" in out
    final = out.replace("\r", "\n").strip().splitlines()[-1]
    assert "Apply complete: " in final and " s; live state verified." in final
    assert lab.nsnet("destroy", ex.path)[0] == 0


def test_json_of_the_real_kernel_matches_the_schemas(lab):
    ex = lab.example()
    for command, schema in (
        ("plan", "plan.schema.json"),
        ("apply", "plan.schema.json"),
        ("show", "state.schema.json"),
        ("destroy", "plan.schema.json"),
    ):
        rc, out, err = lab.nsnet(command, "--json", ex.path)
        assert rc == 0, err
        assert_valid(schema, json.loads(out))
