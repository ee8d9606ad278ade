"""A private containerd 1.6 and its `ctr`, in a mount namespace of their own.

`ctr run --cni` (go-cni's defaults, no flag to change them) reads its conflist from /etc/cni/net.d,
its plugins from /opt/cni/bin, and libcni keeps its result cache (and host-local its leases) in
/var/lib/cni; the runc shim puts its sockets and runc's state under /run/containerd whatever
--state says. So containerd is started under `unshare --mount` with the test's directories
bind-mounted over those four (private_mounts.py), and every `ctr` runs inside that same namespace
(`nsenter --mount=/proc/PID/ns/mnt`): the host's directories are never read or written, only their
mountpoints are made when missing (and removed by the host guard). The daemon gets its own config
file (no CRI plugin: it would read the host's CNI config), root, state, socket, log and pidfile, and
is stopped by that pid: SIGTERM, then SIGKILL after STOP_TIMEOUT; then its shims (whose arguments
name its socket) are given a few seconds and killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import hostrecord

PRIVATE_MOUNTS = str(Path(__file__).with_name("private_mounts.py"))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CTR_TIMEOUT = 120.0
DISABLED = ("io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs")
DISABLED += ("io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs")


def skip_reason() -> str | None:
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "runc", "unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (apt-get install --no-install-recommends containerd)"
    return None


class Containerd:
    def __init__(self, base: Path, plugin_dir: Path, conf_dir: Path, namespace: str):
        self.base = base
        self.namespace = namespace
        self.var_lib_cni = base / "var-lib-cni"  # what ctr's libcni and host-local see as /var/lib/cni
        self.fifo_dir = base / "fifo"
        for path in (self.var_lib_cni, base / "run", self.fifo_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.binds = {Path("/etc/cni/net.d"): conf_dir, Path("/opt/cni/bin"): plugin_dir, Path("/var/lib/cni"): self.var_lib_cni}
        self.binds[Path("/run/containerd")] = base / "run"
        self.sock = base / "c.sock"  # short: a unix socket path has at most 107 bytes
        self.config = base / "config.toml"
        self.pidfile = base / "containerd.pid"
        self.log = base / "containerd.log"
        self.config.write_text(
            "\n".join(
                [
                    "version = 2",
                    f"root = {json.dumps(str(base / 'root'))}",
                    f"state = {json.dumps(str(base / 'state'))}",
                    f"disabled_plugins = {json.dumps(list(DISABLED))}",
                    "[grpc]",
                    f"  address = {json.dumps(str(self.sock))}",
                    '[plugins."io.containerd.internal.v1.opt"]',
                    f"  path = {json.dumps(str(base / 'opt'))}",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen | None = None
        self.containers: list[str] = []

    def mountpoints_missing(self) -> list[Path]:
        return [target for target in self.binds if not target.is_dir()]

    def start(self) -> float:
        """Start the daemon (making missing mountpoints first); seconds until it answers."""
        started = time.monotonic()
        for target in self.mountpoints_missing():
            target.mkdir(parents=True)
        pairs = [str(p) for target, source in self.binds.items() for p in (source, target)]
        argv = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-I", PRIVATE_MOUNTS, *pairs, "--"]
        argv += ["containerd", "--config", str(self.config), "--root", str(self.base / "root"), "--state", str(self.base / "state")]
        argv += ["--address", str(self.sock), "--log-level", "info"]
        with self.log.open("a") as log:  # its own session: a Ctrl-C of pytest does not reach it; the fixture stops it
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pidfile.write_text(f"{self.proc.pid}\n")  # unshare and the helper exec: this pid is containerd's
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.sock.exists() and self.ctr("version", timeout=10).returncode == 0:
                return time.monotonic() - started
            if time.monotonic() - started > START_TIMEOUT:
                raise RuntimeError(f"containerd not ready after {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "".join(self.log.read_text().splitlines(True)[-lines:])
        except OSError:
            return ""

    def ctr(self, *args: str | os.PathLike, timeout: float = CTR_TIMEOUT) -> subprocess.CompletedProcess:
        """`ctr` against this daemon, inside its mount namespace."""
        assert self.proc is not None and self.proc.poll() is None, "containerd is not running"
        argv = ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--", "ctr", "--address", self.sock, "--namespace", self.namespace, *args]
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)

    def run(self, container_id: str, rootfs: Path, *command: str) -> subprocess.CompletedProcess:
        """`ctr run --rm --cni --rootfs ROOTFS ID COMMAND` in the foreground (its DEL follows the exit)."""
        self.containers.append(container_id)
        return self.ctr("run", "--rm", "--cni", "--fifo-dir", self.fifo_dir, "--rootfs", rootfs, container_id, *command)

    def stop(self) -> list[str]:
        """Remove what a failed run left, stop the daemon by its pid, end its shims; what had to be killed."""
        if self.proc is None:
            return []
        proc, killed = self.proc, []
        if proc.poll() is None:
            for cid in self.containers:
                self.ctr("task", "kill", "--signal", "SIGKILL", cid, timeout=30)
                self.ctr("task", "delete", "--force", cid, timeout=30)
                self.ctr("container", "delete", cid, timeout=30)
            os.kill(int(self.pidfile.read_text()), signal.SIGTERM)  # the pid written at start: proc.pid
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                killed.append(f"containerd {proc.pid}")
        self.proc = None
        return killed + hostrecord.end_processes(hostrecord.processes_with_argument_under(self.base))
