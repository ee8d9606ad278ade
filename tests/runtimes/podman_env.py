"""Podman 4.3 (Debian 12) with a test-only configuration: nothing of the host's is read or written.

`Podman(base, plugin_dir, conf_dir, cgroup_parent)` writes BASE/containers.conf (CNI backend with the
test's plugin and config dirs, cgroupfs, no event logger, runc, file locks under the tmpdir, the
ulimits runc can set) and BASE/storage.conf (vfs under BASE), and runs every podman command with
CONTAINERS_CONF and CONTAINERS_STORAGE_CONF pointing at them plus --root/--runroot/--tmpdir under
BASE. Why each setting, as measured here: no systemd (cgroupfs, events_logger "none"), no crun
(runc), and runc without CAP_SYS_RESOURCE cannot raise rlimits above the host's (default_ulimits).

`start()` runs a container detached from a rootfs directory and records its conmon and container
pids (with their start times); `remove_all()` is `podman rm -f -t 0` of every container started,
then SIGKILL of any recorded process (or process with an argument under its directories) still alive,
and removal of the runroot (a directory of its own under /tmp: podman wants at most 50 characters).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import hostrecord

TIMEOUT = 60
HTTPD = ("/bin/httpd", "-f", "-p", "80", "-h", "/www")  # busybox httpd serving rootfs.INDEX


def skip_reason() -> str | None:
    for tool in ("podman", "conmon", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (apt-get install --no-install-recommends podman)"
    return None


def _toml(value: str | list[str]) -> str:
    return json.dumps(value)  # a JSON string or list of strings is a TOML one


class Podman:
    def __init__(self, base: Path, plugin_dir: Path, conf_dir: Path, prefix: str, on_start: Callable[[dict], None] | None = None):
        self.base = base
        self.on_start = on_start  # told each new container's inspect record
        self.cgroup_parent = f"/{prefix}"
        # podman refuses a runroot longer than 50 characters: a short directory of its own, named with the prefix
        self.root, self.runroot, self.tmpdir = base / "root", Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp")), base / "tmp"
        for path in (self.root, self.runroot, self.tmpdir):
            path.mkdir(parents=True, exist_ok=True)
        self.conf = base / "containers.conf"
        self.storage_conf = base / "storage.conf"
        self.conf.write_text(
            "\n".join(
                [
                    "[containers]",
                    f"default_ulimits = {_toml(['nofile=1024:1024', 'nproc=4096:4096'])}",
                    'log_driver = "k8s-file"',
                    "[network]",
                    'network_backend = "cni"',
                    f"cni_plugin_dirs = {_toml([str(plugin_dir)])}",
                    f"network_config_dir = {_toml(str(conf_dir))}",
                    "[engine]",
                    'cgroup_manager = "cgroupfs"',
                    'events_logger = "none"',
                    'lock_type = "file"',
                    'runtime = "runc"',
                    f"conmon_path = {_toml([shutil.which('conmon') or 'conmon'])}",
                    f"tmp_dir = {_toml(str(self.tmpdir))}",
                    "[engine.runtimes]",
                    f"runc = {_toml([shutil.which('runc') or 'runc'])}",
                    "",
                ]
            )
        )
        self.storage_conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = {_toml(str(self.root))}\nrunroot = {_toml(str(self.runroot))}\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf), "CONTAINERS_STORAGE_CONF": str(self.storage_conf), "TMPDIR": str(self.tmpdir)}
        self.containers: list[str] = []
        self.processes: list[tuple[int, str]] = []

    def __call__(self, *args: str | os.PathLike, timeout: float = TIMEOUT, stdin: str | None = None) -> subprocess.CompletedProcess:
        argv = ["podman", "--root", self.root, "--runroot", self.runroot, "--tmpdir", self.tmpdir, "--storage-driver", "vfs", *args]
        return subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, text=True, timeout=timeout, env=self.env)

    def check(self, *args: str | os.PathLike, timeout: float = TIMEOUT, stdin: str | None = None) -> str:
        proc = self(*args, timeout=timeout, stdin=stdin)
        assert proc.returncode == 0, f"podman {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def start(self, name: str, network: str, rootfs: Path, *command: str, publish: tuple[str, ...] = ()) -> dict[str, Any]:
        """`podman run -d` of COMMAND from ROOTFS on NETWORK; its `podman inspect` record."""
        ports = [arg for spec in publish for arg in ("-p", spec)]
        self.containers.append(name)
        self.check("run", "-d", "--name", name, "--network", network, "--cgroup-parent", self.cgroup_parent, *ports, "--rootfs", rootfs, *command)
        record = self.inspect(name)
        if self.on_start:
            self.on_start(record)
        for pid in (record["State"]["ConmonPid"], record["State"]["Pid"]):
            started = hostrecord.start_time(pid) if pid else None
            if started is not None:
                self.processes.append((pid, started))
        return record

    def inspect(self, name: str) -> dict[str, Any]:
        return json.loads(self.check("inspect", name))[0]

    def kill_conmon(self, record: dict[str, Any]) -> None:
        """SIGKILL the conmon of the container RECORD describes (by the pid and start time recorded at
        its start), and wait until it is gone."""
        pid = record["State"]["ConmonPid"]
        started = dict(self.processes)[pid]
        assert hostrecord.start_time(pid) == started and Path(f"/proc/{pid}/comm").read_text().strip() == "conmon"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while hostrecord.start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hostrecord.start_time(pid) != started, f"conmon {pid} survived SIGKILL"

    def remove_all(self) -> list[str]:
        """`podman rm -f` of every container started; the recorded processes that were still alive."""
        if self.containers:
            self("rm", "-f", "-t", "0", *self.containers, timeout=120)
        mine = hostrecord.processes_with_argument_under(self.base) + hostrecord.processes_with_argument_under(self.runroot)
        killed = hostrecord.end_processes(self.processes + mine)
        if not any(point.startswith(f"{self.runroot}/") for point in hostrecord.mountpoints()):
            shutil.rmtree(self.runroot)
        return killed


def web_pair(podman: Podman, network: str, rootfs: Path, publish: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Containers NETWORK-a (publishing PUBLISH) and NETWORK-b, both serving busybox httpd on port 80."""
    a = podman.start(f"{network}-a", network, rootfs, *HTTPD, publish=publish)
    b = podman.start(f"{network}-b", network, rootfs, *HTTPD)
    return a, b
