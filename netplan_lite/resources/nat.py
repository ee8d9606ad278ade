"""Port forwards and masquerade: the topology's nft table and the sysctls it needs.

How a forward reaches a namespace behind a bridge (measured, see docs/design.md):
- prerouting DNAT for traffic arriving from elsewhere (other hosts, namespaces:
  hairpin), output DNAT for the host's own connections;
- the host's connections to 127.0.0.1 keep source 127.0.0.1 after DNAT: the
  bridge needs route_localnet=1 and the packets are masqueraded as they leave;
- hairpin (a namespace to the published port, back out the same bridge) is
  masqueraded so that the reply returns through the host;
- route_localnet=1 would let neighbours on the bridge reach the host's
  127.0.0.1 services (CVE-2020-8558): a raw-priority guard drops packets
  arriving on the bridge for 127.0.0.0/8, and loopback-only forwards get no
  prerouting rule at all.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Interface, IPv4Network
from typing import Any, Iterable, Iterator, Mapping

from ..model.claims import Claim, claims_clash
from ..model.topology import Interface, InterfaceKey, PortForward, Topology
from .nft_table import NftChain, NftRule, NftTableState
from .sysctl import LINK_SYSCTL_PREFIX, SysctlState

TABLE_PREFIX = "nsnet-"  # a topology's table is its ownership marker


def table_name(topology: str) -> str:
    return TABLE_PREFIX + topology


def canonical(expr: list[dict[str, Any]]) -> str:
    """A rule's expressions as the canonical JSON text compared with what `nft -j` lists."""
    return json.dumps(expr, sort_keys=True, separators=(",", ":"))


LOOPBACK = IPv4Network("127.0.0.0/8")
IP_FORWARD = "net.ipv4.ip_forward"

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


def _prefix(network: IPv4Network) -> dict[str, Any]:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


MASQUERADE = {"masquerade": None}
LOCAL_DESTINATION = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


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


def _target(topology: Topology, forward: PortForward, addresses: Mapping[InterfaceKey, IPv4Interface]) -> tuple[str, IPv4Interface]:
    """(bridge, address) of the namespace interface a forward goes to."""
    iface = forward_target(topology, forward)
    return iface.bridge, addresses[(forward.namespace, iface.name)]


def publishes_on_loopback(forward: PortForward) -> bool:
    return forward.host_address is None or forward.host_address in LOOPBACK


def _forward_rules(forward: PortForward, target: IPv4Interface) -> Iterator[NftRule]:
    proto = forward.protocol.value
    where = "*" if forward.host_address is None else str(forward.host_address)
    comment = f"forward {proto} {where}:{forward.host_port} -> {forward.namespace}:{forward.port}"
    # only packets to this host: the output hook must never capture the host's own connections
    # elsewhere (the CNI portmap plugin's fix, 1.9.0: `fib daddr type local`)
    address = [] if forward.host_address is None else [_match(_payload("ip", "daddr"), str(forward.host_address))]
    expr = [
        LOCAL_DESTINATION,
        *address,
        _match(_payload(proto, "dport"), forward.host_port),
        {"dnat": {"addr": str(target.ip), "port": forward.port}},
    ]
    chains = ["output"] if forward.host_address is not None and forward.host_address in LOOPBACK else ["prerouting", "output"]
    for chain in chains:
        yield NftRule(chain, comment, canonical(expr))


def _bridge_rules(bridge: str, subnet: IPv4Network | None, localhost: bool, hairpin: bool, masquerade: bool) -> Iterator[NftRule]:
    out = _match(_meta("oifname"), bridge)
    if localhost:
        yield NftRule(
            "postrouting",
            f"localhost to {bridge}: masquerade 127.0.0.0/8",
            canonical([out, _match(_payload("ip", "saddr"), _prefix(LOOPBACK)), MASQUERADE]),
        )
        guard = [_match(_meta("iifname"), bridge), _match(_payload("ip", "daddr"), _prefix(LOOPBACK)), {"drop": None}]
        yield NftRule("guard", f"guard {bridge}: no 127.0.0.0/8 from the bridge (CVE-2020-8558)", canonical(guard))
    if subnet is None:
        return
    source = _match(_payload("ip", "saddr"), _prefix(subnet))
    if hairpin:
        dnatted = _match({"ct": {"key": "status"}}, "dnat", op="in")
        yield NftRule("postrouting", f"hairpin on {bridge}: masquerade {subnet}", canonical([dnatted, out, source, MASQUERADE]))
    if masquerade:
        yield NftRule(
            "postrouting", f"masquerade {subnet} leaving {bridge}", canonical([source, _match(_meta("oifname"), bridge, op="!="), MASQUERADE])
        )


def desired_nat(topology: Topology, addresses: Mapping[InterfaceKey, IPv4Interface]) -> tuple[NftTableState | None, list[SysctlState]]:
    """The topology's nft table (None when it needs none) and the sysctls it needs."""
    rules: list[NftRule] = []
    localhost_bridges: set[str] = set()
    forward_bridges: set[str] = set()
    for forward in topology.port_forwards:
        bridge_name, address = _target(topology, forward, addresses)
        rules.extend(_forward_rules(forward, address))
        forward_bridges.add(bridge_name)
        if publishes_on_loopback(forward):
            localhost_bridges.add(bridge_name)
    for bridge in topology.bridges:
        rules.extend(_bridge_rules(bridge.name, bridge.subnet, bridge.name in localhost_bridges, bridge.name in forward_bridges, bridge.masquerade))
    if not rules:
        return None, []
    used = {rule.chain for rule in rules}
    table = NftTableState(table_name(topology.name), tuple(sorted(CHAINS[c] for c in used)), tuple(sorted(rules)))
    sysctls = [SysctlState(IP_FORWARD, "1")]
    sysctls += [SysctlState(route_localnet_key(b), "1") for b in sorted(localhost_bridges)]
    return table, sysctls


def forward_claims(table: NftTableState) -> Iterator[Claim]:
    """(protocol, host address or *, port) published by an nsnet table, read from its comments."""
    for rule in table.rules:
        parts = rule.comment.split()
        if len(parts) >= 3 and parts[0] == "forward":
            address, _, port = parts[2].rpartition(":")
            if port.isdigit():
                yield parts[1], address, int(port)


def taken_claims(tables: Mapping[str, NftTableState], own_table: str) -> dict[Claim, str]:
    """Host ports published by the other topologies' tables -> the topology publishing each."""
    return {c: name[len(TABLE_PREFIX) :] for name, t in tables.items() if name != own_table for c in forward_claims(t)}


def claim_clashes(wanted: Iterable[Claim], taken: Mapping[Claim, str]) -> list[str]:
    """One line per wanted host port that another topology already forwards."""
    return [
        f"{proto} port {address}:{port} is already forwarded by topology {other!r}"
        for proto, address, port in wanted
        for claim, other in taken.items()
        if claims_clash((proto, address, port), claim)
    ]


def desired_claims(topology: Topology) -> Iterator[Claim]:
    for f in topology.port_forwards:
        yield f.protocol.value, "*" if f.host_address is None else str(f.host_address), f.host_port
