"""Cleanup shared by the test modules that track topologies outside the lab fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

STATE_DIR = Path("/run/nsnet")


def remove_state_dirs(topologies: Iterable[str]) -> list[str]:
    """nsnet keeps /run/nsnet/<topology>/lock after destroy: remove the given topologies', by exact
    name; return the journals found instead (a run that did not finish cleanly)."""
    journals = []
    for topology in sorted(topologies):
        state = STATE_DIR / topology
        if (state / "journal.jsonl").exists():
            journals.append(str(state / "journal.jsonl"))
            continue
        (state / "lock").unlink(missing_ok=True)
        if state.is_dir() and not any(state.iterdir()):
            state.rmdir()
    return journals
