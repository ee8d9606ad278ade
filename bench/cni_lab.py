"""The CNI benchmark's networks (names, subnets, conflists, port mappings) and the host around each case:
a snapshot before, what appeared after it (the leftovers), and putting the host back by exact name.

Names: the run's prefix `c` + 4 hex digits. The containers of a case are `<prefix><i:04d>` (namespace
name = container ID) for both peers, so both get the same namespaces and the same IDs; the peers never
run at the same time. Peer letter in the bridge name (`<prefix>rbr`, `<prefix>nbr`); network names
`<prefix>-reference`, `<prefix>-nsnet` (nsnet's topology, its nft table `nsnet-<network>`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from collections.abc import Iterable, Iterator
from typing import Any

import netkit

CNI_DIR = "/usr/lib/cni"
PEERS = ("reference", "nsnet")
LETTER = {"reference": "r", "nsnet": "n"}
CNI_VERSION = "1.0.0"  # the highest libcni 1.1 (podman 4.3, containerd 1.6) speaks
CONTAINER_PORT = 80
PORTMAP_SHARED = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")  # portmap creates these once and never deletes them


@dataclass(frozen=True)
class Net:
    """One peer's network in one case: `size` containers (plus the gateway) must fit its subnet."""

    prefix: str
    peer: str
    size: int
    base: IPv4Network  # the run's free 10.X.0.0/16
    mapped: bool = False  # its containers have port mappings (only then does portmap make its shared chains)

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.peer}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}{LETTER[self.peer]}br"

    @property
    def subnet(self) -> IPv4Network:
        bits = max(2, math.ceil(math.log2(self.size + 3)))  # + gateway, network and broadcast addresses
        return IPv4Network(f"{self.base.network_address}/{32 - bits}")

    def container(self, i: int) -> str:
        return f"{self.prefix}{i:04d}"

    def chains(self, containers: list[str]) -> set[str]:
        """The per-container iptables chains the reference plugins name (plugins/pkg/utils: "CNI-" [+ "DN-"]
        + sha512(network name + container ID) in hex, 28 characters): bridge's ipMasq chain and portmap's DNAT chain."""
        names = set()
        for cid in containers:
            digest = hashlib.sha512((self.name + cid).encode()).hexdigest()
            names |= {("CNI-" + digest)[:28], ("CNI-DN-" + digest)[:28]}
        return names

    def state_dirs(self, data_dir: str) -> list[str]:
        """Where each peer keeps state between calls: host-local's leases, nsnet's records under /run."""
        if self.peer == "reference":
            return [os.path.join(data_dir, self.name)]
        return [os.path.join("/run/nsnet", self.name), os.path.join("/run/nsnet/cni", self.name)]

    def conflist(self, data_dir: str) -> dict[str, Any]:
        """The network configuration list a runtime reads from /etc/cni/net.d (kept in the run's temp dir)."""
        ipam = {"ranges": [[{"subnet": str(self.subnet)}]], "routes": [{"dst": "0.0.0.0/0"}]}
        if self.peer == "reference":
            plugins = [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "ipam": {"type": "host-local", **ipam, "dataDir": data_dir},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ]
        else:
            plugins = [
                {"type": "nsnet", "bridge": self.bridge, "isGateway": True, "ipMasq": True, "ipam": ipam, "capabilities": {"portMappings": True}}
            ]
        return {"cniVersion": CNI_VERSION, "name": self.name, "plugins": plugins}


def port_mapping(host_port: int) -> dict[str, Any]:
    """One mapping as libcni passes it in runtimeConfig.portMappings (hostIP unset: omitted)."""
    return {"hostPort": host_port, "containerPort": CONTAINER_PORT, "protocol": "tcp"}


def free_port_base(count: int, start: int = 20000) -> int:
    """The first base >= START such that no TCP socket listens on [base, base + count) (below the ephemeral range)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    listening.add(int(fields[1].rsplit(":", 1)[1], 16))
    base = start
    while base + count <= low:
        clash = [p for p in listening if base <= p < base + count]
        if not clash:
            return base
        base = max(clash) + 1
    raise SystemExit(f"no {count} free host ports between {start} and {low}")


def first_address(result: dict[str, Any]) -> tuple[str | None, str | None]:
    """(address, gateway) of the first IP of an ADD result."""
    for ip in result.get("ips", []):
        return ip.get("address", "").split("/")[0] or None, ip.get("gateway")
    return None, None


def host_veth(result: dict[str, Any], bridge: str) -> str | None:
    """The host end of the container's veth: the result's interface that has no sandbox and is not the bridge."""
    return next((i["name"] for i in result.get("interfaces", []) if not i.get("sandbox") and i.get("name") != bridge), None)


# the host: snapshot, what appeared, putting it back


@dataclass
class HostState:
    links: dict[str, dict[str, Any]]  # name -> {master, ifalias}
    namespaces: set[str]
    nft: dict[tuple, dict[str, Any]]  # identity -> object (identities carry the table's handle: a re-created table is new)
    iptables: set[str]  # `iptables-save` / `ip6tables-save` chain and rule lines, with their table
    sysctls: dict[str, str]
    modules: set[str]
    files: set[str] = field(default_factory=set)


def snapshot(state_dirs: list[str], interfaces: set[str]) -> HostState:
    """The host as the leftovers compare it; INTERFACES: whose per-interface sysctls are read (the host's own links)."""
    links = {link["ifname"]: {"master": link.get("master"), "ifalias": link.get("ifalias")} for link in netkit.ip_json("link", "show")}
    files = {os.path.join(root, name) for d in state_dirs for root, _, names in os.walk(d) for name in names}
    files |= {d for d in state_dirs if os.path.isdir(d)}
    return HostState(links, set(netkit.list_ns()), _nft(), _iptables(), _sysctls(interfaces), _modules(), files)


def _nft() -> dict[tuple, dict[str, Any]]:
    text = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True, check=True, timeout=120).stdout
    tables: dict[tuple[str, str], int] = {}
    found: dict[tuple, dict[str, Any]] = {}
    for item in json.loads(text or '{"nftables": []}')["nftables"]:
        kind, obj = next(iter(item.items()))
        if kind == "table":
            tables[(obj["family"], obj["name"])] = obj["handle"]
            found[("table", obj["family"], obj["name"], obj["handle"])] = obj
        elif kind in ("chain", "set", "map", "rule"):
            where = (obj["family"], obj["table"], tables.get((obj["family"], obj["table"])))
            key = ("rule", *where, obj["chain"], obj["handle"]) if kind == "rule" else (kind, *where, obj["name"])
            found[key] = obj
    return found


def _iptables() -> set[str]:
    lines = set()
    for family, tool in (("ip4", "iptables-save"), ("ip6", "ip6tables-save")):
        if shutil.which(tool) is None:
            continue
        table = ""
        for line in subprocess.run([tool], capture_output=True, text=True, timeout=120).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith((":", "-A")):
                lines.add(f"{family} {table} {line.split(' [', 1)[0] if line.startswith(':') else line}")
    return lines


VOLATILE = ("nf_conntrack_count",)


def _sysctls(interfaces: set[str]) -> dict[str, str]:
    """Every readable key under /proc/sys/net, per-interface ones only for INTERFACES (and all, default)."""
    found = {}
    for root, dirs, names in os.walk("/proc/sys/net"):
        if os.path.basename(root) in ("conf", "neigh"):
            dirs[:] = [d for d in dirs if d in interfaces or d in ("all", "default")]
        for name in names:
            if name in VOLATILE:
                continue
            path = os.path.join(root, name)
            with contextlib.suppress(OSError), open(path) as f:
                found[path[len("/proc/sys/") :].replace("/", ".")] = " ".join(f.read().split())
    return found


def _modules() -> set[str]:
    with contextlib.suppress(OSError), open("/proc/modules") as f:
        return {line.split()[0] for line in f}
    return set()


@dataclass
class Appeared:
    """What differs from the snapshot before, split into what this case made (by exact name) and the rest."""

    links: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    nft: list[tuple] = field(default_factory=list)  # identities, ours
    iptables: list[str] = field(default_factory=list)
    sysctls: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (before, now)
    files: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # loaded meanwhile: reported, never unloaded
    others: list[str] = field(default_factory=list)  # appeared but not this case's: left alone

    def empty(self) -> bool:
        return not (self.links or self.namespaces or self.nft or self.iptables or self.sysctls or self.files)

    def summary(self) -> str:
        if self.empty():
            return "none"
        kinds: dict[str, int] = {}
        for key in self.nft:
            kinds[key[0]] = kinds.get(key[0], 0) + 1
        parts = [f"links: {', '.join(self.links)}"] if self.links else []
        parts += [f"{len(self.namespaces)} namespaces"] if self.namespaces else []
        parts += ["nft " + ", ".join(f"{n} {k}s" for k, n in sorted(kinds.items()))] if kinds else []
        if self.iptables:
            chains = sum(1 for line in self.iptables if line.split(" ", 2)[2].startswith(":"))
            parts.append(f"iptables {chains} chains, {len(self.iptables) - chains} rules")
        parts += [", ".join(f"{k} {a} → {b}" for k, (a, b) in self.sysctls.items())] if self.sysctls else []
        parts += [f"{len(self.files)} state files"] if self.files else []
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "links": self.links,
            "namespaces": self.namespaces,
            "nft": [" ".join(map(str, k)) for k in self.nft],
            "iptables": sorted(self.iptables),
            "sysctls": {k: list(v) for k, v in self.sysctls.items()},
            "state_files": self.files,
            "modules_loaded": self.modules,
            "not_ours": self.others,
        }


def appeared(before: HostState, now: HostState, net: Net, containers: list[str]) -> Appeared:
    """What is new since BEFORE; objects count as this case's by exact name: its namespaces, bridge and the links on
    it or labelled with its network, nft objects naming the run's prefix or the reference's per-container and
    shared chains (and rules in or jumping to them), tables that appeared and hold nothing else."""
    found = Appeared()
    for name in sorted(set(now.links) - set(before.links)):
        link = now.links[name]
        mine = name.startswith(net.prefix) or link["master"] == net.bridge or net.prefix in (link["ifalias"] or "")
        (found.links if mine else found.others).append(name if mine else f"link {name}")
    for name in sorted(now.namespaces - before.namespaces):
        (found.namespaces if name.startswith(net.prefix) else found.others).append(name)
    found.nft, others = _our_nft(before.nft, now.nft, net, containers)
    found.others += [" ".join(map(str, k)) for k in others]
    found.iptables, others_ipt = _our_iptables(now.iptables - before.iptables, found.nft, net.prefix)
    found.others += others_ipt
    changed = {k: (v, now.sysctls[k]) for k, v in before.sysctls.items() if k in now.sysctls and now.sysctls[k] != v}
    held = held_by_others(net.prefix, changed)
    found.sysctls = {k: v for k, v in changed.items() if k not in held}
    found.others += [f"sysctl {k} {a} → {b}, held by nsnet topologies {held[k]}" for k, (a, b) in changed.items() if k in held]
    found.files = sorted(now.files - before.files)
    found.modules = sorted(now.modules - before.modules)
    return found


def held_by_others(prefix: str, keys: Iterable[str]) -> dict[str, list[str]]:
    """Those of KEYS that nsnet records as held by topologies not of this run (/run/nsnet/sysctl.json): another nsnet
    lab is up and needs them (e.g. ip_forward), so they are not set back; nor the per-interface keys writing them sets."""
    try:
        with open("/run/nsnet/sysctl.json") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    held: dict[str, list[str]] = {}
    for key, entry in record.items() if isinstance(record, dict) else ():
        others = [h for h in (entry.get("holders", []) if isinstance(entry, dict) else []) if not str(h).startswith(prefix)]
        if others:
            held[key] = others
    derived = {"net.ipv4.ip_forward": "net.ipv4.conf.", "net.ipv6.conf.all.forwarding": "net.ipv6.conf."}
    for key in keys:
        for holder, under in derived.items():
            if holder in held and key.startswith(under) and key.endswith(".forwarding"):
                held[key] = held[holder]
    wanted = set(keys)
    return {k: v for k, v in held.items() if k in wanted}


def _our_nft(before: dict[tuple, dict], now: dict[tuple, dict], net: Net, containers: list[str]) -> tuple[list[tuple], list[tuple]]:
    new = {k for k in now if k not in before}
    rules = [k for k in now if k[0] == "rule"]
    chains = {k[1:5] for k in new if k[0] == "chain" and (k[4] in net.chains(containers) or net.prefix in k[4])}
    tables = {k[1:4] for k in new if k[0] == "table" and net.prefix in k[2]}

    def base(where: tuple) -> bool:
        return "hook" in now.get(("chain", *where), {})

    def ours(k: tuple) -> bool:
        if k[1:4] in tables or k[1:5] in chains:
            return True
        return k[0] == "rule" and (net.prefix in json.dumps(now[k]) or any((*k[1:4], t) in chains for t in _jumps(now[k])))

    # portmap's shared chains, if this case mapped ports, they appeared meanwhile, and no other runtime uses portmap in
    # that table (no other container's CNI-DN- chain; only this case's rules in them and jumping to them): else they
    # are another's too, and stay with their rules; only ours go
    foreign = {k[1:4] for k in now if k[0] == "chain" and k[4].startswith("CNI-DN-") and k[1:5] not in chains}
    for k in sorted(k for k in new if net.mapped and k[0] == "chain" and k[4] in PORTMAP_SHARED and k[1:4] not in foreign):
        inside = [r for r in rules if r[1:5] == k[1:5]]
        callers = [r for r in rules if r[1:4] == k[1:4] and k[4] in _jumps(now[r])]
        if all(r in new and all((*k[1:4], t) in chains or t in PORTMAP_SHARED for t in _jumps(now[r])) for r in inside) and all(
            r in new and (base(r[1:5]) or r[1:5] in chains) for r in callers
        ):
            chains.add(k[1:5])
    mine = [k for k in new if ours(k)]
    # a table that appeared with nothing in it but what is ours (iptables-nft makes `ip nat` and its base chains on first use)
    for t in {k[1:4] for k in new if k[0] == "table"} - tables:
        inside = [k for k in now if k[0] != "table" and k[1:4] == t]
        if all(k in mine or (k[0] == "chain" and base(k[1:5])) for k in inside):
            mine += [k for k in new if k[1:4] == t and k not in mine]
    return mine, [k for k in new if k not in mine]


def _jumps(rule: dict[str, Any]) -> set[str]:
    """The chains a rule jumps or goes to."""
    text = json.dumps(rule.get("expr", []))
    return {part.split('"', 1)[0] for part in text.split('"target": "')[1:]}


def _our_iptables(lines: set[str], nft: list[tuple], prefix: str) -> tuple[list[str], list[str]]:
    """The iptables view of what appeared: a line is ours if it names a chain of ours (nft's view) or the prefix."""
    family = {"ip": "ip4", "ip6": "ip6"}
    names = {(family.get(k[1], k[1]), k[2], k[4]) for k in nft if k[0] == "chain"}
    mine: list[str] = []
    others: list[str] = []
    for line in sorted(lines):
        fam, table, rest = line.split(" ", 2)
        words = rest.split()
        named = {words[0][1:]} if rest.startswith(":") else {words[1], *(w for a, w in zip(words, words[1:], strict=False) if a in ("-j", "-g"))}
        (mine if prefix in rest or any((fam, table, n) in names for n in named) else others).append(line)
    return mine, others


def restore(before: HostState, now: HostState, found: Appeared) -> list[str]:
    """Remove what this case left (FOUND, all by exact name) and set changed sysctls back; returns what could not be done."""
    problems = []
    for ns in found.namespaces:
        netkit.remove_ns(ns)
    for name in sorted(found.links, key=lambda n: now.links[n]["master"] is None):  # ports before bridges
        done = subprocess.run(["ip", "link", "del", "dev", name], capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and name in netkit.host_links():
            problems.append(f"ip link del {name}: {done.stderr.strip()}")
    if found.nft:
        done = subprocess.run(
            ["nft", "-j", "-f", "-"],
            input=json.dumps({"nftables": list(_nft_deletes(now.nft, found.nft))}),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            problems.append(f"nft: {done.stderr.strip()[:300]}")
    keys = sorted(found.sysctls, key=lambda k: k != "net.ipv4.ip_forward")  # ip_forward first: writing it resets conf.*.forwarding
    for key in keys:
        with contextlib.suppress(OSError):
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                if " ".join(f.read().split()) == before.sysctls[key]:
                    continue
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(before.sysctls[key].replace(" ", "\t"))
    for path in found.files:
        if path not in before.files and os.path.isdir(path) and not any(p.startswith(path + os.sep) for p in before.files):
            shutil.rmtree(path, ignore_errors=True)
        elif path not in before.files and os.path.lexists(path):
            with contextlib.suppress(OSError):
                os.unlink(path)
    return problems


def _nft_deletes(now: dict[tuple, dict], ours: list[tuple]) -> Iterator[dict[str, Any]]:
    """One nft transaction: whole tables; else rules of chains that stay, then flush and delete the chains."""
    tables = {k[1:4] for k in ours if k[0] == "table"}
    for k in ours:
        if k[0] == "table":
            yield {"delete": {"table": {"family": k[1], "name": k[2]}}}
    rest = [k for k in ours if k[1:4] not in tables]
    chains = {k[1:5] for k in rest if k[0] == "chain"}
    for k in rest:
        if k[0] == "rule" and k[1:5] not in chains:
            yield {"delete": {"rule": {"family": k[1], "table": k[2], "chain": k[4], "handle": k[5]}}}
    for verb in ("flush", "delete"):
        for family, table, _, name in sorted(chains):
            yield {verb: {"chain": {"family": family, "table": table, "name": name}}}
    for k in rest:
        if k[0] in ("set", "map"):
            yield {"delete": {k[0]: {"family": k[1], "table": k[2], "name": k[4]}}}


def gateway_of(net: Net) -> IPv4Address:
    return net.subnet.network_address + 1
