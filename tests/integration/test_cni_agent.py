"""The installed CNI plugin hands its call to a running `nsnet agent` (which has the engine imported),
with the same result, and runs it itself when there is none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_agent import start_agent

pytestmark = pytest.mark.netns


def test_a_call_through_the_agent_is_the_same_call(lab, tmp_path):
    bin_dir = tmp_path / "bin"
    subprocess.run([sys.executable, "-m", "netplan_lite", "cni", "install", "--bin-dir", str(bin_dir)], check=True, capture_output=True)
    sock, log = lab.dir / "agent.sock", lab.dir / "agent.log"
    network, container = lab.prefix, f"{lab.prefix}c"
    lab.foreign_namespace(container)
    lab.write({"name": network}, tmp_path / "network.yaml")  # cleanup's `nsnet destroy` of the name removes what a failure leaves
    conf = {
        "cniVersion": "1.0.0",
        "name": network,
        "type": "nsnet",
        "bridge": f"{lab.prefix}br",
        "isGateway": True,
        "ipam": {"subnet": str(lab.subnet)},
    }
    lab.links.add(conf["bridge"])
    env = {
        "PATH": os.environ["PATH"],
        "CNI_CONTAINERID": container,
        "CNI_NETNS": f"/run/netns/{container}",
        "CNI_IFNAME": "eth0",
        "NSNET_AGENT_SOCKET": str(sock),
    }

    def call(command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(bin_dir / "nsnet")], input=json.dumps(conf).encode(), env={**env, "CNI_COMMAND": command}, capture_output=True, timeout=60
        )

    agent = start_agent(lab, sock, log)
    try:
        added = call("ADD")
        assert added.returncode == 0, added.stdout + added.stderr
        assert json.loads(added.stdout)["ips"][0]["address"] == f"{lab.subnet.network_address + 2}/{lab.subnet.prefixlen}"
        assert call("CHECK").returncode == 0
        assert call("DEL").returncode == 0
        served = [line for line in Path(log).read_text().splitlines() if "cni plugin: exit 0" in line]
        assert len(served) == 3, Path(log).read_text()
    finally:
        agent.stop()
    assert call("ADD").returncode == 0, "without an agent the plugin runs the call itself"
    assert call("DEL").returncode == 0
    assert lab.link(conf["bridge"]) is None and not Path(f"/run/nsnet/{network}").exists()
