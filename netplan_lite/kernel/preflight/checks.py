"""Pre-flight checks: what on this host will make a correct topology fail at run time.

Warnings, never errors: nsnet does not change these host settings itself
(except net.ipv4.ip_forward and net.ipv6.conf.all.forwarding, which it turns on
for port forwards and masquerade, and the IPv6 one for routing between
bridges), and the user may know better. This half is pure: facts in
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
                        rule visibly accepts, per family: an ip6 chain (ip6tables'
                        FORWARD, nft or legacy) sees IPv6 port forwards,
                        masquerade and routing, and with bridge-nf-call-ip6tables=1
                        the IPv6 frames between namespaces of one bridge, as an
                        ip chain sees IPv4's; iptables' and ip6tables' FORWARD
                        are left out where Docker's DOCKER-USER chain is and
                        nsnet accepts the bridges there (resources/docker_user.py)
  accept-ra-forwarding  nsnet will set net.ipv6.conf.all.forwarding=1 and a host
                        interface with accept_ra=1 has its default IPv6 route
                        from router advertisements: while forwarding, accept_ra=1
                        ignores them, and the route is not renewed
  host-port-in-use      a host socket listens on (tcp) or is bound to (udp) a
                        published port: the DNAT takes its traffic
  subnet-overlaps-route a bridge subnet overlaps a host route that is not the
                        bridge's own (default routes, /0 and /1, do not count);
                        a connected route of a link nsnet does not own is the
                        plan's error instead, unless the bridge has
                        `allow_overlap: true` (engine/reconcile.py)

What the topology needs of the host (which versions it forwards, its routes
between bridges) comes from resources/nat.py, the one place the plan's sysctls
come from too.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from typing import Iterable

from ... import labels
from ...engine.warnings import PreflightWarning
from ...model.topology import Bridge, IPAddress, PortForward, Topology
from ...resources.nat import (
    LINK_LOCAL6,
    LOOPBACK,
    LOOPBACK6,
    bridge_ports,
    cross_bridge_routes,
    forward_families,
    forward_target,
    forwarding_needs,
    host_forwarding,
)

ANY4 = IPv4Address("0.0.0.0")
ANY6 = IPv6Address("::")
LEGACY = "iptables-legacy"  # ForwardChain.family of legacy iptables' filter FORWARD
LEGACY6 = "ip6tables-legacy"  # and of legacy ip6tables'
LEGACY_TOOL = {LEGACY: 4, LEGACY6: 6}
FIREWALLD = "firewalld"  # firewalld's nft table (family inet)
PROTO_KERNEL = 2


@dataclass(frozen=True)
class ForwardChain:
    """A base chain at the forward hook. `accepts_in`/`accepts_out`: interface names
    (nft wildcards like `br-*`) that a rule with verdict accept in the same table
    matches as input/output interface; a bridge found in both counts as handled."""

    family: str  # ip, ip6, inet, bridge, LEGACY or LEGACY6
    table: str
    chain: str
    policy: str  # accept, drop
    accepts_in: frozenset[str] = frozenset()
    accepts_out: frozenset[str] = frozenset()

    @property
    def title(self) -> str:
        if self.family in LEGACY_TOOL:
            return f"{self.family} chain {self.table} {self.chain}"
        return f"nft chain {self.family} {self.table} {self.chain}"

    @property
    def versions(self) -> tuple[int, ...]:
        """The IP versions of the routed traffic it sees (none for a bridge-family chain's frames)."""
        if self.family in LEGACY_TOOL:
            return (LEGACY_TOOL[self.family],)
        return {"ip": (4,), "ip6": (6,), "inet": (4, 6)}.get(self.family, ())


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
    bridge_nf_call_ip6tables: bool | None = None  # and bridged IPv6 the ip6/inet hooks
    forward_chains: tuple[ForwardChain, ...] = ()
    docker_user: bool | None = None  # iptables (IPv4) has Docker's DOCKER-USER chain
    docker_user6: bool | None = None  # ip6tables has it
    ipv6_forwarding: bool | None = None  # net.ipv6.conf.all.forwarding
    ra_defaults: tuple[str, ...] = ()  # host links with accept_ra=1 whose default IPv6 route came from router advertisements
    listeners: tuple[Listener, ...] = ()  # only on the topology's published ports
    routes: tuple[HostRoute, ...] = ()  # only those overlapping one of the topology's subnets


# what the topology needs of the host


def _routed_by_host(forward: PortForward) -> bool:
    """Whether traffic of the forward is forwarded by the host (and not only the host's own)."""
    return forward.host_address is None or forward.host_address not in LOOPBACK


def nsnet_enables_ip_forward(topology: Topology) -> bool:
    """nsnet sets ip_forward=1 as a plan resource exactly when the topology forwards IPv4
    (nat.forwarding_needs: an IPv4 port forward, or masquerade of an IPv4 subnet)."""
    return 4 in host_forwarding(topology)


def _routed_traffic(topology: Topology, version: int, bridge_nf: bool) -> dict[str, list[str]]:
    """Bridge -> what of its traffic of that IP version crosses a hook-forward chain of the
    host (`bridge_nf`: bridge-nf-call-iptables or -ip6tables is on, so frames between its ports do too)."""
    ports = bridge_ports(topology)
    reasons: dict[str, list[str]] = {b.name: [] for b in topology.bridges}
    routed = [f for f in topology.port_forwards if _routed_by_host(f) and version in forward_families(topology, f)]
    published = {forward_target(topology, f).bridge for f in routed}
    for bridge in sorted(published):
        reasons.setdefault(bridge, []).append("port forwards from other hosts and namespaces")
    for b in topology.bridges:
        if b.masquerade and any(s.version == version for s in b.subnets):
            reasons[b.name].append("masqueraded traffic to the outside")
    pairs: dict[str, set[str]] = {}
    for _, src, dst in cross_bridge_routes(topology, version):
        pairs.setdefault(src, set()).add(dst)
        pairs.setdefault(dst, set()).add(src)
    for bridge, others in pairs.items():
        reasons.setdefault(bridge, []).append(f"traffic to and from {', '.join(sorted(others))}")
    if bridge_nf:
        switch = "bridge-nf-call-iptables" if version == 4 else "bridge-nf-call-ip6tables"
        carries = {b.name for b in topology.bridges if any(s.version == version for s in b.subnets)} if version == 6 else set(ports)
        for bridge, attached in ports.items():
            if len(attached) >= 2 and bridge in carries:  # IPv6 only where the bridge has it: its ports have no link-local
                reasons.setdefault(bridge, []).append(f"traffic between its namespaces ({switch}=1)")
    return {b: r for b, r in reasons.items() if r}


def _routed(topology: Topology, facts: HostFacts, versions: tuple[int, ...]) -> dict[str, list[str]]:
    """_routed_traffic of each version a chain sees, merged per bridge (an inet chain sees both)."""
    switches = {4: bool(facts.bridge_nf_call_iptables), 6: bool(facts.bridge_nf_call_ip6tables)}
    merged: dict[str, list[str]] = {}
    for version in versions:
        for bridge, reasons in _routed_traffic(topology, version, switches[version]).items():
            merged.setdefault(bridge, []).extend(r for r in reasons if r not in merged.get(bridge, []))
    return merged


def _bridged_traffic(topology: Topology) -> dict[str, list[str]]:
    """Bridge -> what of its traffic crosses a bridge-family hook-forward chain (frames between ports)."""
    return {b: ["traffic between its namespaces"] for b, attached in bridge_ports(topology).items() if len(attached) >= 2}


# the checks (pure)


def check(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """Every warning, in a stable order."""
    return [
        *check_ip_forward(topology, facts),
        *check_forward_policy(topology, facts),
        *check_host_ports(topology, facts),
        *check_subnet_routes(topology, facts),
        *check_accept_ra(topology, facts),
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
    bridged = _bridged_traffic(topology)
    found = []
    for chain in facts.forward_chains:
        if chain.policy != "drop" or (_docker_forward(chain, facts) and topology.firewall.docker_user):
            continue  # nsnet accepts the bridges in Docker's DOCKER-USER, which Docker's FORWARD jumps to first
        affected = bridged if chain.family == "bridge" else _routed(topology, facts, chain.versions)
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
    """Whether the chain is iptables' (ip6tables') FORWARD on a host with Docker's DOCKER-USER chain there."""
    if chain.family == LEGACY or (chain.family, chain.table, chain.chain) == ("ip", "filter", "FORWARD"):
        return bool(facts.docker_user)
    if chain.family == LEGACY6 or (chain.family, chain.table, chain.chain) == ("ip6", "filter", "FORWARD"):
        return bool(facts.docker_user6)
    return False


def _accept_hint(chain: ForwardChain, bridge: str, docker: bool) -> str:
    """The exact command (or topology key) that lets the bridge's traffic pass."""
    if docker:
        tool = "ip6tables" if chain.versions == (6,) else "iptables"
        return (
            "the topology's `firewall: {docker_user: false}` keeps nsnet out of Docker's DOCKER-USER chain: "
            f"remove it and nsnet accepts {bridge} there, or run `{tool} -I DOCKER-USER -i {bridge} -j ACCEPT` "
            f"and `{tool} -I DOCKER-USER -o {bridge} -j ACCEPT`"
        )
    if chain.family in LEGACY_TOOL:
        tool = chain.family
        return f"accept it: `{tool} -I {chain.chain} -i {bridge} -j ACCEPT` and `{tool} -I {chain.chain} -o {bridge} -j ACCEPT`"
    if chain.table == FIREWALLD:
        return f"accept it: `firewall-cmd --zone=trusted --add-interface={bridge}` (and the same with --permanent to keep it)"
    where = f"{chain.family} {chain.table} {chain.chain}"
    if chain.family == "bridge":
        return f"accept it: `nft insert rule {where} meta ibrname {bridge} accept`, or match its ports by iifname"
    return f"accept it: `nft insert rule {where} iifname {bridge} accept` and `nft insert rule {where} oifname {bridge} accept`"


def _taken(listener: Listener, forward: PortForward, version: int) -> tuple[bool, IPAddress | None] | None:
    """(listens on every address, the address it is bound to) when the forward's DNAT of that IP
    version takes traffic meant for the socket; None when it does not."""
    address = ip_address(listener.address)
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address == ANY6 or (address == ANY4 and version == 4):
        return True, None  # [::] is dual-stack unless IPV6_V6ONLY: IPv4 reaches it too
    if address.version != version or address == LOOPBACK6 or address in LINK_LOCAL6:
        return None  # the IPv6 DNAT leaves [::1] and link-local addresses alone
    if forward.host_address is None or forward.host_address == address:
        return False, address
    return None


def _endpoint(address: str | IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"


def _what_is_taken(version: int, hits: list[tuple[bool, IPAddress | None]], forward: PortForward, traffic: str) -> str:
    """The traffic of one IP version the forward sends to the namespace instead of to the sockets."""
    port = forward.host_port
    if forward.host_address is not None:
        destinations: list[IPAddress] = [forward.host_address]
    elif any(every for every, _ in hits):
        destinations = []
    else:
        destinations = sorted({a for _, a in hits if a is not None}, key=lambda a: (a.version, int(a)))
    if not destinations:
        but = " but [::1]" if version == 6 else ""
        return f"IPv{version} {traffic} to port {port} of every host address{but} (the host's own too)"
    listed = " and ".join(_endpoint(a, port) for a in destinations)
    if all(a in LOOPBACK for a in destinations):
        return f"this host's {traffic} to {listed}"
    return f"{traffic} to {listed} (the host's own too)"


def check_host_ports(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """One warning per port forward whose DNAT (of either IP version) takes traffic meant for a host socket."""
    found = []
    for forward in topology.port_forwards:
        proto, port = forward.protocol.value, forward.host_port
        sockets = [s for s in facts.listeners if s.protocol == proto and s.port == port]
        taken = {v: [(s, t) for s in sockets if (t := _taken(s, forward, v)) is not None] for v in forward_families(topology, forward)}
        hit = {s for hits in taken.values() for s, _ in hits}
        if not hit:
            continue
        bound = " and ".join(sorted({_endpoint(s.address, port) for s in hit}))
        published = "*" if forward.host_address is None else _endpoint(forward.host_address, port).rpartition(":")[0]
        traffic = "connections" if proto == "tcp" else "datagrams"
        target = " and ".join(_what_is_taken(v, [t for _, t in hits], forward, traffic) for v, hits in taken.items() if hits)
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


def check_accept_ra(topology: Topology, facts: HostFacts) -> list[PreflightWarning]:
    """nsnet never changes the host's own interfaces, but the IPv6 forwarding it holds changes what
    accept_ra=1 means on them: warn where that loses the host its default IPv6 route."""
    why = forwarding_needs(topology).get(6)
    if not why or facts.ipv6_forwarding is not False or not facts.ra_defaults:
        return []  # already forwarding: those interfaces already ignore router advertisements
    links = ", ".join(facts.ra_defaults)
    return [
        PreflightWarning(
            "accept-ra-forwarding",
            f"the topology needs the host to forward IPv6 ({', '.join(why)}), so nsnet sets net.ipv6.conf.all.forwarding=1; "
            f"{links} then ignore{'s' if len(facts.ra_defaults) == 1 else ''} router advertisements (accept_ra=1 accepts them only "
            "while not forwarding), and the default IPv6 route learned from them expires",
            " and ".join(f"`sysctl -w net.ipv6.conf.{link}.accept_ra=2`" for link in facts.ra_defaults)
            + " keeps accepting them while forwarding (and /etc/sysctl.d/ keeps it); nsnet never changes the host's own interfaces",
        )
    ]
