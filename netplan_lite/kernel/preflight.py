"""Pre-flight checks: what on this host will make a correct topology fail at run time.

Warnings, never errors: nsnet does not change these host settings itself
(except net.ipv4.ip_forward, which it turns on for port forwards and
masquerade), and the user may know better. Two halves:

- `gather(topology) -> HostFacts` reads the live host namespace, best effort:
  a fact that cannot be read is left out (None or empty), never an error. It
  reads two sysctls, /run/nsnet/sysctl.json, one route dump, listening
  sockets (sock_diag) only when the topology has port forwards, and, when nft
  is installed, runs `nft -j list chains` (through nftables.py) plus `nft -j
  list table` of a table holding a forward chain with policy drop; legacy
  iptables' filter table is read with getsockopt only when it exists.
- `check(topology, facts) -> list[PreflightWarning]` is pure (unit-tested
  without root). Each warning has a stable code:

  ip-forward-off        namespaces route to another bridge through the host,
                        ip_forward is 0 and nothing in the topology makes nsnet
                        turn it on (only port forwards and masquerade do)
  ip-forward-temporary  the same need, ip_forward is 1 only because another
                        nsnet topology holds it: nsnet restores 0 when that
                        topology is destroyed
  forward-policy-drop   a base chain at hook forward with policy drop (Docker's
                        `ip filter FORWARD`, firewalld, legacy iptables) that
                        the topology's forwarded traffic passes through and no
                        rule visibly accepts
  host-port-in-use      a host socket listens on (tcp) or is bound to (udp) a
                        published port: the DNAT takes its traffic
  subnet-overlaps-route a bridge subnet overlaps a host route that is not the
                        bridge's own (default routes, /0 and /1, do not count)
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import os
import shutil
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from typing import Any, Iterable, Iterator

from . import hostsysctl, nftables
from .. import labels
from ..engine.warnings import PreflightWarning
from ..model.topology import Bridge, Interface, Namespace, PortForward, Topology
from .rtnl.link import link_by_index
from .rtnl.route import RTN_BLACKHOLE, RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE, Route, dump_routes
from .rtnl.socket import NetlinkSocket, RtnlSocket

LOOPBACK = IPv4Network("127.0.0.0/8")
ANY4 = IPv4Address("0.0.0.0")
ANY6 = IPv6Address("::")
IP_FORWARD = "net.ipv4.ip_forward"
BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"
PROC_NET = "/proc/thread-self/net"  # the calling thread's namespace (nsnet runs this in the host's)
FORWARD_FAMILIES = ("ip", "inet", "bridge")  # families whose forward hook sees IPv4 or bridged frames
LEGACY = "iptables-legacy"  # ForwardChain.family of legacy iptables' filter FORWARD
PROTO_KERNEL = 2


@dataclass(frozen=True)
class ForwardChain:
    """A base chain at the forward hook. `accepts_in`/`accepts_out`: interface names
    (nft wildcards like `br-*`) that a rule with verdict accept in the same table
    matches as input/output interface; a bridge found in both counts as handled."""

    family: str  # ip, inet, bridge, or LEGACY
    table: str
    chain: str
    policy: str  # accept, drop
    accepts_in: frozenset[str] = frozenset()
    accepts_out: frozenset[str] = frozenset()

    @property
    def title(self) -> str:
        if self.family == LEGACY:
            return f"iptables-legacy chain {self.table} {self.chain}"
        return f"nft chain {self.family} {self.table} {self.chain}"


@dataclass(frozen=True)
class Listener:
    """A host socket: tcp in LISTEN state, or udp bound and not connected."""

    protocol: str  # tcp, udp
    address: str  # as bound: 0.0.0.0, 127.0.0.1, ::, ::ffff:10.0.0.1, ::1
    port: int


@dataclass(frozen=True)
class HostRoute:
    """An IPv4 route of the host's main table."""

    network: IPv4Network
    device: str | None  # None: no single output device (multipath, blackhole, ...)
    owner: str | None = None  # the nsnet topology labelling the device (link alias nsnet:<topology>)
    proto: int = PROTO_KERNEL  # 2 kernel, 225 nsnet, 3 boot, 4 static, ...
    kind: str = "unicast"  # unicast, blackhole, unreachable, prohibit
    via: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """What pre-flight knows about the host; None or empty: could not be read (or not needed)."""

    ip_forward: bool | None = None
    ip_forward_holders: tuple[str, ...] = ()  # nsnet topologies holding ip_forward=1 (/run/nsnet/sysctl.json)
    ip_forward_original: str | None = None  # the value nsnet found before the first holder set it
    bridge_nf_call_iptables: bool | None = None  # br_netfilter: bridged IPv4 traverses the ip/inet hooks
    forward_chains: tuple[ForwardChain, ...] = ()
    listeners: tuple[Listener, ...] = ()  # only on the topology's published ports
    routes: tuple[HostRoute, ...] = ()  # only those overlapping one of the topology's subnets


# what the topology needs of the host


def _ports(topology: Topology) -> dict[str, list[tuple[Namespace, Interface]]]:
    """Bridge name -> the (namespace, interface) attached to it."""
    ports: dict[str, list[tuple[Namespace, Interface]]] = {b.name: [] for b in topology.bridges}
    for ns in topology.namespaces:
        for iface in ns.interfaces:
            ports.setdefault(iface.bridge, []).append((ns, iface))
    return ports


def _target(topology: Topology, forward: PortForward) -> tuple[str, str] | None:
    """(bridge, interface) a forward goes to."""
    ns = topology.namespace(forward.namespace)
    if ns is None or not ns.interfaces:
        return None
    iface = ns.interface(forward.interface) if forward.interface else ns.interfaces[0]
    return (iface.bridge, iface.name) if iface is not None else None


def _routed_by_host(forward: PortForward) -> bool:
    """Whether traffic of the forward is forwarded by the host (and not only the host's own)."""
    return forward.host_address is None or forward.host_address not in LOOPBACK


def nsnet_enables_ip_forward(topology: Topology) -> bool:
    """nsnet sets ip_forward=1 as a plan resource exactly when the topology has an nft table:
    any port forward or a bridge with masquerade (see nat.desired_nat)."""
    return bool(topology.port_forwards) or any(b.masquerade for b in topology.bridges)


def cross_bridge_routes(topology: Topology) -> list[tuple[str, str, str]]:
    """(namespace, from bridge, to bridge): a namespace reaching another bridge's subnet
    through the host, i.e. by a route (the implicit default one included) whose
    gateway is the host's address on one of its bridges."""
    gateways = {b.gateway: b for b in topology.bridges if b.gateway is not None}
    ports = _ports(topology)
    found = []
    for ns in topology.namespaces:
        attached = {i.bridge for i in ns.interfaces}
        if ns.routes is None:
            first = topology.bridge(ns.interfaces[0].bridge) if ns.interfaces else None
            routes = [(IPv4Network("0.0.0.0/0"), first)] if first is not None and first.gateway is not None else []
        else:
            routes = [(r.to, gateways.get(r.via)) for r in ns.routes]
        for other in topology.bridges:
            if other.name in attached or other.subnet is None or not ports.get(other.name):
                continue
            best = _longest_match(routes, other.subnet)
            if best is not None and best[1] is not None and best[1].name in attached:
                found.append((ns.name, best[1].name, other.name))  # not via a neighbour namespace (a router)
    return sorted(set(found))


def _longest_match(routes: list[tuple[IPv4Network, Bridge | None]], network: IPv4Network) -> tuple[IPv4Network, Bridge | None] | None:
    """The route the kernel picks for `network`: the longest prefix that covers all of it."""
    covering = [route for route in routes if network.subnet_of(route[0])]
    return max(covering, key=lambda route: route[0].prefixlen, default=None)


def _forwarded_traffic(topology: Topology, bridge_nf: bool) -> dict[str, list[str]]:
    """Bridge -> what of its traffic crosses a hook-forward chain of family ip/inet."""
    ports = _ports(topology)
    reasons: dict[str, list[str]] = {b.name: [] for b in topology.bridges}
    published = {t[0] for f in topology.port_forwards if _routed_by_host(f) and (t := _target(topology, f))}
    for bridge in sorted(published):
        reasons.setdefault(bridge, []).append("port forwards from other hosts and namespaces")
    for bridge in topology.bridges:
        if bridge.masquerade:
            reasons[bridge.name].append("masqueraded traffic to the outside")
    pairs: dict[str, set[str]] = {}
    for _, src, dst in cross_bridge_routes(topology):
        pairs.setdefault(src, set()).add(dst)
        pairs.setdefault(dst, set()).add(src)
    for bridge, others in pairs.items():
        reasons.setdefault(bridge, []).append(f"traffic to and from {', '.join(sorted(others))}")
    if bridge_nf:
        for bridge, attached in ports.items():
            if len(attached) >= 2:
                reasons.setdefault(bridge, []).append("traffic between its namespaces (bridge-nf-call-iptables=1)")
    return {b: r for b, r in reasons.items() if r}


def _bridged_traffic(topology: Topology) -> dict[str, list[str]]:
    """Bridge -> what of its traffic crosses a bridge-family hook-forward chain (frames between ports)."""
    return {b: ["traffic between its namespaces"] for b, attached in _ports(topology).items() if len(attached) >= 2}


# the checks (pure)


def check(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """Every warning, in a stable order."""
    return [
        *check_ip_forward(topology, facts),
        *check_forward_policy(topology, facts),
        *check_host_ports(topology, facts),
        *check_subnet_routes(topology, facts),
    ]


def check_ip_forward(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """Only what nsnet will not fix: with forwards or masquerade, its plan turns ip_forward on."""
    if nsnet_enables_ip_forward(topology) or facts.ip_forward is None:
        return []
    crossings = cross_bridge_routes(topology)
    if not crossings:
        return []
    pairs = sorted({f"{src} -> {dst}" for _, src, dst in crossings})
    what = f"namespaces route between bridges through the host ({', '.join(pairs)})"
    if not facts.ip_forward:
        return [PreflightWarning(
            "ip-forward-off",
            f"net.ipv4.ip_forward is 0 and {what}: the host will not forward that traffic; "
            "nsnet turns ip_forward on only for port forwards and masquerade",
            "enable it with `sysctl -w net.ipv4.ip_forward=1` and keep it in /etc/sysctl.d/")]
    others = [h for h in facts.ip_forward_holders if h != topology.name]
    if others and facts.ip_forward_original == "0":
        return [PreflightWarning(
            "ip-forward-temporary",
            f"net.ipv4.ip_forward is 1 only while nsnet topology {', '.join(others)} holds it and {what}: "
            "when the last of them is destroyed, nsnet restores 0 and that traffic stops",
            "after that, `sysctl -w net.ipv4.ip_forward=1`; or give this topology a port forward or masquerade so it holds ip_forward too")]
    return []


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_forward_policy(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """One warning per (drop-policy forward chain, bridge whose traffic crosses it and that no
    accept rule of the chain's table names both ways). Rules are not evaluated beyond that."""
    routed = _forwarded_traffic(topology, bool(facts.bridge_nf_call_iptables))
    bridged = _bridged_traffic(topology)
    found = []
    for chain in facts.forward_chains:
        if chain.policy != "drop":
            continue
        affected = bridged if chain.family == "bridge" else routed
        for bridge, reasons in sorted(affected.items()):
            into, out = _matches(bridge, chain.accepts_in), _matches(bridge, chain.accepts_out)
            if (into or out) if chain.family == "bridge" else (into and out):
                continue  # frames of a bridge-family chain enter and leave by the same bridge
            found.append(PreflightWarning(
                "forward-policy-drop",
                f"the host's {chain.title} (hook forward) has policy drop and no rule there accepts bridge {bridge}: "
                f"it drops {bridge}'s {', '.join(reasons)}",
                _accept_hint(chain, bridge)))
    return found


def _accept_hint(chain: ForwardChain, bridge: str) -> str:
    if chain.family == LEGACY:
        return (f"accept it: `iptables-legacy -I {chain.chain} -i {bridge} -j ACCEPT` and the same with `-o {bridge}`; "
                "with Docker, insert into DOCKER-USER instead")
    if chain.family == "bridge":
        return f"accept it: `nft insert rule bridge {chain.table} {chain.chain} meta ibrname {bridge} accept`, or match its ports by iifname"
    hint = f"accept it: `nft insert rule {chain.family} {chain.table} {chain.chain} iifname {bridge} accept` and the same with oifname"
    if chain.family == "ip" and chain.table == "filter":
        hint += f"; with Docker, `iptables -I DOCKER-USER -i {bridge} -j ACCEPT` and the same with `-o {bridge}`"
    return hint


def _listener_effect(listener: Listener, forward: PortForward) -> tuple[bool, str | None]:
    """(listens on every address, the IPv4 address it is bound to) when the forward takes
    traffic meant for it; (False, None) when it does not."""
    address = ip_address(listener.address)
    if isinstance(address, IPv6Address):
        if address == ANY6:
            return True, None  # dual-stack unless IPV6_V6ONLY: IPv4 reaches it
        mapped = address.ipv4_mapped
        if mapped is None:
            return False, None  # IPv6 only: the IPv4 DNAT never takes its traffic
        address = mapped
    if address == ANY4:
        return True, None
    if forward.host_address is None or forward.host_address == address:
        return False, str(address)
    return False, None


def check_host_ports(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """One warning per port forward whose DNAT takes IPv4 traffic meant for a host socket."""
    found = []
    for forward in topology.port_forwards:
        proto = forward.protocol.value
        hits = [(l, *_listener_effect(l, forward)) for l in facts.listeners if l.protocol == proto and l.port == forward.host_port]
        hits = [h for h in hits if h[1] or h[2]]
        if not hits:
            continue
        port = forward.host_port
        bound = " and ".join(sorted({f"[{l.address}]:{port}" if ":" in l.address else f"{l.address}:{port}" for l, _, _ in hits}))
        published = "*" if forward.host_address is None else str(forward.host_address)
        traffic = "connections" if proto == "tcp" else "datagrams"
        if forward.host_address is not None:
            destinations = [str(forward.host_address)]
        elif any(every for _, every, _ in hits):
            destinations = []
        else:
            destinations = sorted({a for _, _, a in hits if a}, key=lambda a: IPv4Address(a))
        if not destinations:
            target = f"IPv4 {traffic} to port {port} of every host address (the host's own too)"
        elif all(IPv4Address(a) in LOOPBACK for a in destinations):
            target = f"this host's {traffic} to {' and '.join(f'{a}:{port}' for a in destinations)}"
        else:
            target = f"{traffic} to {' and '.join(f'{a}:{port}' for a in destinations)} (the host's own too)"
        verb = "listens on" if proto == "tcp" else "is bound to"
        found.append(PreflightWarning(
            "host-port-in-use",
            f"{proto} port {port} is in use on the host (a socket {verb} {bound}): the port forward "
            f"{proto} {published}:{port} -> {forward.namespace}:{forward.port} sends {target} to "
            f"{forward.namespace} instead of to that socket",
            f"`ss -{'lt' if proto == 'tcp' else 'lu'}np 'sport = :{port}'` names the process; "
            "publish another host_port, or a host_address it is not bound to"))
    return found


def _device(route: HostRoute) -> str:
    if route.kind != "unicast":
        return f"({route.kind})"
    where = f"dev {route.device}" if route.device else "multipath"
    if route.via:
        where = f"via {route.via} {where}"
    if route.owner is not None:
        where += f" (a bridge of nsnet topology {route.owner})"
    return where


def is_default(network: IPv4Network) -> bool:
    """A default route, or half of one (0.0.0.0/1 and 128.0.0.0/1, as VPN clients install):
    the bridge's own route is more specific, so it costs nothing."""
    return network.prefixlen <= 1


def _is_bridges_own(route: HostRoute, topology: Topology, bridge: Bridge) -> bool:
    """nsnet's own routes (kernel or proto 225 on a link it labelled for this topology), and
    any route to the bridge itself: its traffic goes where the namespaces are."""
    if route.owner != topology.name:
        return False
    return route.proto in (PROTO_KERNEL, labels.ROUTE_PROTO) or route.device == bridge.name


def check_subnet_routes(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """One warning per (bridge subnet, overlapping host route that is not the bridge's own)."""
    found = []
    for bridge in topology.bridges:
        subnet = bridge.subnet
        if subnet is None:
            continue
        for route in sorted(facts.routes, key=lambda r: (r.network, r.device or "")):
            net = route.network
            if is_default(net) or not net.overlaps(subnet) or _is_bridges_own(route, topology, bridge):
                continue
            where = _device(route)
            if net == subnet:
                message = (f"bridge {bridge.name}'s subnet {subnet} already has a host route, {net} {where}: "
                           f"the host may send traffic for the namespaces on {bridge.name} (port forwards too) there instead")
                look = f"ip -4 route show {subnet}"
            elif net.subnet_of(subnet):
                message = (f"host route {net} {where} lies inside bridge {bridge.name}'s subnet {subnet}: it is more specific, so "
                           f"the host sends traffic for {net} there and cannot reach namespaces on {bridge.name} with those addresses")
                look = f"ip -4 route show root {subnet}"
            else:
                message = (f"bridge {bridge.name}'s subnet {subnet} lies inside host route {net} {where}: once {bridge.name} "
                           f"has it, the host sends traffic for {subnet} to {bridge.name} (more specific), and what has "
                           f"those addresses behind {route.device or 'that route'} becomes unreachable from the host")
                look = f"ip -4 route show match {subnet}"
            found.append(PreflightWarning(
                "subnet-overlaps-route", message, f"choose a subnet no host route overlaps; `{look}` shows them"))
    return found


# reading the host (best effort)


def gather(topology: Topology) -> HostFacts:
    """The facts `check` needs, read from the calling thread's network namespace.

    Never raises for a fact it cannot read (missing file, no nft, no permission):
    that fact stays unknown and its check is skipped."""
    facts: dict[str, Any] = {}
    for read in (_read_ip_forward, _read_bridge_nf, _read_forward_chains):
        try:
            facts.update(read())
        except Exception:  # noqa: BLE001 -- best effort by design: pre-flight never fails a command
            pass
    try:
        facts["listeners"] = tuple(read_listeners({(f.protocol.value, f.host_port) for f in topology.port_forwards}))
    except Exception:  # noqa: BLE001
        pass
    try:
        facts["routes"] = tuple(read_routes([b.subnet for b in topology.bridges if b.subnet is not None]))
    except Exception:  # noqa: BLE001
        pass
    return HostFacts(**facts)


def _read_ip_forward() -> dict[str, Any]:
    facts: dict[str, Any] = {"ip_forward": hostsysctl.read(IP_FORWARD) != "0"}
    try:
        with open(hostsysctl.REGISTRY) as f:
            entry = json.load(f).get(IP_FORWARD) or {}
        facts["ip_forward_holders"] = tuple(sorted(entry.get("holders", [])))
        facts["ip_forward_original"] = entry.get("original")
    except (OSError, ValueError, AttributeError):
        pass
    return facts


def _read_bridge_nf() -> dict[str, Any]:
    try:
        with open(BRIDGE_NF_CALL_IPTABLES) as f:
            return {"bridge_nf_call_iptables": f.read().strip() != "0"}
    except FileNotFoundError:
        return {"bridge_nf_call_iptables": False}  # br_netfilter not loaded: bridged frames skip iptables


def read_nft_forward_chains() -> list[ForwardChain]:
    """`nft -j list chains` (chains only: ~8x cheaper than `list ruleset` on a host with a
    thousand rules), then `nft -j list table` of each table holding a forward chain with
    policy drop, for its accept rules. Through nftables.py, the only module that runs nft."""
    if shutil.which("nft") is None:
        return []
    done = nftables._nft(["-j", "list", "chains"])
    if done.returncode != 0 or not done.stdout.strip():
        return []
    items = json.loads(done.stdout).get("nftables", [])
    dropping = sorted({(c["family"], c["table"]) for item in items if (c := item.get("chain"))
                       and c.get("hook") == "forward" and c.get("family") in FORWARD_FAMILIES and c.get("policy") == "drop"})
    for family, table in dropping:
        listed = nftables._nft(["-j", "list", "table", family, table])
        if listed.returncode == 0 and listed.stdout.strip():
            items += [item for item in json.loads(listed.stdout).get("nftables", []) if "rule" in item]
    return parse_ruleset({"nftables": items})


def _read_forward_chains() -> dict[str, Any]:
    chains: list[ForwardChain] = []
    try:
        chains.extend(read_nft_forward_chains())
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # no nft, or an answer it could not give: no nft facts, the legacy table may still be read
    try:
        legacy = read_legacy_forward()
    except OSError:
        legacy = None
    if legacy is not None:
        chains.append(legacy)
    return {"forward_chains": tuple(chains)}


_IN_KEYS = ("iifname", "ibrname")
_OUT_KEYS = ("oifname", "obrname")


def _interface_matches(expr: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(meta key, name) of each positive interface-name match of a rule."""
    for statement in expr:
        match = statement.get("match") if isinstance(statement, dict) else None
        if not isinstance(match, dict) or match.get("op") not in ("==", "in"):
            continue
        left, right = match.get("left"), match.get("right")
        key = left.get("meta", {}).get("key") if isinstance(left, dict) else None
        if key not in _IN_KEYS + _OUT_KEYS:
            continue
        names = right.get("set", []) if isinstance(right, dict) else [right]
        for name in names:
            if isinstance(name, str):
                yield key, name


def parse_ruleset(doc: dict[str, Any]) -> list[ForwardChain]:
    """Base chains at hook forward (families ip, inet, bridge) of `nft -j list ruleset`,
    with the interface names that accept rules of their table match."""
    heads: list[dict[str, Any]] = []
    other_hooks: set[tuple[str, str, str]] = set()  # rules there (input, output, ...) accept nothing forwarded
    accepts: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    items = doc.get("nftables", [])
    for item in items:
        c = item.get("chain")
        if c and c.get("hook") == "forward" and c.get("family") in FORWARD_FAMILIES:
            heads.append(c)
        elif c and c.get("hook"):
            other_hooks.add((c.get("family"), c.get("table"), c.get("name")))
    for item in items:
        r = item.get("rule")
        if r:
            expr = r.get("expr") or []
            if (r.get("family"), r.get("table"), r.get("chain")) in other_hooks:
                continue
            if not any(isinstance(s, dict) and "accept" in s for s in expr):
                continue
            into, out = accepts.setdefault((r.get("family"), r.get("table")), (set(), set()))
            for key, name in _interface_matches(expr):
                (into if key in _IN_KEYS else out).add(name)
    found = []
    for c in heads:
        into, out = accepts.get((c["family"], c["table"]), (set(), set()))
        found.append(ForwardChain(c["family"], c["table"], c["name"], c.get("policy", "accept"), frozenset(into), frozenset(out)))
    return sorted(found, key=lambda c: (c.family, c.table, c.chain))


# legacy iptables (x_tables): its filter table is invisible to nft. Read with the same
# getsockopt calls iptables-legacy-save makes, and only when the table already exists:
# asking for a missing table would make the kernel instantiate it.

IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES = 64, 65
NF_INET_FORWARD = 2
NF_DROP, NF_ACCEPT = 0, 1
IPT_INV_VIA_IN, IPT_INV_VIA_OUT = 0x01, 0x02
IP_TABLES_NAMES = "/proc/net/ip_tables_names"


class _IptIp(ctypes.Structure):
    _fields_ = [("src", ctypes.c_uint32), ("dst", ctypes.c_uint32), ("smsk", ctypes.c_uint32), ("dmsk", ctypes.c_uint32),
                ("iniface", ctypes.c_char * 16), ("outiface", ctypes.c_char * 16),
                ("iniface_mask", ctypes.c_ubyte * 16), ("outiface_mask", ctypes.c_ubyte * 16),
                ("proto", ctypes.c_uint16), ("flags", ctypes.c_uint8), ("invflags", ctypes.c_uint8)]


class _IptEntry(ctypes.Structure):
    _fields_ = [("ip", _IptIp), ("nfcache", ctypes.c_uint), ("target_offset", ctypes.c_uint16),
                ("next_offset", ctypes.c_uint16), ("comefrom", ctypes.c_uint),
                ("pcnt", ctypes.c_uint64), ("bcnt", ctypes.c_uint64)]


class _IptGetinfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 32), ("valid_hooks", ctypes.c_uint), ("hook_entry", ctypes.c_uint * 5),
                ("underflow", ctypes.c_uint * 5), ("num_entries", ctypes.c_uint), ("size", ctypes.c_uint)]


class _IptGetEntries(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 32), ("size", ctypes.c_uint), ("entrytable", _IptEntry * 0)]


_TARGET_HEADER = 32  # struct xt_entry_target: u16 size, char name[29], u8 revision
_ENTRIES_OFFSET = _IptGetEntries.entrytable.offset


def _iface_pattern(raw: bytes) -> str:
    name = raw.split(b"\0", 1)[0].decode(errors="replace")
    return name[:-1] + "*" if name.endswith("+") else name  # iptables' wildcard is a trailing +


def parse_ipt_entries(blob: bytes, hook_entry: list[int], underflow: list[int], valid_hooks: int) -> ForwardChain:
    """The filter FORWARD chain of a legacy table (the entries IPT_SO_GET_ENTRIES returns,
    and the table's hook entry and underflow offsets)."""
    into: set[str] = set()
    out: set[str] = set()
    policy = "accept"
    other_hooks = [(hook_entry[h], underflow[h]) for h in range(5) if h != NF_INET_FORWARD and valid_hooks & (1 << h)]
    offset = 0
    while offset + ctypes.sizeof(_IptEntry) <= len(blob):
        entry = _IptEntry.from_buffer_copy(blob, offset)
        if entry.next_offset == 0:
            break
        target = offset + entry.target_offset
        name = blob[target + 2:target + 31].split(b"\0", 1)[0]
        verdict = struct.unpack_from("=i", blob, target + _TARGET_HEADER)[0] if not name else None
        if offset == underflow[NF_INET_FORWARD] and verdict is not None:
            policy = {-NF_DROP - 1: "drop", -NF_ACCEPT - 1: "accept"}.get(verdict, "accept")
        elif verdict == -NF_ACCEPT - 1 and not any(first <= offset <= last for first, last in other_hooks):
            if entry.ip.iniface and not entry.ip.invflags & IPT_INV_VIA_IN:
                into.add(_iface_pattern(entry.ip.iniface))
            if entry.ip.outiface and not entry.ip.invflags & IPT_INV_VIA_OUT:
                out.add(_iface_pattern(entry.ip.outiface))
        offset += entry.next_offset
    return ForwardChain(LEGACY, "filter", "FORWARD", policy, frozenset(into), frozenset(out))


def read_legacy_forward() -> ForwardChain | None:
    """Legacy iptables' filter FORWARD chain, or None when that table does not exist."""
    try:
        with open(IP_TABLES_NAMES) as f:
            if "filter" not in f.read().split():
                return None
    except FileNotFoundError:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        info = _IptGetinfo(name=b"filter")
        size = ctypes.c_uint(ctypes.sizeof(info))
        if libc.getsockopt(sock.fileno(), socket.SOL_IP, IPT_SO_GET_INFO, ctypes.byref(info), ctypes.byref(size)) != 0:
            raise OSError(ctypes.get_errno(), "IPT_SO_GET_INFO")
        if not info.valid_hooks & (1 << NF_INET_FORWARD):
            return None
        buf = ctypes.create_string_buffer(_ENTRIES_OFFSET + info.size)
        head = _IptGetEntries.from_buffer(buf)
        head.name, head.size = b"filter", info.size
        size = ctypes.c_uint(len(buf))
        if libc.getsockopt(sock.fileno(), socket.SOL_IP, IPT_SO_GET_ENTRIES, buf, ctypes.byref(size)) != 0:
            raise OSError(ctypes.get_errno(), "IPT_SO_GET_ENTRIES")
        blob = buf.raw[_ENTRIES_OFFSET:_ENTRIES_OFFSET + info.size]
    return parse_ipt_entries(blob, list(info.hook_entry), list(info.underflow), info.valid_hooks)


# sockets

_TCP_LISTEN, _UDP_UNCONNECTED = "0A", "07"


def _hex_address(text: str) -> str:
    """An address of /proc/net/{tcp,udp}{,6}: 32-bit words in host byte order."""
    raw = b"".join(struct.pack("=I", int(text[i:i + 8], 16)) for i in range(0, len(text), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def parse_proc_net(text: Iterable[str], protocol: str, ports: set[int]) -> Iterator[Listener]:
    """Listening (tcp) or bound unconnected (udp) sockets on `ports` of one /proc/net table."""
    state = _TCP_LISTEN if protocol == "tcp" else _UDP_UNCONNECTED
    wanted = {f"{p:04X}": p for p in ports}
    for line in text:
        fields = line.split(None, 4)
        if len(fields) < 4 or fields[3] != state:
            continue
        address, _, port = fields[1].rpartition(":")
        if port in wanted:
            yield Listener(protocol, _hex_address(address), wanted[port])


def read_listeners(wanted: set[tuple[str, int]], proc_net: str = PROC_NET, diag: bool = True) -> list[Listener]:
    """Host sockets on the (protocol, port)s the topology publishes; nothing read when there are none.

    Through sock_diag (netlink, as `ss` does): the kernel walks only the listening
    sockets. /proc/net/tcp walks every TCP hash bucket and costs ~3.5 ms even on an
    idle host; it is the fallback when sock_diag answers nothing (no inet_diag)."""
    found: list[Listener] = []
    for protocol in ("tcp", "udp"):
        ports = {port for proto, port in wanted if proto == protocol}
        if not ports:
            continue
        for family, table in ((socket.AF_INET, protocol), (socket.AF_INET6, protocol + "6")):
            if diag:
                try:
                    found.extend(l for l in diag_listeners(family, protocol) if l.port in ports)
                    continue
                except OSError:
                    pass
            try:
                with open(os.path.join(proc_net, table)) as f:
                    next(f, None)  # the header
                    found.extend(parse_proc_net(f, protocol, ports))
            except OSError:
                continue  # no IPv6 on this kernel, say
    return sorted(set(found), key=lambda l: (l.protocol, l.port, l.address))


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
TCP_LISTEN, TCP_CLOSE = 10, 7  # an unconnected bound UDP socket is in TCP_CLOSE
_INET_DIAG_REQ = struct.Struct("=BBBBI48x")  # family, protocol, ext, pad, states, inet_diag_sockid (any)


def diag_listeners(family: int, protocol: str) -> list[Listener]:
    """Listening tcp / unconnected udp sockets of one address family, by sock_diag."""
    proto = socket.IPPROTO_TCP if protocol == "tcp" else socket.IPPROTO_UDP
    state = TCP_LISTEN if protocol == "tcp" else TCP_CLOSE
    request = _INET_DIAG_REQ.pack(family, proto, 0, 0, 1 << state)
    found: list[Listener] = []
    with NetlinkSocket(NETLINK_SOCK_DIAG) as sock:
        for data, body, _ in sock.dump(SOCK_DIAG_BY_FAMILY, request):
            # struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid
            if data[body] == family and data[body + 1] == state:
                port = struct.unpack_from("!H", data, body + 4)[0]
                raw = data[body + 8:body + 8 + (4 if family == socket.AF_INET else 16)]
                found.append(Listener(protocol, socket.inet_ntop(family, raw), port))
    return found


# routes

RTN_KINDS = {RTN_UNICAST: "unicast", RTN_BLACKHOLE: "blackhole", RTN_UNREACHABLE: "unreachable", RTN_PROHIBIT: "prohibit"}


def read_routes(subnets: list[IPv4Network]) -> list[HostRoute]:
    """Routes of the main table that overlap one of `subnets`, with their device's owner."""
    if not subnets:
        return []
    with RtnlSocket() as sock:
        found: list[tuple[IPv4Network, Route]] = []
        for route in dump_routes(sock):
            network = IPv4Network(f"{route.dst}/{route.dst_len}", strict=False)
            if route.kind in RTN_KINDS and any(network.overlaps(s) for s in subnets):
                found.append((network, route))
        devices = _devices(sock, {route.oif for _, route in found if route.oif})
    return [HostRoute(network, *devices.get(route.oif or 0, _NO_DEVICE), route.proto, RTN_KINDS[route.kind], route.gateway)
            for network, route in found]


_NO_DEVICE: tuple[str | None, str | None] = (None, None)  # multipath, blackhole, or gone since the dump


def _devices(sock: RtnlSocket, indexes: set[int]) -> dict[int, tuple[str | None, str | None]]:
    """Link index -> (name, the nsnet topology labelling it) of each device still there."""
    devices: dict[int, tuple[str | None, str | None]] = {}
    for index in indexes:
        try:
            device = link_by_index(sock, index)
            devices[index] = (device.name, labels.owner_of(device.alias))
        except OSError:
            pass  # gone since the dump
    return devices
