"""What a container runtime and its CNI plugins change on the host, and the exact undoing of it.

`HostRecord.take()` records the host before a test: link and namespace names, the sysctls the
reference plugins write, the nft tables, iptables-save and ip6tables-save (parsed into chains and
rules), every entry under a few watched directories (CNI state, runtime state, mountpoints), the
cgroup directories and the mountpoints. Other sessions' labs may come and go on the same host, so
`changes(before, after, own)` lists only what differs and is the test's (`Ownership`: exact names,
and the marks its prefix and temporary directories put in names, comments and paths), each as a
`Change` with a precise text and a normalised signature (hash-named chains, comments and addresses
folded) that a test compares with what a plugin is expected to leave. `restore()` deletes exactly
what appeared and is the test's, writes the recorded sysctls back, and returns what still differs
(empty: the host is as it was). Nothing here flushes a ruleset or deletes by a name pattern.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
XTABLES = ("iptables", "ip6tables")
# the nft tables iptables-nft makes for a table it is first asked about
IPTABLES_NFT_TABLES = frozenset((family, table) for family in ("ip", "ip6") for table in ("filter", "nat", "mangle", "raw", "security"))
FAMILY_TOOL = {"ip": "iptables", "ip6": "ip6tables"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
MAX_ENTRIES = 20000  # per watched directory: a bound, not a limit any test gets near
NETWORK_KINDS = frozenset({"link", "netns", "iptables", "ip6tables", "nft", "sysctl", "cni-state"})


def run(*cmd: str | os.PathLike, timeout: float = 60) -> tuple[int, str, str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def run_json(*cmd: str) -> list:
    rc, out, err = run(*cmd)
    assert rc == 0, f"{' '.join(cmd)}: {err.strip()}"
    return json.loads(out) if out.strip() else []


def link_names() -> frozenset[str]:
    return frozenset(entry["ifname"] for entry in run_json("ip", "-j", "link", "show"))


def bridge_ports(bridge: str) -> frozenset[str]:
    """Names of the links enslaved to BRIDGE (none when it does not exist)."""
    rc, out, _ = run("ip", "-j", "link", "show", "master", bridge)
    return frozenset(entry["ifname"] for entry in json.loads(out)) if rc == 0 and out.strip() else frozenset()


def netns_names() -> frozenset[str]:
    return frozenset(entry["name"] for entry in run_json("ip", "-j", "netns", "list"))


def read_sysctls() -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for name in SYSCTLS:
        try:
            values[name] = Path("/proc/sys", name).read_text().strip()
        except FileNotFoundError:
            values[name] = None  # no IPv6, or br_netfilter not loaded
    return values


def nft_tables() -> frozenset[tuple[str, str]]:
    items = run_json("nft", "-j", "list", "tables")
    return frozenset((i["table"]["family"], i["table"]["name"]) for i in (items["nftables"] if items else []) if "table" in i)


@dataclasses.dataclass(frozen=True)
class Xtables:
    """One `iptables-save`: user chains and rules per table (counters and comments dropped)."""

    chains: frozenset[tuple[str, str]]  # (table, user chain)
    policies: tuple[tuple[str, str, str], ...]  # (table, built-in chain, policy)
    rules: tuple[tuple[str, str], ...]  # (table, "-A CHAIN ...") in order

    @classmethod
    def take(cls, tool: str) -> Xtables | None:
        if shutil.which(f"{tool}-save") is None:
            return None
        rc, out, err = run(f"{tool}-save")
        assert rc == 0, err
        table, chains, policies, rules = "", set(), [], []
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                name, policy = line[1:].split()[:2]
                chains.add((table, name)) if policy == "-" else policies.append((table, name, policy))
            elif line.startswith("-A "):
                rules.append((table, line))
        return cls(frozenset(chains), tuple(policies), tuple(rules))


def tree(root: Path) -> frozenset[str]:
    """ROOT and every path below it (not following symlinks); empty when ROOT does not exist."""
    if not root.exists() and not root.is_symlink():
        return frozenset()
    found = {str(root)}
    for top, dirs, files in os.walk(root):
        found.update(os.path.join(top, name) for name in dirs + files)
        if len(found) > MAX_ENTRIES:
            raise AssertionError(f"more than {MAX_ENTRIES} entries under {root}: not a directory to watch")
    return frozenset(found)


def cgroup_dirs() -> frozenset[str]:
    """Every cgroup (directory) in every hierarchy mounted under /sys/fs/cgroup."""
    return frozenset(os.path.join(top, name) for top, dirs, _ in os.walk(CGROUP_ROOT) for name in dirs)


def mountpoints() -> frozenset[str]:
    return frozenset(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())


@dataclasses.dataclass(frozen=True)
class Watch:
    """A directory whose new entries a test reports and removes (reported as SHOWN when it is a
    stand-in bind-mounted there). In a SHARED one (CNI state other labs write too) only the entries
    that carry the test's mark count, and new directories left empty by their removal."""

    path: Path
    cni_state: bool = False  # leases, result caches, allocator state: the network's
    shared: bool = False
    shown: str | None = None

    def show(self, entry: str) -> str:
        return self.shown + entry[len(str(self.path)) :] if self.shown else entry


@dataclasses.dataclass(frozen=True)
class HostRecord:
    links: frozenset[str]
    netns: frozenset[str]
    sysctls: dict[str, str | None]
    tables: frozenset[tuple[str, str]]
    xtables: dict[str, Xtables | None]
    watched: dict[Watch, frozenset[str]]
    cgroups: frozenset[str]
    mounts: frozenset[str]

    @classmethod
    def take(cls, watches: tuple[Watch, ...]) -> HostRecord:
        return cls(
            links=link_names(),
            netns=netns_names(),
            sysctls=read_sysctls(),
            tables=nft_tables(),
            xtables={tool: Xtables.take(tool) for tool in XTABLES},
            watched={w: tree(w.path) for w in watches},
            cgroups=cgroup_dirs(),
            mounts=mountpoints(),
        )


@dataclasses.dataclass
class Ownership:
    """What is the test's: exact link and namespace names, and marks (its random prefix, its
    temporary directories) that its network name, cgroups, nft tables, mountpoints, iptables
    comments and state files carry. Other sessions' labs may come and go on the same host meanwhile:
    only what is the test's is reported or deleted (iptables and sysctls excepted: see restore)."""

    links: set[str] = dataclasses.field(default_factory=set)
    netns: set[str] = dataclasses.field(default_factory=set)
    marks: set[str] = dataclasses.field(default_factory=set)

    def marked(self, text: str) -> bool:
        return any(mark in text for mark in self.marks)

    def link(self, name: str) -> bool:
        return name in self.links or self.marked(name)

    def namespace(self, name: str) -> bool:
        return name in self.netns or self.marked(name)

    def mount(self, point: str) -> bool:
        return self.marked(point) or (point.startswith("/run/netns/") and self.namespace(point[len("/run/netns/") :]))


@dataclasses.dataclass(frozen=True, order=True)
class Change:
    kind: str  # one of NETWORK_KINDS, or cgroup, mount, path
    detail: str  # exactly what differs

    @property
    def signature(self) -> str:
        """DETAIL with what differs from run to run folded: hash-named CNI chains, addresses, comments."""
        text = re.sub(r"CNI-(DN-)?[0-9a-f]{16,}", r"CNI-\1<hash>", self.detail)
        text = re.sub(r'--comment (".*?(?<!\\)"|\S+)', "--comment <comment>", text)
        text = re.sub(r"\d+\.\d+\.\d+\.\d+(/\d+)?", "<address>", text)
        return f"{self.kind} {text}"

    @property
    def network(self) -> bool:
        """Whether this is the network's (a plugin's doing) rather than the runtime's bookkeeping."""
        return self.kind in NETWORK_KINDS


def _added_rules(before: Xtables, after: Xtables) -> list[tuple[str, str]]:
    remaining = list(before.rules)
    added = []
    for table, rule in after.rules:
        if (table, rule) in remaining:
            remaining.remove((table, rule))
        else:
            added.append((table, rule))
    return added


def _chain_of(rule: str) -> str:
    return shlex.split(rule)[1]  # "-A CHAIN ...": iptables-save quotes as its parser expects


SCAFFOLDING = "CNI-HOSTPORT-"  # portmap's chains shared by every network: their rules name none


def _attributed(before: Xtables, after: Xtables, own: Ownership) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """The rules and user chains that appeared since BEFORE and are the test's: rules carrying its
    mark (the bridge plugin's and portmap's comments name the network), chains that appeared holding
    only such rules and the rules jumping into them, and portmap's CNI-HOSTPORT-* scaffolding (its
    chains, their rules, the jumps into them) when it appeared and no other network's new rule is in
    it: made for the test's first port mapping. Another session's rules are never the test's."""
    added = _added_rules(before, after)
    new_chains = after.chains - before.chains
    marked = {r for r in added if own.marked(r[1])}
    chains = {(t, c) for t, c in new_chains if _only_marked(t, c, added, marked)}
    rules = marked | {r for r in added if any(r[0] == t and r[1].endswith(f" -j {c}") for t, c in chains)}
    scaffolding = {(t, c) for t, c in new_chains if c.startswith(SCAFFOLDING)}
    inside = [r for r in added if r not in rules and (_chain_of(r[1]).startswith(SCAFFOLDING) or f" -j {SCAFFOLDING}" in r[1])]
    if scaffolding and not any("name: " in r[1] or re.search(r"-j CNI-(DN-)?[0-9a-f]{16,}", r[1]) for r in inside):
        rules |= set(inside)
        chains |= scaffolding
    return [r for r in added if r in rules], chains


def _only_marked(table: str, chain: str, added: list[tuple[str, str]], marked: set[tuple[str, str]]) -> bool:
    """Whether CHAIN holds new rules and all of them are marked (an empty new chain may be another session's, half made)."""
    inside = [r for r in added if r[0] == table and _chain_of(r[1]) == chain]
    return bool(inside) and all(r in marked for r in inside)


def present(record: HostRecord) -> set[str]:
    """The signatures RECORD's firewall already has (every chain, rule and nft table): what a test
    finds there before it ran is no leftover of it, whoever made it."""
    found = {f"nft table {family} {name}" for family, name in record.tables}
    for tool, xt in record.xtables.items():
        if xt is not None:
            found |= {Change(tool, f"{t} chain {c}").signature for t, c in xt.chains}
            found |= {Change(tool, f"{t} rule {r}").signature for t, r in xt.rules}
    return found


def _xtables_changes(tool: str, before: Xtables | None, after: Xtables | None, own: Ownership) -> list[Change]:
    if before is None or after is None:
        return []
    rules, chains = _attributed(before, after, own)
    found = [Change(tool, f"{t} chain {c}") for t, c in sorted(chains)]
    found += [Change(tool, f"{t} rule {r}") for t, r in rules]
    known = {(t, c) for t, c, _ in before.policies}
    found += [Change(tool, f"{t} policy {c} {p}") for t, c, p in after.policies if (t, c) in known and (t, c, p) not in before.policies]
    return found


def _entries(watch: Watch, before: frozenset[str], now: frozenset[str], own: Ownership) -> list[str]:
    """The entries under WATCH that appeared and count: all of them, or in a shared directory the marked ones."""
    return sorted(e for e in now - before if not watch.shared or own.marked(e[len(str(watch.path)) :]))


def _table_is_ours(family: str, name: str, before: HostRecord, after: HostRecord, own: Ownership) -> bool:
    """Whether a new nft table is the test's: named with its mark, or one iptables-nft made whose
    every user chain and rule is the test's (an empty one included: iptables-nft makes a table when
    first asked about it). A table of another session's iptables rules (Docker's, a firewall
    plugin's) is not."""
    if own.marked(name):
        return True
    tool = FAMILY_TOOL.get(family)
    if (family, name) not in IPTABLES_NFT_TABLES or tool is None:
        return False
    was, now = before.xtables.get(tool), after.xtables.get(tool)
    if was is None or now is None:
        return False
    rules, chains = _attributed(was, now, own)
    accepting = all(policy == "ACCEPT" for table, _, policy in now.policies if table == name)
    return accepting and all(r in rules for r in now.rules if r[0] == name) and all(c in chains for c in now.chains if c[0] == name)


def changes(before: HostRecord, after: HostRecord, own: Ownership) -> list[Change]:
    """What differs and is the test's: the network's (links, namespaces, sysctls, firewall, CNI state)
    and the runtime's bookkeeping (cgroups, mounts, other watched entries)."""
    found = [Change("link", name) for name in sorted(after.links - before.links) if own.link(name)]
    found += [Change("netns", name) for name in sorted(after.netns - before.netns) if own.namespace(name)]
    found += [Change("sysctl", f"{n.replace('/', '.')}={v}") for n, v in after.sysctls.items() if before.sysctls.get(n) != v]
    for tool in XTABLES:
        found += _xtables_changes(tool, before.xtables[tool], after.xtables[tool], own)
    new_tables = after.tables - before.tables
    found += [Change("nft", f"table {f} {n}") for f, n in sorted(new_tables) if _table_is_ours(f, n, before, after, own)]
    for watch, entries in after.watched.items():
        for entry in _entries(watch, before.watched.get(watch, frozenset()), entries, own):
            directory = os.path.isdir(entry) and not os.path.islink(entry)
            kind = "cni-state" if watch.cni_state and not directory else "path"
            found.append(Change(kind, watch.show(entry) + ("/" if directory else "")))
    found += [Change("cgroup", d) for d in sorted(after.cgroups - before.cgroups) if own.marked(d)]
    found += [Change("mount", m) for m in sorted(after.mounts - before.mounts) if own.mount(m)]
    return found


def _undo_xtables(tool: str, before: Xtables | None, own: Ownership) -> None:
    """Delete the test's rules that appeared, then the test's user chains (left empty by that)."""
    after = Xtables.take(tool)
    if before is None or after is None:
        return
    rules, chains = _attributed(before, after, own)
    for table, rule in reversed(rules):
        run(tool, "-w", "-t", table, "-D", *shlex.split(rule)[1:])
    for table, chain in sorted(chains):
        run(tool, "-w", "-t", table, "-X", chain)
    for table, chain, policy in before.policies:
        if (table, chain, policy) not in after.policies and any(t == table and c == chain for t, c, _ in after.policies):
            run(tool, "-w", "-t", table, "-P", chain, policy)


def _remove_new_entries(watch: Watch, before: frozenset[str], own: Ownership) -> None:
    """Remove the entries that appeared and count, then the new directories left empty (libcni and
    host-local make theirs again as they need them)."""
    new = _entries(watch, before, tree(watch.path), own)
    for entry in new:  # sorted: a directory comes before what it holds
        if any(entry.startswith(f"{d}/") for d in new) or not os.path.lexists(entry):
            continue
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.unlink(entry)
    for entry in sorted(tree(watch.path) - before, reverse=True):  # children first
        if os.path.isdir(entry) and not os.path.islink(entry) and not os.listdir(entry):
            os.rmdir(entry)


def ip_forward_held() -> bool:
    """Whether an nsnet topology (another session's lab) holds net.ipv4.ip_forward now: then it is
    nsnet's to turn off, not the test's."""
    try:
        registry = json.loads(Path("/run/nsnet/sysctl.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(registry.get("net.ipv4.ip_forward", {}).get("holders"))


def restore(before: HostRecord, own: Ownership) -> list[Change]:
    """Undo what appeared since BEFORE and is the test's own; what still differs afterwards. The
    sysctls are written back as recorded, except ip_forward while an nsnet lab holds it (then it is
    nsnet's, and no difference); the iptables rules deleted are the test's (see _attributed)."""
    for mount in sorted(mountpoints() - before.mounts, reverse=True):
        if own.mount(mount) and not mount.startswith("/run/netns/"):
            run("umount", mount)
    for name in sorted(netns_names() - before.netns):
        if own.namespace(name):
            run("ip", "netns", "del", name)
    for name in sorted(link_names() - before.links):
        if own.link(name):
            run("ip", "link", "del", "dev", name)
    for tool in XTABLES:
        _undo_xtables(tool, before.xtables[tool], own)
    now = HostRecord.take(())
    for family, name in sorted(now.tables - before.tables):
        if _table_is_ours(family, name, before, now, own):
            run("nft", "delete", "table", family, name)
    for name, value in before.sysctls.items():
        if value is not None and read_sysctls()[name] != value and not (name == "net/ipv4/ip_forward" and ip_forward_held()):
            Path("/proc/sys", name).write_text(value)
    for watch, entries in before.watched.items():
        _remove_new_entries(watch, entries, own)
    for path in sorted(cgroup_dirs() - before.cgroups, reverse=True):  # children first
        if own.marked(path):
            try:
                os.rmdir(path)
            except OSError:
                pass  # still holds a process: reported below
    remaining = changes(before, HostRecord.take(tuple(before.watched)), own)
    return [c for c in remaining if not (c.detail.startswith("net.ipv4.ip_forward=") and ip_forward_held())]


# processes: recorded by pid and start time (a later process may get the same pid)


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat; None when there is no such process or only its zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def processes_with_argument_under(directory: Path) -> list[tuple[int, str]]:
    """(pid, start time) of processes one of whose arguments is a path under DIRECTORY, a test's own
    temporary directory: the daemons and monitors it started (conmon, containerd's shims) whatever
    they daemonised into."""
    found = []
    prefix = str(directory).encode() + b"/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(prefix) or b"=" + prefix in arg for arg in argv):
            started = start_time(int(entry.name))
            if started is not None:
                found.append((int(entry.name), started))
    return found


def end_processes(processes: list[tuple[int, str]], grace: float = 5.0) -> list[str]:
    """Give each recorded process (same pid and start time) GRACE seconds to exit by itself, then
    SIGKILL the rest; the ones that had to be killed."""
    deadline = time.monotonic() + grace
    while any(start_time(pid) == started for pid, started in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [(pid, started) for pid, started in set(processes) if start_time(pid) == started]
    named = [f"process {pid} ({_comm(pid)})" for pid, _ in sorted(alive)]
    for pid, _ in alive:
        os.kill(pid, signal.SIGKILL)
    return named


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"
