"""What the CNI conformance tests share: a dual-stack bridge network's configuration, the environment of one
call as a runtime sets it, and the addresses a container interface really has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hoststate import CniNetwork, must
from invoke import cni_env

CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
IFNAME = "eth0"


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
