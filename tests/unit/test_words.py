"""Counted nouns: "1 bridge", never "1 bridges"."""

from __future__ import annotations

from netplan_lite.words import counted


def test_one_is_singular_and_any_other_count_plural():
    assert [counted(n, "bridge") for n in (0, 1, 2)] == ["0 bridges", "1 bridge", "2 bridges"]
    assert counted(1, "port forward") == "1 port forward" and counted(3, "chain") == "3 chains"
    assert counted(2, "address", "addresses") == "2 addresses"
