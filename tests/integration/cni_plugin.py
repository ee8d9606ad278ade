"""Drive nsnet's CNI plugin exactly as a runtime does: the executable `nsnet cni install` writes,
run with nothing but the CNI_* variables (and PATH) in its environment and the network
configuration on stdin; and what a CNI network leaves on the host, by exact names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Mapping

from netplan_lite.cni import network as cni_network

PLUGIN_TIMEOUT = 120  # 50 calls at once on 2 cores
STATE_DIR = Path("/run/nsnet")
SYSCTL_REGISTRY = STATE_DIR / "sysctl.json"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
SYSTEM_PLUGINS = "/usr/lib/cni"  # Debian's containernetworking-plugins


def install(bin_dir: Path) -> Path:
    """`nsnet cni install --bin-dir DIR`; the executable it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "cni", "install", "--bin-dir", str(bin_dir)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    plugin = bin_dir / "nsnet"
    assert os.access(plugin, os.X_OK), f"{plugin} is not executable"
    return plugin


@dataclass(frozen=True)
class Answer:
    """One call: exit code, stdout as JSON (None when empty), stderr."""

    rc: int
    doc: Any
    stderr: str

    @property
    def code(self) -> int | None:
        return self.doc.get("code") if self.rc != 0 and isinstance(self.doc, dict) else None

    def __str__(self) -> str:
        return f"exit {self.rc}, stdout {json.dumps(self.doc)}, stderr {self.stderr.strip()!r}"


def invoke(plugin: Path, env: Mapping[str, str], stdin: bytes) -> Answer:
    """Run the plugin with exactly ENV (plus PATH) and STDIN."""
    done = subprocess.run([str(plugin)], input=stdin, env={"PATH": os.environ["PATH"], **env}, capture_output=True, timeout=PLUGIN_TIMEOUT)
    out = done.stdout.decode()
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        raise AssertionError(f"stdout is not JSON: {out!r} (stderr {done.stderr.decode()!r})") from None
    return Answer(done.returncode, doc, done.stderr.decode())


@dataclass
class Network:
    """A CNI network of the test: its names, subnet and the plugin configuration a conflist gives."""

    name: str
    bridge: str
    subnet: IPv4Network
    conf: dict[str, Any]

    @property
    def gateway(self) -> str:
        return str(self.subnet[1])

    @property
    def table(self) -> str:
        return f"nsnet-{self.name}"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {**self.conf, **extra}


@dataclass(frozen=True)
class Container:
    """A container's network namespace (the test makes it, as a runtime would) and its ID."""

    ns: str
    id: str

    @property
    def netns(self) -> str:
        return f"/run/netns/{self.ns}"


def host_veth(net: Network, container: Container, ifname: str = "eth0") -> str:
    return cni_network.host_veth(net.name, container.id, ifname)


def ip_forward_holders() -> set[str]:
    try:
        registry = json.loads(SYSCTL_REGISTRY.read_text())
    except (OSError, ValueError):
        return set()
    return set(registry.get("net.ipv4.ip_forward", {}).get("holders", []))


def record_dir(net: Network, *parts: str) -> Path:
    return STATE_DIR.joinpath(net.name, "cni", *parts)
