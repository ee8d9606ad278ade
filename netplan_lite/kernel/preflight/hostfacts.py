"""Pre-flight's host facts: `gather(topology) -> HostFacts` reads the live host namespace,
best effort: a fact that cannot be read is left out (None or empty), never an error.

It reads a few sysctls, /run/nsnet/sysctl.json, one route dump (through the
rtnl codec), listening sockets (sock_diag) only when the topology has port
forwards, and, when nft is installed, runs `nft -j list chains` (through
nftables.py) plus `nft -j list table` of a table holding a forward chain with
policy drop; legacy iptables' and ip6tables' filter tables are read with
getsockopt only when they exist. When the topology needs IPv6 forwarding, it
also reads /proc/net/ipv6_route for default routes learned from router
advertisements and the accept_ra of their links. What the facts mean is
checks.py's business.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import shutil
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any, Iterable, Iterator

from .. import hostsysctl, iptables, nftables
from ... import labels
from ...model.topology import Topology
from ...resources.docker_user import DOCKER_USER
from ...resources.ids import Kind
from ...resources.nat import IP_FORWARD, IPV6_FORWARD, host_forwarding
from ..rtnl.link import link_by_index
from ..rtnl.route import RTN_BLACKHOLE, RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE, Route, dump_routes
from ..rtnl.socket import NetlinkSocket, RtnlSocket
from .checks import FIREWALLD, LEGACY, LEGACY6, ForwardChain, HostFacts, HostRoute, Listener

BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"
BRIDGE_NF_CALL_IP6TABLES = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
PROC_NET = "/proc/thread-self/net"  # the calling thread's namespace (nsnet runs this in the host's)
FORWARD_FAMILIES = ("ip", "ip6", "inet", "bridge")  # families whose forward hook sees IPv4, IPv6 or bridged frames


# reading the host (best effort)


def gather(topology: Topology, docker_user: bool | None = None, docker_user6: bool | None = None) -> HostFacts:
    """The facts `check` needs, read from the calling thread's network namespace;
    `docker_user`/`docker_user6`, when the caller's observation already read Docker's chain in
    iptables/ip6tables, are not read again.

    Never raises for a fact it cannot read (missing file, no nft, no permission):
    that fact stays unknown and its check is skipped."""
    facts: dict[str, Any] = {}
    readers = [_read_ip_forward, _read_bridge_nf, _read_forward_chains]
    for key, known, kind in (("docker_user", docker_user, Kind.IPTABLES_RULE), ("docker_user6", docker_user6, Kind.IP6TABLES_RULE)):
        if known is None:
            readers.append(functools.partial(_read_docker_user, key, kind))
        else:
            facts[key] = known
    if 6 in host_forwarding(topology):
        readers.append(_read_router_advertised)
    for read in readers:
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


def _read_docker_user(key: str, kind: Kind) -> dict[str, Any]:
    return {key: iptables.read_chain(kind, DOCKER_USER) is not None}


def _read_bridge_nf() -> dict[str, Any]:
    facts = {}
    for key, path in (("bridge_nf_call_iptables", BRIDGE_NF_CALL_IPTABLES), ("bridge_nf_call_ip6tables", BRIDGE_NF_CALL_IP6TABLES)):
        try:
            with open(path) as f:
                facts[key] = f.read().strip() != "0"
        except FileNotFoundError:
            facts[key] = False  # br_netfilter not loaded: bridged frames skip the ip/ip6 hooks
    return facts


RTF_ADDRCONF = 0x00040000  # a route learned from a router advertisement (linux/ipv6_route.h)
ACCEPT_RA = "/proc/sys/net/ipv6/conf/{}/accept_ra"  # by path: a link name may hold a dot


def _read_router_advertised() -> dict[str, Any]:
    facts: dict[str, Any] = {"ipv6_forwarding": hostsysctl.read(IPV6_FORWARD) != "0"}
    with open(os.path.join(PROC_NET, "ipv6_route")) as f:
        links = ra_default_links(f)
    found = []
    for link in links:
        with contextlib.suppress(OSError):
            with open(ACCEPT_RA.format(link)) as f:
                if f.read().strip() == "1":
                    found.append(link)
    facts["ra_defaults"] = tuple(found)
    return facts


def ra_default_links(lines: Iterable[str]) -> list[str]:
    """Links with a default route learned from router advertisements, from /proc/net/ipv6_route
    (destination, its length, source, its length, next hop, metric, refcount, use, flags, device)."""
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) == 10 and int(fields[0], 16) == 0 and int(fields[1], 16) == 0 and int(fields[8], 16) & RTF_ADDRCONF:
            found.add(fields[9])
    return sorted(found)


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
    dropping = sorted(
        {
            (c["family"], c["table"])
            for item in items
            if (c := item.get("chain"))
            and c.get("hook") == "forward"
            and c.get("family") in FORWARD_FAMILIES
            and (c.get("policy") == "drop" or c.get("table") == FIREWALLD)  # firewalld's policy accept ends in a reject
        }
    )
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
    for table in LEGACY_TABLES:
        try:
            legacy = read_legacy_forward(table)
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
    last_rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
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
            last_rules[(r.get("family"), r.get("table"), r.get("chain"))] = expr
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
        policy = "drop" if _drops_everything(last_rules.get((c["family"], c["table"], c["name"]), [])) else c.get("policy", "accept")
        found.append(ForwardChain(c["family"], c["table"], c["name"], policy, frozenset(into), frozenset(out)))
    return sorted(found, key=lambda c: (c.family, c.table, c.chain))


def _drops_everything(expr: list[dict[str, Any]]) -> bool:
    """A rule without a match whose verdict is drop or reject (firewalld ends its forward chain
    so, under policy accept): the chain drops what no earlier rule took, as a policy drop would."""
    verbs = {key for statement in expr if isinstance(statement, dict) for key in statement}
    return bool(verbs & {"drop", "reject"}) and verbs <= {"counter", "drop", "reject", "log"}


# legacy iptables and ip6tables (x_tables): their filter tables are invisible to nft. Read
# with the same getsockopt calls iptables-legacy-save makes, and only when the table already
# exists: asking for a missing table would make the kernel instantiate it.

IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES = 64, 65  # IP6T_SO_GET_* have the same numbers (at SOL_IPV6)
NF_INET_FORWARD = 2
NF_DROP, NF_ACCEPT = 0, 1
IPT_INV_VIA_IN, IPT_INV_VIA_OUT = 0x01, 0x02  # the same in ip6tables
IP_TABLES_NAMES = "/proc/net/ip_tables_names"
IP6_TABLES_NAMES = "/proc/net/ip6_tables_names"


class _IptIp(ctypes.Structure):
    _fields_ = [
        ("src", ctypes.c_uint32),
        ("dst", ctypes.c_uint32),
        ("smsk", ctypes.c_uint32),
        ("dmsk", ctypes.c_uint32),
        ("iniface", ctypes.c_char * 16),
        ("outiface", ctypes.c_char * 16),
        ("iniface_mask", ctypes.c_ubyte * 16),
        ("outiface_mask", ctypes.c_ubyte * 16),
        ("proto", ctypes.c_uint16),
        ("flags", ctypes.c_uint8),
        ("invflags", ctypes.c_uint8),
    ]


class _IptEntry(ctypes.Structure):
    _fields_ = [
        ("ip", _IptIp),
        ("nfcache", ctypes.c_uint),
        ("target_offset", ctypes.c_uint16),
        ("next_offset", ctypes.c_uint16),
        ("comefrom", ctypes.c_uint),
        ("pcnt", ctypes.c_uint64),
        ("bcnt", ctypes.c_uint64),
    ]


class _Ip6tIp6(ctypes.Structure):
    _fields_ = [
        ("src", ctypes.c_uint32 * 4),
        ("dst", ctypes.c_uint32 * 4),
        ("smsk", ctypes.c_uint32 * 4),
        ("dmsk", ctypes.c_uint32 * 4),
        ("iniface", ctypes.c_char * 16),
        ("outiface", ctypes.c_char * 16),
        ("iniface_mask", ctypes.c_ubyte * 16),
        ("outiface_mask", ctypes.c_ubyte * 16),
        ("proto", ctypes.c_uint16),
        ("tos", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("invflags", ctypes.c_uint8),
    ]


class _Ip6tEntry(ctypes.Structure):
    """struct ip6t_entry: its ip6t_ip6 is named `ip` here, as in _IptEntry, for the one parser."""

    _fields_ = [
        ("ip", _Ip6tIp6),
        ("nfcache", ctypes.c_uint),
        ("target_offset", ctypes.c_uint16),
        ("next_offset", ctypes.c_uint16),
        ("comefrom", ctypes.c_uint),
        ("pcnt", ctypes.c_uint64),
        ("bcnt", ctypes.c_uint64),
    ]


class _IptGetinfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * 32),
        ("valid_hooks", ctypes.c_uint),
        ("hook_entry", ctypes.c_uint * 5),
        ("underflow", ctypes.c_uint * 5),
        ("num_entries", ctypes.c_uint),
        ("size", ctypes.c_uint),
    ]


class _IptGetEntries(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 32), ("size", ctypes.c_uint), ("entrytable", _IptEntry * 0)]


_TARGET_HEADER = 32  # struct xt_entry_target: u16 size, char name[29], u8 revision
_ENTRIES_OFFSET = _IptGetEntries.entrytable.offset


def _iface_pattern(raw: bytes) -> str:
    name = raw.split(b"\0", 1)[0].decode(errors="replace")
    return name[:-1] + "*" if name.endswith("+") else name  # iptables' wildcard is a trailing +


@dataclass(frozen=True)
class LegacyTable:
    """One legacy x_tables family: where the kernel lists its tables and how to ask for one."""

    family: str  # ForwardChain.family
    names: str  # /proc/net/*_tables_names
    address_family: int
    level: int  # of the getsockopt calls
    entry: type[ctypes.Structure]


LEGACY_TABLES = (
    LegacyTable(LEGACY, IP_TABLES_NAMES, socket.AF_INET, socket.SOL_IP, _IptEntry),
    LegacyTable(LEGACY6, IP6_TABLES_NAMES, socket.AF_INET6, socket.IPPROTO_IPV6, _Ip6tEntry),
)


def parse_ipt_entries(
    blob: bytes, hook_entry: list[int], underflow: list[int], valid_hooks: int, table: LegacyTable = LEGACY_TABLES[0]
) -> ForwardChain:
    """The filter FORWARD chain of a legacy table (the entries IPT_SO_GET_ENTRIES or
    IP6T_SO_GET_ENTRIES returns, and the table's hook entry and underflow offsets)."""
    into: set[str] = set()
    out: set[str] = set()
    policy = "accept"
    other_hooks = [(hook_entry[h], underflow[h]) for h in range(5) if h != NF_INET_FORWARD and valid_hooks & (1 << h)]
    offset = 0
    while offset + ctypes.sizeof(table.entry) <= len(blob):
        entry: Any = table.entry.from_buffer_copy(blob, offset)
        if entry.next_offset == 0:
            break
        target = offset + entry.target_offset
        name = blob[target + 2 : target + 31].split(b"\0", 1)[0]
        verdict = struct.unpack_from("=i", blob, target + _TARGET_HEADER)[0] if not name else None
        if offset == underflow[NF_INET_FORWARD] and verdict is not None:
            policy = {-NF_DROP - 1: "drop", -NF_ACCEPT - 1: "accept"}.get(verdict, "accept")
        elif verdict == -NF_ACCEPT - 1 and not any(first <= offset <= last for first, last in other_hooks):
            if entry.ip.iniface and not entry.ip.invflags & IPT_INV_VIA_IN:
                into.add(_iface_pattern(entry.ip.iniface))
            if entry.ip.outiface and not entry.ip.invflags & IPT_INV_VIA_OUT:
                out.add(_iface_pattern(entry.ip.outiface))
        offset += entry.next_offset
    return ForwardChain(table.family, "filter", "FORWARD", policy, frozenset(into), frozenset(out))


def read_legacy_forward(table: LegacyTable = LEGACY_TABLES[0]) -> ForwardChain | None:
    """Legacy iptables' (or ip6tables') filter FORWARD chain, or None when that table does not exist."""
    try:
        with open(table.names) as f:
            if "filter" not in f.read().split():
                return None
    except FileNotFoundError:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    with socket.socket(table.address_family, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        info = _IptGetinfo(name=b"filter")
        size = ctypes.c_uint(ctypes.sizeof(info))
        if libc.getsockopt(sock.fileno(), table.level, IPT_SO_GET_INFO, ctypes.byref(info), ctypes.byref(size)) != 0:
            raise OSError(ctypes.get_errno(), "IPT_SO_GET_INFO")
        if not info.valid_hooks & (1 << NF_INET_FORWARD):
            return None
        buf = ctypes.create_string_buffer(_ENTRIES_OFFSET + info.size)
        head = _IptGetEntries.from_buffer(buf)
        head.name, head.size = b"filter", info.size
        size = ctypes.c_uint(len(buf))
        if libc.getsockopt(sock.fileno(), table.level, IPT_SO_GET_ENTRIES, buf, ctypes.byref(size)) != 0:
            raise OSError(ctypes.get_errno(), "IPT_SO_GET_ENTRIES")
        blob = buf.raw[_ENTRIES_OFFSET : _ENTRIES_OFFSET + info.size]
    return parse_ipt_entries(blob, list(info.hook_entry), list(info.underflow), info.valid_hooks, table)


# sockets

_TCP_LISTEN, _UDP_UNCONNECTED = "0A", "07"


def _hex_address(text: str) -> str:
    """An address of /proc/net/{tcp,udp}{,6}: 32-bit words in host byte order."""
    raw = b"".join(struct.pack("=I", int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
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
                    found.extend(listener for listener in diag_listeners(family, protocol) if listener.port in ports)
                    continue
                except OSError:
                    pass
            try:
                with open(os.path.join(proc_net, table)) as f:
                    next(f, None)  # the header
                    found.extend(parse_proc_net(f, protocol, ports))
            except OSError:
                continue  # no IPv6 on this kernel, say
    return sorted(set(found), key=lambda listener: (listener.protocol, listener.port, listener.address))


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
                raw = data[body + 8 : body + 8 + (4 if family == socket.AF_INET else 16)]
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
    return [
        HostRoute(network, *devices.get(route.oif or 0, _NO_DEVICE), route.proto, RTN_KINDS[route.kind], route.gateway) for network, route in found
    ]


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
