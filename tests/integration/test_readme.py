"""The README's command blocks, run as written, under the test's random names.

The quickstart and the main example are pasted whole into one shell, as a
reader pastes them (tests/integration/docblocks.py): the lines' `# prints:`
comments are what they must print, and no line may fail. The CI and agent
blocks are run line by line, since the test checks each line's exit code.
Names, subnets and host ports are swapped for the lab's random ones, in the
topology files and in every line alike, so the commands are the README's and
nothing of the host is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from docblocks import Block, Clone, Swap, check_sh
from netplan_lite.model import init as scaffold

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def block(name: str) -> list[str]:
    """The command lines of the README block marked NAME."""
    match = re.search(rf"<!-- readme-test: {name} -->\n```sh\n(.*?)```", README, re.S)
    assert match, f"README has no block marked readme-test: {name}"
    return [line for line in match.group(1).splitlines() if line.strip()]


class Runner:
    """Runs README lines in the lab with the README's names replaced by the lab's."""

    def __init__(self, lab, names: dict[str, str], subnet_prefix: str, ports: list[int]):
        self.lab = lab
        self.dir = lab.dir / "readme"
        self.dir.mkdir(exist_ok=True)
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        shim = bin_dir / "nsnet"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m netplan_lite "$@"\n')
        shim.chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        self.env.pop("NSNET_FILE", None)
        self.exports: list[str] = []  # `export` lines, in force for the lines after them
        # longest first, so that br-lab is replaced before lab
        swaps = [(rf"(?<![\w.-]){re.escape(old)}(?![\w-])", new) for old, new in sorted(names.items(), key=lambda i: -len(i[0]))]
        swaps.append((re.escape(subnet_prefix), ".".join(str(lab.subnet.network_address).split(".")[:3]) + "."))
        swaps += [(rf"\b{port}\b", str(new)) for port, new in zip((8080, 8081), ports, strict=False)]
        self.swaps = swaps

    def swap(self, text: str) -> str:
        for pattern, new in self.swaps:
            text = re.sub(pattern, new, text)
        return text

    def adopt(self, path: Path) -> None:
        """Swap names in a topology file the README's commands use, and let the lab clean up after it."""
        path.write_text(self.swap(path.read_text()))
        self.lab.write(yaml.safe_load(path.read_text()), self.dir / f"registered-{path.stem}.yaml")

    def run(self, line: str, codes: tuple[int, ...] = (0,)) -> str:
        if line.startswith("export "):
            self.exports.append(line)
            return ""
        command = "\n".join([*self.exports, self.swap(line)])
        bare = re.sub(r"\s#[^'\"]*$", "", command).rstrip()  # without a trailing comment
        if bare.endswith("&"):
            self.lab.procs.append(
                subprocess.Popen(["bash", "-c", bare.rstrip("&")], cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
            return ""
        expected = re.search(r"#.*?(hello from \S+)", command)
        deadline = time.monotonic() + (10 if "curl" in command else 0)
        while True:
            done = subprocess.run(["bash", "-c", command], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=120)
            if done.returncode in codes or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert done.returncode in codes, f"{command!r} exited {done.returncode}: {done.stdout}{done.stderr}"
        if expected:
            assert expected.group(1) in done.stdout, f"{command!r} printed {done.stdout!r}"
        return done.stdout


def test_quickstart_pasted_whole(lab):
    if shutil.which("dot") is None:
        pytest.skip("graphviz is not installed (scripts/setup installs it)")
    p = lab.prefix
    names = {"lab": p, "br-lab": f"{p}br", "web": f"{p}-web", "client": f"{p}-client"}
    names |= {"lab/quickstart": "lab/quickstart", "lab.svg": "lab.svg"}  # the word, not the topology
    swap = Swap(names=names, prefixes={"172.31.254.": _prefix(lab)})
    swap.ports = dict(zip([scaffold.HOST_PORT], lab.free_ports(1), strict=True))
    starter = yaml.safe_load(swap.forward(scaffold.render("topology.yaml")))
    clone = _clone(lab, swap)
    lab.register(starter, clone.root / "lab" / "quickstart" / "topology.yaml")
    try:
        out = check_sh(clone.shell, swap, _block("quickstart"))
    finally:
        clone.close()
    assert "Plan: 10 to add" in out and "Topology lab: in sync" in out
    assert (clone.root / "lab" / "quickstart" / "lab.svg").exists()
    assert not lab.netns_names() & {f"{p}-web", f"{p}-client"}


def test_main_example_pasted_whole(lab):
    p = lab.prefix
    swap = Swap(names={"demo": p, "br-demo": f"{p}br", "web1": f"{p}-web1", "web2": f"{p}-web2"}, prefixes={"172.30.0.": _prefix(lab)})
    swap.ports = dict(zip((8080, 8081), lab.free_ports(2), strict=True))
    clone = _clone(lab, swap)
    example = clone.root / "examples" / "topology.yaml"
    example.write_text(swap.forward((REPO / "examples" / "topology.yaml").read_text()))
    lab.register(yaml.safe_load(example.read_text()), example)
    try:
        check_sh(clone.shell, swap, _block("main-example"))
    finally:
        clone.close()
    assert not lab.netns_names() & {f"{p}-web1", f"{p}-web2"}


def _block(name: str) -> Block:
    """The README block marked NAME."""
    match = re.search(rf"<!-- readme-test: {name} -->\n```sh\n(.*?)```", README, re.S)
    assert match, f"README has no block marked readme-test: {name}"
    return Block("sh", match.group(1), README.count("\n", 0, match.start()) + 2)


def _prefix(lab) -> str:
    """The first three octets of the lab's /24, as an address prefix: `10.7.31.`."""
    return str(lab.subnet.network_address).rpartition(".")[0] + "."


def _clone(lab, swap: Swap) -> Clone:
    clone = Clone(lab.dir / "clone", swap, REPO)
    lab.procs.append(clone.shell.proc)  # killed first at cleanup, should the test fail before it closes
    return clone


def test_ci_block(lab):
    p = lab.prefix
    runner = Runner(lab, {"demo": p, "br-demo": f"{p}br", "web1": f"{p}-web1", "web2": f"{p}-web2"}, "172.30.0.", lab.free_ports(2))
    shutil.copy(REPO / "examples" / "topology.yaml", runner.dir / "topology.yaml")
    runner.adopt(runner.dir / "topology.yaml")
    fmt, validate, plan, show = block("ci")
    runner.run(fmt)
    runner.run(validate)
    runner.run(plan, codes=(2,))  # nothing applied yet: changes present
    runner.run(show, codes=(3,))  # and everything is missing: drift
    runner.run("nsnet apply topology.yaml")
    runner.run(plan, codes=(0,))
    runner.run(show, codes=(0,))
    runner.run("nsnet destroy topology.yaml")


def test_agent_block(lab):
    p = lab.prefix
    runner = Runner(lab, {"demo": p, "br-demo": f"{p}br", "web1": f"{p}-web1", "web2": f"{p}-web2"}, "172.30.0.", lab.free_ports(2))
    agent_socket = runner.dir / "agent.sock"  # the test's own agent, never the host's
    runner.env.pop("NSNET_AGENT", None)
    runner.env["NSNET_AGENT_SOCKET"] = str(agent_socket)
    shutil.copy(REPO / "examples" / "topology.yaml", runner.dir / "topology.yaml")
    runner.adopt(runner.dir / "topology.yaml")
    start, served, local, stop = block("agent")
    assert start.startswith("nsnet agent &") and stop.startswith("kill %1")
    runner.run(start)
    agent = lab.procs[-1]  # bash execs the nsnet shim, which execs the agent: SIGTERM reaches it
    try:
        assert lab.wait_until(lambda: agent.poll() is not None or _answers(agent_socket), timeout=60), "no agent"
        assert agent.poll() is None, agent.communicate()
        assert "Plan: 10 to add" in runner.run(served)
        assert "Plan: 10 to add" in runner.run(local)
    finally:
        agent.send_signal(signal.SIGTERM)  # what `kill %1` does in the reader's shell
        _, log = agent.communicate(timeout=60)
    assert agent.returncode == 0, log
    served_lines = [line for line in log.decode().splitlines() if ": exit " in line]  # NSNET_AGENT=off: not served
    assert len(served_lines) == 1 and served_lines[0].startswith("nsnet agent: plan topology.yaml: exit 0"), log
    assert not agent_socket.exists()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        return probe.connect_ex(str(path)) == 0
