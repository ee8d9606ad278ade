"""The CNI plugins the runtime tests drive: a bin dir, a conflist, and what they leave behind.

A `CniSetup` fills a directory with the plugin binaries a runtime gets as its CNI plugin dir,
writes the plugins of the conflist for a test's `Network`, and says which leftovers (signatures of
`hostrecord.Change`, network kinds only) are expected once every container is gone. REFERENCE is
Debian's containernetworking-plugins 1.1.1 (bridge + host-local + portmap): it leaves its bridge,
its chains and ip_forward by design, which is the point of issue 15. NSNET is nsnet's plugin
(`type: "nsnet"`, installed by `nsnet cni install --bin-dir DIR`): it must leave nothing. The
fixture `cni` in conftest.py runs each test with every setup in SETUPS.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import hostrecord

REFERENCE_DIR = Path("/usr/lib/cni")
CNI_VERSION = "0.4.0"  # what podman 4.3 writes and parses results as; containerd 1.6 takes it too


@dataclasses.dataclass(frozen=True)
class Network:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(self.subnet[1])

    def conflist(self, setup: CniSetup) -> dict[str, Any]:
        return {"cniVersion": CNI_VERSION, "name": self.name, "plugins": setup.plugins(self)}


@dataclasses.dataclass(frozen=True)
class CniSetup:
    name: str
    install: Callable[[Path], str | None]  # fill the bin dir; why it cannot, or None
    plugins: Callable[[Network], list[dict[str, Any]]]
    # leftover signatures once every container is gone, by runtime ("podman", "ctr")
    expected: Callable[[Network, str, hostrecord.HostRecord], set[str]]


def _link_or_copy(names: tuple[str, ...], source: Path, bin_dir: Path) -> str | None:
    """Hard links (a copy across filesystems), not symlinks: ctr's mount namespace may bind the
    bin dir over the directory a symlink would point into."""
    for name in names:
        if not (source / name).is_file():
            return f"{source / name} is missing (apt-get install containernetworking-plugins)"
        try:
            os.link(source / name, bin_dir / name)
        except OSError:
            shutil.copy2(source / name, bin_dir / name)
    return None


def _bridge_keys(net: Network) -> dict[str, Any]:
    return {"bridge": net.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True}


def _ranges(net: Network) -> dict[str, Any]:
    return {"ranges": [[{"subnet": str(net.subnet), "gateway": net.gateway}]], "routes": [{"dst": "0.0.0.0/0"}]}


# the reference plugins


def _reference_plugins(net: Network) -> list[dict[str, Any]]:
    return [
        {"type": "bridge", **_bridge_keys(net), "ipam": {"type": "host-local", **_ranges(net)}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]


# what the reference plugins leave once every container is gone (signatures: hostrecord.Change.signature)
PORTMAP_LEFT = frozenset(
    {f"iptables nat chain {chain}" for chain in ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")}
    | {
        f"iptables nat rule -A {rule}"
        for rule in (
            "PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
            "OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
            "POSTROUTING -m comment --comment <comment> -j CNI-HOSTPORT-MASQ",
            "CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
            "CNI-HOSTPORT-SETMARK -m comment --comment <comment> -j MARK --set-xmark 0x2000/0x2000",
        )
    }
)
MASQUERADE_LEFT = frozenset(  # the bridge plugin's ipMasq chain of one container, not deleted by a DEL without netns
    {"iptables nat chain CNI-<hash>"}
    | {
        f"iptables nat rule -A {rule}"
        for rule in (
            "POSTROUTING -s <address> -m comment --comment <comment> -j CNI-<hash>",
            "CNI-<hash> -d <address> -m comment --comment <comment> -j ACCEPT",
            "CNI-<hash> ! -d <address> -m comment --comment <comment> -j MASQUERADE",
        )
    }
)


def _reference_expected(net: Network, runtime: str, before: hostrecord.HostRecord) -> set[str]:
    """Measured with podman 4.3.1 and containerd 1.6.20: the bridge, host-local's lock and
    last_reserved_ip.0, ip_forward=1 and iptables-nft's `ip nat` table stay; under podman (with a
    port mapping) portmap's shared chains and their jumps stay, and iptables-nft's `ip6 nat` (portmap
    asks ip6tables too); after ctr's DEL with an empty netns path the container's masquerade chain
    stays (plugins#810). A chain, rule, table or sysctl that was there before is no leftover (another
    session's reference plugins may have made portmap's scaffolding first)."""
    leases = f"/var/lib/cni/networks/{net.name}"
    left = {f"link {net.bridge}", f"cni-state {leases}/last_reserved_ip.0", f"cni-state {leases}/lock", "nft table ip nat"}
    left |= {"sysctl net.ipv4.ip_forward=1"} if before.sysctls["net/ipv4/ip_forward"] != "1" else set()
    left |= (PORTMAP_LEFT | {"nft table ip6 nat"}) if runtime == "podman" else MASQUERADE_LEFT  # the tests publish a port under podman
    shared = {item for item in hostrecord.present(before) if "<hash>" not in item and "<address>" not in item}
    return left - shared  # a container's own chains and rules are new whatever was there


REFERENCE = CniSetup(
    name="reference",
    install=lambda bin_dir: _link_or_copy(("bridge", "host-local", "portmap", "loopback"), REFERENCE_DIR, bin_dir),
    plugins=_reference_plugins,
    expected=_reference_expected,
)


# nsnet's plugin


def _install_nsnet(bin_dir: Path) -> str | None:
    proc = subprocess.run([sys.executable, "-m", "netplan_lite", "cni", "install", "--bin-dir", str(bin_dir)], capture_output=True, text=True)
    if proc.returncode != 0 or not (bin_dir / "nsnet").is_file():
        said = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        return f"`nsnet cni install --bin-dir DIR` is not available yet: {said[-1][-160:]}"
    return _link_or_copy(("host-local", "loopback"), REFERENCE_DIR, bin_dir)  # host-local: for a delegating conflist


def _nsnet_plugins(net: Network) -> list[dict[str, Any]]:
    return [{"type": "nsnet", **_bridge_keys(net), "ipam": _ranges(net), "capabilities": {"portMappings": True}}]


NSNET = CniSetup(name="nsnet", install=_install_nsnet, plugins=_nsnet_plugins, expected=lambda net, runtime, before: set())

SETUPS = (REFERENCE, NSNET)
