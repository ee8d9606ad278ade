"""containerd 1.6's `ctr run --cni --rootfs` drives the conflist's plugins (issue 15, "Real runtimes").

A private containerd in a mount namespace where the test's directories stand in for /etc/cni/net.d,
/opt/cni/bin, /var/lib/cni and /run/containerd (containerd_env.py). `ctr run --rm --cni` calls ADD
with the task's /proc/PID/ns/net before the task starts, and DEL with an empty netns path after the
task has exited and been deleted. The container prints its eth0 address; afterwards exactly what
the CNI setup is expected to leave is left (nothing for nsnet), and the host guard restores the rest.
"""

from __future__ import annotations

import re
from ipaddress import ip_address

import pytest

import containerd_env

pytestmark = [pytest.mark.netns, pytest.mark.skipif(containerd_env.skip_reason() is not None, reason=str(containerd_env.skip_reason()))]


def test_ctr_run_cni_gets_an_address_and_leaves_nothing(containerd, net, rootfs, host, cni):
    proc = containerd.run(f"{net.name}-c", rootfs, "/bin/ip", "-o", "-4", "addr", "show", "dev", "eth0")
    assert proc.returncode == 0, f"ctr run exited {proc.returncode}:\n{proc.stderr}{proc.stdout}\n{containerd.log_tail()}"
    found = re.findall(r"\binet (\d+\.\d+\.\d+\.\d+)/(\d+)", proc.stdout)
    assert len(found) == 1, proc.stdout
    assert ip_address(found[0][0]) in net.subnet and int(found[0][1]) == net.subnet.prefixlen, proc.stdout
    host.assert_network_leftovers(cni, "ctr")
