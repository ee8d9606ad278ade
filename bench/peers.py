"""The four ways of building the lab, each timed the same way, and the checks.

Every timed step is wall clock from just before the process is started to
just after it is reaped (os.wait4, which also gives that process's peak RSS),
so process start is always included. The CNI peer is the runtime itself:
the benchmark process creates the namespace in-process (as containerd does)
and executes the plugin binaries, so its time is the sum of that work.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import lab as L
import netkit

HERE = os.path.dirname(os.path.abspath(__file__))
FLOOR = os.path.join(HERE, "floor.py")


class BenchError(Exception):
    """A step failed or a correctness check did not hold."""


@dataclass
class Proc:
    argv: list[str]
    rc: int
    wall: float
    maxrss_kb: int
    out: str
    err: str

    def describe(self) -> str:
        tail = (self.err.strip() or self.out.strip()).splitlines()[-3:]
        return f"`{' '.join(self.argv)}` exited {self.rc}: {' | '.join(tail)}"


class Runner:
    """Runs one process at a time, timed; a watchdog kills a process that overruns its deadline."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self._current: tuple[subprocess.Popen, float] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                current = self._current
                if current and current[0].returncode is None and time.monotonic() > current[1]:
                    current[0].kill()

    def run(self, argv: list[str], stdin: bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = 1800.0) -> Proc:
        with tempfile.TemporaryFile(dir=self.tmp) as out, tempfile.TemporaryFile(dir=self.tmp) as err, \
                tempfile.TemporaryFile(dir=self.tmp) as inp:
            if stdin is not None:
                inp.write(stdin)
                inp.seek(0)
            started = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=inp if stdin is not None else subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=env)
            with self._lock:
                self._current = (proc, time.monotonic() + timeout)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                _stop(proc)
                raise
            finally:
                with self._lock:
                    self._current = None
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            return Proc(argv, proc.returncode, wall, usage.ru_maxrss,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def _stop(proc: subprocess.Popen) -> None:
    """Interrupted while a child runs: let it finish its own way (nsnet rolls back on SIGTERM), then kill."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def require_ok(proc: Proc) -> Proc:
    if proc.rc != 0:
        raise BenchError(proc.describe())
    return proc


def start_agent(nsnet: list[str], env: dict[str, str], sock: str, log_path: str, timeout: float = 60.0) -> subprocess.Popen:
    """`nsnet agent` serving on SOCK (env has NSNET_AGENT_SOCKET=SOCK), returned once it answers there.
    Stop it with stop_agent (by its Popen: this process started it)."""
    log = open(log_path, "ab")
    agent = subprocess.Popen([*nsnet, "agent"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + timeout
    while agent.poll() is None and time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(sock) == 0:
                return agent
        time.sleep(0.05)
    _stop(agent)
    raise BenchError(f"`nsnet agent` did not start (see {log_path})")


stop_agent = _stop


# peers


class Peer:
    """build / noop / add one / remove it / teardown; each returns {case: seconds}."""

    name = ""

    def __init__(self, lab: L.Lab, runner: Runner, workdir: str):
        self.lab = lab
        self.runner = runner
        self.dir = os.path.join(workdir, lab.tag)
        os.makedirs(self.dir, exist_ok=True)
        self.extra = lab.n  # index of the namespace the add/remove cases use

    def build(self) -> dict[str, float]:
        raise NotImplementedError

    def noop(self) -> dict[str, float]:
        return {}

    def add(self) -> dict[str, float]:
        raise NotImplementedError

    def remove(self) -> dict[str, float]:
        raise NotImplementedError

    def teardown(self) -> dict[str, float]:
        raise NotImplementedError

    def host_veths(self) -> set[str]:
        """Exact names of the host ends of this lab's veths (for the settle wait and cleanup)."""
        return {self.lab.host_veth(i) for i in self.lab.indices(extra=True)}

    def host_veth_of(self, i: int) -> str | None:
        return self.lab.host_veth(i)


class NsnetPeer(Peer):
    name = "nsnet"

    def __init__(self, lab: L.Lab, runner: Runner, workdir: str, nsnet: list[str], env: dict[str, str] | None = None):
        super().__init__(lab, runner, workdir)
        self.nsnet = nsnet
        self.env = {**(env or os.environ), "NSNET_AGENT": "off"}  # an agent of the host's is not measured
        self.agent_socket = os.path.join(self.dir, "agent.sock")
        self.agent_env = {**{k: v for k, v in self.env.items() if k != "NSNET_AGENT"},
                          "NSNET_AGENT_SOCKET": self.agent_socket}
        self.file = os.path.join(self.dir, "topology.yaml")
        self.file_plus = os.path.join(self.dir, "topology-plus-one.yaml")
        _write(self.file, L.nsnet_yaml(lab))
        _write(self.file_plus, L.nsnet_yaml(lab, extra=True))
        self.plan_rss_kb: int | None = None
        self.apply_rss_kb: int | None = None
        self.can_target = True  # False: this nsnet has no `apply --target` (an older --rev); that case is skipped

    def cmd(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        return self.runner.run([*self.nsnet, *args], env=env or self.env)

    def plan_is_empty(self, file: str, env: dict[str, str] | None = None) -> Proc:
        proc = self.cmd("plan", "--detailed-exitcode", file, env=env)
        if proc.rc == 2:
            raise BenchError(f"`nsnet plan` is not empty after nsnet's apply: {proc.out.strip().splitlines()[-1:]}")
        return require_ok(proc)

    def build(self) -> dict[str, float]:
        proc = require_ok(self.cmd("apply", self.file))
        self.apply_rss_kb = proc.maxrss_kb
        return {"build": proc.wall}

    def noop(self) -> dict[str, float]:
        proc = self.plan_is_empty(self.file)
        self.plan_rss_kb = proc.maxrss_kb
        floor = require_ok(self.runner.run([sys.executable, "-I", "-S", FLOOR]))
        counts = json.loads(floor.out)
        if counts["namespaces"] < self.lab.n:
            raise BenchError(f"the read floor saw {counts['namespaces']} namespaces, expected at least {self.lab.n}")
        load = require_ok(self.cmd("validate", self.file))  # start, imports and loading this lab's file
        return {"noop": proc.wall, "floor": floor.wall, "floor_inproc": counts["seconds"],
                "foreign_ns": counts["namespaces"] - self.lab.n, "validate_lab": load.wall}

    def _change(self, file: str, prefix: str, env: dict[str, str] | None = None) -> dict[str, float]:
        plan = require_ok(self.cmd("plan", file, env=env))
        apply = require_ok(self.cmd("apply", file, env=env))
        self.plan_is_empty(file)  # without the agent: its cache must not hide anything
        return {prefix: plan.wall + apply.wall, prefix + "_plan": plan.wall, prefix + "_apply": apply.wall}

    def add(self) -> dict[str, float]:
        return self._change(self.file_plus, "add")

    def remove(self) -> dict[str, float]:
        return self._change(self.file, "remove")

    @property
    def address_record(self) -> str:
        """Where nsnet records the addresses of a converged run (netplan_lite/engine/assignments.py)."""
        return os.path.join("/run/nsnet", self.lab.topology, "addresses.json")

    def add_target(self) -> tuple[dict[str, float], list[str]]:
        """One command, no agent: `nsnet apply --target NEW FILE+1`; then `nsnet plan FILE+1` (all of it) must be empty.

        Also returns what went wrong that is not a failed command (recorded, the round goes on): the
        address record the targeted plan allocates around must be there before, and no namespace of
        the lab and no host veth end of one may have been replaced (a targeted apply reads and changes
        only its target and the host objects it needs)."""
        new = self.lab.ns(self.extra)
        problems = self._record_problems()
        before = self._identities()
        apply = require_ok(self.cmd("apply", "--target", new, self.file_plus))
        after = self._identities()
        changed = sorted(name for name, identity in before.items() if after.get(name) != identity)
        if changed:
            problems.append(f"`nsnet apply --target {new}` replaced or removed {len(changed)} objects of other namespaces: {changed[:5]}")
        self.plan_is_empty(self.file_plus)  # the whole topology, without --target
        return {"target_add": apply.wall}, problems

    def remove_after_target(self) -> dict[str, float]:
        """The namespace added with --target removed as before (plan + apply of FILE), recorded on its own."""
        return self._change(self.file, "target_remove")

    def _record_problems(self) -> list[str]:
        try:
            with open(self.address_record) as f:
                recorded = json.load(f)
        except (OSError, ValueError) as err:
            return [f"no address record before `nsnet apply --target` ({err}): it reads every namespace then, not only its target"]
        namespaces = {str(key).split("/", 1)[0] for key in recorded} if isinstance(recorded, dict) else set()
        missing = [self.lab.ns(i) for i in self.lab.indices() if self.lab.ns(i) not in namespaces]
        wrong = [f"{len(missing)} namespaces missing ({', '.join(missing[:3])})"] if missing else []
        wrong += [f"it still has the removed {self.lab.ns(self.extra)}"] if self.lab.ns(self.extra) in namespaces else []
        return [f"the address record {self.address_record} before `nsnet apply --target` is not the lab's: " + "; ".join(wrong)] if wrong else []

    def _identities(self) -> dict[str, tuple[int, int]]:
        """Each namespace of the lab (its nsfs inode) and each host veth end (its ifindex), read from /run/netns and sysfs."""
        found: dict[str, tuple[int, int]] = {}
        for i in self.lab.indices():
            ns, veth = self.lab.ns(i), L.nsnet_host_veth(self.lab.topology, self.lab.ns(i))
            try:
                st = os.stat(netkit.ns_path(ns))
                found["namespace " + ns] = (st.st_dev, st.st_ino)
                with open(f"/sys/class/net/{veth}/ifindex") as f:
                    found["link " + veth] = (0, int(f.read()))
            except (OSError, ValueError):
                pass
        return found

    def teardown(self) -> dict[str, float]:
        return {"teardown": require_ok(self.cmd("destroy", self.file)).wall}

    def start_agent(self) -> subprocess.Popen:
        """`nsnet agent` on this peer's own socket (not timed), once it answers."""
        return start_agent(self.nsnet, self.agent_env, self.agent_socket, os.path.join(self.dir, "agent.log"))

    def with_agent(self, check: Callable[[str, bool], None]) -> dict[str, float]:
        """no-op, add one and remove it again while `nsnet agent` runs; check(step, extra) after each change."""
        agent = self.start_agent()
        try:
            noop = self.plan_is_empty(self.file, env=self.agent_env).wall
            added = self._change(self.file_plus, "agent_add", env=self.agent_env)
            check("checks after adding one with the agent", True)
            removed = self._change(self.file, "agent_remove", env=self.agent_env)
            check("checks after removing it with the agent", False)
        finally:
            _stop(agent)
        if agent.returncode != 0:
            raise BenchError(f"`nsnet agent` exited {agent.returncode}")
        return {"agent_noop": noop, **added, **removed}

    def profile_plan(self, python: list[str], top: int = 35) -> str:
        """`python -m cProfile -m netplan_lite plan FILE` (not timed): top entries by cumulative, then by own time."""
        out = os.path.join(self.dir, "plan.prof")
        require_ok(self.runner.run([*python, "-m", "cProfile", "-o", out, "-m", "netplan_lite", "plan", self.file], env=self.env))
        import io
        import pstats

        parts = []
        for order, count in (("cumulative", top), ("tottime", 15)):
            text = io.StringIO()
            pstats.Stats(out, stream=text).strip_dirs().sort_stats(order).print_stats(count)
            lines = text.getvalue().splitlines()
            start = next((i for i, line in enumerate(lines) if "function calls" in line), 0)
            parts.append("\n".join(line.rstrip() for line in lines[start:] if line.strip()))
        return "\n\n".join(parts)

    def host_veths(self) -> set[str]:
        return {L.nsnet_host_veth(self.lab.topology, self.lab.ns(i)) for i in self.lab.indices(extra=True)}

    def host_veth_of(self, i: int) -> str | None:
        return L.nsnet_host_veth(self.lab.topology, self.lab.ns(i))


class ShellPeer(Peer):
    name = "shell"

    def __init__(self, lab: L.Lab, runner: Runner, workdir: str):
        super().__init__(lab, runner, workdir)
        self.scripts = {}
        for case, text in (("build", L.shell_create(lab)), ("add", L.shell_add(lab, self.extra)),
                           ("remove", L.shell_remove(lab, self.extra)), ("teardown", L.shell_destroy(lab))):
            self.scripts[case] = path = os.path.join(self.dir, f"{case}.sh")
            _write(path, text)

    def _run(self, case: str) -> dict[str, float]:
        return {case: require_ok(self.runner.run(["bash", self.scripts[case]])).wall}

    def build(self) -> dict[str, float]:
        return self._run("build")

    def add(self) -> dict[str, float]:
        return self._run("add")

    def remove(self) -> dict[str, float]:
        return self._run("remove")

    def teardown(self) -> dict[str, float]:
        return self._run("teardown")


class BatchPeer(ShellPeer):
    name = "batch"

    def __init__(self, lab: L.Lab, runner: Runner, workdir: str):
        Peer.__init__(self, lab, runner, workdir)
        everything = list(lab.indices())
        self.scripts = {
            "build": L.write_batch(lab, self.dir, "build", everything, bridges=True),
            "add": L.write_batch(lab, self.dir, "add", [self.extra], bridges=False),
            "remove": L.write_batch_delete(lab, self.dir, "remove", [self.extra], bridges=False),
            "teardown": L.write_batch_delete(lab, self.dir, "teardown", everything, bridges=True),
        }


class CniError(BenchError):
    """A plugin of a chain exited non-zero (its CNI error JSON is in the message)."""


class CniChain:
    """One network configuration list, driven as libcni drives it (AddNetworkList, CheckNetworkList, DelNetworkList).

    Each plugin gets its list entry plus the list's `name` and `cniVersion`, `runtimeConfig` with the capability
    arguments it declares in `capabilities`, and `prevResult`: on ADD the previous plugin's result, in list order; on
    CHECK (list order) and DEL (reverse order) the chain's cached ADD result. The environment: CNI_COMMAND,
    CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS="", CNI_PATH (the bin dirs, searched in order) and PATH.
    RUN executes one process (Runner.run: timed, reaped with os.wait4, which gives its peak RSS); `calls` keeps them all.
    """

    def __init__(self, conflist: dict[str, Any], bin_dirs: list[str], run: Callable[..., Proc]):
        self.conflist = conflist
        self.bin_dirs = bin_dirs
        self.run = run
        self.calls: list[tuple[str, Proc]] = []  # (CNI_COMMAND, execution)

    def config(self, plugin: dict[str, Any], prev: dict | None, capability_args: dict[str, Any] | None) -> bytes:
        conf = {**plugin, "name": self.conflist["name"], "cniVersion": self.conflist["cniVersion"]}
        if prev:
            conf["prevResult"] = prev
        wanted = {k: v for k, v in (capability_args or {}).items() if plugin.get("capabilities", {}).get(k)}
        if wanted:
            conf["runtimeConfig"] = wanted
        return json.dumps(conf).encode()

    def binary(self, plugin_type: str) -> str:
        for d in self.bin_dirs:
            if os.access(path := os.path.join(d, plugin_type), os.X_OK):
                return path
        raise BenchError(f"CNI plugin {plugin_type!r} not found in {':'.join(self.bin_dirs)}")

    def _each(self, command: str, container: str, netns: str, ifname: str, prev: dict | None,
              capability_args: dict[str, Any] | None, timeout: float) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": "", "CNI_PATH": ":".join(self.bin_dirs)}
        plugins = self.conflist["plugins"]
        for plugin in reversed(plugins) if command == "DEL" else plugins:
            proc = self.run([self.binary(plugin["type"])], stdin=self.config(plugin, prev, capability_args), env=env, timeout=timeout)
            self.calls.append((command, proc))
            if proc.rc != 0:
                raise CniError(f"CNI {plugin['type']} {command} {container}: {proc.out.strip() or proc.err.strip() or f'exit {proc.rc}'}")
            if command == "ADD":
                prev = json.loads(proc.out) if proc.out.strip() else prev
        return prev or {}

    def add(self, container: str, netns: str, ifname: str, capability_args: dict | None = None, timeout: float = 120.0) -> dict:
        """The chain's result: cache it, CHECK and DEL take it."""
        return self._each("ADD", container, netns, ifname, None, capability_args, timeout)

    def check(self, container: str, netns: str, ifname: str, cached: dict | None, capability_args: dict | None = None,
              timeout: float = 120.0) -> None:
        self._each("CHECK", container, netns, ifname, cached, capability_args, timeout)

    def delete(self, container: str, netns: str, ifname: str, cached: dict | None, capability_args: dict | None = None,
               timeout: float = 120.0) -> None:
        self._each("DEL", container, netns, ifname, cached, capability_args, timeout)


class CniPeer(Peer):
    """Acts as the container runtime: namespace in-process, then the plugins, one namespace at a time."""

    name = "cni"

    def __init__(self, lab: L.Lab, runner: Runner, workdir: str):
        super().__init__(lab, runner, workdir)
        data_dir = os.path.join(self.dir, "ipam")
        self.networks = [L.cni_network(lab, k, data_dir) for k in range(lab.bridges)]
        for k, net in enumerate(self.networks):
            _write(os.path.join(self.dir, f"{k}-{net['name']}.conflist"), json.dumps(net, indent=2) + "\n")
        self.chains = [CniChain(net, [L.CNI_DIR], runner.run) for net in self.networks]
        self.loopback = CniChain(L.LOOPBACK_NETWORK, [L.CNI_DIR], runner.run)
        self.results: dict[str, tuple[dict, dict]] = {}  # namespace -> (loopback result, bridge result)
        self.veths: dict[str, str] = {}  # namespace -> host veth the bridge plugin named
        self.on_veth: Callable[[str], None] = lambda name: None

    def _add(self, i: int) -> None:
        ns, chain = self.lab.ns(i), self.chains[self.lab.bridge_of(i)]
        netkit.create_ns(ns)
        lo = self.loopback.add(ns, netkit.ns_path(ns), "lo")
        br = chain.add(ns, netkit.ns_path(ns), "eth0")
        self.results[ns] = (lo, br)
        for iface in br.get("interfaces", []):
            if "sandbox" not in iface and iface.get("name") != self.lab.bridge(self.lab.bridge_of(i)):
                self.veths[ns] = iface["name"]
                self.on_veth(iface["name"])

    def _check(self, i: int) -> None:
        ns, chain = self.lab.ns(i), self.chains[self.lab.bridge_of(i)]
        lo, br = self.results[ns]
        self.loopback.check(ns, netkit.ns_path(ns), "lo", lo)
        chain.check(ns, netkit.ns_path(ns), "eth0", br)

    def _del(self, i: int) -> None:
        """DEL in reverse order with the cached results, as libcni does, then delete the namespace."""
        ns, chain = self.lab.ns(i), self.chains[self.lab.bridge_of(i)]
        lo, br = self.results.pop(ns, ({}, {}))
        chain.delete(ns, netkit.ns_path(ns), "eth0", br or None)
        self.loopback.delete(ns, netkit.ns_path(ns), "lo", lo or None)
        netkit.remove_ns(ns)

    def _timed(self, case: str, body: Callable[[], None]) -> dict[str, float]:
        started = time.perf_counter()
        body()
        return {case: time.perf_counter() - started}

    def build(self) -> dict[str, float]:
        return self._timed("build", lambda: [self._add(i) for i in self.lab.indices()])

    def noop(self) -> dict[str, float]:
        return self._timed("noop", lambda: [self._check(i) for i in self.lab.indices()])

    def add(self) -> dict[str, float]:
        return self._timed("add", lambda: self._add(self.extra))

    def remove(self) -> dict[str, float]:
        return self._timed("remove", lambda: self._del(self.extra))

    def teardown(self) -> dict[str, float]:
        def body() -> None:
            for i in self.lab.indices():
                self._del(i)
            for k in range(self.lab.bridges):  # a runtime leaves the bridge; the lab's teardown removes it
                require_ok(self.runner.run(["ip", "link", "del", self.lab.bridge(k)]))
        return self._timed("teardown", body)

    def host_veths(self) -> set[str]:
        return set(self.veths.values())

    def host_veth_of(self, i: int) -> str | None:
        return self.veths.get(self.lab.ns(i))


# checks


def sample(lab: L.Lab, extra: bool, rng: random.Random, size: int = 6) -> list[int]:
    """Namespaces to check closely: the first and last of each bridge, the extra one, and random ones."""
    picked: set[int] = set()
    for k in range(lab.bridges):
        members = lab.members(k, extra)
        picked |= {members[0], members[-1]}
    if extra:
        picked.add(lab.n)
    everything = list(lab.indices(extra))
    while len(picked) < min(size, len(everything)):
        picked.add(rng.choice(everything))
    return sorted(picked)


def verify_built(peer: Peer, extra: bool, rng: random.Random) -> tuple[dict[str, str], list[str]]:
    """Structure of the whole lab, details of a sample, TCP between sampled namespaces.

    Returns what the notes show (IPv6, bridge MAC) and the problems found; a
    lab with problems can still be measured further, so this does not raise.
    """
    lab = peer.lab
    problems: list[str] = []
    expected = {lab.ns(i) for i in lab.indices(extra)}
    present = {name for name in netkit.list_ns() if name.startswith(lab.tag)}
    if present != expected:
        problems.append(f"namespaces: {len(expected - present)} missing, {len(present - expected)} unexpected")
    for k in range(lab.bridges):
        br = lab.bridge(k)
        bridge = netkit.ip_json("-4", "addr", "show", "dev", br)
        gw = f"{lab.gateway(k)}/{lab.prefixlen}"
        if not bridge or "UP" not in bridge[0]["flags"] or gw not in {f"{a['local']}/{a['prefixlen']}" for a in bridge[0]["addr_info"]}:
            problems.append(f"bridge {br}: not up with {gw}")
        ports = netkit.ip_json("link", "show", "master", br)
        want = len(lab.members(k, extra))
        up = sum(1 for p in ports if "UP" in p["flags"])
        if len(ports) != want or up != want:
            problems.append(f"bridge {br}: {len(ports)} ports ({up} up), expected {want}")
    picked = sample(lab, extra, rng)
    for i in picked:
        problems += _check_namespace(lab, i)
    if problems:
        return {}, problems
    for k in range(lab.bridges):
        members = [i for i in picked if lab.bridge_of(i) == k]
        gateway = str(lab.gateway(k))
        for a, b in zip(members, members[1:] + members[:1]):
            if a != b:
                problems += _connect(lab.ns(a), lab.ns(b), str(lab.address(b)))
        for a in members:  # the default route's gateway, on the host's bridge
            problems += _connect(lab.ns(a), None, gateway, lambda ns=lab.ns(a), k=k: _gateway_mac(lab, ns, k))
    first = lab.ns(picked[0])
    host_end = peer.host_veth_of(picked[0])
    notes = {
        "namespace eth0": netkit.read_sysctl(first, "net.ipv6.conf.eth0.disable_ipv6") or "?",
        "namespace all": netkit.read_sysctl(first, "net.ipv6.conf.all.disable_ipv6") or "?",
        "host veth end": (netkit.read_sysctl(None, f"net.ipv6.conf.{host_end}.disable_ipv6") if host_end else None) or "?",
        "bridge": netkit.read_sysctl(None, f"net.ipv6.conf.{lab.bridge(0)}.disable_ipv6") or "?",
        "bridge mac": _mac_kind(lab.bridge(0)),
        "ipv6 addresses": f"{_inet6(first, 'eth0')} / {_inet6(None, host_end) if host_end else '?'} / {_inet6(None, lab.bridge(0))}",
    }
    return notes, problems


def _inet6(ns: str | None, dev: str) -> str:
    """How many IPv6 addresses DEV has (link-local ones show that IPv6 autoconfiguration runs on it)."""
    try:
        found = netkit.ip_json(*(["-n", ns] if ns else []), "-6", "addr", "show", "dev", dev)
    except (OSError, subprocess.SubprocessError, ValueError):
        return "?"
    return str(sum(len(link.get("addr_info", [])) for link in found))


def _mac_kind(bridge: str) -> str:
    """How the bridge got its MAC (addr_assign_type): set explicitly, or taken from a port."""
    try:
        with open(f"/sys/class/net/{bridge}/addr_assign_type") as f:
            kind = f.read().strip()
    except OSError:
        return "?"
    return {"3": "fixed (set)", "2": "from a port (changes)", "1": "random, then from a port (changes)", "0": "permanent"}.get(kind, kind)


def _gateway_mac(lab: L.Lab, ns: str, k: int) -> str:
    """Why a namespace cannot reach its gateway, when the reason is a changed bridge MAC."""
    try:
        with open(f"/sys/class/net/{lab.bridge(k)}/address") as f:
            mac = f.read().strip()
        neigh = netkit.ip_json("-n", ns, "neigh", "show", str(lab.gateway(k)))
    except (OSError, subprocess.SubprocessError, ValueError):
        return ""
    cached = neigh[0].get("lladdr") if neigh else None
    if cached and cached != mac:
        return (f" (its ARP entry for the gateway says {cached}, the bridge's MAC is now {mac}: the bridge has "
                f"no fixed MAC, so the kernel gave it the lowest MAC of its ports, which changed with the port added or removed)")
    return ""


def _check_namespace(lab: L.Lab, i: int) -> list[str]:
    ns = lab.ns(i)
    links = {l["ifname"]: l for l in netkit.ip_json("-n", ns, "link", "show")}
    addrs = {a["ifname"]: a for a in netkit.ip_json("-n", ns, "-4", "addr", "show")}
    routes = netkit.ip_json("-n", ns, "-4", "route", "show")
    problems = []
    if set(links) != {"lo", "eth0"}:
        problems.append(f"{ns}: links {sorted(links)}")
    if "UP" not in links.get("lo", {}).get("flags", []):
        problems.append(f"{ns}: lo is not up")
    if "UP" not in links.get("eth0", {}).get("flags", []):
        problems.append(f"{ns}: eth0 is not up")
    have = {f"{a['local']}/{a['prefixlen']}" for a in addrs.get("eth0", {}).get("addr_info", [])}
    if have != {lab.cidr(i)}:
        problems.append(f"{ns}: eth0 has {sorted(have)}, expected {lab.cidr(i)}")
    defaults = [(r.get("gateway"), r.get("dev")) for r in routes if r.get("dst") == "default"]
    if defaults != [(str(lab.gateway(lab.bridge_of(i))), "eth0")]:
        problems.append(f"{ns}: default routes {defaults}")
    return problems


def _connect(src: str, dst: str | None, address: str, why: Callable[[], str] = lambda: "") -> list[str]:
    last: Exception | None = None
    for _ in range(3):
        try:
            netkit.tcp_connect(src, dst, address)
            return []
        except OSError as err:
            last = err
            time.sleep(0.2)
    return [f"TCP from {src} to {address} ({dst or 'the host'}) failed: {last}{why()}"]


def wait_links_gone(names: set[str], timeout: float = 60.0) -> float:
    """Wait until none of these host links exists (a deleted namespace takes its veths asynchronously)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while names & netkit.host_links():
        if time.monotonic() > deadline:
            raise BenchError(f"links still present {timeout:.0f} s after their namespace was deleted: {sorted(names & netkit.host_links())[:5]}")
        time.sleep(0.01)
    return time.perf_counter() - started


def wait_gone(peer: Peer, timeout: float = 180.0) -> float:
    """Wait until nothing of the lab is left on the host; returns the seconds waited; raises BenchError."""
    lab = peer.lab
    names = peer.host_veths() | {lab.bridge(k) for k in range(lab.bridges)}
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        namespaces = [n for n in netkit.list_ns() if n.startswith(lab.tag)]
        links = names & netkit.host_links()
        if not namespaces and not links:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"teardown left {len(namespaces)} namespaces and {len(links)} links after {timeout:.0f} s")
        time.sleep(0.01)
    waited = time.perf_counter() - started
    bridges = {lab.bridge(k) for k in range(lab.bridges)}
    left = [l["ifname"] for l in netkit.ip_json("link", "show")
            if l.get("ifalias") == lab.label or l.get("master") in bridges]
    if left:
        raise BenchError(f"teardown left links {left[:5]}")
    return waited


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
