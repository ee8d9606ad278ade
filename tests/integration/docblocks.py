"""Run the command blocks of a Markdown document the way a reader pastes them.

A reader pastes a whole block into one shell, and keeps that shell from block
to block: `cd`, `export`, variables and background jobs carry over. `Shell`
is that shell, a bash fed on its standard input, exactly the reader's text.

The documents use their own names (`web`, `tut0`, 10.200.0.0/24, port
8080); a test never runs them as they are. `Swap` turns the document's names,
subnets and ports into the test's random ones in what is pasted, and the
test's back into the document's in what is printed, so the output can be
compared with the document's text.

What a block promises:
- a `console` block (`# command` lines, then their output) prints exactly
  its output lines, once `normalize` has masked what differs from run to run
  (durations, veth names, MACs, interface indexes, column widths);
- in an `sh` block, a trailing `# prints: TEXT` comment is what the line
  prints and `# fails: TEXT` what it prints when it fails, as it must; every
  other line must succeed.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
PROMISE = re.compile(r"#(?:[^#]*;)?\s*(prints|fails):\s*(.+?)\s*$")  # `# prints: X` or `# a note; prints: X`
FAILED = re.compile(r"^\[doc-test\] line (\d+) exit (\d+)\n", re.M)


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence in the document

    def commands(self) -> str:
        """The script a reader pastes: a console block's `# ` lines, or an sh block whole."""
        if self.lang != "console":
            return self.text
        return "".join(line[2:] + "\n" for line in self.text.splitlines() if line.startswith("# "))

    def output(self) -> str:
        """What a console block shows its commands printing."""
        return "".join(line + "\n" for line in self.text.splitlines() if not line.startswith("# "))

    def promises(self) -> list[tuple[int, str, str]]:
        """(line number in the block, "prints" or "fails", text) of each promise in an sh block."""
        found = []
        for number, line in enumerate(self.text.splitlines(), 1):
            match = PROMISE.search(line)
            if match:
                found.append((number, match.group(1), match.group(2)))
        return found


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    text = path.read_text()
    return [Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


@dataclass
class Swap:
    """The document's names, address prefixes and ports <-> the test's."""

    names: dict[str, str] = field(default_factory=dict)  # document's -> test's
    prefixes: dict[str, str] = field(default_factory=dict)  # "10.200.0." -> "10.7.31."
    ports: dict[int, int] = field(default_factory=dict)

    def forward(self, text: str) -> str:
        """The document's text with the test's names: whole names only (`web`, not `webserver.py`)."""
        text = _replace(text, self.names, r"(?<!\w)", r"(?![\w-])")
        text = _replace(text, self.prefixes, r"(?<![\w.])", r"(?=\d)")
        return _replace(text, {str(k): str(v) for k, v in self.ports.items()}, r"(?<![\w.])", r"(?!\w)")

    def back(self, text: str) -> str:
        """What the test's commands printed, in the document's names (the test's are random: no boundaries needed)."""
        names = {new: old for old, new in self.names.items()}
        names |= {new.replace("-", "_"): old.replace("-", "_") for old, new in self.names.items() if "-" in new}  # graph ids
        text = _replace(text, names, "", "")
        text = _replace(text, {new: old for old, new in self.prefixes.items()}, r"(?<![\d.])", "")
        return _replace(text, {str(v): str(k) for k, v in self.ports.items()}, r"(?<!\d)", r"(?!\d)")


def _replace(text: str, table: dict[str, str], before: str, after: str) -> str:
    """Replace every key of TABLE in TEXT, longest first, between the BEFORE and AFTER lookarounds."""
    if not table:
        return text
    words = "|".join(re.escape(old) for old in sorted(table, key=len, reverse=True))
    return re.sub(rf"{before}({words}){after}", lambda m: table[m.group(1)], text)


MASKS = [
    (re.compile(r"\[\d+ ms\]"), "[N ms]"),
    (re.compile(r"in \d+\.\d+ s\b"), "in N s"),
    (re.compile(r"\bnsv[0-9a-f]{12}\b"), "nsvVETH"),
    (re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b"), "MAC"),
    (re.compile(r"@if\d+"), "@ifN"),
    (re.compile(r"\(id: \d+\)"), "(id: N)"),
    (re.compile(r"(\.yaml:\d+):\d+:"), r"\1:COL:"),  # columns move with the names' lengths
    (re.compile(r"[ \t]+"), " "),  # tables align to the longest name
]


def normalize(text: str) -> str:
    for pattern, mask in MASKS:
        text = pattern.sub(mask, text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


class Shell:
    """One bash session, fed pasted blocks on its standard input; background jobs live in it."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: every job it starts is stopped with it
        )
        self.lines_sent = 0
        self.marker = f"[doc-test-end-{os.getpid()}-{time.monotonic_ns()}]"

    def paste(self, script: str, check_failures: bool = False, timeout: float = 120) -> tuple[str, list[int]]:
        """Paste SCRIPT; its output (stdout and stderr as a terminal shows them) and the script lines that failed."""
        script = script if script.endswith("\n") else script + "\n"
        trap = "trap 'echo \"[doc-test] line $LINENO exit $?\"' ERR\n" if check_failures else "trap - ERR\n"
        first = self.lines_sent + 2  # LINENO of the script's first line
        text = trap + script + f"trap - ERR; echo; echo '{self.marker}'\n"
        self.lines_sent += text.count("\n")
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()
        out = self._read_until_marker(timeout)
        failed = [int(m.group(1)) - first + 1 for m in FAILED.finditer(out)]
        return FAILED.sub("", out).removesuffix("\n\n").removesuffix("\n"), failed

    def _read_until_marker(self, timeout: float) -> str:
        assert self.proc.stdout
        data = b""
        deadline = time.monotonic() + timeout
        end = self.marker.encode()
        while end not in data:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"the pasted block did not finish within {timeout:.0f} s; it printed:\n{data.decode()}")
            data += chunk
        text = data.decode()
        return text[: text.rindex(self.marker)]

    def close(self) -> None:
        """Stop the shell and every job it started (its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.communicate(timeout=30)


def check_sh(shell: Shell, swap: Swap, block: Block, timeout: float = 120) -> str:
    """Paste an sh block whole; check that exactly its `fails:` lines fail and that each promise is printed, in order."""
    out, failed = shell.paste(swap.forward(block.commands()), check_failures=True, timeout=timeout)
    out = swap.back(out)
    promises = block.promises()
    must_fail = {number for number, kind, _ in promises if kind == "fails"}
    assert set(failed) == must_fail, f"block at line {block.line}: lines {sorted(set(failed))} failed, {sorted(must_fail)} must; it printed:\n{out}"
    position = 0
    for number, _, text in promises:
        found = out.find(text, position)
        assert found >= 0, f"block at line {block.line}, line {number} promised {text!r}; the block printed:\n{out}"
        position = found + len(text)
    return out


class Clone:
    """A reader's clone: `.venv/bin/nsnet`, the examples' servers, and the shell the reader pastes into."""

    def __init__(self, root: Path, swap: Swap, repo: Path, start: Path | None = None):
        self.root = root
        bin_dir = root / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        (root / "examples").mkdir()
        for server in ("webserver.py", "udpecho.py"):
            shutil.copy(repo / "examples" / server, root / "examples")
        _script(bin_dir / "nsnet", f'#!/bin/sh\nexec {sys.executable} -m netplan_lite "$@"\n')
        # `nsnet init` writes the document's names; the test's copy gets the test's, like every file it runs
        (bin_dir / "swap.json").write_text(json.dumps({"names": swap.names, "prefixes": swap.prefixes, "ports": swap.ports}))
        _script(bin_dir / "nsnet-test-init", INIT_AND_SWAP.format(python=sys.executable, tests=Path(__file__).parent, bin=bin_dir))
        swap.names.setdefault("nsnet init", "nsnet-test-init")
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(repo), "NO_COLOR": "1"}
        for name in ("NSNET_FILE", "NSNET_AGENT", "NSNET_AGENT_SOCKET"):
            self.env.pop(name, None)
        self.shell = Shell(start or root, self.env)  # the tutorial starts one level up: `cd nsnet`

    def close(self) -> None:
        self.shell.close()


INIT_AND_SWAP = """#!{python}
import json, pathlib, subprocess, sys
sys.path.insert(0, "{tests}")
from docblocks import Swap
code = subprocess.call(["{bin}/nsnet", "init", *sys.argv[1:]])
if code == 0:
    swap = json.loads(pathlib.Path("{bin}/swap.json").read_text())
    path = pathlib.Path("topology.yaml")
    path.write_text(Swap(swap["names"], swap["prefixes"], {{int(k): v for k, v in swap["ports"].items()}}).forward(path.read_text()))
sys.exit(code)
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
