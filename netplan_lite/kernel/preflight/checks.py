"""Pre-flight checks: what on this host will make a correct topology fail at run time.

Warnings, never errors: nsnet does not change these host settings itself
(except net.ipv4.ip_forward, which it turns on for port forwards and
masquerade), and the user may know better. This half is pure: facts in
(`HostFacts`, read by hostfacts.py), warnings out, unit-tested without root.
`check(topology, facts) -> list[PreflightWarning]`; each warning has a stable
code:

  ip-forward-off        namespaces route to another bridge through the host,
                        ip_forward is 0 and nothing in the topology makes nsnet
                        turn it on (only port forwards and masquerade do)
  ip-forward-temporary  the same need, ip_forward is 1 only because another
                        nsnet topology holds it: nsnet restores 0 when that
                        topology is destroyed
  forward-policy-drop   a base chain at hook forward with policy drop, or whose
                        last rule drops or rejects everything (firewalld), that
                        the topology's forwarded traffic passes through and no
                        rule visibly accepts; iptables' FORWARD is left out
                        where Docker's DOCKER-USER chain is and nsnet accepts
                        the bridges there (resources/docker_user.py)
  host-port-in-use      a host socket listens on (tcp) or is bound to (udp) a
                        published port: the DNAT takes its traffic
  subnet-overlaps-route a bridge subnet overlaps a host route that is not the
                        bridge's own (default routes, /0 and /1, do not count);
                        a connected route of a link nsnet does not own is the
                        plan's error instead, unless the bridge has
                        `allow_overlap: true` (engine/reconcile.py)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from typing import Iterable

from ... import labels
from ...engine.warnings import PreflightWarning
from ...model.topology import Bridge, Interface, IPNetwork, Namespace, PortForward, Topology
from ...resources.nat import LOOPBACK, forward_target

ANY4 = IPv4Address("0.0.0.0")
ANY6 = IPv6Address("::")
LEGACY = "iptables-legacy"  # ForwardChain.family of legacy iptables' filter FORWARD
FIREWALLD = "firewalld"  # firewalld's nft table (family inet)
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

    @property
    def connected(self) -> bool:
        """The route the kernel made for an address's prefix (`proto kernel scope link`)."""
        return self.proto == PROTO_KERNEL and self.kind == "unicast" and self.via is None and self.device is not None


@dataclass(frozen=True)
class HostFacts:
    """What pre-flight knows about the host; None or empty: could not be read (or not needed)."""

    ip_forward: bool | None = None
    ip_forward_holders: tuple[str, ...] = ()  # nsnet topologies holding ip_forward=1 (/run/nsnet/sysctl.json)
    ip_forward_original: str | None = None  # the value nsnet found before the first holder set it
    bridge_nf_call_iptables: bool | None = None  # br_netfilter: bridged IPv4 traverses the ip/inet hooks
    forward_chains: tuple[ForwardChain, ...] = ()
    docker_user: bool | None = None  # iptables (IPv4) has Docker's DOCKER-USER chain
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
        routes: list[tuple[IPNetwork, Bridge | None]]  # (destination, the bridge whose gateway it goes via)
        if ns.routes is None:
            first = topology.bridge(ns.interfaces[0].bridge) if ns.interfaces else None
            routes = [(IPv4Network("0.0.0.0/0"), first)] if first is not None and first.gateway is not None else []
        else:
            routes = [
                (r.to, gateways.get(r.via[0]) if len(r.via) == 1 and isinstance(r.via[0], IPv4Address) else None) for r in ns.routes if r.family == 4
            ]
        for other in topology.bridges:
            if other.name in attached or other.subnet is None or not ports.get(other.name):
                continue
            best = _longest_match(routes, other.subnet)
            if best is not None and best[1] is not None and best[1].name in attached:
                found.append((ns.name, best[1].name, other.name))  # not via a neighbour namespace (a router)
    return sorted(set(found))


def _longest_match(routes: list[tuple[IPNetwork, Bridge | None]], network: IPv4Network) -> tuple[IPNetwork, Bridge | None] | None:
    """The route the kernel picks for `network`: the longest prefix that covers all of it."""
    covering = [route for route in routes if isinstance(route[0], IPv4Network) and network.subnet_of(route[0])]
    return max(covering, key=lambda route: route[0].prefixlen, default=None)


def _forwarded_traffic(topology: Topology, bridge_nf: bool) -> dict[str, list[str]]:
    """Bridge -> what of its traffic crosses a hook-forward chain of family ip/inet."""
    ports = _ports(topology)
    reasons: dict[str, list[str]] = {b.name: [] for b in topology.bridges}
    published = {forward_target(topology, f).bridge for f in topology.port_forwards if _routed_by_host(f)}
    for bridge in sorted(published):
        reasons.setdefault(bridge, []).append("port forwards from other hosts and namespaces")
    for b in topology.bridges:
        if b.masquerade:
            reasons[b.name].append("masqueraded traffic to the outside")
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
        return [
            PreflightWarning(
                "ip-forward-off",
                f"net.ipv4.ip_forward is 0 and {what}: the host will not forward that traffic; "
                "nsnet turns ip_forward on only for port forwards and masquerade",
                "enable it with `sysctl -w net.ipv4.ip_forward=1` and keep it in /etc/sysctl.d/",
            )
        ]
    others = [h for h in facts.ip_forward_holders if h != topology.name]
    if others and facts.ip_forward_original == "0":
        return [
            PreflightWarning(
                "ip-forward-temporary",
                f"net.ipv4.ip_forward is 1 only while nsnet topology {', '.join(others)} holds it and {what}: "
                "when the last of them is destroyed, nsnet restores 0 and that traffic stops",
                "after that, `sysctl -w net.ipv4.ip_forward=1`; or give this topology a port forward or masquerade so it holds ip_forward too",
            )
        ]
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
        if chain.policy != "drop" or (_docker_forward(chain, facts) and topology.firewall.docker_user):
            continue  # nsnet accepts the bridges in Docker's DOCKER-USER, which Docker's FORWARD jumps to first
        affected = bridged if chain.family == "bridge" else routed
        for bridge, reasons in sorted(affected.items()):
            into, out = _matches(bridge, chain.accepts_in), _matches(bridge, chain.accepts_out)
            if (into or out) if chain.family == "bridge" else (into and out):
                continue  # frames of a bridge-family chain enter and leave by the same bridge
            found.append(
                PreflightWarning(
                    "forward-policy-drop",
                    f"the host's {chain.title} (hook forward) has policy drop and no rule there accepts bridge {bridge}: "
                    f"it drops {bridge}'s {', '.join(reasons)}",
                    _accept_hint(chain, bridge, _docker_forward(chain, facts)),
                )
            )
    return found


def _docker_forward(chain: ForwardChain, facts: HostFacts) -> bool:
    """Whether the chain is iptables' FORWARD on a host with Docker's DOCKER-USER chain."""
    iptables_forward = chain.family == LEGACY or (chain.family, chain.table, chain.chain) == ("ip", "filter", "FORWARD")
    return bool(facts.docker_user) and iptables_forward


def _accept_hint(chain: ForwardChain, bridge: str, docker: bool) -> str:
    """The exact command (or topology key) that lets the bridge's traffic pass."""
    if docker:
        return (
            "the topology's `firewall: {docker_user: false}` keeps nsnet out of Docker's DOCKER-USER chain: "
            f"remove it and nsnet accepts {bridge} there, or run `iptables -I DOCKER-USER -i {bridge} -j ACCEPT` "
            f"and `iptables -I DOCKER-USER -o {bridge} -j ACCEPT`"
        )
    if chain.family == LEGACY:
        return f"accept it: `iptables-legacy -I {chain.chain} -i {bridge} -j ACCEPT` and `iptables-legacy -I {chain.chain} -o {bridge} -j ACCEPT`"
    if chain.table == FIREWALLD:
        return f"accept it: `firewall-cmd --zone=trusted --add-interface={bridge}` (and the same with --permanent to keep it)"
    where = f"{chain.family} {chain.table} {chain.chain}"
    if chain.family == "bridge":
        return f"accept it: `nft insert rule {where} meta ibrname {bridge} accept`, or match its ports by iifname"
    return f"accept it: `nft insert rule {where} iifname {bridge} accept` and `nft insert rule {where} oifname {bridge} accept`"


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
        hits = [(s, *_listener_effect(s, forward)) for s in facts.listeners if s.protocol == proto and s.port == forward.host_port]
        hits = [h for h in hits if h[1] or h[2]]
        if not hits:
            continue
        port = forward.host_port
        bound = " and ".join(sorted({f"[{s.address}]:{port}" if ":" in s.address else f"{s.address}:{port}" for s, _, _ in hits}))
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
        found.append(
            PreflightWarning(
                "host-port-in-use",
                f"{proto} port {port} is in use on the host (a socket {verb} {bound}): the port forward "
                f"{proto} {published}:{port} -> {forward.namespace}:{forward.port} sends {target} to "
                f"{forward.namespace} instead of to that socket",
                f"`ss -{'lt' if proto == 'tcp' else 'lu'}np 'sport = :{port}'` names the process; "
                "publish another host_port, or a host_address it is not bound to",
            )
        )
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


def _is_refused(route: HostRoute, bridge: Bridge) -> bool:
    """The plan refuses a subnet overlapping a connected route of a link no nsnet topology labelled,
    unless told the overlap is intended: no warning for what never gets applied."""
    return route.connected and route.owner is None and not bridge.allow_overlap


def check_subnet_routes(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """One warning per (bridge subnet, overlapping host route that is not the bridge's own nor refused)."""
    found = []
    for bridge in topology.bridges:
        subnet = bridge.subnet
        if subnet is None:
            continue
        for route in sorted(facts.routes, key=lambda r: (r.network, r.device or "")):
            net = route.network
            if is_default(net) or not net.overlaps(subnet) or _is_bridges_own(route, topology, bridge) or _is_refused(route, bridge):
                continue
            where = _device(route)
            if net == subnet:
                message = (
                    f"bridge {bridge.name}'s subnet {subnet} already has a host route, {net} {where}: "
                    f"the host may send traffic for the namespaces on {bridge.name} (port forwards too) there instead"
                )
                look = f"ip -4 route show {subnet}"
            elif net.subnet_of(subnet):
                message = (
                    f"host route {net} {where} lies inside bridge {bridge.name}'s subnet {subnet}: it is more specific, so "
                    f"the host sends traffic for {net} there and cannot reach namespaces on {bridge.name} with those addresses"
                )
                look = f"ip -4 route show root {subnet}"
            else:
                message = (
                    f"bridge {bridge.name}'s subnet {subnet} lies inside host route {net} {where}: once {bridge.name} "
                    f"has it, the host sends traffic for {subnet} to {bridge.name} (more specific), and what has "
                    f"those addresses behind {route.device or 'that route'} becomes unreachable from the host"
                )
                look = f"ip -4 route show match {subnet}"
            found.append(PreflightWarning("subnet-overlaps-route", message, _overlap_hint(route, bridge, look)))
    return found


def _overlap_hint(route: HostRoute, bridge: Bridge, look: str) -> str:
    if route.connected and route.owner is None:  # refused without it: the user asked for this
        return f"bridge {bridge.name} has `allow_overlap: true`, so nsnet applies it anyway; `{look}` shows the routes"
    return f"choose a subnet no host route overlaps; `{look}` shows them"
