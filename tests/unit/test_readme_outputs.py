"""What the README and the tutorial show as output is what nsnet prints (no root: a FakeKernel stands in).

The README's command blocks themselves are run against the kernel by
tests/integration/test_readme.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from netplan_lite.cli import main as cli
from netplan_lite.engine import reconcile
from netplan_lite.render import plans as render
from netplan_lite.model import init as scaffold
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.model.loader import load_bytes

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_plan_shown_for_the_starter_is_the_plan_nsnet_prints():
    shown = re.search(r"What `nsnet plan` prints for that\nstarter:\n\n```text\n(.*?)```", README, re.S)
    assert shown, "README lost the starter's plan output"
    starter = load_bytes(scaffold.render("topology.yaml").encode(), "topology.yaml")
    assert render.plan_text(reconcile.plan(starter, FakeKernel())) == shown.group(1)


def test_the_exit_code_table_matches_nsnet_help():
    table = re.search(r"<!-- exit-codes -->\n(\|.*?)\n\n", README, re.S).group(1)
    codes = dict(re.findall(r"^\| (\d) \| (.+) \|$", table, re.M))
    help_codes = dict(re.findall(r"^  (\d)  (.+)$", cli.EXIT_CODES, re.M))
    assert sorted(help_codes) == ["0", "1", "2", "3", "4"]
    assert set(codes) == set(help_codes)
    assert "test" in codes["4"] and "test" in help_codes["4"]
    for code in codes:  # the same cases, in the README's words and in --help's
        assert code != "3" or ("show --check" in codes[code] and "show --check" in help_codes[code])
        assert code != "2" or ("detailed-exitcode" in codes[code] and "detailed-exitcode" in help_codes[code])


def test_the_tutorials_plans_are_what_nsnet_prints():
    """Replays docs/tutorial.md on a FakeKernel: each step's YAML, its `nsnet apply`, and every
    `nsnet plan` output shown until the step that changes the kernel by hand."""
    tutorial = (Path(__file__).resolve().parents[2] / "docs" / "tutorial.md").read_text()
    kernel, compared = FakeKernel(), 0
    steps = re.findall(r"```(yaml|console)\n(.*?)```", tutorial, re.S)
    for command, output, text in _tutorial_commands(steps):
        if "ip link set" in command:
            break  # drift made by hand from here on: the fake kernel does not model it
        if command == "nsnet plan":
            assert render.plan_text(reconcile.plan(load_bytes(text.encode(), "topology.yaml"), kernel)) == output
            compared += 1
        elif command == "nsnet apply":
            reconcile.apply(load_bytes(text.encode(), "topology.yaml"), kernel)
    assert compared >= 5


def _tutorial_commands(steps):
    """(command, its output, the topology file at that point) for each `# command` of the console blocks."""
    text = ""
    for kind, body in steps:
        if kind == "yaml" and body.startswith("name:"):
            text = body
        elif kind == "console":
            for command, output in re.findall(r"^# (.*)\n((?:(?!# ).*\n)*)", body, re.M):
                yield command, output, text
