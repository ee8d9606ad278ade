"""A CNI ADD killed (SIGKILL) at each of its kernel-changing steps, then DEL: nothing is left.

The fault hooks (netplan_lite/faults.py) count the steps; the test kills the
plugin at step 1, 2, ... until an ADD runs to the end, and after each kill a
DEL (without prevResult, as a runtime sends after a failed ADD) must exit 0
and leave no link, table, record, lease or forwarding hold of the network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netplan_lite.cni.network import host_veth

pytestmark = pytest.mark.netns
MAX_STEPS = 60  # an ADD of a new network with a port mapping takes ~17


def _plugin(bin_dir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "netplan_lite", "cni", "install", "--bin-dir", str(bin_dir)], check=True, capture_output=True)
    return bin_dir / "nsnet"


def _call(plugin: Path, command: str, conf: dict, container: str, netns: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": os.environ["PATH"],
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        **extra,
    }
    return subprocess.run([str(plugin)], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60)


def _forwarding_holders() -> list[str]:
    try:
        return json.loads(Path("/run/nsnet/sysctl.json").read_text()).get("net.ipv4.ip_forward", {}).get("holders", [])
    except (OSError, ValueError):
        return []


def test_a_killed_add_then_del_leaves_nothing(lab, tmp_path):
    plugin = _plugin(tmp_path / "bin")
    network, bridge, container = lab.prefix, f"{lab.prefix}br", f"{lab.prefix}c"
    lab.foreign_namespace(container)  # the runtime's namespace: the test makes and removes it
    veth = host_veth(network, container, "eth0")
    lab.links |= {bridge, veth}
    lab.write({"name": network}, tmp_path / "network.yaml")  # cleanup's `nsnet destroy` of the name removes what a failure leaves
    conf = {
        "cniVersion": "1.0.0",
        "name": network,
        "type": "nsnet",
        "bridge": bridge,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": True,
        "ipam": {"ranges": [[{"subnet": str(lab.subnet)}]]},
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": [{"hostPort": lab.free_ports(1)[0], "containerPort": 80, "protocol": "tcp"}]},
    }
    netns = f"/run/netns/{container}"
    for step in range(1, MAX_STEPS):
        added = _call(plugin, "ADD", conf, container, netns, NSNET_KILL_AT=str(step))
        deleted = _call(plugin, "DEL", {k: v for k, v in conf.items() if k != "runtimeConfig"}, container, netns)
        assert deleted.returncode == 0, f"DEL after a kill at step {step}: {deleted.stdout!r} {deleted.stderr!r}"
        left = [f"link {n}" for n in (bridge, veth) if lab.link(n) is not None]
        left += [f"link {n} in the container" for n in ("eth0",) if lab.link(n, container) is not None]
        left += [f"nft table nsnet-{network}"] if f"nsnet-{network}" in lab.nft_table_names() else []
        left += [f"/run/nsnet/{network}"] if Path(f"/run/nsnet/{network}").exists() else []
        left += ["ip_forward hold"] if network in _forwarding_holders() else []
        assert not left, f"left after a kill at step {step} and a DEL: {left}"
        if added.returncode == 0:
            assert step > 5, "an ADD of a new network takes more than five kernel-changing steps"
            return
        assert added.returncode == -signal.SIGKILL, f"step {step}: {added.stdout!r} {added.stderr!r}"
    pytest.fail(f"the ADD did not finish within {MAX_STEPS} steps")
