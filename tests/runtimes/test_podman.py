"""Podman 4.3 with the CNI backend drives the conflist's plugins (issue 15, "Real runtimes").

Containers run from a busybox rootfs directory (no image), on the test's network, with a test-only
CONTAINERS_CONF and temporary --root/--runroot/--tmpdir (podman_env.py). Traffic goes only to
127.0.0.1 and to the addresses of the test's own containers. `podman rm -f` of every container,
also after a SIGKILL of a container's conmon, must leave exactly what the CNI setup is expected to
leave (nothing for nsnet); the host guard then restores the rest and asserts the host is as it was.
"""

from __future__ import annotations

import os
import socket
import time
from ipaddress import ip_address
from typing import Any

import pytest

import hostrecord
import podman_env
from rootfs import INDEX

pytestmark = [pytest.mark.netns, pytest.mark.skipif(podman_env.skip_reason() is not None, reason=str(podman_env.skip_reason()))]

REQUEST = "GET / HTTP/1.0\r\nHost: test\r\n\r\n"


def address(record: dict[str, Any], net) -> str:
    found = record["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    assert ip_address(found) in net.subnet, f"{found} is not in {net.subnet}"
    return found


def http_get(host: str, port: int, timeout: float = 3.0) -> str | None:
    """The body busybox httpd answers to GET /, or None when no answer comes."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(REQUEST.encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    return data.decode(errors="replace").partition("\r\n\r\n")[2]


def http_get_from(podman, container: str, address: str) -> str:
    """The body busybox httpd at ADDRESS:80 answers to GET / sent by nc inside CONTAINER (busybox-static
    1.35's wget segfaults, on the host too)."""
    answer = podman.check("exec", "-i", container, "/bin/nc", "-w", "5", address, "80", stdin=REQUEST)
    return answer.replace("\r\n", "\n").partition("\n\n")[2]


def test_network_ls_shows_the_network(podman, net):
    names = podman.check("network", "ls", "--format", "{{.Name}}").split()
    assert net.name in names


def test_two_containers_reach_each_other_over_tcp(podman, net, rootfs):
    a, b = podman_env.web_pair(podman, net.name, rootfs)
    assert address(a, net) != address(b, net)
    assert http_get_from(podman, b["Name"], address(a, net)) == INDEX
    assert http_get_from(podman, a["Name"], address(b, net)) == INDEX


def test_published_port_serves_the_host(podman, net, rootfs, host_port):
    podman.start(f"{net.name}-a", net.name, rootfs, *podman_env.HTTPD, publish=(f"{host_port}:80",))
    deadline = time.monotonic() + 15
    body = http_get("127.0.0.1", host_port)
    while body != INDEX and time.monotonic() < deadline:  # httpd may not listen yet
        time.sleep(0.2)
        body = http_get("127.0.0.1", host_port)
    assert body == INDEX


def assert_removed(podman, host, cni, records: tuple[dict[str, Any], ...]) -> None:
    """`podman rm -f` of RECORDS: their processes and named namespaces are gone, and the network
    leftovers are exactly the CNI setup's."""
    podman.check("rm", "-f", "-t", "0", *(r["Name"] for r in records), timeout=120)
    assert not hostrecord.end_processes(podman.processes), "podman rm -f left container processes running"
    sandboxes = {os.path.basename(r["NetworkSettings"]["SandboxKey"]) for r in records}
    assert not sandboxes & hostrecord.netns_names(), "podman left its namespaces in /run/netns"
    host.assert_network_leftovers(cni, "podman")


def test_rm_f_leaves_nothing_of_the_network(podman, net, rootfs, host, cni, host_port):
    records = podman_env.web_pair(podman, net.name, rootfs, publish=(f"{host_port}:80",))
    assert http_get_from(podman, records[1]["Name"], address(records[0], net)) == INDEX
    assert_removed(podman, host, cni, records)


def test_rm_f_after_sigkill_of_conmon_leaves_nothing(podman, net, rootfs, host, cni, host_port):
    records = podman_env.web_pair(podman, net.name, rootfs, publish=(f"{host_port}:80",))
    podman.kill_conmon(records[0])
    assert_removed(podman, host, cni, records)
