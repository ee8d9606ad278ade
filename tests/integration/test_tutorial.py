"""docs/tutorial.md, followed literally: every block pasted whole into one shell, in order.

The reader's clone is the test's directory (`.venv/bin/nsnet`,
`examples/webserver.py`); each step's YAML is written as the whole
`topology.yaml`, as the tutorial says; each console block's commands are
pasted at once and must print exactly the output shown (durations, veth
names, MACs, interface indexes and column widths masked, see
`docblocks.normalize`); the Mermaid picture must be what `nsnet graph
--format mermaid` prints at that point. The topology and bridge get random
names of the tutorial's lengths, so tables align as in the document.

`NSNET_RECORD_TUTORIAL=FILE` pastes each command alone instead, checks
nothing and writes what each printed (in the tutorial's names) to FILE as
JSON, for updating the document after a change.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from docblocks import Clone, Swap, blocks, check_sh, normalize
from netplan_lite.model.loader import host_veth_name

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
# the ways destroy can end for ip_forward, all named in the tutorial's step 8
IP_FORWARD_ENDINGS = re.compile(r"^( +net\.ipv4\.ip_forward) (restored to 0|is 1, as nsnet found it|left at 1\b.*)$", re.M)


def test_the_tutorial_pasted_block_by_block(lab):
    p = lab.prefix
    names = {"tutorial": f"{p}tu", "br-tutorial": f"{p}brtut", "web": f"{p}-web", "client": f"{p}-client"}
    names |= {host_veth_name("tutorial", ns, "eth0"): host_veth_name(names["tutorial"], names[ns], "eth0") for ns in ("web", "client")}
    swap = Swap(names=names, prefixes={"172.31.254.": str(lab.subnet.network_address).rpartition(".")[0] + "."})
    swap.ports = dict(zip([8080], lab.free_ports(1), strict=True))
    root = lab.dir / "nsnet"
    clone = Clone(root, swap, REPO, start=lab.dir)
    lab.procs.append(clone.shell.proc)
    topology = root / "lab" / names["tutorial"] / "topology.yaml"
    document = blocks(TUTORIAL)
    whole_file = [b for b in document if b.lang == "yaml" and b.text.startswith("name:")][-1]
    lab.register(yaml.safe_load(swap.forward(whole_file.text)), topology)
    record: list[dict[str, object]] = []
    recording = bool(os.environ.get("NSNET_RECORD_TUTORIAL"))
    try:
        for block in document:
            if block.lang == "yaml" and block.text.startswith("name:"):
                topology.write_text(swap.forward(block.text))  # "Each step's YAML is the whole file."
            elif block.lang == "sh":
                check_sh(clone.shell, swap, block)
            elif block.lang == "console" and recording:
                printed = [[c, swap.back(clone.shell.paste(swap.forward(c))[0])] for c in block.commands().splitlines()]
                record.append({"line": block.line, "commands": printed})
            elif block.lang == "console":
                out, _ = clone.shell.paste(swap.forward(block.commands()))
                _assert_prints(block.line, swap.back(out), block.output())
            elif block.lang == "mermaid":
                out, _ = clone.shell.paste("nsnet graph --format mermaid")
                record.append({"line": block.line, "commands": [["", swap.back(out)]]})
                recording or _assert_prints(block.line, swap.back(out), block.text)
    finally:
        clone.close()
        if recording:
            Path(os.environ["NSNET_RECORD_TUTORIAL"]).write_text(json.dumps(record, indent=1))
    assert not lab.netns_names() & {names["web"], names["client"]}


def _assert_prints(line: int, printed: str, shown: str) -> None:
    endings = IP_FORWARD_ENDINGS.findall(printed)
    assert all(ending in TUTORIAL.read_text() for _, ending in endings if "left at" not in ending), endings
    printed, shown = (IP_FORWARD_ENDINGS.sub(r"\1 ENDING", text) for text in (printed, shown))
    assert normalize(printed) == normalize(shown), f"docs/tutorial.md:{line}: the block printed\n{printed}\ninstead of\n{shown}"
