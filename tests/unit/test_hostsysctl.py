"""The shared host switches (kernel/hostsysctl.py): IPv6 forwarding is held like ip_forward,
through the same registry, by the live kernel's handlers and the observer alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import snapshot

from netplan_lite.kernel import hostsysctl, observe
from netplan_lite.kernel.live import LiveKernel
from netplan_lite.resources.nat import HELD_SYSCTLS, IP_FORWARD, IPV6_FORWARD
from netplan_lite.resources.sysctl import SysctlState


@pytest.fixture
def proc_sys(monkeypatch, tmp_path: Path) -> Path:
    """A /proc/sys of files, with both switches off, and a registry of its own."""
    root = tmp_path / "sys"
    monkeypatch.setattr(hostsysctl, "_path", lambda key: str(root / key))
    monkeypatch.setattr(hostsysctl, "REGISTRY", str(tmp_path / "sysctl.json"))
    root.mkdir()
    for key in HELD_SYSCTLS:
        (root / key).write_text("0\n")
    return root


@pytest.mark.parametrize("key", HELD_SYSCTLS)
def test_the_last_holder_restores_what_nsnet_found(proc_sys: Path, key: str):
    hostsysctl.claim("a", key, "1")
    hostsysctl.claim("b", key, "1")
    assert hostsysctl.read(key) == "1" and hostsysctl.holders(key) == ["a", "b"]
    assert hostsysctl.release("a", key, lambda: None) == f"{key} left at 1: still needed by topology b"
    assert hostsysctl.release("b", key, lambda: None) == f"{key} restored to 0"
    assert hostsysctl.read(key) == "0"


def test_the_live_kernel_claims_and_releases_ipv6_forwarding_and_writes_per_link_keys(proc_sys: Path, monkeypatch):
    monkeypatch.setattr("netplan_lite.kernel.nftables.other_firewall_tables", lambda: None)  # no other tool's tables
    kernel = LiveKernel("lab", None)  # type: ignore[arg-type]
    (proc_sys / "net.ipv4.conf.br0.route_localnet").write_text("0\n")
    for key in (IPV6_FORWARD, "net.ipv4.conf.br0.route_localnet"):
        kernel.create(SysctlState(key, "1"))
    assert hostsysctl.holders(IPV6_FORWARD) == ["lab"] and hostsysctl.holders("net.ipv4.conf.br0.route_localnet") == []
    assert (proc_sys / IPV6_FORWARD).read_text() == "1"
    assert kernel.delete(SysctlState(IPV6_FORWARD, "1")) == f"{IPV6_FORWARD} restored to 0"
    assert hostsysctl.holders(IPV6_FORWARD) == []


def test_the_observer_reads_each_switch_the_topology_holds(proc_sys: Path):
    hostsysctl.claim("lab", IPV6_FORWARD, "1")
    hostsysctl.claim("other", IP_FORWARD, "1")
    assert observe._held_sysctls("lab", snapshot()) == (SysctlState(IPV6_FORWARD, "1"),)
    assert observe._held_sysctls("other", snapshot()) == (SysctlState(IP_FORWARD, "1"),)
