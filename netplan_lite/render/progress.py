"""What `nsnet apply` and `destroy` print while they run.

Each action is printed when it finishes, with its duration. On a terminal,
when the plan has more actions than the screen has lines, a status line is
kept at the bottom: a bar, the counts and an estimate of the time left (from
the average time per action so far). In pipes and CI logs: the lines only.
"""

from __future__ import annotations

import shutil
import time
from typing import TextIO

from ..engine.apply import ActionResult
from .plans import applied_line
from .style import Style

BAR_WIDTH = 30
ERASE_LINE = "\r\033[K"


class Progress:
    """An ActionListener (see apply.py) that knows how many actions there are."""

    def __init__(self, stream: TextIO, style: Style, terminal: bool):
        self.stream = stream
        self.style = style
        self.terminal = terminal
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.bar = False

    def start(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.bar = self.terminal and total > shutil.get_terminal_size().lines

    def __call__(self, result: ActionResult) -> None:
        self.done += 1
        if self.bar:
            self.stream.write(ERASE_LINE)
        self.stream.write(applied_line(result, self.style) + "\n")
        if self.bar and self.done < self.total:
            self.stream.write(self.status())
        self.stream.flush()

    def finish(self) -> None:
        """Take the status line away (a rollback or an error may end the run early)."""
        if self.bar:
            self.stream.write(ERASE_LINE)
            self.stream.flush()

    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"[{bar}] {self.done}/{self.total} actions, {elapsed:.1f} s, about {left:.1f} s left"
