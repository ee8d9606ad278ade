"""The host side of CNI tests: names, namespaces, a network's subnets, and the host put back afterwards.

A test's names all carry its random prefix (`c` + 5 hex digits): namespaces
`<prefix>n<i>`, bridge `<prefix>br`, network `<prefix>net`. HostState puts
back, after the test, what the CNI plugins it ran changed on the host, and
lists anything of the test still there. What belongs to the test is decided
by name or by watching, never by a broad pattern, because other parties may
change the host meanwhile:
- links the test declares (its bridge, the host interfaces of each ADD result);
- iptables and ip6tables rules that carry one of the test's names, whole (the
  reference plugins put the network name in each rule's comment; a bare prefix
  could be the start of another party's name), or jump to a chain the test owns,
  new chains such rules jump to, and chains the test declares;
- around each call wrapped in `watch()`: the forwarding switches
  (net.ipv4.ip_forward, IPv6 forwarding) it turned on, turned off again unless
  an nsnet topology holds them (/run/nsnet/sysctl.json), and the tables
  iptables-nft made for its rules, deleted once empty and inert.
The fixtures are in conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netplan_lite.kernel import hostsysctl

FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
IPV6_CONF = Path("/proc/sys/net/ipv6/conf")
FREE_POOL = ipaddress.IPv4Network("10.250.0.0/16")  # /24s for CNI networks, picked where the host has no route
IPTABLES = ("iptables", "ip6tables")
NAMES = r"(net|br|n[0-9]+)"  # what follows the prefix in the names the fixtures give (network, bridge, namespaces)
IPTABLES_NFT_TABLES = {(family, name) for family in ("ip", "ip6") for name in ("filter", "nat", "mangle", "raw", "security")}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def must(*argv: str) -> str:
    done = run(*argv)
    assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr.strip()}"
    return done.stdout


# namespaces


class Namespaces:
    """Namespaces the test makes (a runtime's job: the plugin only gets their paths)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []  # <prefix>n<i>

    def make(self) -> str:
        """A new namespace; its path, as a runtime passes it in CNI_NETNS."""
        name = f"{self.prefix}n{len(self.names)}"
        self.names.append(name)
        must("ip", "netns", "add", name)
        return f"/run/netns/{name}"

    def remove(self) -> list[str]:
        """Delete each one still there; the names that could not be deleted."""
        for name in self.names:
            if Path("/run/netns", name).exists():
                run("ip", "netns", "del", name)
        return [f"namespace {name}" for name in self.names if Path("/run/netns", name).exists()]


# a network's names, subnets and state


@dataclasses.dataclass(frozen=True)
class CniNetwork:
    name: str
    bridge: str  # <= 15 characters, as every Linux link name
    subnet: ipaddress.IPv4Network
    subnet6: ipaddress.IPv6Network
    state_dir: Path  # for the IPAM's leases (host-local's dataDir), inside the test's temporary directory

    def ranges(self) -> list[list[dict[str, str]]]:
        """host-local style `ipam.ranges`: one IPv4 and one IPv6 range."""
        return [[{"subnet": str(self.subnet)}], [{"subnet": str(self.subnet6)}]]


def host_routes() -> list[ipaddress.IPv4Network]:
    routes = json.loads(must("ip", "-j", "-4", "route", "show", "table", "all") or "[]")
    return [ipaddress.IPv4Network(r["dst"], strict=False) for r in routes if r.get("dst", "default") != "default"]


def free_subnet() -> ipaddress.IPv4Network:
    """A random /24 of FREE_POOL that no route on the host overlaps."""
    taken = host_routes()
    free = [n for n in FREE_POOL.subnets(new_prefix=24) if not any(n.overlaps(r) for r in taken)]
    assert free, f"every /24 of {FREE_POOL} overlaps a route of the host"
    return free[secrets.randbelow(len(free))]


def random_ula() -> ipaddress.IPv6Network:
    """A /64 of a random RFC 4193 unique local prefix: no host or other test can have it."""
    return ipaddress.IPv6Network((int("fd" + secrets.token_hex(5), 16) << 80, 64))


# the host: iptables, nft tables, forwarding switches, links


@dataclasses.dataclass(frozen=True)
class Rules:
    """One iptables-save of one table: its chains and its rules ("-A CHAIN ..." lines)."""

    chains: frozenset[str]
    rules: tuple[str, ...]


EMPTY = Rules(frozenset(), ())


def iptables_save(binary: str) -> dict[str, Rules]:
    """Every table of `binary` (iptables or ip6tables, as the plugin's PATH finds them); {} if absent."""
    if shutil.which(f"{binary}-save") is None:
        return {}
    tables: dict[str, Rules] = {}
    table, chains, rules = "", set[str](), list[str]()
    for line in must(f"{binary}-save").splitlines():
        if line.startswith("*"):
            table, chains, rules = line[1:], set(), []
        elif line.startswith(":"):
            chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            rules.append(line)
        elif line == "COMMIT":
            tables[table] = Rules(frozenset(chains), tuple(rules))
    return tables


def owner_pattern(prefix: str) -> re.Pattern[str]:
    """One of the names the fixtures give for `prefix`, whole (not the start of a longer name)."""
    return re.compile(rf"(?<![\w.-]){re.escape(prefix)}{NAMES}(?![\w.-])")


def jump_target(rule: str) -> str | None:
    words = shlex.split(rule)
    for flag in ("-j", "-g"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return None


def forwarding_switches() -> dict[str, str]:
    """The shared switches and each existing interface's IPv6 forwarding (writing `all` overwrites them)."""
    keys = [k for k in FORWARDING if Path("/proc/sys", k.replace(".", "/")).exists()]
    if IPV6_CONF.is_dir():
        keys += [f"net.ipv6.conf.{p.name}.forwarding" for p in sorted(IPV6_CONF.iterdir()) if p.name != "all" and "." not in p.name]
    return {key: value for key in keys if (value := _read_if_there(key)) is not None}


def _read_if_there(key: str) -> str | None:
    """An interface can go between listing and reading (another test's veth): then it has no switch."""
    try:
        return hostsysctl.read(key)
    except FileNotFoundError:
        return None


def held_as(key: str) -> str:
    """The key nsnet's registry holds for `key`: an interface's IPv6 forwarding follows `all`."""
    return key if key in FORWARDING else "net.ipv6.conf.all.forwarding"


def write_sysctl(key: str, value: str) -> None:
    """Not hostsysctl.write: that one is a fault-injection checkpoint of nsnet's own."""
    Path("/proc/sys", key.replace(".", "/")).write_text(value)


def nft_tables() -> set[tuple[str, str]]:
    if shutil.which("nft") is None:
        return set()
    out = json.loads(must("nft", "-j", "list", "tables"))
    return {(t["table"]["family"], t["table"]["name"]) for t in out["nftables"] if "table" in t}


def inert_table(family: str, name: str) -> bool:
    """No rule, and every base chain accepts: deleting the table changes no packet's fate."""
    done = run("nft", "-j", "list", "table", family, name)
    if done.returncode != 0:
        return False
    items = json.loads(done.stdout)["nftables"]
    return not any("rule" in item for item in items) and all(item["chain"].get("policy", "accept") == "accept" for item in items if "chain" in item)


class HostState:
    """What the host looked like before the test, and how to put back what the test changed."""

    def __init__(self, prefix: str) -> None:
        self.mine = owner_pattern(prefix)
        self.links: list[str] = []
        self.chains: set[tuple[str, str, str]] = set()  # (iptables binary, table, chain) declared as the test's
        self.removed: list[tuple[str, str, str]] = []  # (binary, table, chain) restore() deleted: checked for afterwards
        self.iptables = {binary: iptables_save(binary) for binary in IPTABLES}
        self.switches = forwarding_switches()
        self.turned_on: set[str] = set()  # switches a watched call turned on
        self.made_tables: set[tuple[str, str]] = set()  # iptables-nft tables that appeared during a watched call

    def own_link(self, name: str) -> None:
        """A host link the test (or a plugin it runs) makes: deleted by this exact name afterwards."""
        if name not in self.links:
            self.links.append(name)

    def own_result(self, result: Any) -> None:
        """Every host-side interface of an ADD result (no sandbox): the bridge and the host end of the veth."""
        for interface in (result or {}).get("interfaces", []):
            if not interface.get("sandbox"):
                self.own_link(interface["name"])

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Around a call of a plugin that does not tell nsnet's registry what it changes (the reference plugins):
        the switches it turns on and the iptables-nft tables it makes are the test's to undo. (Another party
        doing the same within the same fraction of a second would be taken for the test.)"""
        switches, tables = forwarding_switches(), nft_tables()
        try:
            yield
        finally:
            self.turned_on |= {k for k, v in forwarding_switches().items() if switches.get(k) == "0" and v == "1"}
            self.made_tables |= (nft_tables() - tables) & IPTABLES_NFT_TABLES

    def own_chain(self, binary: str, table: str, chain: str) -> None:
        """A chain without the prefix in its name or rules the test's plugins make (portmap's CNI-HOSTPORT-*)."""
        self.chains.add((binary, table, chain))

    # iptables

    def _owned(self, binary: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(table, rule) to delete from chains that stay, (table, chain) to flush and delete."""
        before = self.iptables[binary]
        now = iptables_save(binary)
        chains = [(t, c) for (b, t, c) in self.chains if b == binary and c in now.get(t, EMPTY).chains]
        for table, rules in now.items():
            new_chains = rules.chains - before.get(table, EMPTY).chains
            for rule in rules.rules:
                target = jump_target(rule)
                if self.mine.search(rule) and target in new_chains and (table, target) not in chains:
                    chains.append((table, target))
        jumps = []
        for table, rules in now.items():
            old = set(before.get(table, EMPTY).rules)
            for rule in rules.rules:
                chain = rule.split()[1]
                if (table, chain) not in chains and rule not in old and (self.mine.search(rule) or (table, jump_target(rule)) in chains):
                    jumps.append((table, rule))
        return jumps, chains

    def _restore_iptables(self) -> None:
        """Remove the test's rules and chains."""
        for binary in IPTABLES:
            rules, chains = self._owned(binary)
            for table, rule in rules:
                run(binary, "-w", "-t", table, "-D", *shlex.split(rule)[1:])
            for verb in ("-F", "-X"):  # owned chains may jump to each other: empty them all, then delete
                for table, chain in chains:
                    run(binary, "-w", "-t", table, verb, chain)
            self.removed += [(binary, table, chain) for table, chain in chains]

    def _new_inert_tables(self) -> list[tuple[str, str]]:
        """Tables iptables-nft made for the test's plugins that are empty and inert now."""
        return sorted(t for t in self.made_tables & nft_tables() if inert_table(*t))

    def _remove_inert_tables(self) -> None:
        for family, name in self._new_inert_tables():
            run("nft", "delete", "table", family, name)

    # switches and links

    def _turned_on(self) -> list[str]:
        """Switches a watched call turned on that are still on and that no nsnet topology holds now."""
        now = forwarding_switches()
        return sorted(k for k in self.turned_on if now.get(k) == "1" and not hostsysctl.holders(held_as(k)))

    def _left_on(self) -> list[str]:
        """Shared switches off before the test, on now and held by no nsnet topology: nsnet's release keeps one on
        while another tool's firewall tables exist (the firewall plugin's, until this recorder removed them)."""
        now = forwarding_switches()
        return sorted(k for k in FORWARDING if now.get(k) == "1" and self.switches.get(k) == "0" and not hostsysctl.holders(k))

    def _restore_switches(self) -> None:
        before_write = forwarding_switches()
        for key in dict.fromkeys([*(k for k in self._turned_on() if k in FORWARDING), *self._left_on()]):
            write_sysctl(key, "0")
        for key in self._turned_on():  # an interface that writing IPv6 `all` did not turn off with it
            write_sysctl(key, "0")
        for key, value in forwarding_switches().items():  # and one that writing `all` turned off, on before the test
            if value == "0" and self.switches.get(key) == before_write.get(key) == "1":
                write_sysctl(key, "1")

    def _remove_links(self) -> None:
        for name in self.links:
            if Path("/sys/class/net", name).exists():
                run("ip", "link", "del", "dev", name)

    def restore(self) -> None:
        self._remove_links()
        self._restore_iptables()
        self._remove_inert_tables()
        self._restore_switches()

    def leftovers(self) -> list[str]:
        left = [f"link {name}" for name in self.links if Path("/sys/class/net", name).exists()]
        for binary in IPTABLES:
            rules, chains = self._owned(binary)
            now = iptables_save(binary)
            chains += [(t, c) for b, t, c in self.removed if b == binary and c in now.get(t, EMPTY).chains and (t, c) not in chains]
            left += [f"{binary} -t {t} {rule}" for t, rule in rules] + [f"{binary} -t {t} chain {c}" for t, c in chains]
        left += [f"nft table {family} {name}" for family, name in self._new_inert_tables()]
        left += [f"{key} = 1 (was 0)" for key in self._turned_on()]
        return left
