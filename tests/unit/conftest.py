"""Unit tests run the CLI in-process: none of them may pick up the caller's $NSNET_FILE."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_nsnet_file(monkeypatch):
    monkeypatch.delenv("NSNET_FILE", raising=False)
