"""Unit tests run the CLI in-process: none of them may pick up the caller's $NSNET_FILE, nor
depend on the kernel of the machine they run on, nor on what it has applied."""

from __future__ import annotations

import pytest

SUPPORTED_RELEASE = "6.18.0-unit"  # the kernel every unit test sees unless it sets its own


@pytest.fixture(autouse=True)
def no_nsnet_file(monkeypatch):
    monkeypatch.delenv("NSNET_FILE", raising=False)


@pytest.fixture(autouse=True)
def supported_kernel(monkeypatch):
    """A kernel nsnet supports, whatever this machine runs (tests/unit/test_kernel_minimum.py
    sets older ones); NSNET_KERNEL_CHECK from the caller's environment does not count."""
    monkeypatch.setattr("netplan_lite.kernel.minimum.running_release", lambda: SUPPORTED_RELEASE)
    monkeypatch.delenv("NSNET_KERNEL_CHECK", raising=False)


@pytest.fixture(autouse=True)
def no_run_records(monkeypatch, tmp_path):
    """An empty /run/nsnet: what this machine applied (read by `nsnet graph`, ls...) is not seen."""
    monkeypatch.setattr("netplan_lite.engine.rundir.STATE_DIR", str(tmp_path / "run-nsnet"))
