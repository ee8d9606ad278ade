"""Colour for terminals only: plain text in pipes, files and CI logs.

Colour is on when the stream is a terminal, `NO_COLOR` is unset or empty
(https://no-color.org), TERM is not `dumb`, and `--no-color` was not given.
"""

from __future__ import annotations

import os
from typing import TextIO

CODES = {"add": "32", "change": "33", "destroy": "31", "replace": "35", "bold": "1", "dim": "2", "warn": "33"}
MARKER_STYLES = {"+": "add", "~": "change", "-": "destroy", "-/+": "replace"}


class Style:
    def __init__(self, enabled: bool = False):
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream: TextIO, no_color: bool = False) -> Style:
        return cls(not no_color and not os.environ.get("NO_COLOR") and interactive(stream))

    def paint(self, kind: str, text: str) -> str:
        return f"\033[{CODES[kind]}m{text}\033[0m" if self.enabled and text else text

    def marker(self, marker: str) -> str:
        return self.paint(MARKER_STYLES.get(marker, "bold"), marker)


def interactive(stream: TextIO) -> bool:
    """A terminal that understands escape sequences (not TERM=dumb)."""
    return os.environ.get("TERM") != "dumb" and is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


PLAIN = Style()
