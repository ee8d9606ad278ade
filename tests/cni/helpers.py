"""What the CNI conformance tests share: a dual-stack bridge network's configuration, the environment of one
call as a runtime sets it, the addresses a container interface really has, and nsnet's plugin on a test's network
(NsnetNetwork: its calls, the attachments to DEL afterwards, and what is left of the network on the host)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hoststate import CniNetwork, HostState, must, nft_tables, run
from invoke import Outcome, cni_env, invoke

from netplan_lite.cni.network import host_veth
from netplan_lite.kernel import hostsysctl

CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
IFNAME = "eth0"
NSNET_STATE = Path("/run/nsnet")


def bridge_config(net: CniNetwork, version: str) -> dict[str, Any]:
    """A dual-stack bridge network with masquerade, a default route per family, one route via a gateway, and DNS."""
    gateway, gateway6 = str(net.subnet[1]), str(net.subnet6[1])
    routes = [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}, {"dst": "198.51.100.0/24", "gw": str(net.subnet[254])}]
    return {
        "cniVersion": version,
        "name": net.name,
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": True,
        "ipMasq": True,
        "ipam": {"type": "host-local", "dataDir": str(net.state_dir), "ranges": net.ranges(), "routes": routes},
        "dns": {"nameservers": [gateway, gateway6], "domain": "cni.test", "search": ["cni.test"], "options": ["ndots:1"]},
    }


def call(command: str, netns: str | None, container_id: str = "c0", **changes: str | None) -> dict[str, str]:
    """The environment of one call for the attachment (container_id, eth0); `changes` as CNI_NAME=value (None: absent)."""
    env = cni_env(command, container_id=container_id, netns=netns, ifname=IFNAME, cni_path=str(CNI_BIN))
    for key, value in changes.items():
        env.pop(key, None)
        if value is not None:
            env[key] = value
    return env


def addresses_in(netns: str) -> set[str]:
    """The global addresses of IFNAME inside the namespace, as address/prefix."""
    links = json.loads(must("ip", "-n", Path(netns).name, "-j", "address", "show", "dev", IFNAME))
    return {f"{a['local']}/{a['prefixlen']}" for link in links for a in link["addr_info"] if a.get("scope") == "global"}


# nsnet's plugin


def install_nsnet(bin_dir: Path) -> Path:
    """`nsnet cni install --bin-dir DIR`; the executable it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "netplan_lite", "cni", "install", "--bin-dir", str(bin_dir)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return bin_dir / "nsnet"


def nsnet_config(net: CniNetwork, version: str, **keys: Any) -> dict[str, Any]:
    """bridge_config for nsnet, which takes the bridge plugin's keys as they are: only the type and the IPAM
    (nsnet's own allocator, with host-local's ranges and routes) differ."""
    config = bridge_config(net, version) | {"type": "nsnet", **keys}
    config["ipam"] = {key: value for key, value in config["ipam"].items() if key not in ("type", "dataDir")}
    return config


class NsnetNetwork:
    """nsnet's plugin on the test's network. Its host changes go through its own registry (/run/nsnet), so its
    calls are not watched: every attachment ADDed is DELed afterwards, and then nothing of the network may be left."""

    def __init__(self, plugin: Path, net: CniNetwork, host: HostState) -> None:
        self.plugin, self.net, self.host = plugin, net, host
        self.attached: dict[str, tuple[str, dict[str, Any]]] = {}  # container ID -> (netns, config of its ADD)

    def run(self, command: str, config: Any, netns: str | None, container_id: str = "c0", **changes: str | None) -> Outcome:
        """One call (see helpers.call); CNI_PATH is where a runtime finds nsnet and the reference plugins."""
        return invoke(self.plugin, config, call(command, netns, container_id, CNI_PATH=f"{self.plugin.parent}:{CNI_BIN}", **changes))

    def add(self, config: dict[str, Any], netns: str, container_id: str = "c0") -> Outcome:
        """ADD, remembered for the final DEL when it succeeds; its host links are declared to `host` as a last resort."""
        self.host.own_link(self.net.bridge)
        self.host.own_link(host_veth(self.net.name, container_id, IFNAME))
        added = self.run("ADD", config, netns, container_id)
        if added.code == 0:
            self.attached[container_id] = (netns, config)
        return added

    def leftovers(self) -> list[str]:
        """Everything of the network on the host: its bridge and host veths (by name and by label), nft table,
        records under /run/nsnet and holds on host sysctls."""
        name = self.net.name
        veths = [host_veth(name, container_id, IFNAME) for container_id in self.attached]
        left = [f"link {link}" for link in [self.net.bridge, *veths] if Path("/sys/class/net", link).exists()]
        labelled = json.loads(must("ip", "-j", "link", "show"))
        left += [f"link {link['ifname']} (alias nsnet:{name})" for link in labelled if link.get("ifalias") == f"nsnet:{name}"]
        left += [f"nft table inet nsnet-{name}"] if ("inet", f"nsnet-{name}") in nft_tables() else []
        left += [str(NSNET_STATE / name)] if (NSNET_STATE / name).exists() else []
        return sorted(set(left)) + [f"{key} held by {name}" for key, entry in _registry().items() if name in entry.get("holders", [])]

    def close(self) -> list[str]:
        """DEL every attachment (without its namespace if that went), and what was left after; what the DELs left
        is removed by nsnet's own `destroy` of the network by its names, then its /run directory."""
        failed = []
        for container_id, (netns, config) in self.attached.items():
            deleted = self.run("DEL", config, netns if Path(netns).exists() else "", container_id)
            failed += [f"DEL {container_id}: {deleted}"] if deleted.code != 0 else []
        left = self.leftovers()
        if left:
            topology = self.net.state_dir / "leftover.json"  # JSON is YAML
            topology.write_text(json.dumps({"name": self.net.name, "bridges": {self.net.bridge: {"subnet": str(self.net.subnet)}}}))
            run(sys.executable, "-m", "netplan_lite", "destroy", str(topology))
            shutil.rmtree(NSNET_STATE / self.net.name, ignore_errors=True)
        return failed + left


def _registry() -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(Path(hostsysctl.REGISTRY).read_text())
    return {}


@contextlib.contextmanager
def nsnet_network(plugin: Path, net: CniNetwork, host: HostState) -> Iterator[NsnetNetwork]:
    network = NsnetNetwork(plugin, net, host)
    try:
        yield network
    finally:
        left = network.close()
        assert not left, f"left of network {net.name}: {left}"
