"""What both benchmark commands (run.py, ring.py) need: the nsnet they run, free address space,
CPU accounting and the machine's description."""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import random
import resource
import signal
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable
from ipaddress import IPv4Network, IPv6Network, ip_network

import netkit

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def cannot_start(prog: str, root_for: str, tools: tuple[str, ...]) -> bool:
    """Say why a benchmark cannot run here (not root, a tool missing), if it cannot."""
    if os.geteuid() != 0:
        print(f"{prog}: run as root ({root_for})", file=sys.stderr)
        return True
    missing = [tool for tool in tools if shutil.which(tool) is None]
    for tool in missing:
        print(f"{prog}: `{tool}` not found", file=sys.stderr)
    return bool(missing)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def nsnet_command(given: str | None) -> list[str]:
    if given:
        return shlex.split(given)
    venv = os.path.join(REPO, ".venv", "bin", "nsnet")
    if os.access(venv, os.X_OK):
        return [venv]
    return [sys.executable, "-m", "netplan_lite"]


@dataclass
class Export:
    """nsnet as committed at a revision, exported into a directory; run with the venv's Python."""

    nsnet: list[str]  # the command
    python: list[str]  # the interpreter it runs on (for cProfile)
    env: dict[str, str]  # PYTHONPATH pointing at the export
    source: str  # for the results: which nsnet this is


def export_rev(rev: str, tmp: str) -> Export:
    """`git archive` of netplan_lite/ and schemas/ at REV into TMP, so edits made during a run cannot change what is measured."""
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", rev + "^{commit}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    target = os.path.join(tmp, "nsnet-" + commit[:12])
    os.makedirs(target)
    archive = subprocess.run(["git", "-C", REPO, "archive", commit, "netplan_lite", "schemas"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", target], check=True)  # no first-run compile in the timings
    python = VENV_PYTHON if os.access(VENV_PYTHON, os.X_OK) else sys.executable
    env = dict(os.environ, PYTHONPATH=target)
    found = subprocess.run([python, "-P", "-c", "import netplan_lite; print(netplan_lite.__file__)"],
                           env=env, capture_output=True, text=True).stdout.strip()
    if not found.startswith(target + os.sep):
        raise SystemExit(f"--rev: the export is not what Python imports ({found})")
    # -P: the cwd must not shadow the export
    return Export([python, "-P", "-m", "netplan_lite"], [python, "-P"], env, f"commit {commit[:12]} (`--rev {rev}`)")


def pick_base(rng: random.Random) -> IPv4Network:
    """A /16 in 10.0.0.0/8 that overlaps no route and no address on the host."""
    taken = _taken("-4")
    for x in rng.sample(range(16, 250), 234):
        base = IPv4Network(f"10.{x}.0.0/16")
        if not any(base.overlaps(t) for t in taken):
            return base
    raise SystemExit("no free /16 in 10.0.0.0/8 on this host")


def pick_base6(rng: random.Random) -> IPv6Network:
    """A random unique local /48 (fd00::/8, RFC 4193) that overlaps no route and no address on the host."""
    taken = _taken("-6")
    for _ in range(100):
        base = IPv6Network(((0xFD << 120) | (rng.getrandbits(40) << 80), 48))
        if not any(base.overlaps(t) for t in taken):
            return base
    raise SystemExit("no free /48 in fd00::/8 on this host")


def _taken(family: str) -> list:
    taken = []
    for entry in netkit.ip_json(family, "route", "show", "table", "all"):
        dst = entry.get("dst", "default")
        if dst != "default" and not dst.startswith(("ff00::", "fe80::")):
            taken.append(ip_network(dst if "/" in dst else dst + ("/32" if family == "-4" else "/128"), strict=False))
    for link in netkit.ip_json(family, "addr", "show"):
        for a in link.get("addr_info", []):
            taken.append(ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return taken


def cpu_busy_seconds() -> float:
    """Busy CPU time of the whole machine since boot (all CPUs)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def out(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.machine()


def mem_gb() -> float:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) / 1024 / 1024


def git_commit() -> str:
    commit = out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", REPO, "status", "--porcelain", "--", "netplan_lite"])
    return commit + ("+uncommitted changes in netplan_lite" if dirty and dirty != "?" else "")


def ip_version() -> str:
    version = out(["ip", "-V"])
    return version.split(",")[1].strip() if "," in version else "?"


def run_bench(bench: Any, out: str, merge: Callable[[str, str], str], what: str) -> int:
    """Run a benchmark to its end or to a signal, always clean up, print its report and write it
    into `out` (merged into what is there) unless interrupted: the exit status of bench/run.py and
    bench/ring.py (0, 1 a correctness check failed, 130 interrupted)."""
    atexit.register(bench.cleanup)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt as err:
        interrupted = True
        log(f"interrupted ({err or 'SIGINT'}): cleaning up")
    finally:
        bench.cleanup()
    left = bench.leftovers()
    if left:
        bench.failures.append("left on the host after cleanup: " + ", ".join(left[:10]))
    text = bench.markdown(interrupted)
    print(text)
    if out != "-" and not interrupted:
        old = open(out).read() if os.path.exists(out) else ""
        with open(out, "w") as f:
            f.write(merge(old, text))
        log(f"wrote {what} of {out}")
    if interrupted:
        return 130
    return 1 if bench.failures else 0
