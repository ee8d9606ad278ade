"""The CNI calls podman 4.3 and containerd 1.6 make, as the plugin sees them (calltrace.py).

What nsnet's plugin must serve, checked against the runtimes themselves: podman validates the
conflist with VERSION, then per container one ADD per plugin in conflist order with its
/run/netns/netns-<uuid> path and the full container ID, and on `rm -f` one DEL per plugin in reverse
order with the namespace still present, also after its conmon was SIGKILLed; it never sends CHECK.
ctr's ADD names the task's /proc/PID/ns/net, its DEL has an empty CNI_NETNS. STATUS and GC never come.
"""

from __future__ import annotations

import re

import pytest

import calltrace
import containerd_env
import podman_env

pytestmark = pytest.mark.netns


def plugin_types(net, cni) -> list[str]:
    return [plugin["type"] for plugin in net.conflist(cni)["plugins"]]


def container_calls(log, container_id: str, types: list[str]) -> list[dict]:
    """The calls of the conflist's own plugins (not the delegated ones) for CONTAINER_ID."""
    return [c for c in calltrace.calls(log) if c.get("CNI_CONTAINERID") == container_id and c["plugin"] in types]


def verbs(calls: list[dict]) -> list[tuple[str, str]]:
    return [(c["CNI_COMMAND"], c["plugin"]) for c in calls]


@pytest.mark.skipif(podman_env.skip_reason() is not None, reason=str(podman_env.skip_reason()))
def test_podman_adds_and_deletes_each_container_once_with_its_namespace(cni_log, podman, net, rootfs, cni, host_port):
    records = podman_env.web_pair(podman, net.name, rootfs, publish=(f"{host_port}:80",))
    podman.kill_conmon(records[0])
    podman.check("rm", "-f", "-t", "0", *(r["Name"] for r in records), timeout=120)
    types = plugin_types(net, cni)
    for record in records:
        calls = container_calls(cni_log, record["Id"], types)
        assert verbs(calls) == [("ADD", t) for t in types] + [("DEL", t) for t in reversed(types)], calls
        assert {(c["CNI_NETNS"], c["CNI_IFNAME"]) for c in calls} == {(record["NetworkSettings"]["SandboxKey"], "eth0")}
    commands = {c["CNI_COMMAND"] for c in calltrace.calls(cni_log)}
    assert commands == {"VERSION", "ADD", "DEL"}, commands


@pytest.mark.skipif(containerd_env.skip_reason() is not None, reason=str(containerd_env.skip_reason()))
def test_ctr_adds_with_the_task_netns_and_deletes_with_none(cni_log, containerd, net, rootfs, cni):
    container = f"{net.name}-c"
    proc = containerd.run(container, rootfs, "/bin/true")
    assert proc.returncode == 0, f"{proc.stderr}{proc.stdout}"
    types = plugin_types(net, cni)
    calls = container_calls(cni_log, f"{containerd.namespace}-{container}", types)
    assert verbs(calls) == [("ADD", t) for t in types] + [("DEL", t) for t in reversed(types)], calls
    assert all(re.fullmatch(r"/proc/\d+/ns/net", c["CNI_NETNS"]) for c in calls if c["CNI_COMMAND"] == "ADD"), calls
    assert all(c["CNI_NETNS"] == "" for c in calls if c["CNI_COMMAND"] == "DEL"), calls
