"""The generated docs stay in step with their sources; the CI recipe stays runnable.

- docs/format.md is generated from schemas/topology.schema.json by
  scripts/gen-format-doc: stale means failed, with the command that fixes it.
- docs/ci/github-actions.yml is valid YAML with the steps docs/ci.md explains,
  and docs/ci.md embeds it verbatim.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from netplan_lite.model import semantic as checks, yamlsource

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "gen-format-doc"
FORMAT_DOC = ROOT / "docs" / "format.md"
SCHEMA = ROOT / "schemas" / "topology.schema.json"
WORKFLOW = ROOT / "docs" / "ci" / "github-actions.yml"
CI_DOC = ROOT / "docs" / "ci.md"
TUTORIAL = ROOT / "docs" / "tutorial.md"
REGENERATE = "docs/format.md is stale: run `scripts/gen-format-doc` and commit docs/format.md with the schema change"


def load_generator() -> ModuleType:
    """scripts/gen-format-doc as a module (it has no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader("gen_format_doc", str(GENERATOR))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return load_generator()


# docs/format.md


def test_format_doc_is_up_to_date(gen):
    expected = gen.generate()
    current = FORMAT_DOC.read_text() if FORMAT_DOC.exists() else ""
    if current != expected:
        differing = next(
            (i for i, (a, b) in enumerate(zip(current.splitlines(), expected.splitlines(), strict=False), 1) if a != b),
            min(len(current.splitlines()), len(expected.splitlines())) + 1,
        )
        pytest.fail(f"{REGENERATE} (first difference at line {differing})", pytrace=False)


def test_format_doc_starts_by_saying_it_is_generated_and_how_to_regenerate_it():
    first = FORMAT_DOC.read_text().splitlines()[0]
    assert "Generated" in first and "scripts/gen-format-doc" in first and "do not edit" in first


def test_the_generator_is_an_executable_standard_library_script_whose_check_passes():
    assert os.access(GENERATOR, os.X_OK)
    assert GENERATOR.read_text().startswith("#!/usr/bin/env python3\n")
    imports = re.findall(r"^(?:from|import) (\w+)", GENERATOR.read_text(), re.M)
    assert set(imports) <= {"__future__", "argparse", "ast", "json", "re", "sys", "pathlib", "typing"}
    # -I -S: no site-packages, no PYTHONPATH, no current directory: the standard library alone must do
    result = subprocess.run([sys.executable, "-I", "-S", str(GENERATOR), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or REGENERATE


def test_check_mode_fails_with_one_line_naming_the_fix_when_the_doc_is_stale_or_missing(gen, tmp_path, monkeypatch, capsys):
    doc = tmp_path / "format.md"
    monkeypatch.setattr(gen, "DOC", doc)
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err and "scripts/gen-format-doc" in err

    assert gen.main([]) == 0 and doc.read_text() == gen.generate()
    assert gen.main(["--check"]) == 0
    capsys.readouterr()

    doc.write_text(doc.read_text().replace("| `subnet` |", "| `subnets` |"))
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of date" in err and "scripts/gen-format-doc" in err


def _schema_keys(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        found |= set(node.get("properties", {}))
        for value in node.values():
            found |= _schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= _schema_keys(value)
    return found


def test_every_key_of_the_schema_has_a_row_with_its_description():
    schema = json.loads(SCHEMA.read_text())
    text = FORMAT_DOC.read_text()
    for key in _schema_keys(schema):
        assert f"| `{key}` |" in text, f"{key} is not documented in docs/format.md"
    descriptions = [n["description"] for n in _walk(schema) if isinstance(n, dict) and isinstance(n.get("description"), str)]
    for description in descriptions:
        assert description in text, f"schema description missing from docs/format.md: {description!r}"


def _walk(node: Any):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


def test_every_value_type_and_object_has_its_own_section():
    schema = json.loads(SCHEMA.read_text())
    headings = {line.lstrip("#").strip() for line in FORMAT_DOC.read_text().splitlines() if line.startswith("#")}
    for name, node in schema["$defs"].items():
        title = name if "properties" not in node else name.replace("_", " ").capitalize()
        assert title in headings, f"no section for $defs/{name}"


def test_rules_beyond_the_schema_quote_the_limits_the_code_enforces():
    text = FORMAT_DOC.read_text()
    assert "## Rules beyond the schema" in text
    assert f"At most {checks.MAX_BRIDGE_PORTS} interfaces use one bridge" in text
    assert f"between /{checks.MIN_PREFIX} and /{checks.MAX_PREFIX}" in text
    assert f"at most {yamlsource.MAX_BYTES} bytes" in text
    assert f"at most {yamlsource.MAX_DEPTH} levels" in text
    assert f"at most {yamlsource.MAX_NODES} nodes, or one node per {yamlsource.BYTES_PER_NODE} bytes" in text


def _anchors(gen: ModuleType, path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {gen.anchor(line.lstrip("#").strip().replace("`", "")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("doc", [FORMAT_DOC, CI_DOC, TUTORIAL], ids=lambda p: p.name)
def test_relative_links_and_anchors_of_the_docs_resolve(gen, doc):
    for target, anchor in re.findall(r"\]\((?!https?:)([^)#]*)(?:#([^)]+))?\)", doc.read_text()):
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name} links to missing {target}"
        if anchor:
            assert anchor in _anchors(gen, path), f"{doc.name} links to {target}#{anchor}, which is no heading"


def test_schema_examples_are_shown_when_a_definition_has_them(gen):
    schema = json.loads(SCHEMA.read_text())
    schema["$defs"]["route"]["examples"] = [{"to": "10.9.0.0/16", "via": "172.30.0.254"}]
    text = gen.render(schema, gen.EXAMPLE.read_text(), gen.constants())
    route = text.split("## Route", 1)[1].split("\n## ", 1)[0]
    assert "Example, from the schema:\n\n```yaml\nto: 10.9.0.0/16\nvia: 172.30.0.254\n```" in route
    assert yaml.safe_load(gen.to_yaml({"a": [1, "on", {"b": None}], "c": "x y"})) == {"a": [1, "on", {"b": None}], "c": "x y"}


def test_examples_in_the_format_doc_are_valid_yaml_taken_from_the_example_topology():
    example = (ROOT / "examples" / "topology.yaml").read_text()
    blocks = re.findall(r"from \[`examples/topology.yaml`\]\(\.\./examples/topology.yaml\):\n\n```yaml\n(.*?)```", FORMAT_DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        assert isinstance(yaml.safe_load(block), dict)
        assert all(line in example.splitlines() for line in block.splitlines()), block


# docs/ci/github-actions.yml and docs/ci.md


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 (PyYAML) reads the key `on` as true


def _runs(job: dict[str, Any]) -> list[str]:
    return [step.get("run", "") for step in job["steps"]]


def _index(job: dict[str, Any], needle: str) -> int:
    found = [i for i, run in enumerate(_runs(job)) if needle in run]
    assert found, f"no step runs {needle!r}"
    return found[0]


def test_the_lab_job_installs_validates_plans_applies_tests_and_always_destroys(workflow):
    job = workflow["jobs"]["lab"]
    assert job["runs-on"] == "ubuntu-latest"
    install = _runs(job)[_index(job, "apt-get install")]
    assert "iproute2" in install and "nftables" in install and "pip install" in install
    order = [
        _index(job, needle)
        for needle in (
            "apt-get install",
            "nsnet fmt --check",
            "nsnet validate",
            "nsnet plan --detailed-exitcode",
            "nsnet apply",
            "nsnet show --check",
            "curl",
            "nsnet destroy",
        )
    ]
    assert order == sorted(order)
    for needle in ("nsnet fmt", "nsnet validate"):  # they read the file only: no root
        assert "sudo" not in _runs(job)[_index(job, needle)]
    for needle in ("nsnet plan", "nsnet apply", "nsnet show", "nsnet destroy"):
        assert "sudo " in _runs(job)[_index(job, needle)]
    destroy = job["steps"][_index(job, "nsnet destroy")]
    assert destroy["if"] == "always()"
    assert job["steps"][-1] is destroy


def test_the_plan_step_passes_on_exit_2_and_fails_on_exit_1(workflow):
    run = _runs(workflow["jobs"]["lab"])[_index(workflow["jobs"]["lab"], "nsnet plan --detailed-exitcode")]
    assert "|| code=$?" in run  # GitHub's bash runs with -e: catch the exit code
    assert re.search(r"^\s*2\) ", run, re.M) and re.search(r'^\s*\*\) exit "\$code"', run, re.M)


def test_the_drift_job_runs_show_check_on_a_schedule_on_the_lab_host(workflow):
    assert _triggers(workflow)["schedule"][0]["cron"]
    job = workflow["jobs"]["drift"]
    assert "schedule" in job["if"] and "self-hosted" in job["runs-on"]
    run = _runs(job)[_index(job, "show --check")]
    assert re.search(r"^\s*3\) ", run, re.M)
    assert "schedule" in workflow["jobs"]["lab"]["if"]  # the hosted lab job does not run on the schedule


def test_every_run_step_is_valid_bash(workflow):
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                result = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
                assert result.returncode == 0, f"{name}: {step.get('name')}: {result.stderr}"


def test_the_ci_doc_embeds_the_workflow_file_verbatim():
    assert f"```yaml\n{WORKFLOW.read_text()}```\n" in CI_DOC.read_text(), (
        "docs/ci.md must include docs/ci/github-actions.yml verbatim in a ```yaml block: copy the file into it"
    )


# all three documents


# In prose, `nsnet topology` may be a name, not a command: there only these words count as commands.
COMMAND_LIKE = {
    "init",
    "exec",
    "graph",
    "ls",
    "fmt",
    "completion",
    "list",
    "status",
    "check",
    "diff",
    "up",
    "down",
    "run",
    "create",
    "delete",
    "deploy",
    "validate",
    "plan",
    "apply",
    "destroy",
    "show",
}
NSNET_WORD = r"(?:^|[\s;|&(])(?:sudo )?(?:\S*/)?nsnet ([a-z]+)"


def _run_scripts(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "run" and isinstance(v, str)] + [s for v in node.values() for s in _run_scripts(v)]
    return [s for v in node for s in _run_scripts(v)] if isinstance(node, list) else []


def nsnet_commands(text: str) -> set[str]:
    """The subcommands a document runs: in ```sh blocks, after the `# ` prompt in ```console blocks, in the
    `run:` scripts of ```yaml blocks, and in `nsnet ...` code spans (command-like words only)."""
    lines: list[str] = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang == "console":
            lines += [line[2:] for line in body.splitlines() if line.startswith("# ")]
        elif lang in ("sh", "bash"):
            lines += body.splitlines()
        elif lang == "yaml":
            lines += [line for script in _run_scripts(yaml.safe_load(body)) for line in script.splitlines()]
    commands = [re.sub(r"(^|\s)#.*", "", line) for line in lines]  # without shell comments
    words = {w for line in commands for w in re.findall(NSNET_WORD, line)}
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        words |= {w for w in re.findall("^" + NSNET_WORD[NSNET_WORD.index("(?:sudo") :], span) if w in COMMAND_LIKE}
    return words


@pytest.mark.parametrize("doc", [FORMAT_DOC, CI_DOC, TUTORIAL], ids=lambda p: p.name)
def test_the_docs_run_only_nsnet_commands_that_exist_or_are_announced(doc):
    from netplan_lite.cli import main as cli

    parser = cli.build_parser()
    known = set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)
    unknown = nsnet_commands(doc.read_text()) - known
    assert not unknown, f"{doc.name} runs nsnet commands that do not exist: {sorted(unknown)}"


def test_the_command_finder_sees_commands_and_skips_output_and_comments():
    text = (
        "```console\n# nsnet plan\nnsnet will perform these actions\n# .venv/bin/nsnet apply  # nsnet is here\n```\n"
        "```yaml\n# nsnet in CI\nname: nsnet lab\nsteps:\n  - name: Install nsnet and more\n"
        "    run: sudo .venv/bin/nsnet destroy x\n```\n"
        "run `nsnet show --check` or `nsnet ls`; the schema is `nsnet topology`; nsnet does it.\n"
    )
    assert nsnet_commands(text) == {"plan", "apply", "destroy", "show", "ls"}


def test_the_module_map_names_every_module():
    """docs/design.md's module map: every module of the package in a row of its own subpackage."""
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("## Module map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    package = ROOT / "netplan_lite"
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        relative = path.relative_to(package)
        folder = f"{relative.parent}/" if relative.parent != Path(".") else ""
        assert any(folder in row and f"{path.name}`" in row for row in rows), f"{relative} is not in the module map"
