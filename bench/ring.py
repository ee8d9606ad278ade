#!/usr/bin/env python3
"""nsnet benchmark, routed labs: a ring of R routers (dual-stack links from the p2p pool, loopbacks,
forwarding, static routes the shortest way round), built by nsnet and by hand-written `ip -batch`
scripts in the same run, checked after every build, torn down; medians and the issue's targets.

    python3 bench/ring.py                          # R = 10, 100, 500; 3 repetitions; writes the "Routed ring" section of bench/results.md
    python3 bench/ring.py --sizes 10 --repeat 1    # smoke run (CI): exits 1 if any correctness check fails

Run as root. See bench/README.md ("Routed ring") for what is measured and how. Every namespace the
run creates starts with a per-run prefix (`r` + 4 hex digits) and is removed by exact name at the
end, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import os
import platform
import pstats
import random
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import netkit  # noqa: E402
import nlread  # noqa: E402
import report  # noqa: E402
import ring_lab  # noqa: E402
from common import (VENV_PYTHON, cannot_start, run_bench, cpu_busy_seconds, cpu_model, export_rev, git_commit, ip_version, log, mem_gb,  # noqa: E402
                    nsnet_command, out, own_cpu_seconds, pick_base, pick_base6)
from peers import BenchError, Proc, Runner, require_ok, start_agent, stop_agent  # noqa: E402
from ring_lab import BATCH_VARIANTS, FORWARDING, Ring  # noqa: E402

DEFAULT_SIZES = [10, 100, 500]
DEFAULT_REPEAT = 3
DEFAULT_OUT = os.path.join(HERE, "results.md")
PEERS = ("nsnet", *BATCH_VARIANTS)
TITLES = {"nsnet": "nsnet", "seq": "`ip -batch` per router", "xargs": "…run by `xargs -P`", "exec": "one `ip -batch`, `netns exec` lines"}
TARGET_R = 500  # the targets for apply and plan are at this size
PING_ALL_R = 100  # ... and for `nsnet test --ping-all` at this one
TIMEOUT = 3600.0  # one nsnet command at R = 500 takes minutes
# read per router for the comparison of the peers' kernel state (the forwarding keys are also checked)
SYSCTLS = [*FORWARDING] + [f"net.ipv{v}.conf.{d}.forwarding" for v in (4, 6) for d in ("default", "lo", "east", "west")] + [
    f"net.ipv6.conf.{d}.{k}" for d in ("east", "west") for k in ("disable_ipv6", "accept_ra", "addr_gen_mode", "accept_dad")]
LIFT = """import sys
from netplan_lite.model import yamlsource
yamlsource.MAX_BYTES, yamlsource.MAX_NODES = 1 << 31, 1 << 30  # --lift-limits: the loader's size limits, lifted
from netplan_lite.launch import main
sys.exit(main())
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/ring.py",
        description="Benchmark nsnet against hand-written `ip -batch` scripts on a routed ring of R routers "
                    "(interleaved, repeated, medians). Run as root.",
        epilog="Writes the \"Routed ring\" section of --out (default bench/results.md) for the default run or when "
               "--out is given; other runs only print it. Exit status: 0 all correctness checks held, 1 one failed, "
               "2 usage, 130 interrupted.",
    )
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), metavar="R,R,...",
                        help="router counts, comma-separated, 3 to %d (default: %%(default)s)" % ring_lab.MAX_ROUTERS)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, metavar="N",
                        help="repetitions of each size; the peers' order rotates each time (default: %(default)s)")
    parser.add_argument("--peers", default=",".join(PEERS), metavar="P,P,...",
                        help="nsnet and the `ip -batch` variants to run (default: %(default)s)")
    parser.add_argument("--out", metavar="FILE", help="write the section into this markdown file (`-`: only print it)")
    parser.add_argument("--nsnet", metavar="CMD", help="the nsnet command (default: .venv/bin/nsnet of the repository, "
                                                       "else `python3 -m netplan_lite` of the repository)")
    parser.add_argument("--rev", metavar="REV", help="benchmark nsnet as committed at git revision REV (as bench/run.py --rev)")
    parser.add_argument("--lift-limits", action="store_true",
                        help="run nsnet with its loader's file size limits lifted (a diagnostic: the ring's files at R >= 100 "
                             "are over them); the results say so")
    parser.add_argument("--no-agent", action="store_true", help="skip the no-op plans through `nsnet agent`")
    parser.add_argument("--ping-all-max", type=int, default=PING_ALL_R, metavar="R",
                        help="run `nsnet test --ping-all` on rings up to this size (default: %(default)s; 0: never)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile nsnet at the largest size (one extra, untimed round): `auto` when it misses a target "
                             "there (default), `always`, `never`")
    parser.add_argument("--seed", type=int, help="seed of the address space and of the sampled routers (default: random)")
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: not a list of integers: {args.sizes!r}")
    if not args.size_list or any(not 3 <= r <= ring_lab.MAX_ROUTERS for r in args.size_list) or args.repeat < 1:
        parser.error(f"--sizes must be 3 to {ring_lab.MAX_ROUTERS} routers and --repeat positive")
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(args.peer_list) - set(PEERS)
    if unknown or not args.peer_list:
        parser.error(f"--peers: unknown {sorted(unknown)}; choose from {', '.join(PEERS)}")
    args.peer_list = [p for p in PEERS if p in args.peer_list]
    if args.nsnet and (args.rev or args.lift_limits):
        parser.error("--nsnet cannot be combined with --rev or --lift-limits")
    if args.out is None:
        default_run = args.size_list == DEFAULT_SIZES and args.repeat >= DEFAULT_REPEAT and args.peer_list == list(PEERS)
        args.out = DEFAULT_OUT if default_run else "-"
    return args


# peers


class NsnetRing:
    name = "nsnet"

    def __init__(self, ring: Ring, runner: Runner, workdir: str, nsnet: list[str], env: dict[str, str]):
        self.ring, self.runner, self.nsnet = ring, runner, nsnet
        self.dir = workdir
        self.env = {**env, "NSNET_AGENT": "off"}  # an agent of the host's is never measured
        self.agent_socket = os.path.join(workdir, "agent.sock")
        self.agent_env = {**{k: v for k, v in env.items() if k != "NSNET_AGENT"}, "NSNET_AGENT_SOCKET": self.agent_socket}
        self.agent: subprocess.Popen | None = None
        self.file = os.path.join(workdir, "ring.yaml")
        with open(self.file, "w") as f:
            f.write(ring.nsnet_yaml())

    def cmd(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        return self.runner.run([*self.nsnet, *args], env=env or self.env, timeout=TIMEOUT)

    def build(self) -> dict[str, float]:
        proc = require_ok(self.cmd("apply", self.file))
        return {"build": proc.wall, "build_rss": proc.maxrss_kb / 1024}

    def noop(self, env: dict[str, str] | None = None) -> Proc:
        """`nsnet plan --detailed-exitcode`: must say no changes (exit 0)."""
        proc = self.cmd("plan", "--detailed-exitcode", self.file, env=env)
        if proc.rc == 2:
            raise BenchError(f"`nsnet plan` is not empty after nsnet's apply: {proc.out.strip().splitlines()[-1:]}")
        return require_ok(proc)

    def noops(self, agent: bool) -> dict[str, float]:
        plan = self.noop()
        load = require_ok(self.cmd("validate", self.file))  # start, imports and loading this file: every command pays it
        found = {"noop": plan.wall, "noop_rss": plan.maxrss_kb / 1024, "validate": load.wall}
        if agent:
            self.agent = start_agent(self.nsnet, self.agent_env, self.agent_socket, os.path.join(self.dir, "agent.log"), timeout=600)
            try:
                found["agent_noop_first"] = self.noop(self.agent_env).wall  # the agent loads the file and reads the kernel
                found["agent_noop"] = self.noop(self.agent_env).wall  # then answers from its cache
            finally:
                self.stop_agent()
        return found

    def stop_agent(self) -> None:
        if self.agent is not None:
            stop_agent(self.agent)
            code, self.agent = self.agent.returncode, None
            if code != 0:
                raise BenchError(f"`nsnet agent` exited {code} (see {os.path.join(self.dir, 'agent.log')})")

    def ping_all(self) -> dict[str, float]:
        proc = self.cmd("test", "--ping-all", self.file)
        if proc.rc != 0:
            raise BenchError(f"`nsnet test --ping-all` failed: {proc.describe()}")
        log(f"  {proc.out.strip().splitlines()[-1] if proc.out.strip() else ''}")
        return {"ping_all": proc.wall}

    def teardown(self) -> dict[str, float]:
        return {"teardown": require_ok(self.cmd("destroy", self.file)).wall}

    def state_dir(self) -> str:
        return os.path.join("/run/nsnet", self.ring.topology)


class BatchRing:
    """One of the hand-written variants: bash scripts of `ip -batch` (ring_lab.write_batch)."""

    def __init__(self, ring: Ring, runner: Runner, workdir: str):
        self.ring, self.runner, self.name = ring, runner, ring.peer
        self.scripts = ring.write_batch(workdir)

    def build(self) -> dict[str, float]:
        return {"build": require_ok(self.runner.run(["bash", self.scripts[self.name]], timeout=TIMEOUT)).wall}

    def teardown(self) -> dict[str, float]:
        return {"teardown": require_ok(self.runner.run(["bash", self.scripts["teardown"]], timeout=TIMEOUT)).wall}


Peer = NsnetRing | BatchRing


# checks


def read_router(ns: str) -> tuple[nlread.Namespace, dict[str, str | None]]:
    return nlread.read(ns), {key: netkit.read_sysctl(ns, key) for key in SYSCTLS}


def check_router(ring: Ring, i: int, state: nlread.Namespace, sysctls: dict[str, str | None]) -> list[str]:
    """Router i against what the ring says: links, global addresses (usable: not tentative), gateway routes, forwarding."""
    ns, want = ring.ns(i), ring.expected(i)
    problems = []
    links = {link.name: link for link in state.links}
    if set(links) != {"lo", "east", "west"}:
        problems.append(f"{ns}: links {sorted(links)}, expected east, west and lo")
    down = sorted(n for n, link in links.items() if not link.up)
    if down:
        problems.append(f"{ns}: not up (with carrier): {down}")
    if any(not links[n].peer_elsewhere for n in ("east", "west") if n in links):
        problems.append(f"{ns}: a link end whose peer is not in another namespace")
    globals_ = {(a.dev, a.cidr) for a in state.addresses if not _host_scoped(a.cidr)}
    if globals_ != want["addresses"]:
        problems.append(f"{ns}: addresses: missing {sorted(want['addresses'] - globals_)[:4]}, unexpected {sorted(globals_ - want['addresses'])[:4]}")
    unusable = sorted(a.cidr for a in state.addresses if not a.usable and not _host_scoped(a.cidr))
    if unusable:
        problems.append(f"{ns}: tentative or failed duplicate address detection: {unusable[:4]}")
    routes = {(r.dst, r.gateway, r.dev) for r in state.routes if r.gateway or r.multipath}
    if routes != want["routes"]:
        missing, extra = want["routes"] - routes, routes - want["routes"]
        problems.append(f"{ns}: routes: {len(missing)} missing (e.g. {sorted(missing)[:2]}), {len(extra)} unexpected (e.g. {sorted(extra)[:2]})")
    off = [k for k in FORWARDING if sysctls.get(k) != "1"]
    if off:
        problems.append(f"{ns}: forwarding off: {off}")
    return problems


def _host_scoped(cidr: str) -> bool:
    """Addresses every namespace has or makes itself: 127.0.0.1, ::1, IPv6 link-local."""
    return cidr in ("127.0.0.1/8", "::1/128") or cidr.startswith("fe80:")


def fingerprint(state: nlread.Namespace, sysctls: dict[str, str | None]) -> tuple:
    """A router's kernel state without what differs by design or by timing between peers: labels (link
    aliases, route and address protocols), MACs, and the IPv6 link-local addresses and their routes (derived
    from the MACs, and made by the kernel asynchronously once a link's carrier is up)."""
    links = sorted((link.name, link.up, link.mtu, link.peer_elsewhere) for link in state.links)
    addresses = sorted((a.dev, a.cidr, a.flags) for a in state.addresses if not a.cidr.startswith("fe80:"))
    routes = sorted((r.dst, r.gateway or "", r.dev or "", r.type, r.metric or 0, r.multipath) for r in state.routes if r.dst != "fe80::/64")
    return (tuple(links), tuple(addresses), tuple(routes), tuple(sorted((k, v or "") for k, v in sysctls.items())))


def _digest(fp: tuple) -> str:
    return hashlib.sha256(repr(fp).encode()).hexdigest()


def _diff(a: tuple, b: tuple) -> str:
    parts = []
    for what, x, y in zip(("links", "addresses", "routes", "sysctls"), a, b, strict=True):
        only_a, only_b = sorted(set(x) - set(y)), sorted(set(y) - set(x))
        if only_a or only_b:
            parts.append(f"{what}: only in the first {only_a[:3]}, only in the second {only_b[:3]}")
    return "; ".join(parts)


def probe_pairs(ring: Ring, rng: random.Random) -> list[tuple[int, int]]:
    """Sources (first, middle, last, random) with targets next door, nearly half way round and random. The far
    target is (R-1)//2 away, the longest way whose answer comes back through the same routers (at R/2 it goes
    on round the other half, and every router of the ring would need neighbour entries at once)."""
    r = ring.r
    sources = {0, r // 2, r - 1}
    while len(sources) < min(6, r):
        sources.add(rng.randrange(r))
    pairs = []
    for s in sorted(sources):
        targets = {(s + 1) % r, (s + (r - 1) // 2) % r, rng.choice([t for t in range(r) if t != s])}
        pairs += [(s, t) for t in sorted(targets)]
    return pairs


def probe(ring: Ring, rng: random.Random) -> tuple[list[str], list[str]]:
    """TCP from router loopbacks to loopbacks and to link addresses, both families; returns (problems, notes).

    The client binds its loopback (the answer must come back to it); TTL 255 on both ends (nearly half way
    round R = 500 is 249 hops). The kernel's ARP and neighbour discovery tables are the host's, shared by
    every namespace, and a long path needs entries at every hop: before each probe, while the table of its
    family is over a quarter full, the ring's own entries are flushed (nlread.flush_neighbours). A probe
    that still fails while the table is full (its table_fulls counter went up) is tried again after 6 s,
    when the kernel may collect entries again; those retries are reported."""
    problems, notes = [], []
    for s, t in probe_pairs(ring, rng):
        for family in (4, 6):
            source = ring.loopback(s, family).split("/")[0]
            for address in (ring.loopback(t, family), ring.east(t, family)):
                target, waited = address.split("/")[0], 0
                for attempt in range(8):
                    entries, fulls = netkit.neighbour_table(family)
                    if entries > netkit.neighbour_limit(family) // 4:
                        for ns in ring.names:
                            nlread.flush_neighbours(ns, family)
                    try:
                        netkit.tcp_connect(ring.ns(s), ring.ns(t), target, source=source, ttl=255)
                        break
                    except OSError as err:
                        last = err
                    if netkit.neighbour_table(family)[1] > fulls and waited < 5:
                        waited += 1
                        time.sleep(6)
                    elif attempt >= 2 + waited:
                        problems.append(f"TCP from {ring.ns(s)} ({source}) to {ring.ns(t)} {target} failed: {last}")
                        break
                    else:
                        time.sleep(0.2)
                if waited:
                    notes.append(f"TCP from {ring.ns(s)} to {target}: the host's IPv{family} neighbour table was full "
                                 f"(gc_thresh3 {netkit.neighbour_limit(family)}); tried again {waited} times after 6 s")
    return problems, notes


def check_link_local(ring: Ring, timeout: float = 5.0) -> list[str]:
    """Every link end has a usable IPv6 link-local address (routers need one: neighbour discovery for a
    forwarded packet is sent from it); the kernel makes it once the carrier is up, so wait a little."""
    deadline = time.monotonic() + timeout
    pending = {(ring.ns(i), dev) for i in range(ring.r) for dev in ("east", "west")}
    while pending:
        for ns in sorted({ns for ns, _ in pending}):
            have = {a.dev for a in nlread.read(ns).addresses if a.cidr.startswith("fe80:") and a.usable}
            pending -= {(ns, dev) for dev in have}
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not pending:
        return []
    return [f"no usable IPv6 link-local address {timeout:.0f} s after the build on {len(pending)} link ends, e.g. {sorted(pending)[:3]}"]


def wait_kernel(timeout: float = 900.0) -> float:
    """Wait until the kernel has finished dismantling deleted namespaces (no kworker runs the netns workqueue,
    `kworker/...+netns`, for 0.5 s), so one peer's clean-up never slows down the next peer's build."""
    started = time.perf_counter()
    quiet_since = None
    while time.perf_counter() - started < timeout:
        busy = False
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError):
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read()
                    if comm.startswith("kworker") and "+netns" in comm:
                        busy = True
                        break
        now = time.perf_counter()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 0.5:
            return quiet_since - started
        time.sleep(0.05)
    log(f"the kernel was still dismantling namespaces after {timeout:.0f} s; going on")
    return time.perf_counter() - started


# the run


class RingBench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.prefix = "r" + secrets.token_hex(2)
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix=f"nsnet-ring-{self.prefix}-")
        self.runner = Runner(self.tmp)
        self.made: list[Peer] = []
        self.samples: dict[tuple[int, str, str], list[float]] = defaultdict(list)
        self.failures: list[str] = []
        self.reference: dict[int, tuple[str, list[str], dict[int, tuple]]] = {}  # R -> (peer, digests, sampled fingerprints)
        self.profiles: dict[str, str] = {}
        self.facts: dict[int, tuple[dict[str, int], int, str]] = {}  # R -> route counts, bytes of the nsnet file, what nsnet says
        self.notes: list[str] = []
        self.cleaned = False
        self.started = time.time()
        self.cpu_start = (cpu_busy_seconds(), own_cpu_seconds())
        self.loadavg = open("/proc/loadavg").read().split()[:3]
        try:
            self.setup_nsnet()
        except (OSError, subprocess.CalledProcessError, SystemExit) as err:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise SystemExit(f"bench/ring.py: {err}") from None
        self.base4, self.base6 = pick_base(self.rng), pick_base6(self.rng)
        help_text = out([*self.nsnet, "--help"], {**self.env, "NSNET_AGENT": "off"})
        self.version = out([*self.nsnet, "--version"], {**self.env, "NSNET_AGENT": "off"}).replace("nsnet ", "")  # before cleanup removes an export
        # TODO(issue 14): `nsnet test` is being written on its own branch; until this nsnet has it, the ping-all
        # measurement is skipped with a message (kept for --rev of older revisions once it is merged).
        self.has_test = " test " in help_text or "\n    test" in help_text

    def setup_nsnet(self) -> None:
        """The command measured; `python` + `target` also run it under cProfile (None: --nsnet, no profiles)."""
        args = self.args
        self.source = f"working tree of commit {git_commit()}"
        self.env = dict(os.environ)
        python = [VENV_PYTHON if os.access(VENV_PYTHON, os.X_OK) else sys.executable]
        if args.rev:
            exported = export_rev(args.rev, self.tmp)
            python, self.env, self.source = exported.python, exported.env, exported.source
        elif args.nsnet:
            self.source = f"`--nsnet {args.nsnet}`"
        else:
            self.env["PYTHONPATH"] = REPO  # the repository's netplan_lite, wherever the run starts
        self.python: list[str] | None = None if args.nsnet else python
        self.target = ["-m", "netplan_lite"]
        if args.lift_limits:
            launcher = os.path.join(self.tmp, "nsnet-lifted.py")
            with open(launcher, "w") as f:
                f.write(LIFT)
            self.target = [launcher]
            self.source += ", with the loader's size limits lifted (`--lift-limits`)"
        self.nsnet = nsnet_command(args.nsnet) if args.nsnet or not (args.rev or args.lift_limits) else [*python, *self.target]
        if self.python:
            found = out([*self.python, "-c", "import netplan_lite; print(netplan_lite.__file__)"], self.env)
            where = self.env.get("PYTHONPATH", REPO)
            if not found.startswith(where + os.sep):
                raise SystemExit(f"nsnet would not be the benchmarked one: Python imports {found}, not from {where}")

    def make(self, peer: str, r: int) -> Peer:
        ring = Ring(self.prefix, peer, r, self.base4, self.base6)
        workdir = os.path.join(self.tmp, f"round{len(self.made):03d}-{ring.tag}")
        os.makedirs(workdir)
        made: Peer = NsnetRing(ring, self.runner, workdir, self.nsnet, self.env) if peer == "nsnet" else BatchRing(ring, self.runner, workdir)
        self.made.append(made)
        return made

    def record(self, r: int, peer: str, values: dict[str, float]) -> None:
        for case, value in values.items():
            self.samples[(r, peer, case)].append(value)

    def fail(self, message: str) -> None:
        log("FAILED " + message)
        self.failures.append(message)

    def run(self) -> None:
        log(f"run prefix {self.prefix}, addresses from {self.base4} and {self.base6}, nsnet: {' '.join(self.nsnet)} "
            f"({self.source}), temp dir {self.tmp}")
        if "nsnet" in self.args.peer_list and not self.has_test:
            log("TODO(issue 14): this nsnet has no `nsnet test`: the `nsnet test --ping-all` measurement is skipped")
            self.notes.append("This nsnet has no `nsnet test` yet: `nsnet test --ping-all` was not measured (TODO in bench/ring.py).")
        peers = self.args.peer_list
        for r in self.args.size_list:
            ring = Ring(self.prefix, "nsnet", r, self.base4, self.base6)
            counts = ring.route_counts
            self.facts[r] = (counts, len(ring.nsnet_yaml()), self.validate_as_is(ring))
            log(f"R={r}: {counts['loopback']} loopback routes + {counts['links']} link routes per family, "
                f"nsnet file {self.facts[r][1] / 1024:.0f} KiB")
            for rep in range(self.args.repeat):
                order = peers[rep % len(peers):] + peers[:rep % len(peers)]
                for name in order:
                    log(f"R={r} repetition {rep + 1}/{self.args.repeat}: {name}")
                    started = time.perf_counter()
                    self.round(self.make(name, r))
                    log(f"  done in {time.perf_counter() - started:.1f} s")
        if "nsnet" in peers:
            self.maybe_profile(max(self.args.size_list))

    def validate_as_is(self, ring: Ring) -> str:
        """What `nsnet validate` says of the ring's file with the loader's limits as they are (for --lift-limits runs)."""
        if not self.args.lift_limits or self.python is None:
            return ""
        path = os.path.join(self.tmp, f"as-is-{ring.r}.yaml")
        with open(path, "w") as f:
            f.write(ring.nsnet_yaml())
        proc = self.runner.run([*self.python, "-m", "netplan_lite", "validate", path], env={**self.env, "NSNET_AGENT": "off"})
        os.unlink(path)
        return "valid" if proc.rc == 0 else "refused: " + (proc.err.strip().splitlines() or ["?"])[0].split(": ", 2)[-1]

    def round(self, peer: Peer) -> None:
        """Build, checks, (nsnet: no-op plans, ping-all), teardown, wait for the kernel; failures are recorded, not raised."""
        r, step = peer.ring.r, "build"
        try:
            self.record(r, peer.name, peer.build())
            step = "checks after build"
            self.check(peer)
            if isinstance(peer, NsnetRing):
                step = "no-op plan"
                self.record(r, peer.name, peer.noops(agent=not self.args.no_agent))
                if self.has_test and r <= self.args.ping_all_max:
                    step = "`nsnet test --ping-all`"
                    self.record(r, peer.name, peer.ping_all())
            step = "teardown"
            teardown = peer.teardown()
            step = "checks after teardown"
            self.check_gone(peer)
            settle = wait_kernel()
            self.record(r, peer.name, {**teardown, "kernel_settle": settle, "gone": teardown["teardown"] + settle})
        except BenchError as err:
            self.fail(f"R={r} {peer.name}: {step}: {err}")
            self.clean(peer)
            wait_kernel()

    def check(self, peer: Peer) -> None:
        """Every router against the ring, the peers' kernel state against each other, TCP between sampled routers."""
        ring = peer.ring
        where = f"R={ring.r} {peer.name}"
        present = {n for n in netkit.list_ns() if n.startswith(ring.tag)}
        if present != set(ring.names):
            self.fail(f"{where}: namespaces: {len(set(ring.names) - present)} missing, {len(present - set(ring.names))} unexpected")
            return
        problems: list[str] = []
        digests: list[str] = []
        sampled = {0, ring.r // 2, ring.r - 1}
        full: dict[int, tuple] = {}
        for i in range(ring.r):
            state, sysctls = read_router(ring.ns(i))
            problems += check_router(ring, i, state, sysctls)
            fp = fingerprint(state, sysctls)
            digests.append(_digest(fp))
            if i in sampled:
                full[i] = fp
        for problem in problems[:10]:
            self.fail(f"{where}: {problem}")
        if len(problems) > 10:
            self.fail(f"{where}: ... and {len(problems) - 10} more problems")
        reference = self.reference.setdefault(ring.r, (peer.name, digests, full))
        if reference[1] != digests:
            differ = [i for i, (a, b) in enumerate(zip(reference[1], digests, strict=True)) if a != b]
            detail = next((_diff(reference[2][i], full[i]) for i in differ if i in full and i in reference[2]), "")
            self.fail(f"{where}: the kernel state of {len(differ)} routers differs from {reference[0]}'s (first: router {differ[0]}) {detail}")
        problems, notes = probe(ring, self.rng)
        for problem in problems[:10] + check_link_local(ring):
            self.fail(f"{where}: {problem}")
        for note in notes:
            log(f"  {where}: {note}")
        if notes:
            self.notes.append(f"R={ring.r} {peer.name}: {len(notes)} probes were tried again after the host's neighbour table "
                              f"was full (e.g. {notes[0]}).")

    def check_gone(self, peer: Peer) -> None:
        left = [n for n in netkit.list_ns() if n.startswith(peer.ring.tag)]
        if left:
            raise BenchError(f"{len(left)} namespaces left after the teardown, e.g. {left[:3]}")
        if isinstance(peer, NsnetRing) and os.path.exists(peer.state_dir()):
            raise BenchError(f"{peer.state_dir()} left after `nsnet destroy`")

    # profiles

    def maybe_profile(self, r: int) -> None:
        """An extra nsnet round at the largest size under cProfile (untimed): apply, plan, ping-all, destroy."""
        mode = self.args.profile
        if mode == "never" or self.python is None or not self.samples.get((r, "nsnet", "build")):
            return
        build, batch = self.median(r, "nsnet", "build"), self.batch_build(r)
        missed_apply = r >= TARGET_R and batch is not None and build is not None and build > 0.5 * batch
        missed_plan = r >= TARGET_R and (self.median(r, "nsnet", "noop") or 0) >= 1.0
        missed_ping = (self.median(r, "nsnet", "ping_all") or 0) >= 10.0
        if mode == "auto" and not (missed_apply or missed_plan or missed_ping):
            return
        peer = self.make("nsnet", r)
        assert isinstance(peer, NsnetRing)
        log(f"R={r}: profiling nsnet (cProfile, untimed)")
        try:
            for what, argv in (("apply", ["apply", peer.file]), ("plan", ["plan", "--detailed-exitcode", peer.file]),
                               ("test --ping-all", ["test", "--ping-all", peer.file] if self.has_test and r <= self.args.ping_all_max else []),
                               ("destroy", ["destroy", peer.file])):
                if not argv:
                    continue
                path = os.path.join(peer.dir, what.split()[0] + ".prof")
                proc = self.runner.run([*self.python, "-m", "cProfile", "-o", path, *self.target, *argv], env=peer.env, timeout=2 * TIMEOUT)
                if proc.rc != 0:
                    raise BenchError(proc.describe())
                self.profiles[f"`nsnet {what}`, R = {r} ({proc.wall:.1f} s under cProfile)"] = profile_summary(path)
        except BenchError as err:
            self.fail(f"R={r} nsnet: profile: {err}")
            self.clean(peer)
        wait_kernel()

    # cleanup: exact names only

    def clean(self, peer: Peer) -> None:
        ring = peer.ring
        if isinstance(peer, NsnetRing):
            with contextlib.suppress(Exception):
                peer.stop_agent()
            if any(netkit.ns_exists(ns) for ns in ring.names):
                with contextlib.suppress(Exception):
                    self.runner.run([*peer.nsnet, "destroy", peer.file], env=peer.env, timeout=TIMEOUT)
        for ns in ring.names:
            with contextlib.suppress(OSError):
                netkit.remove_ns(ns)
        if isinstance(peer, NsnetRing) and os.path.isdir(peer.state_dir()):
            shutil.rmtree(peer.state_dir(), ignore_errors=True)

    def cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        for peer in self.made:
            try:
                self.clean(peer)
            except Exception as err:  # noqa: BLE001 - keep cleaning the others
                log(f"cleanup of {peer.ring.tag}: {err}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Anything of this run still on the host (checked by prefix, read-only)."""
        left = [f"namespace {n}" for n in netkit.list_ns() if n.startswith(self.prefix)]
        if os.path.isdir("/run/nsnet"):
            left += [f"/run/nsnet/{d}" for d in os.listdir("/run/nsnet") if d.startswith(self.prefix + "-")]
        return left

    # results

    def median(self, r: int, peer: str, case: str) -> float | None:
        return report.median(self.samples.get((r, peer, case)))

    def batch_build(self, r: int) -> float | None:
        """The fastest `ip -batch` variant's median build."""
        builds = [m for v in BATCH_VARIANTS if (m := self.median(r, v, "build")) is not None]
        return min(builds) if builds else None

    def gone(self, r: int, peers: tuple[str, ...]) -> float | None:
        """Teardown until the kernel has dismantled the namespaces, the median over PEERS' rounds: `nsnet
        destroy` deletes the routes and links itself, `ip netns del` leaves them to the kernel's clean-up."""
        return report.median([x for p in peers for x in self.samples.get((r, p, "gone"), [])])

    def markdown(self, interrupted: bool) -> str:
        sizes, peers = self.args.size_list, self.args.peer_list
        busy = cpu_busy_seconds() - self.cpu_start[0]
        ours = own_cpu_seconds() - self.cpu_start[1]
        elapsed = time.time() - self.started
        cpus = os.cpu_count() or 1
        lines = [
            "## Routed ring (bench/ring.py)", "",
            f"Machine: {out(['nproc'])} cores ({cpu_model()}), kernel {platform.release()}, {mem_gb():.0f} GB RAM, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Software: nsnet {self.version} ({self.source}), "
            f"Python {platform.python_version()}, {ip_version()}.",
            f"Command: `python3 bench/ring.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`; repetitions: {self.args.repeat}; "
            f"every number is the median of the repetitions; total run time {elapsed / 60:.1f} min.",
            f"Background: load average {' '.join(self.loadavg)} at the start; during the run the machine was busy {busy:.0f} CPU-s "
            f"of {elapsed * cpus:.0f}, of which {ours:.0f} CPU-s were this benchmark's processes and {max(0.0, busy - ours):.0f} "
            "CPU-s other work (including the kernel's own namespace clean-up).",
            "",
            "The lab: R routers in a ring, each a namespace with `forwarding: true`, `loopback: auto` (dual-stack loopback "
            "pool) and dual-stack links to both neighbours from the p2p pool (/31 and /127); static routes the shortest "
            "way round to every other router's loopback (R x (R-1) per family) and, summarised, to the links it is not "
            "on (so that every router answers from, and reaches, every address: `nsnet test --ping-all` pings them all).",
            "",
            "| R | routes per family: to loopbacks + to links | routes in all | nsnet file |"
            + (" nsnet as is (limits not lifted) |" if self.args.lift_limits else ""),
            "|---|---|---|---|" + ("---|" if self.args.lift_limits else ""),
        ]
        for r, (counts, size, as_is) in self.facts.items():
            lines.append(f"| {r} | {counts['loopback']} + {counts['links']} | {2 * (counts['loopback'] + counts['links'])} | {size / 1024:.0f} KiB |"
                         + (f" {as_is} |" if self.args.lift_limits else ""))
        lines.append("")
        if interrupted:
            lines += ["**Interrupted: partial results.**", ""]
        elif self.failures:
            lines += ["**Correctness checks failed:**", ""] + [f"- {f}" for f in self.failures] + [""]
        else:
            lines += ["All correctness checks held (after every build: every router's links, addresses in both families, "
                      "none tentative, routes and forwarding; the kernel state of every router the same for every peer; TCP "
                      "between sampled routers' loopbacks and to link addresses, both families; `nsnet plan` empty after "
                      "nsnet's apply; nothing left after every teardown).", ""]
        lines += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])

        def m(r: int, peer: str, case: str) -> float | None:
            return self.median(r, peer, case)

        def at(r: int, size: int, cell: str) -> str:
            return cell if r == size or cell == "–" else cell.replace(" **met**", "").replace(" **missed**", "")

        lines += ["### Targets", "", "| target | " + " | ".join(f"R = {r}" for r in sizes) + " |", "|---|" + "---|" * len(sizes)]

        def row(title: str, cell) -> None:
            lines.append(f"| {title} | " + " | ".join(cell(r) for r in sizes) + " |")

        def ratio_cell(a: float | None, b: float | None, limit: float) -> str:
            if a is None or not b:
                return "–"
            return f"{a / b:.2f}x ({report.seconds(a)} / {report.seconds(b)}){report.verdict(a / b <= limit)}"

        def abs_cell(v: float | None, limit: float) -> str:
            return "–" if v is None else f"{report.seconds(v)}{report.verdict(v < limit)}"

        row(f"`nsnet apply` / fastest `ip -batch` build (<= 0.5x at R = {TARGET_R})",
            lambda r: at(r, TARGET_R, ratio_cell(m(r, "nsnet", "build"), self.batch_build(r), 0.5)))
        row(f"`nsnet plan`, no changes, `NSNET_AGENT=off` (< 1.0 s at R = {TARGET_R})",
            lambda r: at(r, TARGET_R, abs_cell(m(r, "nsnet", "noop"), 1.0)))
        if not self.args.no_agent:
            row("…with `nsnet agent` running: the first plan it serves / the next one",
                lambda r: f"{report.seconds(m(r, 'nsnet', 'agent_noop_first'))} / {report.seconds(m(r, 'nsnet', 'agent_noop'))}")
        row(f"`nsnet test --ping-all` (< 10 s at R = {PING_ALL_R})",
            lambda r: "skipped: no `nsnet test`" if not self.has_test and r <= self.args.ping_all_max
            else at(r, PING_ALL_R, abs_cell(m(r, "nsnet", "ping_all"), 10.0)))
        row("`nsnet destroy` / `ip -batch` teardown, each until the kernel has dismantled the namespaces (no target)",
            lambda r: ratio_cell(self.gone(r, ("nsnet",)), self.gone(r, BATCH_VARIANTS), float("inf")).replace(" **met**", ""))
        lines.append("")
        for r in sizes:
            lines += [f"### R = {r} (medians)", "", "| case | " + " | ".join(TITLES[p] for p in peers) + " |", "|---|" + "---|" * len(peers)]
            for case, title in (("build", "build from nothing"), ("teardown", "tear down"),
                                ("kernel_settle", "…then until the kernel has dismantled the namespaces (not in the row above)")):
                lines.append(f"| {title} | " + " | ".join(report.seconds(m(r, p, case)) for p in peers) + " |")
            b = self.batch_build(r)
            lines.append("| build / fastest `ip -batch` build | " + " | ".join(report.ratio(m(r, p, "build"), b) for p in peers) + " |")
            if "nsnet" in peers:
                blank = " |" * (len(peers) - 1)
                for case, title in (("noop", "no-op `nsnet plan` (`NSNET_AGENT=off`)"),
                                    ("validate", "`nsnet validate` of the ring's file (start, imports, load)"),
                                    ("agent_noop_first", "no-op `nsnet plan`, the first `nsnet agent` serves (it loads the file, reads the kernel)"),
                                    ("agent_noop", "…the next one, from the agent's cache"),
                                    ("ping_all", "`nsnet test --ping-all`")):
                    if m(r, "nsnet", case) is not None:
                        lines.append(f"| {title} | {report.seconds(m(r, 'nsnet', case))} |{blank}")
                rss = [f"{max(v):.0f} MB" if (v := self.samples.get((r, "nsnet", c))) else "–" for c in ("build_rss", "noop_rss")]
                lines.append(f"| peak RSS of `nsnet apply` / `nsnet plan` | {rss[0]} / {rss[1]} |{blank}")
            lines.append("")
        for title, text in self.profiles.items():
            lines += [f"### Where nsnet spends its time: {title}", "", "```", text, "```", ""]
        lines += ["<details><summary>Raw samples (seconds; RSS in MB)</summary>", ""]
        lines += [f"- R={r} {peer} {case}: " + ", ".join(f"{v:.4f}" for v in values) for (r, peer, case), values in sorted(self.samples.items())]
        lines += ["", "</details>", ""]
        return "\n".join(lines)


def profile_summary(path: str, top: int = 25) -> str:
    """The functions with the most own time (file:function, share of the whole run), then the most cumulative time."""
    stats = pstats.Stats(path)
    total = stats.total_tt or 1.0  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]

    def where(key: tuple) -> str:
        file, line, func = key
        file = file.split("netplan_lite/", 1)[1] if "netplan_lite/" in file else os.path.basename(file)
        return f"{file}:{line}:{func}"

    lines = [f"{total:.2f} s in all. Own time (tottime), share of the run, calls:"]
    for key, (_, calls, tt, _, _) in sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(f"  {tt:8.2f} s {100 * tt / total:5.1f}%  {calls:>9}  {where(key)}")
    lines.append("Cumulative time (cumtime), share of the run (without the frames that hold all of it: start, main, the command):")
    for key, (_, calls, _, ct, _) in [kv for kv in sorted(entries.items(), key=lambda kv: -kv[1][3]) if kv[1][3] < 0.99 * total][:top]:
        lines.append(f"  {ct:8.2f} s {100 * ct / total:5.1f}%  {calls:>9}  {where(key)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if cannot_start("bench/ring.py", "it creates namespaces and veths", ("ip", "bash", "xargs", "sysctl")):
        return 2
    bench = RingBench(args)
    return run_bench(bench, args.out, lambda old, text: report.put_section(old, "ring", text), "the ring section")


if __name__ == "__main__":
    sys.exit(main())
