"""docs/ci.md, run here: its local block pasted whole, and the workflow's own steps.

The workflow (docs/ci/github-actions.yml, which docs/ci.md shows verbatim)
runs on GitHub; what can run on this machine runs here, in a clone of the
test's own with the lab's random names, subnet and ports:
- the "Before you push" block, pasted whole as a reader would;
- the lab job's `run:` steps after Install (nsnet is already installed),
  each with `bash -e` as GitHub runs them, with `sudo` a stand-in that runs
  the command as it is (the test is root) and `$RUNNER_TEMP` a directory of
  the test's;
- the drift job's step against the live lab (exit 0), and once the lab is
  destroyed (exit 3, with GitHub's error annotation).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from docblocks import Block, Clone, Swap, check_sh

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
CI_MD = REPO / "docs" / "ci.md"
WORKFLOW = yaml.safe_load((REPO / "docs" / "ci" / "github-actions.yml").read_text())


def _clone(lab) -> tuple[Clone, Swap]:
    p = lab.prefix
    swap = Swap(
        names={"demo": p, "br-demo": f"{p}br", "web1": f"{p}-web1", "web2": f"{p}-web2"},
        prefixes={"172.30.0.": str(lab.subnet.network_address).rpartition(".")[0] + "."},
        ports=dict(zip((8080, 8081), lab.free_ports(2), strict=True)),
    )
    clone = Clone(lab.dir / "clone", swap, REPO)
    lab.procs.append(clone.shell.proc)
    topology = clone.root / "examples" / "topology.yaml"
    topology.write_text(swap.forward((REPO / "examples" / "topology.yaml").read_text()))
    lab.register(yaml.safe_load(topology.read_text()), topology)
    return clone, swap


def test_the_local_block_pasted_whole(lab):
    text = CI_MD.read_text()
    match = re.search(r"<!-- ci-local -->\n```sh\n(.*?)```", text, re.S)
    assert match, "docs/ci.md lost its local block"
    clone, swap = _clone(lab)
    try:
        check_sh(clone.shell, swap, Block("sh", match.group(1), text.count("\n", 0, match.start()) + 2))
    finally:
        clone.close()
    assert not {f"{lab.prefix}-web1", f"{lab.prefix}-web2"} & lab.netns_names()


def test_the_workflows_steps_run_here_with_sudo_standing_in(lab):
    clone, swap = _clone(lab)
    clone.close()  # the steps run one by one, as GitHub runs them, not in the reader's shell
    sudo = clone.root / ".venv" / "bin" / "sudo"
    sudo.write_text('#!/bin/sh\nexec env "$@"\n')  # `sudo VAR=value command`: root already
    sudo.chmod(0o755)
    runner_temp = lab.dir / "runner-temp"
    runner_temp.mkdir()
    env = {**clone.env, **WORKFLOW["env"], "RUNNER_TEMP": str(runner_temp)}

    def step(job: str, name: str, codes: tuple[int, ...] = (0,), extra: dict[str, str] | None = None) -> str:
        (found,) = [s for s in WORKFLOW["jobs"][job]["steps"] if s.get("name") == name]
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-c", swap.forward(found["run"])],
            cwd=clone.root,
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in codes, f"step {name!r} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return swap.back(done.stdout + done.stderr)

    lab_steps = [s["name"] for s in WORKFLOW["jobs"]["lab"]["steps"] if "run" in s]
    assert lab_steps[0].startswith("Install") and lab_steps[-1].startswith("Destroy")
    drift = {"NSNET": str(clone.root / ".venv" / "bin" / "nsnet")}
    for name in lab_steps[1:-1]:
        out = step("lab", name)
        if name == "Plan":
            assert "Changes to apply." in out
        if name.startswith("Test"):
            assert "web1 and web2 answer on their published ports" in out
    assert "No drift" in step("drift", "Check the lab host for drift", extra=drift)
    step("lab", lab_steps[-1])
    assert "::error title=nsnet drift::" in step("drift", "Check the lab host for drift", codes=(3,), extra=drift)
    assert not {f"{lab.prefix}-web1", f"{lab.prefix}-web2"} & lab.netns_names()
