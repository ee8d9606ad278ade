"""Port forwards and masquerade: the topology's nft table and the host sysctls it needs.

One table of family inet per topology holds both IP versions' rules: one transaction
replaces both, and each rule says its family (a `dnat ip`/`dnat ip6`, an address match,
or `meta nfproto`).

How a forward reaches a namespace behind a bridge (measured, see docs/design.md):
- prerouting DNAT for traffic arriving from elsewhere (other hosts, namespaces:
  hairpin), output DNAT for the host's own connections;
- the host's connections to 127.0.0.1 keep source 127.0.0.1 after DNAT: the
  bridge needs route_localnet=1 and the packets are masqueraded as they leave;
- IPv6 has no route_localnet: a connection to [::1] DNATed into a namespace times
  out (its source ::1 never leaves the host, masquerade or not), so an IPv6
  forward publishes on the host's other addresses only; its rules skip ::1 (a
  connection there reaches the host's own socket, or is refused, rather than
  hanging) and link-local destinations (a link-local source is never forwarded);
- hairpin (a namespace to the published port, back out the same bridge) is
  masqueraded, per family, so that the reply returns through the host;
- route_localnet=1 would let neighbours on the bridge reach the host's
  127.0.0.1 services (CVE-2020-8558): a raw-priority guard drops packets
  arriving on the bridge for 127.0.0.0/8, and loopback-only forwards get no
  prerouting rule at all (IPv6 needs no guard: the kernel drops ::1 arriving
  from a wire).
"""

from __future__ import annotations

import json
from ipaddress import IPv4Network, IPv6Address, IPv6Network
from typing import Any, Collection, Iterable, Iterator, Mapping

from ..model.claims import Claim, claims_clash
from ..model.topology import Bridge, Gateway, Interface, InterfaceKey, IPAddress, IPInterface, IPNetwork, Namespace, PortForward, Topology
from .nft_table import NftChain, NftMap, NftRule, NftTableState
from .sysctl import LINK_SYSCTL_PREFIX, SysctlState

TABLE_PREFIX = "nsnet-"  # a topology's table is its ownership marker


def table_name(topology: str) -> str:
    return TABLE_PREFIX + topology


def canonical(expr: list[dict[str, Any]]) -> str:
    """A rule's expressions as the canonical JSON text compared with what `nft -j` lists."""
    return json.dumps(expr, sort_keys=True, separators=(",", ":"))


LOOPBACK = IPv4Network("127.0.0.0/8")
LOOPBACK6 = IPv6Address("::1")
LINK_LOCAL6 = IPv6Network("fe80::/10")
IP_FORWARD = "net.ipv4.ip_forward"
IPV6_FORWARD = "net.ipv6.conf.all.forwarding"  # writing it sets every interface's forwarding too
FORWARDING = {4: IP_FORWARD, 6: IPV6_FORWARD}
# host-wide switches other topologies and tools may need too: claimed and released through the
# registry of kernel/hostsysctl.py (every other host sysctl is a per-link key of our own bridges)
HELD_SYSCTLS = (IP_FORWARD, IPV6_FORWARD)
NFT_FAMILY = {4: "ip", 6: "ip6"}  # nft's payload protocol and NAT family of each IP version
EVERY: dict[int, IPNetwork] = {4: IPv4Network("0.0.0.0/0"), 6: IPv6Network("::/0")}

CHAINS = {
    "prerouting": NftChain("prerouting", "nat", "prerouting", -100),
    "output": NftChain("output", "nat", "output", -100),
    "postrouting": NftChain("postrouting", "nat", "postrouting", 100),
    "guard": NftChain("guard", "filter", "prerouting", -300),
}


def route_localnet_key(bridge: str) -> str:
    return f"{LINK_SYSCTL_PREFIX}{bridge}.route_localnet"


# nft JSON expression builders (the exact form `nft -j` lists them in)


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _prefix(network: IPNetwork) -> dict[str, Any]:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


MASQUERADE = {"masquerade": None}
LOCAL_DESTINATION = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
# `fib daddr type local` alone would take IPv6 too in an inet table: an IPv4 rule on every address says its family
# (nft lists an explicit `meta nfproto` as written, while the one an address match implies is left out)
EVERY_ADDRESS = {
    4: [_match(_meta("nfproto"), "ipv4")],
    6: [_match(_payload("ip6", "daddr"), str(LOOPBACK6), op="!="), _match(_payload("ip6", "daddr"), _prefix(LINK_LOCAL6), op="!=")],
}


# what the topology needs


def forward_target(topology: Topology, forward: PortForward) -> Interface:
    """The namespace interface a port forward goes to: the one it names, else the namespace's
    first. The one lookup for the nft rules, the graph and pre-flight."""
    ns = topology.namespace(forward.namespace)
    assert ns is not None  # checked by the loader
    iface = ns.interface(forward.interface) if forward.interface else ns.interfaces[0]
    assert iface is not None
    return iface


def forward_targets(topology: Topology) -> set[InterfaceKey]:
    """Interfaces that port forwards go to (their bridge ports need hairpin mode)."""
    return {(f.namespace, forward_target(topology, f).name) for f in topology.port_forwards}


def _has_family(topology: Topology, iface: Interface, version: int) -> bool:
    """Whether the interface has an address of that IP version: pinned, or from its bridge's subnet."""
    bridge = topology.bridge(iface.bridge)
    pinned = iface.address if version == 4 else iface.address6
    return pinned is not None or (bridge is not None and any(s.version == version for s in bridge.subnets))


def forward_families(topology: Topology, forward: PortForward) -> tuple[int, ...]:
    """The IP versions a forward publishes: its host_address's, or, on every host address,
    each version its target interface has an address in."""
    iface = forward_target(topology, forward)
    wanted = (4, 6) if forward.host_address is None else (forward.host_address.version,)
    return tuple(v for v in wanted if _has_family(topology, iface, v))


def bridge_ports(topology: Topology) -> dict[str, list[tuple[Namespace, Interface]]]:
    """Bridge name -> the (namespace, interface) attached to it."""
    ports: dict[str, list[tuple[Namespace, Interface]]] = {b.name: [] for b in topology.bridges}
    for ns in topology.namespaces:
        for iface in ns.interfaces:
            ports.setdefault(iface.bridge, []).append((ns, iface))
    return ports


def _gateway(bridge: Bridge, version: int) -> IPAddress | None:
    return bridge.gateway if version == 4 else bridge.gateway6


def _subnet(bridge: Bridge, version: int) -> IPNetwork | None:
    return bridge.subnet if version == 4 else bridge.subnet6


def cross_bridge_routes(topology: Topology, version: int = 4) -> list[tuple[str, str, str]]:
    """(namespace, from bridge, to bridge): a namespace reaching another bridge's subnet of that
    IP version through the host, i.e. by a route (the implicit default one included) whose
    gateway is the host's address on one of its bridges."""
    gateways: dict[Gateway, Bridge] = {g: b for b in topology.bridges if (g := _gateway(b, version)) is not None}
    ports = bridge_ports(topology)
    found = []
    for ns in topology.namespaces:
        attached = {i.bridge for i in ns.interfaces}
        routes: list[tuple[IPNetwork, Bridge | None]]  # (destination, the bridge whose gateway it goes via)
        if ns.routes is None:
            first = topology.bridge(ns.interfaces[0].bridge) if ns.interfaces else None
            routes = [(EVERY[version], first)] if first is not None and _gateway(first, version) is not None else []
        else:
            routes = [(r.to, gateways.get(r.via[0]) if len(r.via) == 1 else None) for r in ns.routes if r.family == version]
        for other in topology.bridges:
            subnet = _subnet(other, version)
            if other.name in attached or subnet is None or not ports.get(other.name):
                continue
            best = _longest_match(routes, subnet)
            if best is not None and best[1] is not None and best[1].name in attached:
                found.append((ns.name, best[1].name, other.name))  # not via a neighbour namespace (a router)
    return sorted(set(found))


def _longest_match(routes: list[tuple[IPNetwork, Bridge | None]], network: IPNetwork) -> tuple[IPNetwork, Bridge | None] | None:
    """The route the kernel picks for `network`: the longest prefix that covers all of it."""
    covering = [route for route in routes if route[0].version == network.version and network.subnet_of(route[0])]  # type: ignore[arg-type]
    return max(covering, key=lambda route: route[0].prefixlen, default=None)


def forwarding_needs(topology: Topology) -> dict[int, list[str]]:
    """IP version -> why the host forwards it for the topology (pre-flight names the reasons);
    nsnet holds a version's switch at 1 while there is one. Port forwards of the version
    (IPv4: a loopback-only one too, as before dual-stack), masquerade of a subnet of it, and for
    IPv6 namespaces routing between bridges through the host (IPv4 leaves that to the host's
    own setting: pre-flight warns when it is off)."""
    needs: dict[int, list[str]] = {}
    for version in sorted({v for f in topology.port_forwards for v in forward_families(topology, f)}):
        needs.setdefault(version, []).append("port forwards")
    for bridge in topology.bridges:
        for subnet in bridge.subnets if bridge.masquerade else ():
            needs.setdefault(subnet.version, []).append(f"masquerade of {subnet}")
    pairs = sorted({f"{src} -> {dst}" for _, src, dst in cross_bridge_routes(topology, 6)})
    if pairs:
        needs.setdefault(6, []).append(f"namespaces routing between bridges ({', '.join(pairs)})")
    return needs


def host_forwarding(topology: Topology) -> tuple[int, ...]:
    """The IP versions the host forwards for the topology (forwarding_needs)."""
    return tuple(sorted(forwarding_needs(topology)))


def _forward_rules(forward: PortForward, target: IPAddress) -> Iterator[NftRule]:
    proto = forward.protocol.value
    family = NFT_FAMILY[target.version]
    if forward.host_address is None:
        where, destination = "*", EVERY_ADDRESS[target.version]
    else:
        where = str(forward.host_address) if target.version == 4 else f"[{forward.host_address}]"
        destination = [_match(_payload(family, "daddr"), str(forward.host_address))]
    also = " (IPv6)" if target.version == 6 and forward.host_address is None else ""  # the IPv4 rule has the same words
    comment = f"forward {proto} {where}:{forward.host_port} -> {forward.namespace}:{forward.port}{also}"
    # only packets to this host: the output hook must never capture the host's own connections
    # elsewhere (the CNI portmap plugin's fix, 1.9.0: `fib daddr type local`)
    expr = [
        LOCAL_DESTINATION,
        *destination,
        _match(_payload(proto, "dport"), forward.host_port),
        {"dnat": {"family": family, "addr": str(target), "port": forward.port}},
    ]
    chains = ["output"] if forward.host_address is not None and forward.host_address in LOOPBACK else ["prerouting", "output"]
    for chain in chains:
        yield NftRule(chain, comment, canonical(expr))


def _bridge_rules(bridge: Bridge, localhost: bool, hairpin: Collection[int]) -> Iterator[NftRule]:
    """The bridge's rules; `hairpin`: the IP versions forwards to its namespaces are published in."""
    out = _match(_meta("oifname"), bridge.name)
    if localhost:
        yield NftRule(
            "postrouting",
            f"localhost to {bridge.name}: masquerade 127.0.0.0/8",
            canonical([out, _match(_payload("ip", "saddr"), _prefix(LOOPBACK)), MASQUERADE]),
        )
        guard = [_match(_meta("iifname"), bridge.name), _match(_payload("ip", "daddr"), _prefix(LOOPBACK)), {"drop": None}]
        yield NftRule("guard", f"guard {bridge.name}: no 127.0.0.0/8 from the bridge (CVE-2020-8558)", canonical(guard))
    for subnet in bridge.subnets:
        source = _match(_payload(NFT_FAMILY[subnet.version], "saddr"), _prefix(subnet))
        if subnet.version in hairpin:
            dnatted = _match({"ct": {"key": "status"}}, "dnat", op="in")
            yield NftRule("postrouting", f"hairpin on {bridge.name}: masquerade {subnet}", canonical([dnatted, out, source, MASQUERADE]))
        if bridge.masquerade:
            leaving = _match(_meta("oifname"), bridge.name, op="!=")
            yield NftRule("postrouting", f"masquerade {subnet} leaving {bridge.name}", canonical([source, leaving, MASQUERADE]))


# A CNI network's forwards: fixed rules that look the destination up in maps, each mapping one
# element in an address map and one in its port map under the same key (nft 1.0.6, Debian 12's,
# cannot declare a map to `addr . port` in JSON, so `dnat to ADDRESS-MAP : PORT-MAP`).
FORWARD_MAPS = {  # (IP version, keyed by the host address too) -> the address map; its port map is PORT_MAP(it)
    (4, False): NftMap("fwd4", ("inet_proto", "inet_service"), ("ipv4_addr",)),
    (4, True): NftMap("fwd4a", ("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr",)),
    (6, False): NftMap("fwd6", ("inet_proto", "inet_service"), ("ipv6_addr",)),
    (6, True): NftMap("fwd6a", ("ipv6_addr", "inet_proto", "inet_service"), ("ipv6_addr",)),
}
PROTO_PORT = [_meta("l4proto"), _payload("th", "dport")]


ADDRESS_MAPS = frozenset(m.name for m in FORWARD_MAPS.values())


def port_map_name(address_map: str) -> str:
    return address_map + "p"


def port_map(address_map: NftMap) -> NftMap:
    """The map giving the port of the mappings `address_map` gives the address of."""
    return NftMap(port_map_name(address_map.name), address_map.key, ("inet_service",))


def _map_rules(version: int) -> Iterator[NftRule]:
    """Both lookups of a version, in prerouting and output: by host address first (the more specific), then on every address."""
    family = NFT_FAMILY[version]
    for addressed in (True, False):
        nft_map = FORWARD_MAPS[(version, addressed)]
        key = {"concat": [_payload(family, "daddr"), *PROTO_PORT] if addressed else PROTO_PORT}
        destination = [] if addressed else EVERY_ADDRESS[version]
        lookup = {
            "dnat": {
                "family": family,
                "addr": {"map": {"key": key, "data": f"@{nft_map.name}"}},
                "port": {"map": {"key": key, "data": f"@{port_map(nft_map).name}"}},
            }
        }
        expr = canonical([LOCAL_DESTINATION, *destination, lookup])
        for chain in ("prerouting", "output"):
            yield NftRule(chain, f"port mappings in @{nft_map.name}", expr)


def _mapped_nat(topology: Topology) -> tuple[NftTableState | None, list[SysctlState]]:
    """A CNI network's table and sysctls depend on its bridges alone, never on its attachments: each
    call compares them unchanged and adds or removes only its own map elements."""
    versions = sorted({s.version for b in topology.bridges for s in b.subnets})
    rules = [rule for v in versions for rule in _map_rules(v)]
    localhost = {b.name for b in topology.bridges if b.subnet is not None}
    for bridge in topology.bridges:
        rules.extend(_bridge_rules(bridge, bridge.name in localhost, {s.version for s in bridge.subnets}))
    address_maps = [FORWARD_MAPS[(v, addressed)] for v in versions for addressed in (False, True)]
    maps = tuple(sorted([*address_maps, *map(port_map, address_maps)]))
    used = {rule.chain for rule in rules}
    table = NftTableState(table_name(topology.name), chains=tuple(sorted(CHAINS[c] for c in used)), rules=tuple(sorted(rules)), maps=maps)
    sysctls = [SysctlState(FORWARDING[v], "1") for v in versions]
    sysctls += [SysctlState(route_localnet_key(b), "1") for b in sorted(localhost)]
    return (table if rules else None), sysctls


def port_mapping_elements(
    topology: Topology, addresses: Mapping[InterfaceKey, IPInterface], addresses6: Mapping[InterfaceKey, IPInterface]
) -> Iterator[tuple[str, str, NftMap, tuple[str | int, ...], tuple[str | int, ...]]]:
    """(namespace, name, map, key, target) of each map element a CNI network's forwards make."""
    if not topology.forward_maps:
        return
    by_version = {4: addresses, 6: addresses6}
    for forward in topology.port_forwards:
        iface = forward_target(topology, forward)
        proto = forward.protocol.value
        for version in forward_families(topology, forward):
            address = by_version[version].get((forward.namespace, iface.name))
            if address is None:
                continue
            addressed = forward.host_address is not None
            key: tuple[str | int, ...] = (str(forward.host_address), proto, forward.host_port) if addressed else (proto, forward.host_port)
            nft_map = FORWARD_MAPS[(version, addressed)]
            yield forward.namespace, mapping_name(nft_map, key), nft_map, key, (str(address.ip), forward.port)


def observed_mappings(table: NftTableState) -> Iterator[tuple[str, str, NftMap, tuple[str | int, ...], tuple[str | int, ...]]]:
    """(owner, name, address map, key, target) of each mapping a live table holds: an address-map
    element and the port-map element with its key (one without the other: a half-made mapping, shown
    with port 0 so that it differs from any desired one and is made again)."""
    maps = {m.name: m for m in table.maps}
    for name in sorted(ADDRESS_MAPS & maps.keys()):
        nft_map = maps[name]
        ports = {e.key: e.value[0] for e in maps[port_map(nft_map).name].elements} if port_map(nft_map).name in maps else {}
        for element in nft_map.elements:
            yield element.comment, mapping_name(nft_map, element.key), nft_map, element.key, (element.value[0], ports.get(element.key, 0))


def mapping_name(nft_map: NftMap, key: tuple[str | int, ...]) -> str:
    """How plans name a map element: `tcp *:8080`, `tcp *:8080 (IPv6)`, `udp [fd00::1]:53`."""
    proto, address, port = element_claim(nft_map, key)
    ipv6 = nft_map.name.startswith("fwd6")
    where = f"[{address}]" if ipv6 and address != "*" else address
    return f"{proto} {where}:{port}" + (" (IPv6)" if ipv6 and address == "*" else "")


def desired_nat(
    topology: Topology, addresses: Mapping[InterfaceKey, IPInterface], addresses6: Mapping[InterfaceKey, IPInterface] | None = None
) -> tuple[NftTableState | None, list[SysctlState]]:
    """The topology's nft table (None when it needs none) and the host sysctls it needs.
    `addresses`/`addresses6`: every addressed interface's IPv4/IPv6 address."""
    if topology.forward_maps:
        return _mapped_nat(topology)
    by_version = {4: addresses, 6: addresses6 or {}}
    rules: list[NftRule] = []
    localhost_bridges: set[str] = set()
    published: dict[str, set[int]] = {}  # bridge -> the IP versions forwards to it are published in
    for forward in topology.port_forwards:
        iface = forward_target(topology, forward)
        for version in forward_families(topology, forward):
            address = by_version[version].get((forward.namespace, iface.name))
            if address is None:
                continue  # not given (a caller without IPv6 addresses)
            rules.extend(_forward_rules(forward, address.ip))
            published.setdefault(iface.bridge, set()).add(version)
            if version == 4 and (forward.host_address is None or forward.host_address in LOOPBACK):
                localhost_bridges.add(iface.bridge)
    for bridge in topology.bridges:
        rules.extend(_bridge_rules(bridge, bridge.name in localhost_bridges, published.get(bridge.name, set())))
    table = None
    if rules:
        used = {rule.chain for rule in rules}
        table = NftTableState(table_name(topology.name), chains=tuple(sorted(CHAINS[c] for c in used)), rules=tuple(sorted(rules)))
    sysctls = [SysctlState(FORWARDING[v], "1") for v in host_forwarding(topology)]
    sysctls += [SysctlState(route_localnet_key(b), "1") for b in sorted(localhost_bridges)]
    return table, sysctls


def element_claim(nft_map: NftMap, key: tuple[str | int, ...]) -> Claim:
    """(protocol, host address or *, port) a map element publishes."""
    if len(key) == 3:
        return str(key[1]), str(key[0]), int(key[2])
    return str(key[0]), "*", int(key[1])


def forward_claims(table: NftTableState) -> Iterator[Claim]:
    """(protocol, host address or *, port) published by an nsnet table, read from its comments
    (`forward tcp *:8080 -> ...`, `forward tcp [fd00::1]:8080 -> ...`), and its map elements."""
    for nft_map in table.maps:
        if nft_map.name in ADDRESS_MAPS:
            yield from (element_claim(nft_map, element.key) for element in nft_map.elements)
    for rule in table.rules:
        parts = rule.comment.split()
        if len(parts) >= 3 and parts[0] == "forward":
            address, _, port = parts[2].rpartition(":")
            if port.isdigit():
                yield parts[1], address.removeprefix("[").removesuffix("]"), int(port)


def taken_claims(tables: Mapping[str, NftTableState], own_table: str) -> dict[Claim, str]:
    """Host ports published by the other topologies' tables -> the topology publishing each."""
    return {c: name[len(TABLE_PREFIX) :] for name, t in tables.items() if name != own_table for c in forward_claims(t)}


def claim_clashes(wanted: Iterable[Claim], taken: Mapping[Claim, str]) -> list[str]:
    """One line per wanted host port that another topology already forwards."""
    return [
        f"{proto} port {f'[{address}]' if ':' in address else address}:{port} is already forwarded by topology {other!r}"
        for proto, address, port in wanted
        for claim, other in taken.items()
        if claims_clash((proto, address, port), claim)
    ]


def desired_claims(topology: Topology) -> Iterator[Claim]:
    for f in topology.port_forwards:
        yield f.protocol.value, "*" if f.host_address is None else str(f.host_address), f.host_port
