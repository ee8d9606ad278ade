#!/usr/bin/env python3
"""nsnet benchmark: build the same lab with nsnet, a one-command-per-step shell
script, `ip -batch` and the CNI reference plugins, interleaved and repeated,
and print the medians and the targets' ratios as a markdown table.

    python3 bench/run.py                               # N = 10, 100, 1000; 3 repetitions; writes bench/results.md
    python3 bench/run.py --sizes 10 --repeat 1         # smoke run (CI): exits 1 if any correctness check fails
    python3 bench/run.py --sizes none --scale          # only the scale case (3000 namespaces, 3 bridges)

Run as root. See bench/README.md for what is measured and how. Every name the
run creates starts with a per-run prefix (`b` + 4 hex digits); everything is
removed by exact name at the end, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
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

import lab as L  # noqa: E402
import netkit  # noqa: E402
import report  # noqa: E402
from common import cannot_start, run_bench, cpu_busy_seconds, export_rev, log, nsnet_command, own_cpu_seconds, pick_base  # noqa: E402
from common import cpu_model as _cpu_model, git_commit as _git_commit, ip_version, mem_gb as _mem_gb, out as _out  # noqa: E402
from peers import (BatchPeer, BenchError, CniPeer, NsnetPeer, Peer, Runner, ShellPeer,  # noqa: E402
                   verify_built, wait_gone, wait_links_gone)

DEFAULT_SIZES = [10, 100, 1000]
DEFAULT_REPEAT = 3
DEFAULT_OUT = os.path.join(HERE, "results.md")
SMALL_FILE = os.path.join(REPO, "examples", "topology.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark nsnet against a one-command-per-step shell script, `ip -batch` and the CNI "
                    "bridge plugin on the same lab of N namespaces (interleaved, repeated, medians). Run as root.",
        epilog="Writes the table to --out (default bench/results.md) for the default run or when --out is "
               "given; other runs only print it. Exit status: 0 all correctness checks held, 1 one failed, "
               "2 usage, 130 interrupted.",
    )
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), metavar="N,N,...",
                        help="namespace counts, comma-separated, or `none` (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, metavar="R",
                        help="repetitions of each size; the peers' order rotates each time (default: %(default)s)")
    parser.add_argument("--scale", action="store_true",
                        help="also run the scale case: nsnet with --scale-n namespaces across bridges of 1000")
    parser.add_argument("--scale-n", type=int, default=3000, metavar="N", help="namespaces of the scale case (default: %(default)s)")
    parser.add_argument("--peers", default=",".join(L.PEERS), metavar="P,P,...",
                        help="which peers to run (default: %(default)s); the target ratios need nsnet and batch")
    parser.add_argument("--out", metavar="FILE", help="write the markdown table here (`-`: only print it)")
    parser.add_argument("--nsnet", metavar="CMD",
                        help="the nsnet command (default: .venv/bin/nsnet of the repository, else `python3 -m netplan_lite`)")
    parser.add_argument("--rev", metavar="REV",
                        help="benchmark nsnet as committed at git revision REV (exported with `git archive` into the "
                             "temp dir, run with the repository's venv Python) instead of the working tree")
    parser.add_argument("--seed", type=int, help="seed of the sample of namespaces checked (default: random)")
    args = parser.parse_args(argv)
    try:
        args.size_list = [] if args.sizes.strip().lower() == "none" else [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: not a list of integers: {args.sizes!r}")
    if any(n < 1 for n in args.size_list) or args.repeat < 1 or args.scale_n < 1:
        parser.error("sizes, --repeat and --scale-n must be positive")
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(args.peer_list) - set(L.PEERS)
    if unknown or not args.peer_list:
        parser.error(f"--peers: unknown {sorted(unknown)}; choose from {', '.join(L.PEERS)}")
    args.peer_list = [p for p in L.PEERS if p in args.peer_list]
    if not args.size_list and not args.scale:
        parser.error("nothing to run: give --sizes or --scale")
    if args.out is None:
        default_run = args.size_list == DEFAULT_SIZES and args.repeat >= DEFAULT_REPEAT and args.peer_list == list(L.PEERS)
        args.out = DEFAULT_OUT if default_run else "-"
    return args


def ensure_cni() -> None:
    if all(os.access(os.path.join(L.CNI_DIR, p), os.X_OK) for p in ("bridge", "host-local", "loopback")):
        return
    log("installing containernetworking-plugins (apt-get) for the CNI peer")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "containernetworking-plugins"]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.prefix = "b" + secrets.token_hex(2)
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix=f"nsnet-bench-{self.prefix}-")
        self.runner = Runner(self.tmp)
        self.nsnet = nsnet_command(args.nsnet)
        self.nsnet_env: dict[str, str] | None = None
        venv = os.path.join(REPO, ".venv", "bin", "python")
        self.profile_python: list[str] | None = [venv] if args.nsnet is None and os.access(venv, os.X_OK) else None
        self.profiles: dict = {}
        self.profile_keys = ({max(args.size_list)} if args.size_list else set()) | ({f"scale {args.scale_n}"} if args.scale else set())
        self.nsnet_source = f"working tree of commit {_git_commit()}"
        if args.rev:
            try:
                self.export(args.rev)
            except (OSError, subprocess.CalledProcessError, SystemExit) as err:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise SystemExit(f"bench/run.py: --rev {args.rev}: {err}") from None
        help_env = dict(self.nsnet_env or os.environ, NSNET_AGENT="off")
        self.nsnet_target = "--target" in _out([*self.nsnet, "apply", "--help"], help_env)  # older --rev: no such option
        self.base = pick_base(self.rng)
        self.samples: dict[tuple, list[float]] = defaultdict(list)
        self.rss: dict = defaultdict(list)
        self.validate: list[float] = []
        self.failures: list[str] = []
        self.notes: dict[str, dict[str, str]] = {}
        self.made: list[Peer] = []
        self.ip_forward = netkit.read_sysctl(None, "net.ipv4.ip_forward")
        self.cleaned = False
        self.started = time.time()
        self.cpu_start = (cpu_busy_seconds(), own_cpu_seconds())
        self.loadavg = open("/proc/loadavg").read().split()[:3]
        self.foreign_ns = len(netkit.list_ns())

    def export(self, rev: str) -> None:
        """nsnet as of REV, exported next to the run's files; the venv supplies its dependencies."""
        exported = export_rev(rev, self.tmp)
        self.nsnet, self.profile_python, self.nsnet_env, self.nsnet_source = exported.nsnet, exported.python, exported.env, exported.source

    # peers

    def make_peer(self, name: str, n: int) -> Peer:
        lab = L.Lab(self.prefix, name, n, self.base)
        workdir = os.path.join(self.tmp, f"round{len(self.made):03d}")  # fresh per round: CNI's IPAM state lives there
        if name == "nsnet":
            peer: Peer = NsnetPeer(lab, self.runner, workdir, self.nsnet, self.nsnet_env)
            peer.can_target = self.nsnet_target
        elif name == "shell":
            peer = ShellPeer(lab, self.runner, workdir)
        elif name == "batch":
            peer = BatchPeer(lab, self.runner, workdir)
        else:
            peer = CniPeer(lab, self.runner, workdir)
        self.made.append(peer)
        return peer

    def record(self, key, values: dict[str, float]) -> None:
        for case, value in values.items():
            self.samples[(key, self.current_peer, case)].append(value)

    def round(self, peer: Peer, key) -> None:
        """One build / check / no-op / add / remove / teardown of one peer; failures are recorded, not raised."""
        self.current_peer = peer.name
        step = "build"
        try:
            self.record(key, peer.build())
            self.check(key, peer, "checks after build", extra=False, notes=True)
            step = "no-op"
            self.record(key, peer.noop())
            if isinstance(peer, NsnetPeer):
                self.rss[key].append(peer.plan_rss_kb / 1024)
                if key in self.profile_keys and key not in self.profiles and self.profile_python:
                    step = "profile of plan"
                    try:
                        self.profiles[key] = peer.profile_plan(self.profile_python)
                    except (ImportError, ValueError, OSError, EOFError) as err:  # e.g. another Python's pstats format
                        log(f"no profile: {err}")
            step = "add one"
            self.record(key, peer.add())
            self.check(key, peer, "checks after adding one", extra=True)
            step = "remove one"
            self.record(key, peer.remove())
            removed = peer.host_veth_of(peer.extra)
            self.record(key, {"remove_settle": wait_links_gone({removed} if removed else set())})
            self.check(key, peer, "checks after removing it", extra=False)
            if isinstance(peer, NsnetPeer) and peer.can_target:
                step = "add one with `nsnet apply --target`"
                added, problems = peer.add_target()
                self.record(key, added)
                self.problems(key, peer, "`nsnet apply --target`", problems)
                self.check(key, peer, "checks after adding one with `nsnet apply --target`", extra=True)
                step = "remove the one added with --target"
                self.record(key, peer.remove_after_target())
                self.record(key, {"target_remove_settle": wait_links_gone({removed} if removed else set())})
                self.check(key, peer, "checks after removing the one added with --target", extra=False)
            if isinstance(peer, NsnetPeer):
                step = "with the agent"
                self.record(key, peer.with_agent(lambda what, extra: self.check(key, peer, what, extra=extra)))
            step = "teardown"
            self.record(key, peer.teardown())
            step = "checks after teardown"
            self.record(key, {"settle": wait_gone(peer)})
        except BenchError as err:
            message = f"N={key} {peer.name}: {step}: {err}"
            log("FAILED " + message)
            self.failures.append(message)
            self.clean_peer(peer)

    def check(self, key, peer: Peer, step: str, extra: bool, notes: bool = False) -> None:
        """Run the checks; problems are recorded as failures, and the round goes on measuring."""
        seen, problems = verify_built(peer, extra=extra, rng=self.rng)
        if notes and seen:
            self.notes[peer.name] = seen
        self.problems(key, peer, step, problems)

    def problems(self, key, peer: Peer, step: str, problems: list[str]) -> None:
        for problem in problems[:8]:
            message = f"N={key} {peer.name}: {step}: {problem}"
            log("FAILED " + message)
            self.failures.append(message)

    # the run

    def run(self) -> None:
        log(f"run prefix {self.prefix}, subnets from {self.base}, nsnet: {' '.join(self.nsnet)} ({self.nsnet_source}), temp dir {self.tmp}")
        self.time_validate()
        if not self.nsnet_target and ("nsnet" in self.args.peer_list or self.args.scale):
            log("this nsnet has no `apply --target`: the case \"one namespace added with one command\" is skipped")
        peers = self.args.peer_list
        for n in self.args.size_list:
            for r in range(self.args.repeat):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for name in order:
                    log(f"N={n} repetition {r + 1}/{self.args.repeat}: {name}")
                    started = time.perf_counter()
                    self.round(self.make_peer(name, n), n)
                    log(f"  done in {time.perf_counter() - started:.1f} s")
        if self.args.scale:
            key = f"scale {self.args.scale_n}"
            log(f"scale case: nsnet, {self.args.scale_n} namespaces")
            self.round(self.make_peer("nsnet", self.args.scale_n), key)

    def time_validate(self) -> None:
        small = SMALL_FILE
        if not os.path.exists(small):
            small = os.path.join(self.tmp, "small.yaml")
            with open(small, "w") as f:
                f.write(L.nsnet_yaml(L.Lab(self.prefix, "nsnet", 10, self.base)))
        for _ in range(max(5, 3 * self.args.repeat)):
            proc = self.runner.run([*self.nsnet, "validate", small], env=self.nsnet_env)
            if proc.rc != 0:
                self.failures.append(f"nsnet validate {small}: {proc.describe()}")
                return
            self.validate.append(proc.wall)

    # cleanup: exact names only

    def clean_peer(self, peer: Peer) -> None:
        lab = peer.lab
        names = peer.host_veths() | {lab.bridge(k) for k in range(lab.bridges)}
        namespaces = [lab.ns(i) for i in lab.indices(extra=True)]
        anything = any(netkit.ns_exists(ns) for ns in namespaces) or bool(names & netkit.host_links())
        if isinstance(peer, NsnetPeer) and anything:
            with contextlib.suppress(Exception):
                peer.runner.run([*peer.nsnet, "destroy", peer.file_plus], env=peer.env, timeout=900)
        for ns in namespaces:
            with contextlib.suppress(OSError):
                netkit.remove_ns(ns)
        bridges = {lab.bridge(k) for k in range(lab.bridges)}
        with contextlib.suppress(Exception):
            names |= {l["ifname"] for l in netkit.ip_json("link", "show")
                      if l.get("ifalias") == lab.label or l.get("master") in bridges}
        for name in sorted(names & netkit.host_links(), key=lambda x: x in bridges):
            subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=60)
        if isinstance(peer, NsnetPeer):
            state = os.path.join("/run/nsnet", lab.topology)
            if os.path.isdir(state):
                shutil.rmtree(state, ignore_errors=True)

    def cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        for peer in self.made:
            try:
                self.clean_peer(peer)
            except Exception as err:  # keep cleaning the others
                log(f"cleanup of {peer.lab.tag}: {err}")
        if self.ip_forward is not None and netkit.read_sysctl(None, "net.ipv4.ip_forward") != self.ip_forward:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # the CNI bridge plugin sets it for isGateway
                f.write(self.ip_forward)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Anything of this run still on the host (checked by prefix, read-only)."""
        left = [f"namespace {n}" for n in netkit.list_ns() if n.startswith(self.prefix)]
        left += [f"link {l}" for l in netkit.host_links() if l.startswith(self.prefix)]
        for l in netkit.ip_json("link", "show"):
            if (l.get("ifalias") or "").startswith(f"nsnet:{self.prefix}-"):
                left.append(f"link {l['ifname']} ({l['ifalias']})")
        left += [f"/run/nsnet/{d}" for d in os.listdir("/run/nsnet") if d.startswith(self.prefix)] if os.path.isdir("/run/nsnet") else []
        return left

    # output

    def markdown(self, interrupted: bool) -> str:
        sizes = self.args.size_list
        busy = cpu_busy_seconds() - self.cpu_start[0]
        ours = own_cpu_seconds() - self.cpu_start[1]
        elapsed = time.time() - self.started
        cpus = os.cpu_count() or 1
        other = max(0.0, busy - ours)
        lines = [
            "# nsnet benchmark results",
            "",
            f"Machine: {_out(['nproc'])} cores ({_cpu_model()}), kernel {platform.release()}, "
            f"{_mem_gb():.0f} GB RAM, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
            f"Software: nsnet {_out([*self.nsnet, '--version'], self.nsnet_env).replace('nsnet ', '')} "
            f"({self.nsnet_source}), Python {platform.python_version()}, {ip_version()}, "
            f"containernetworking-plugins {_out(['dpkg-query', '-W', '-f=${Version}', 'containernetworking-plugins']) or '?'}.",
            f"Command: `python3 bench/run.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`; "
            f"repetitions: {self.args.repeat}; every number is the median of the repetitions; total run time {elapsed / 60:.1f} min.",
            f"Background: load average {' '.join(self.loadavg)} at the start; during the run the machine was busy "
            f"{busy:.0f} CPU-s of {elapsed * cpus:.0f}, of which {ours:.0f} CPU-s were this benchmark's processes and "
            f"{other:.0f} CPU-s other work (including the kernel's own namespace clean-up threads). "
            f"Namespaces of other tools under /run/netns: {self.foreign_ns} at the start, {_span(self.samples, 'foreign_ns')} "
            f"during the no-op measurements (`nsnet plan` and the read floor both read every namespace there).",
            "",
        ]
        if interrupted:
            lines += ["**Interrupted: partial results.**", ""]
        if interrupted:
            pass
        elif self.failures:
            lines += ["**Correctness checks failed:**", ""] + [f"- {f}" for f in self.failures] + [""]
        else:
            lines += ["All correctness checks held (structure of every build, sampled namespaces in detail, TCP between "
                      "sampled namespaces and to the gateway, `nsnet plan` empty after every nsnet apply, nothing left after "
                      "every teardown).", ""]
        if sizes:
            lines += ["## Targets", ""] + report.targets_table(sizes, self.samples, self.rss, self.validate) + [""]
            if not self.nsnet_target and "nsnet" in self.args.peer_list:
                lines += ["This nsnet has no `nsnet apply --target`: \"one namespace added with one command\" was not measured.", ""]
            for n in sizes:
                lines += [f"## N = {n} (medians)", ""] + report.detail_table(n, self.samples, self.args.peer_list) + [""]
        if self.args.scale:
            key = f"scale {self.args.scale_n}"
            lab = L.Lab(self.prefix, "nsnet", self.args.scale_n, self.base)
            lines += [f"## Scale: {self.args.scale_n} namespaces across {lab.bridges} bridges (nsnet only, one run)", ""]
            lines += report.detail_table(key, self.samples, ["nsnet"])  # type: ignore[arg-type]
            if self.rss.get(key):
                lines.append(f"\nPeak RSS of `nsnet plan`: {max(self.rss[key]):.0f} MB.")
            lines.append("")
        for key, text in self.profiles.items():
            where = f"the scale case, {self.args.scale_n} namespaces" if str(key).startswith("scale") else f"N = {key}"
            lines += [f"## Where `nsnet plan` spends its time: {where}", "",
                      "One untimed run of `python -m cProfile -m netplan_lite plan FILE` on the lab just built "
                      "(profiling slows Python code down more than system calls), top entries by cumulative time, then by own time:", "",
                      "```", text, "```", ""]
        lines += ["## IPv6 and the bridge's MAC in the built labs", "",
                  "`disable_ipv6` as each peer left it (1 = IPv6 off), the IPv6 addresses the links have a moment "
                  "after the build (link-local addresses mean IPv6 autoconfiguration runs there: duplicate address "
                  "detection, router solicitations, MLD), and how the bridge got its MAC (a bridge without a fixed MAC "
                  "takes the lowest MAC of its ports, so it changes as ports come and go). Read on one sampled namespace.", "",
                  "| peer | `disable_ipv6`: namespace eth0 | namespace `all` | host veth end | bridge "
                  "| IPv6 addresses: eth0 / host end / bridge | bridge MAC |", "|---|---|---|---|---|---|---|"]
        for peer in self.args.peer_list:
            seen = self.notes.get(peer)
            if seen:
                lines.append(f"| {report.PEER_TITLES[peer]} | {seen['namespace eth0']} | {seen['namespace all']} | "
                             f"{seen['host veth end']} | {seen['bridge']} | {seen['ipv6 addresses']} | {seen['bridge mac']} |")
        lines += ["", "<details><summary>Raw samples (seconds)</summary>", ""] + report.raw_samples(self.samples)
        lines += [f"- nsnet validate {os.path.relpath(SMALL_FILE, REPO)}: " + ", ".join(f"{v:.4f}" for v in self.validate)]
        for key, values in self.rss.items():
            lines.append(f"- N={key} peak RSS of nsnet plan (MB): " + ", ".join(f"{v:.1f}" for v in values))
        lines += ["", "</details>", ""]
        return "\n".join(lines)


def _span(samples: dict, case: str) -> str:
    values = [v for (_, _, c), vs in samples.items() if c == case for v in vs]
    if not values:
        return "none measured"
    return f"{min(values):.0f}" if min(values) == max(values) else f"{min(values):.0f} to {max(values):.0f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if cannot_start("bench/run.py", "it creates namespaces, bridges and veths", ("ip", "bash")):
        return 2
    if "cni" in args.peer_list:
        ensure_cni()

    bench = Bench(args)
    return run_bench(bench, args.out, report.carry_sections, "the results")  # ring.py's section stays in run.py's file


if __name__ == "__main__":
    sys.exit(main())
