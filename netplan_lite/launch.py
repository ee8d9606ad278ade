"""The `nsnet` entry point: a running agent runs the command (agent.py), else this process does."""

from __future__ import annotations

import sys

from .agent import client as agentclient


def main() -> int:
    argv = sys.argv[1:]
    code = agentclient.run(argv)
    if code is None:
        from .cli.main import main as run_here

        code = run_here(argv)
    return code
