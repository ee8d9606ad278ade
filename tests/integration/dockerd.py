"""A private Docker daemon for the integration tests, and the exact undoing of it.

The tests install nothing: they use `dockerd` when it is on PATH (scripts/setup
--test installs docker.io). `skip_reason()` says why this host cannot have one
(not root, no dockerd/iptables/nft, legacy iptables, a Docker or iptables
ruleset of its own, another nsnet lab live now). `HostRecord.take()` records
what a daemon changes: the nft ruleset text and tables, the host's link names,
the sysctls Docker writes, and the two files it leaves outside its own
directories. `Dockerd` runs one daemon in a temporary directory (its own
config file, data-root, exec-root, pidfile, socket, and a random bridge
subnet), waits until its firewall is in place, and stops it by the pid in its
pidfile (SIGTERM, SIGKILL of that pid only after a timeout; then its
containerd child, by pid and start time). `restore()` deletes what the
daemon left (docker0, the nft tables iptables-nft made for it, the files),
writes the recorded sysctls back, and returns how the host still differs from
the record (empty: exactly as it was). Nothing here runs `nft flush ruleset`,
kills by name or touches a link or table that existed before.

Measured with docker.io 20.10.24 and iptables 1.8.9 (nf_tables): the daemon
starts in under a second (vfs, no containers); when ip_forward is 0 it sets it
to 1 and the policy of `ip filter FORWARD` to drop (only then: started with
ip_forward=1 it leaves the policy as it finds it); it makes DOCKER-USER
(`-j RETURN`) and docker0, and with its default settings does not touch
ip6tables. Stopped, it leaves docker0, the tables `ip filter` and `ip nat`,
and ip_forward=1. Restarted, it keeps DOCKER-USER and the rules in it.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

# what the daemon writes: recorded before, written back after
SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
)
IP_FORWARD = SYSCTLS[0]
# the nft tables iptables-nft makes for Docker's rules: the only tables restore() deletes, and
# only when they were not there before
IPTABLES_TABLES = frozenset({("ip", "filter"), ("ip", "nat"), ("ip6", "filter"), ("ip6", "nat")})
# what dockerd makes outside --data-root/--exec-root whatever its flags (its identity key, a plugin dir)
DOCKER_PATHS = (Path("/etc/docker/key.json"), Path("/run/docker"))
BRIDGE = "docker0"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def run(*cmd: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


# the host


def nft_ruleset() -> str:
    rc, out, err = run("nft", "list", "ruleset")
    assert rc == 0, err
    return out


def nft_tables() -> frozenset[tuple[str, str]]:
    rc, out, err = run("nft", "-j", "list", "tables")
    assert rc == 0, err
    return frozenset((i["table"]["family"], i["table"]["name"]) for i in json.loads(out)["nftables"] if "table" in i) if out.strip() else frozenset()


def host_links() -> list[dict]:
    rc, out, err = run("ip", "-j", "link", "show")
    assert rc == 0, err
    return json.loads(out)


def link_names() -> frozenset[str]:
    return frozenset(entry["ifname"] for entry in host_links())


def read_sysctls() -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for path in SYSCTLS:
        try:
            values[path] = Path(path).read_text().strip()
        except FileNotFoundError:
            values[path] = None  # br_netfilter not loaded, or no IPv6
    return values


def processes_named(name: str) -> list[int]:
    """Pids whose command is NAME (read only: to skip, never to signal)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return found


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat, which tells a process from a later one with the same pid;
    None when there is no such process or only its zombie (exited, not yet reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def free_subnet() -> IPv4Network:
    """A random /24 in 10.0.0.0/8 overlapping no host route (the rule the labs' subnets follow).
    Docker's default 172.17.0.0/16 may be a network this host reaches through its uplink (a CI
    runner inside Docker is on one): a docker0 route for it would cut that off while the test runs;
    the labs pick their /24s after docker0 exists, so they avoid this one."""
    rc, out, err = run("ip", "-j", "-4", "route", "show", "table", "all")
    assert rc == 0, err
    taken = [ipaddress.ip_network(r["dst"], strict=False) for r in json.loads(out) if r.get("dst", "default") != "default"]
    for _ in range(200):
        candidate = IPv4Network(f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeError("no free /24 in 10.0.0.0/8")


def _nsnet_live() -> list[str]:
    """What of other nsnet topologies is on the host now (another suite running)."""
    live = [f"nft table {f} {n}" for f, n in sorted(nft_tables()) if n.startswith("nsnet-")]
    live += [f"link {e['ifname']}" for e in host_links() if str(e.get("ifalias", "")).startswith("nsnet:")]
    try:
        holders = json.loads(Path("/run/nsnet/sysctl.json").read_text()).get("net.ipv4.ip_forward", {}).get("holders", [])
    except (OSError, ValueError, AttributeError):
        holders = []
    live += [f"ip_forward held by {h}" for h in holders]
    return live


def skip_reason() -> str | None:
    """Why a private dockerd cannot run here and be undone exactly, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("dockerd", "iptables", "iptables-save", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (bash scripts/setup --test installs docker.io and iptables)"
    rc, out, _ = run("iptables", "--version")
    if rc != 0 or "nf_tables" not in out:
        return f"iptables is not iptables-nft ({out.strip()}): Docker's rules would not be in the nft ruleset this test restores"
    own = "the host has its own Docker or iptables firewall: the test could not restore it exactly"
    if BRIDGE in link_names():
        return f"link {BRIDGE} exists: {own}"
    if processes_named("dockerd"):
        return f"a dockerd is running: {own}"
    if Path("/run/docker.sock").exists():
        return f"/run/docker.sock exists (a socket-activated Docker): {own}"
    tables = sorted(nft_tables() & IPTABLES_TABLES)
    if tables:
        return f"nft tables {', '.join(f'{f} {n}' for f, n in tables)} exist: {own}"
    live = _nsnet_live()
    if live:
        return f"another nsnet lab is live ({', '.join(live[:3])}): Docker's FORWARD DROP would cut it off and the host could not be compared"
    return None


@dataclass(frozen=True)
class HostRecord:
    ruleset: str
    tables: frozenset[tuple[str, str]]
    links: frozenset[str]
    sysctls: dict[str, str | None]
    paths: dict[Path, bool]  # DOCKER_PATHS -> existed

    @classmethod
    def take(cls) -> HostRecord:
        return cls(nft_ruleset(), nft_tables(), link_names(), read_sysctls(), {p: p.exists() for p in DOCKER_PATHS})


def set_ip_forward(value: str) -> None:
    Path(IP_FORWARD).write_text(value)


def restore(record: HostRecord) -> list[str]:
    """Delete what a stopped daemon left, write the recorded sysctls back; how the host still differs."""
    if BRIDGE not in record.links and BRIDGE in link_names():
        run("ip", "link", "del", "dev", BRIDGE)
    for family, name in sorted((nft_tables() - record.tables) & IPTABLES_TABLES):
        run("nft", "delete", "table", family, name)
    for path, value in record.sysctls.items():
        if value is not None and read_sysctls()[path] != value:
            Path(path).write_text(value)
    for path, existed in record.paths.items():
        if not existed and path.is_dir():
            shutil.rmtree(path)
        elif not existed and path.exists():
            path.unlink()
    problems = []
    ruleset = nft_ruleset()
    if ruleset != record.ruleset:
        diff = "".join(difflib.unified_diff(record.ruleset.splitlines(True), ruleset.splitlines(True), "before", "after"))
        problems.append(f"nft ruleset differs:\n{diff}")
    links = link_names()
    if links != record.links:
        problems.append(f"links differ: added {sorted(links - record.links)}, gone {sorted(record.links - links)}")
    sysctls = read_sysctls()
    problems += [f"{p} is {sysctls[p]}, was {v}" for p, v in record.sysctls.items() if sysctls[p] != v]
    problems += [f"{p} {'is gone' if e else 'is left'}" for p, e in record.paths.items() if p.exists() != e]
    return problems


# the daemon


def _ping(sock: Path) -> bool:
    """Whether the daemon's API answers `GET /_ping` with OK (it serves only once initialised)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] and data.endswith(b"OK")


def forward_policy() -> str | None:
    """The policy of iptables' filter FORWARD (ACCEPT, DROP), or None when there is no such chain."""
    rc, out, _ = run("iptables", "-S", "FORWARD")
    policies = [line.split()[2] for line in out.splitlines() if line.startswith("-P FORWARD ")] if rc == 0 else []
    return policies[0] if policies else None


def has_docker_user() -> bool:
    return run("iptables", "-S", "DOCKER-USER")[0] == 0


class Dockerd:
    """One daemon in ROOT: config file, data-root, exec-root, pidfile, socket, log. Start and stop
    it as often as needed; each start uses the same directories (a restart keeps its state)."""

    def __init__(self, root: Path, subnet: IPv4Network):
        self.root = root
        self.subnet = subnet
        self.config = root / "daemon.json"
        self.pidfile = root / "pid"
        self.sock = root / "sock"
        self.log = root / "log"
        self.proc: subprocess.Popen | None = None
        self.children: list[tuple[int, str]] = []  # (pid, start time) of containerd
        self.config.write_text("{}\n")  # not /etc/docker/daemon.json: the host's settings stay out

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _log_tail(self) -> str:
        try:
            return "".join(self.log.read_text().splitlines(True)[-15:])
        except OSError:
            return ""

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start the daemon; return once its API answers (it serves once its firewall is set up),
        DOCKER-USER and docker0 exist, and, when ip_forward was 0, FORWARD's policy is DROP: Docker
        sets it only when it turns ip_forward on itself (seconds taken)."""
        assert self.pid is None, "already running"
        started = time.monotonic()
        argv = [
            shutil.which("dockerd") or "dockerd",
            "--config-file", str(self.config),
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.pidfile),
            "-H", f"unix://{self.sock}",
            "--storage-driver", "vfs",
            "--bip", f"{self.subnet[1]}/{self.subnet.prefixlen}",
        ]  # fmt: skip
        with self.log.open("a") as log:
            # its own session: a Ctrl-C of pytest does not reach it; the fixture's teardown stops it
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = started + timeout
        drop = Path(IP_FORWARD).read_text().strip() == "0"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self._log_tail()}")
            if self._pidfile_pid() == self.proc.pid and _ping(self.sock) and has_docker_user() and BRIDGE in link_names():
                if not drop or forward_policy() == "DROP":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not ready after {timeout:.0f} s:\n{self._log_tail()}")
            time.sleep(0.1)
        self.children = [(kid, start) for kid in _children(self.proc.pid) if (start := _start_time(kid)) is not None]
        return time.monotonic() - started

    def _pidfile_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> float:
        """SIGTERM to the pid in the pidfile (which must be the daemon this object started), wait,
        SIGKILL that pid after TIMEOUT; then wait for (and if need be end) its containerd child."""
        if self.proc is None:
            return 0.0
        started = time.monotonic()
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            pid = self._pidfile_pid()
            assert pid in (proc.pid, None), f"pidfile says {pid}, the daemon started is {proc.pid}"
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for kid, start in self.children:
            self._end(kid, start, timeout)
        self.children = []
        return time.monotonic() - started

    @staticmethod
    def _end(pid: int, start: str, timeout: float) -> None:
        """Wait for PID (the same process: same start time) to exit; SIGTERM, then SIGKILL it."""
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and _start_time(pid) == start:
                os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while _start_time(pid) == start and time.monotonic() < deadline:
                time.sleep(0.05)
            if _start_time(pid) != start:
                return
        raise RuntimeError(f"process {pid} (dockerd's child) does not exit")

    def mounts(self) -> list[str]:
        """Mount points under ROOT (none once the daemon is stopped, or its directories must stay)."""
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point == str(self.root) or point.startswith(f"{self.root}/"):
                found.append(point)
        return found

    def remove_dirs(self) -> None:
        """Delete data-root and exec-root (the log stays) once nothing is mounted there."""
        if not self.mounts():
            for sub in ("data", "exec"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
