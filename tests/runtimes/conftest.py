"""Real container runtimes against a CNI conflist: shared fixtures.

Each test gets a random prefix (`t` + 5 hex digits) that its network, bridge, cgroup parent and
containerd namespace carry, a random /24 in 10.0.0.0/8 that overlaps no host route, and a `host`
guard that recorded the host before anything ran (hostrecord.HostRecord) and, after the runtime
fixtures have removed their containers and stopped their daemons, restores exactly what appeared
and asserts that nothing differs any more, also when the test failed. `cni` is parametrized over
cni_setups.SETUPS: the plugin dir and the conflist are the only things that differ between the
reference plugins and nsnet's. The test modules mark themselves `netns` (root only, as
tests/conftest.py skips it otherwise) and skip with the reason when a runtime binary is missing.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

import calltrace
import cni_setups
import containerd_env
import hostrecord
import podman_env
import rootfs as busybox
from cni_setups import CniSetup, Network
from hostrecord import Change, Watch

HOST_PORT = 18080  # the issue's `podman run -p 18080:80`
WATCHES = (
    Watch(Path("/var/lib/cni"), cni_state=True, shared=True),  # host-local's leases, libcni's result cache
    Watch(Path("/run/nsnet"), cni_state=True, shared=True),  # nsnet's allocator and records
    Watch(Path("/etc/cni")),
    Watch(Path("/opt/cni")),
    Watch(Path("/run/containerd")),
    Watch(Path("/run/containers")),
    Watch(Path("/run/libpod")),
    Watch(Path("/var/lib/containers")),
    Watch(Path("/etc/containers")),
    Watch(Path("/dev/shm")),
)


def free_subnet() -> ipaddress.IPv4Network:
    routes = hostrecord.run_json("ip", "-j", "-4", "route", "show", "table", "all")
    taken = [ipaddress.ip_network(r["dst"], strict=False) for r in routes if r.get("dst", "default") != "default"]
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    pytest.fail("no free /24 in 10.0.0.0/8")


def describe(found: list[Change]) -> str:
    return "\n".join(f"  {c.kind} {c.detail}" for c in found) or "  nothing"


class HostGuard:
    def __init__(self, prefix: str, tmp_path: Path, net: Network):
        self.net = net
        self.own = hostrecord.Ownership(links={net.bridge}, marks={prefix, str(tmp_path)})
        self.before = hostrecord.HostRecord.take(WATCHES)
        self.problems: list[str] = []  # processes that had to be killed, and the like

    def watch(self, watch: Watch) -> None:
        """Watch a directory made after the record (a stand-in for a host directory)."""
        self.before.watched[watch] = hostrecord.tree(watch.path)

    def remember(self, record: dict[str, Any]) -> None:
        """What a podman container made and the guard may delete if it stays: its named netns, its host veth."""
        sandbox = record.get("NetworkSettings", {}).get("SandboxKey") or ""
        if sandbox.startswith("/run/netns/"):
            self.own.netns.add(Path(sandbox).name)
        self.own.links |= hostrecord.bridge_ports(self.net.bridge)

    def leftovers(self) -> list[Change]:
        return hostrecord.changes(self.before, hostrecord.HostRecord.take(tuple(self.before.watched)), self.own)

    def assert_network_leftovers(self, cni: CniSetup, runtime: str) -> list[Change]:
        """The network leftovers are exactly what CNI is expected to leave (nothing, for nsnet)."""
        found = self.leftovers()
        signatures = {c.signature for c in found if c.network}
        expected = cni.expected(self.net, runtime, self.before)
        assert signatures == expected, (
            f"{cni.name} plugins under {runtime} left:\n{describe(found)}\n"
            f"unexpected: {sorted(signatures - expected)}\nmissing: {sorted(expected - signatures)}"
        )
        return found

    def finish(self) -> None:
        remaining = hostrecord.restore(self.before, self.own)
        assert not remaining and not self.problems, f"the host was not restored:\n{describe(remaining)}\n{self.problems}"


@pytest.fixture
def prefix() -> str:
    return "t" + secrets.token_hex(3)[:5]


@pytest.fixture(params=cni_setups.SETUPS, ids=lambda setup: setup.name)
def cni(request: pytest.FixtureRequest) -> CniSetup:
    return request.param


@pytest.fixture
def net(prefix: str) -> Network:
    return Network(name=f"{prefix}net", bridge=f"{prefix}br", subnet=free_subnet())


@pytest.fixture
def host(prefix: str, tmp_path: Path, net: Network) -> Iterator[HostGuard]:
    guard = HostGuard(prefix, tmp_path, net)
    try:
        yield guard
    finally:
        guard.finish()


@pytest.fixture
def plugin_dir(cni: CniSetup, tmp_path: Path) -> Path:
    path = tmp_path / "cni-bin"
    path.mkdir()
    reason = cni.install(path)
    if reason:
        pytest.skip(reason)
    return path


@pytest.fixture
def cni_log(plugin_dir: Path, tmp_path: Path) -> Path:
    """Every CNI call the runtimes make from now on, logged by wrappers in the plugin dir (calltrace.py)."""
    log = tmp_path / "cni-calls.jsonl"
    calltrace.trace(plugin_dir, log)
    return log


@pytest.fixture
def conf_dir(cni: CniSetup, net: Network, tmp_path: Path) -> Path:
    path = tmp_path / "cni-conf"
    path.mkdir()
    (path / f"10-{net.name}.conflist").write_text(json.dumps(net.conflist(cni), indent=2) + "\n")
    return path


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    reason = busybox.skip_reason()
    if reason:
        pytest.skip(reason)
    return busybox.make_rootfs(tmp_path / "rootfs")


@pytest.fixture
def podman(plugin_dir: Path, conf_dir: Path, host: HostGuard, prefix: str, tmp_path: Path) -> Iterator[podman_env.Podman]:
    runtime = podman_env.Podman(tmp_path / "podman", plugin_dir, conf_dir, prefix, on_start=host.remember)
    try:
        yield runtime
    finally:
        host.problems += runtime.remove_all()


@pytest.fixture
def containerd(plugin_dir: Path, conf_dir: Path, host: HostGuard, prefix: str, tmp_path: Path) -> Iterator[containerd_env.Containerd]:
    daemon = containerd_env.Containerd(tmp_path / "containerd", plugin_dir, conf_dir, namespace=prefix)
    host.watch(Watch(daemon.var_lib_cni, cni_state=True, shown="/var/lib/cni"))
    try:
        daemon.start()
        yield daemon
    finally:
        host.problems += daemon.stop()


@pytest.fixture
def host_port() -> int:
    """HOST_PORT, when nothing on the host binds it."""
    try:
        with socket.socket() as s:
            s.bind(("0.0.0.0", HOST_PORT))
    except OSError:
        pytest.skip(f"host port {HOST_PORT} is taken")
    return HOST_PORT
