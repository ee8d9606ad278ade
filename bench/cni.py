#!/usr/bin/env python3
"""CNI benchmark: a plugin chain driven exactly as libcni drives it, side by side with another, on the same
containers (namespaces this benchmark makes, as a runtime does), interleaved and repeated.

    python3 bench/cni.py --nsnet-bin DIR              # N = 10, 100, 1000, without and with one port mapping each; writes bench/cni.md
    python3 bench/cni.py --sizes 10 --repeat 1 --out -   # smoke run: prints only

Peers: "reference" (Debian's bridge + host-local + portmap, /usr/lib/cni) and "nsnet" (one plugin, `type: nsnet`,
from --nsnet-bin DIR; skipped with a message when DIR/nsnet does not exist). Run as root. See bench/README.md
("CNI plugins side by side") for what is measured and how. The host is put back after every case: what appeared
(links, namespaces, nft objects, sysctls, state files) is removed by exact name, and checked.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cni_lab as C  # noqa: E402
import netkit  # noqa: E402
from common import cannot_start, cpu_busy_seconds, cpu_model, log, mem_gb, out, own_cpu_seconds, pick_base, run_bench  # noqa: E402
from peers import BenchError, CniChain, CniError, Proc, start_agent, stop_agent  # noqa: E402
from report import seconds  # noqa: E402
from run import ensure_cni  # noqa: E402

DEFAULT_SIZES = [10, 100, 1000]
DEFAULT_OUT = os.path.join(HERE, "cni.md")
MODES = {"without": False, "with": True}
CALL_TIMEOUT = 120.0  # one plugin execution
IFNAME = "eth0"
TIME = "/usr/bin/time"  # GNU time (Debian's `time`): the plugins' own peak RSS, see Spawner
ERRORS = ("check_errors", "del_errors", "parallel_add_errors", "parallel_del_errors")


def _ms(v: float) -> str:
    return f"{v:.1f} ms"


def _count(v: float) -> str:
    return f"{v:.0f}"


def _ratio(v: float) -> str:
    return f"{v:.2f}"


# the tables' columns: title, record key, format (medians of the repetitions)
SEQUENTIAL = [
    ("ADD: first 10%", "add_first_ms", _ms),
    ("last 10%", "add_last_ms", _ms),
    ("last / first", "add_ratio", _ratio),
    ("build", "build", seconds),
    ("CHECK all", "check", seconds),
    ("CHECK failures", "check_failures", _count),
    ("teardown", "teardown", seconds),
    ("DEL failures", "del_failures", _count),
]
PARALLEL = [
    ("{p} parallel ADDs", "parallel_add", seconds),
    ("distinct addresses", "distinct_addresses", _count),
    ("ADD failures", "parallel_add_failures", _count),
    ("{p} parallel DELs", "parallel_del", seconds),
    ("DEL failures", "parallel_del_failures", _count),
]


class Spawner:
    """Runs plugin executions, several at once if asked, each timed from just before it is spawned to just after it is
    reaped (os.wait4), as peers.Runner does, but started through GNU time in a session of its own:
    - its peak RSS is the plugin's own: a child's ru_maxrss starts from the RSS of the process it was forked from
      (this Python process, 20 MB and more: measured), so the plugin is forked from `time` (1 MB) and `time` reports it;
    - at its time limit the whole session is killed: the plugin and what it runs (host-local, iptables), not `time` alone.
    `time` costs ~0.7 ms per call (/bin/true: 0.7 ms directly, 1.4 ms through it), the same for every peer."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.deadlines: dict[int, float] = {}  # session (= pid of `time`) -> monotonic deadline
        self.lock = threading.Lock()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.2)
            with self.lock:  # an entry goes before its pid is reaped, so the group killed is always ours
                for pid in [p for p, d in self.deadlines.items() if time.monotonic() > d]:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    del self.deadlines[pid]

    def run(self, argv: list[str], stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = CALL_TIMEOUT) -> Proc:
        files = [tempfile.TemporaryFile(dir=self.tmp) for _ in range(3)]
        rss = tempfile.NamedTemporaryFile(dir=self.tmp)
        with rss, files[0] as inp, files[1] as out, files[2] as err:
            inp.write(stdin or b"")
            inp.seek(0)
            started = time.perf_counter()
            proc = subprocess.Popen([TIME, "-f", "%M", "-o", rss.name, *argv], stdin=inp, stdout=out, stderr=err, env=env, start_new_session=True)
            with self.lock:
                self.deadlines[proc.pid] = time.monotonic() + timeout
            try:
                status = self._reap(proc)
            finally:
                with self.lock:
                    self.deadlines.pop(proc.pid, None)
            wall = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            kb = (rss.read().decode(errors="replace").split() or ["0"])[-1]
            text = [f.read().decode(errors="replace") for f in (out, err)]
            return Proc(argv, os.waitstatus_to_exitcode(status), wall, int(kb) if kb.isdigit() else 0, *text)

    def _reap(self, proc: subprocess.Popen) -> int:
        try:
            return os.wait4(proc.pid, 0)[1]
        except BaseException:  # interrupted: let the plugin finish (a runtime would), then kill what is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


class CaseTimeout(Exception):
    """The case ran past its time limit; the message says where it was."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/cni.py",
        description="Benchmark CNI plugin chains side by side, driven as libcni drives them. Run as root.",
        epilog="Exit status: 0 every correctness check held, 1 one failed, 2 usage, 130 interrupted.",
    )
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), metavar="N,N,...", help="containers per case (default: %(default)s)")
    parser.add_argument(
        "--mappings", default="without,with", metavar="M,M", help="`without` and/or `with` one port mapping per container (default: %(default)s)"
    )
    parser.add_argument("--repeat", type=int, default=3, metavar="R", help="repetitions; the peers' order rotates each time (default: %(default)s)")
    parser.add_argument(
        "--parallel", type=int, default=50, metavar="P", help="the parallel case: P ADDs at once, then P DELs (default: %(default)s; 0: skip)"
    )
    parser.add_argument("--peers", default=",".join(C.PEERS), metavar="P,P", help="default: %(default)s")
    parser.add_argument(
        "--nsnet-bin",
        metavar="DIR",
        help="where the nsnet plugin is (`nsnet cni install --bin-dir DIR`); without DIR/nsnet the nsnet peer is skipped",
    )
    parser.add_argument(
        "--agent",
        action="store_true",
        help="run `nsnet agent` (this repository's) for the whole run: the installed plugin hands it every call, as it does on a host that runs one",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=5.0,
        metavar="MIN",
        help="per case and peer; a case that runs longer is stopped and reported as not finished, "
        "its later repetitions skipped (default: %(default)s)",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="FILE", help="markdown + raw JSON (default: bench/cni.md; `-`: print only)")
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: not a list of integers: {args.sizes!r}")
    args.mode_list = [m.strip() for m in args.mappings.split(",") if m.strip()]
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    if any(n < 1 or n > 1020 for n in args.size_list) or not 0 <= args.parallel <= 1020:
        parser.error("sizes and --parallel: 1 to 1020 (one bridge takes at most 1023 ports)")
    if set(args.mode_list) - set(MODES) or not args.mode_list or set(args.peer_list) - set(C.PEERS) or not args.peer_list:
        parser.error(f"--mappings: {', '.join(MODES)}; --peers: {', '.join(C.PEERS)}")
    if args.repeat < 1 or args.time_limit <= 0:
        parser.error("--repeat and --time-limit must be positive")
    return args


def reach_mapping(ns: str, address: str, host_port: int, timeout: float = 3.0) -> None:
    """TCP from the host to 127.0.0.1:HOST_PORT reaches a listener in NS on ADDRESS:CONTAINER_PORT; raises OSError."""
    with netkit.entered(ns):
        listener = socket.socket()
    with listener:
        listener.bind((address, C.CONTAINER_PORT))
        listener.listen(1)
        listener.settimeout(timeout)
        with socket.create_connection(("127.0.0.1", host_port), timeout=timeout) as client:
            conn, _ = listener.accept()
            with conn:
                client.sendall(b"nsnet-bench")
                conn.settimeout(timeout)
                if conn.recv(64) != b"nsnet-bench":
                    raise OSError("payload did not arrive")


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Case:
    """One peer's run of one case: its network, chain, cached results and measurements (the record)."""

    def __init__(self, bench: CniBench, peer: str, n: int | str, mapped: bool, rep: int):
        self.bench, self.mapped = bench, mapped
        size = bench.args.parallel if n == "parallel" else int(n)
        self.net = C.Net(bench.prefix, peer, size, bench.base, mapped)
        self.dir = os.path.join(bench.tmp, f"case{len(bench.records):03d}")
        os.makedirs(self.dir)
        self.conflist = self.net.conflist(self.dir)
        with open(os.path.join(self.dir, f"{self.net.name}.conflist"), "w") as f:
            json.dump(self.conflist, f, indent=2)
        self.containers = [self.net.container(i) for i in range(size)]
        self.chain = CniChain(self.conflist, bench.bins[peer], bench.spawner.run)
        self.results: dict[str, dict] = {}  # the cached ADD results
        self.veths: set[str] = set()  # the host ends the ADD results name
        self.record: dict[str, Any] = {"peer": peer, "n": n, "port_mappings": mapped, "repetition": rep, "status": "ok", "problems": []}
        self.before = self.snapshot()
        self.deadline = time.monotonic() + 60 * bench.args.time_limit

    def caps(self, i: int) -> dict | None:
        return {"portMappings": [C.port_mapping(self.bench.ports + i)]} if self.mapped else None

    def call(self, where: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One chain call, its processes limited to what is left of the case's time."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CaseTimeout(where)
        try:
            return fn(*args, timeout=min(CALL_TIMEOUT, left))
        except CniError:
            if time.monotonic() >= self.deadline:  # killed at the limit
                raise CaseTimeout(where) from None
            raise

    def each(self, verb: str, indices: range) -> tuple[float, list[str]]:
        """VERB for each container in turn (ADD: namespace first, DEL: namespace after, as a runtime does);
        returns the wall clock of all and the errors of CHECK and DEL (an ADD error ends the case)."""
        errors: list[str] = []
        latencies = self.record.setdefault("add_ms", [])
        started = time.perf_counter()
        for i in indices:
            cid, chain = self.containers[i], self.chain
            where = f"{verb}: {i}/{len(indices)} done"
            path = netkit.ns_path(cid)
            try:
                if verb == "ADD":
                    netkit.create_ns(cid)
                    t = time.perf_counter()
                    self.added(cid, self.call(where, chain.add, cid, path, IFNAME, self.caps(i)))
                    latencies.append(round(1000 * (time.perf_counter() - t), 2))
                elif verb == "CHECK":
                    self.call(where, chain.check, cid, path, IFNAME, self.results.get(cid), self.caps(i))
                else:
                    self.call(where, chain.delete, cid, path, IFNAME, self.results.pop(cid, None), self.caps(i))
            except CniError as err:
                if verb == "ADD":
                    raise
                errors.append(str(err).replace(cid, "<id>"))
            if verb == "DEL":
                netkit.remove_ns(cid)
        return time.perf_counter() - started, errors

    def added(self, cid: str, result: dict) -> None:
        self.results[cid] = result
        if veth := C.host_veth(result, self.net.bridge):
            self.veths.add(veth)

    def sequential(self) -> None:
        n, rec = len(self.containers), self.record
        rec["build"], _ = self.each("ADD", range(n))
        k = max(1, math.ceil(n / 10))
        first, last = median(rec["add_ms"][:k]), median(rec["add_ms"][-k:])
        ratio = last / first if first and last is not None else None
        rec.update(add_first_ms=first, add_last_ms=last, add_ratio=ratio, add_median_ms=median(rec["add_ms"]))
        self.probe()
        rec["check"], errors = self.each("CHECK", range(n))
        rec["check_failures"], rec["check_errors"] = len(errors), sorted(set(errors))[:3]
        rec["teardown"], errors = self.each("DEL", range(n))
        rec["del_failures"], rec["del_errors"] = len(errors), sorted(set(errors))[:3]
        self.leftovers()

    def probe(self) -> None:
        """Untimed: distinct addresses; from the first and last container TCP to the gateway, and (with mappings) from
        the host to 127.0.0.1:hostPort reaching it."""
        addresses = {C.first_address(r)[0] for r in self.results.values()} - {None}
        self.record["distinct_addresses"] = len(addresses)
        if len(addresses) != len(self.containers):
            self.problem(f"{len(addresses)} distinct addresses for {len(self.containers)} containers")
        for i in sorted({0, len(self.containers) - 1}):
            cid = self.containers[i]
            address, gateway = C.first_address(self.results[cid])
            try:
                netkit.tcp_connect(cid, None, gateway or str(C.gateway_of(self.net)))
                if self.mapped and address:
                    reach_mapping(cid, address, self.bench.ports + i)
            except OSError as err:
                self.problem(f"{cid}: TCP to its gateway{' or through its port mapping' if self.mapped else ''} failed: {err}")

    def parallel(self) -> None:
        """P namespaces made first (untimed), then P ADDs started at once, then P DELs at once."""
        p, rec = len(self.containers), self.record
        for cid in self.containers:
            netkit.create_ns(cid)
        for verb in ("ADD", "DEL"):
            barrier = threading.Barrier(p)
            with ThreadPoolExecutor(p) as pool:
                done = list(pool.map(lambda i, verb=verb, barrier=barrier: self.at_once(verb, i, barrier), range(p)))
            errors = [e for _, _, e in done if e]
            if "time limit" in errors:
                raise CaseTimeout(f"{p} parallel {verb}s: {errors.count('time limit')} still running")
            key = verb.lower()
            rec[f"parallel_{key}"] = max(e for _, e, _ in done) - min(s for s, _, _ in done)
            rec[f"parallel_{key}_failures"], rec[f"parallel_{key}_errors"] = len(errors), sorted(set(errors))[:3]
            if verb == "ADD":
                rec["distinct_addresses"] = len({C.first_address(r)[0] for r in self.results.values()} - {None})
                if rec["distinct_addresses"] != p - len(errors):  # a failed ADD is in the table; a shared address is wrong
                    self.problem(f"{p - len(errors)} parallel ADDs that succeeded gave {rec['distinct_addresses']} distinct addresses")
        for cid in self.containers:
            netkit.remove_ns(cid)
        self.leftovers()

    def at_once(self, verb: str, i: int, barrier: threading.Barrier) -> tuple[float, float, str | None]:
        """Container I's ADD or DEL once all P threads are ready: (start, end, error)."""
        cid, chain = self.containers[i], self.chain
        barrier.wait()
        started = time.perf_counter()
        try:
            if verb == "ADD":
                self.added(cid, self.call(verb, chain.add, cid, netkit.ns_path(cid), IFNAME, self.caps(i)))
            else:
                self.call(verb, chain.delete, cid, netkit.ns_path(cid), IFNAME, self.results.get(cid), self.caps(i))
            return started, time.perf_counter(), None
        except CniError as err:
            return started, time.perf_counter(), str(err).replace(cid, "<id>")
        except CaseTimeout:
            return started, time.perf_counter(), "time limit"

    def leftovers(self) -> None:
        """Untimed: wait until the host ends of the veths are gone (the kernel removes them after the namespace), then
        compare the host with the snapshot taken before the case."""
        started, deadline = time.perf_counter(), time.monotonic() + 60
        while (self.veths & netkit.host_links() or self.ports_left()) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.record["settle"] = time.perf_counter() - started
        found = C.appeared(self.before, self.snapshot(), self.net, self.containers)
        self.record["leftovers"], self.record["leftovers_summary"] = found.as_json(), found.summary()

    def ports_left(self) -> bool:
        return self.net.bridge in netkit.host_links() and bool(netkit.ip_json("link", "show", "master", self.net.bridge))

    def snapshot(self) -> C.HostState:
        return C.snapshot(self.net.state_dirs(self.dir), self.bench.interfaces)

    def put_back(self) -> None:
        """Remove what the case left, by exact name, set sysctls back, and check the host is as before."""
        found = C.appeared(self.before, now := self.snapshot(), self.net, self.containers)
        for problem in C.restore(self.before, now, found):
            self.problem("putting the host back: " + problem)
        deadline = time.monotonic() + 60
        while set(found.links) & netkit.host_links() and time.monotonic() < deadline:
            time.sleep(0.05)
        still = C.appeared(self.before, self.snapshot(), self.net, self.containers)
        if not still.empty():
            self.problem(f"the host is not as before the case: {still.summary()}")
        if still.others:
            log(f"  changed meanwhile by something else (left alone): {', '.join(still.others[:5])}")
        rss: dict[str, int] = {}
        for command, proc in self.chain.calls:
            key = f"{os.path.basename(proc.argv[0])} {command}"
            rss[key] = max(rss.get(key, 0), proc.maxrss_kb)
        self.record["peak_rss_kb"] = rss

    def problem(self, message: str) -> None:
        self.record["problems"].append(message)
        self.bench.fail(f"{self.label()}: {message}")

    def label(self) -> str:
        r = self.record
        return f"{r['peer']} N={r['n']} {'with' if r['port_mappings'] else 'without'} port mappings, repetition {r['repetition'] + 1}"


class CniBench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.prefix = "c" + secrets.token_hex(2)
        self.tmp = tempfile.mkdtemp(prefix=f"nsnet-cni-{self.prefix}-")
        self.spawner = Spawner(self.tmp)
        self.base = pick_base(random.Random())
        self.ports = C.free_port_base(max([*args.size_list, args.parallel]))
        self.interfaces = {name for name in netkit.host_links() if not name.startswith(self.prefix)}
        self.bins = {"reference": [C.CNI_DIR], "nsnet": [os.path.abspath(args.nsnet_bin or "."), C.CNI_DIR]}
        self.skipped: dict[str, str] = {}
        if "nsnet" in args.peer_list:
            plugin = os.path.join(self.bins["nsnet"][0], "nsnet")
            if not args.nsnet_bin:
                self.skipped["nsnet"] = "no `--nsnet-bin DIR` given"
            elif not os.access(plugin, os.X_OK):
                self.skipped["nsnet"] = f"{plugin} does not exist (install the plugin with `nsnet cni install --bin-dir {args.nsnet_bin}`)"
        self.records: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.agent = start_nsnet_agent(self.tmp) if args.agent and "nsnet" not in self.skipped else None
        self.current: Case | None = None
        self.cleaned = False
        self.started = time.time()
        self.cpu_start = (cpu_busy_seconds(), own_cpu_seconds())
        with open("/proc/loadavg") as f:
            self.loadavg = f.read().split()[:3]

    def fail(self, message: str) -> None:
        log("FAILED " + message)
        self.failures.append(message)

    def run(self) -> None:
        log(f"run prefix {self.prefix}, subnets from {self.base}, host ports from {self.ports}, temp dir {self.tmp}")
        for peer, why in self.skipped.items():
            log(f"{peer} peer skipped: {why}")
        peers = [p for p in self.args.peer_list if p not in self.skipped]
        if not peers:
            return
        cases = [(n, MODES[m]) for n in self.args.size_list for m in self.args.mode_list]
        cases += [("parallel", MODES[m]) for m in self.args.mode_list] if self.args.parallel else []
        gave_up: set[tuple] = set()
        for n, mapped in cases:
            for rep in range(self.args.repeat):
                for peer in peers[rep % len(peers) :] + peers[: rep % len(peers)]:
                    if (peer, n, mapped) not in gave_up:
                        record = self.case(peer, n, mapped, rep)
                        if record["status"].startswith("did not finish"):
                            gave_up.add((peer, n, mapped))

    def case(self, peer: str, n: int | str, mapped: bool, rep: int) -> dict[str, Any]:
        case = self.current = Case(self, peer, n, mapped, rep)
        self.records.append(case.record)
        log(f"{case.label()}")
        started = time.perf_counter()
        try:
            case.parallel() if n == "parallel" else case.sequential()
        except CaseTimeout as err:
            case.record["status"] = f"did not finish in {self.args.time_limit:g} min ({err})"
        except BenchError as err:
            case.record["status"] = "failed"
            case.problem(str(err))
        log(f"  {case.record['status']} in {time.perf_counter() - started:.1f} s; leftovers: {case.record.get('leftovers_summary', '–')}")
        case.put_back()
        self.current = None
        return case.record

    def cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if self.current is not None:
            try:
                self.current.put_back()
            except Exception as err:  # noqa: BLE001 - still remove the temp dir
                log(f"cleanup: {err}")
        if self.agent is not None:
            stop_agent(self.agent)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Anything with the run's prefix still on the host (read-only)."""
        left = [f"namespace {n}" for n in netkit.list_ns() if n.startswith(self.prefix)]
        left += [f"link {n}" for n in netkit.host_links() if n.startswith(self.prefix)]
        for d in ("/run/nsnet", "/run/nsnet/cni"):
            left += [f"{d}/{n}" for n in (os.listdir(d) if os.path.isdir(d) else []) if n.startswith(self.prefix)]
        return left

    # results

    def markdown(self, interrupted: bool) -> str:
        busy, ours = cpu_busy_seconds() - self.cpu_start[0], own_cpu_seconds() - self.cpu_start[1]
        elapsed = time.time() - self.started
        plugins = out(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"]) or "?"
        lines = [
            "# CNI plugins side by side (bench/cni.py)",
            "",
            f"Machine: {out(['nproc'])} cores ({cpu_model()}), kernel {platform.release()}, {mem_gb():.0f} GB RAM, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {out(['iptables', '-V'])}, nft {out(['nft', '-v'])}.",
            f"Peers: reference = containernetworking-plugins {plugins} (bridge + host-local + portmap, {C.CNI_DIR}); "
            f"nsnet = {self.skipped.get('nsnet') and 'skipped: ' + self.skipped['nsnet'] or os.path.join(self.bins['nsnet'][0], 'nsnet')}"
            + (", with `nsnet agent` running (the plugin hands it every call)." if self.agent else ", no `nsnet agent` running (each call imports the engine)."),
            f"Command: `python3 bench/cni.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`; repetitions: {self.args.repeat}, "
            f"time limit {self.args.time_limit:g} min per case; every number is the median of the repetitions; run time {elapsed / 60:.1f} min.",
            f"Background: load average {' '.join(self.loadavg)} at the start; the machine was busy {busy:.0f} CPU-s of "
            f"{elapsed * (os.cpu_count() or 1):.0f}, {ours:.0f} of them this benchmark's processes, {max(0.0, busy - ours):.0f} other work.",
            "",
        ]
        if interrupted:
            lines += ["**Interrupted: partial results.**", ""]
        if self.failures:
            lines += ["**Correctness checks failed:**", ""] + [f"- {f}" for f in self.failures[:40]] + [""]
        lines += self.table("Per container, one after another", list(self.args.size_list), SEQUENTIAL)
        if self.args.parallel:
            p = self.args.parallel
            columns = [(t.format(p=p), k, f) for t, k, f in PARALLEL]
            lines += self.table(f"{p} at once, from an empty network (N = parallel)", ["parallel"], columns)
        lines += self.targets()
        head = json.dumps({"prefix": self.prefix, "subnets_from": str(self.base), "host_ports_from": self.ports})[:-1]
        raw = head + ', "records": [\n' + ",\n".join(json.dumps(r) for r in self.records) + "\n]}"  # one record a line
        summary = "Raw results (JSON, one record a line; times in seconds, ADD latencies in ms, RSS in KiB)"
        lines += [f"<details><summary>{summary}</summary>", "", "```json", raw, "```", "", "</details>", ""]
        return "\n".join(lines)

    def group(self, n: int | str, mapped: bool, peer: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["n"] == n and r["port_mappings"] == mapped and r["peer"] == peer]

    def table(self, title: str, sizes: list[int | str], columns: list[tuple[str, str, Callable[[float], str]]]) -> list[str]:
        """One row per size, mode and peer: the medians of COLUMNS (title, record key, format), the leftovers, the peak RSS."""
        heads = ["N", "port mapping", "peer", *(c[0] for c in columns), "leftovers after teardown", "peak RSS per call"]
        lines = [f"## {title}", "", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for n in sizes:
            for mode in self.args.mode_list:
                for peer in self.args.peer_list:
                    rs = self.group(n, MODES[mode], peer)
                    cells = [self.cell(rs, key, fmt) for _, key, fmt in columns] + [rs[0].get("leftovers_summary", "–") if rs else "–", self.rss(rs)]
                    cells[0] = (self.status(rs) + cells[0]) if rs else f"skipped: {self.skipped.get(peer, 'not run')}"
                    lines.append(f"| {n} | {mode} | {peer} | " + " | ".join(cells) + " |")
        errors = sorted({f"{r['peer']}: {e}" for r in self.records if r["n"] in sizes for k in ERRORS for e in r.get(k, [])})
        return lines + [""] + (["Errors seen (one of each):", ""] + [f"- {e[:400]}" for e in errors[:12]] + [""] if errors else [])

    def cell(self, records: list[dict], key: str, fmt: Callable[[float], str]) -> str:
        values = [r[key] for r in records if r.get(key) is not None]
        value = median(values)
        if value is None:
            return "–"
        return fmt(value) + (f" (max {fmt(max(values))})" if key.endswith("failures") and max(values) != value else "")  # a rare race shows

    def status(self, records: list[dict]) -> str:
        odd = sorted({r["status"] for r in records if r["status"] != "ok"})
        return "; ".join(odd) + " " if odd else ""

    def rss(self, records: list[dict]) -> str:
        peak: dict[str, int] = {}
        for r in records:
            for key, kb in r.get("peak_rss_kb", {}).items():
                plugin = key.split()[0]
                peak[plugin] = max(peak.get(plugin, 0), kb)
        return ", ".join(f"{p} {kb / 1024:.0f} MB" for p, kb in sorted(peak.items())) or "–"

    def targets(self) -> list[str]:
        """Issue 15's targets for nsnet, where measured."""
        if not any(r["peer"] == "nsnet" for r in self.records):
            return ["nsnet was not measured: issue 15's targets are not evaluated.", ""]

        def m(n: int, mapped: bool, peer: str, key: str) -> float | None:
            return median([r[key] for r in self.group(n, mapped, peer) if r.get(key) is not None])

        def verdict(ok: bool) -> str:
            return " **met**" if ok else " **missed**"

        lines = [
            "## Issue 15's targets (nsnet)",
            "",
            "| case | ADD at N = 10 (<= 50 ms) | last / first 10% (<= 1.3) | build at 1000 with mappings (<= 20 s) "
            "| CHECK all at 1000 (< 5 s, 0 failures) | teardown / reference (<= 0.5x) | leftovers (none) |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in self.args.size_list:
            for mode in self.args.mode_list:
                mapped = MODES[mode]
                add, ratio, build = m(n, mapped, "nsnet", "add_median_ms"), m(n, mapped, "nsnet", "add_ratio"), m(n, mapped, "nsnet", "build")
                check, fails = m(n, mapped, "nsnet", "check"), m(n, mapped, "nsnet", "check_failures")
                mine, ref = m(n, mapped, "nsnet", "teardown"), m(n, mapped, "reference", "teardown")
                left = {str(r["leftovers_summary"]) for r in self.group(n, mapped, "nsnet") if "leftovers_summary" in r}
                cells = [
                    f"{add:.1f} ms{verdict(add <= 50)}" if add is not None and n == 10 else "–",
                    f"{ratio:.2f}{verdict(ratio <= 1.3)}" if ratio is not None else "–",
                    f"{seconds(build)}{verdict(build <= 20)}" if build is not None and n == 1000 and mapped else "–",
                    f"{seconds(check)}, {fails:.0f}{verdict(check < 5 and fails == 0)}"
                    if check is not None and fails is not None and n == 1000
                    else "–",
                    f"{mine / ref:.2f}x{verdict(mine <= 0.5 * ref)}" if mine is not None and ref else "–",
                    ("none **met**" if left == {"none"} else "; ".join(sorted(left)) + " **missed**") if left else "–",
                ]
                lines.append(f"| N = {n}, {mode} port mappings | " + " | ".join(cells) + " |")
        return lines + [""]


AGENT_SOCKET = "/run/nsnet/agent.sock"  # where the installed plugin looks (a runtime passes it no NSNET_AGENT_SOCKET)


def start_nsnet_agent(tmp: str) -> subprocess.Popen:
    """This repository's `nsnet agent` on the default socket, where the installed plugin finds it."""
    if os.path.exists(AGENT_SOCKET):
        raise SystemExit(f"bench/cni.py: {AGENT_SOCKET} exists: another nsnet agent may be running; stop it or run without --agent")
    env = {k: v for k, v in os.environ.items() if k not in ("NSNET_AGENT", "NSNET_AGENT_SOCKET")}
    agent = start_agent([sys.executable, "-m", "netplan_lite"], env, AGENT_SOCKET, os.path.join(tmp, "agent.log"))
    log(f"nsnet agent serving {AGENT_SOCKET} (pid {agent.pid})")
    return agent


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if cannot_start("bench/cni.py", "it creates namespaces and runs CNI plugins", ("ip", "nft")):
        return 2
    if "reference" in args.peer_list:
        ensure_cni()
    if not os.access(TIME, os.X_OK):
        log("installing Debian's `time` (apt-get): the plugins' peak RSS is read through it")
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "time"], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), check=True
        )
    return run_bench(CniBench(args), args.out, lambda _old, text: text, "the CNI results")


if __name__ == "__main__":
    sys.exit(main())
