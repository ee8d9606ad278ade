"""Shared test setup: `netns` tests need root and the real kernel; an `nsnet agent`
running on this host is not used (tests/integration/test_agent.py starts its own)."""

from __future__ import annotations

import os

import pytest

os.environ["NSNET_AGENT"] = "off"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates namespaces, links and nft tables")
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(skip)
