"""Semantic checks of schema-valid topology data.

Each check returns (key path, message) pairs so the loader can point at the
offending line. Parsing helpers live here too because the checks and the
model builder must read addresses the same way: both families wherever an
address goes, string-or-list values with at most one item per family, link
ends (`namespace:interface`) and the defaults of gateways and pools.

The checks share one _Context: each bridge's subnets and gateways, the pools'
networks and the links whose ends are valid, parsed once, and every pinned
address with its user (no address has two). Overlaps are found by sorting
(sweep, _Ranges), never by comparing all pairs, so a lab of thousands of
bridges or links stays linear.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import defaultdict
from dataclasses import dataclass, field, fields
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Interface, IPv6Network, ip_address, ip_interface
from typing import Any, Callable, Iterator, Mapping, TypeVar

from . import netem
from .claims import Claim, claims_clash
from .topology import (
    FORWARDING_KEYS,
    FORWARDING_ON,
    LOOPBACK,
    LOOPBACK_PREFIXES,
    P2P_PREFIXES,
    Endpoint,
    IPAddress,
    IPInterface,
    IPNetwork,
    sysctl_text,
)

Found = Iterator[tuple[tuple[Any, ...], str]]
T = TypeVar("T", bound=IPv4Address | IPv6Address | IPv4Network | IPv6Network)  # what has a `version`

MAX_BRIDGE_PORTS = 1024  # the kernel's BR_MAX_PORTS
MIN_PREFIX, MAX_PREFIX = 8, 30
MIN_PREFIX6, MAX_PREFIX6 = 8, 126  # /126: the anycast address, a gateway and two hosts
RESERVED_INTERFACES = {"lo"}
GATEWAY_NONE = "none"  # `gateway: none`: no address on the bridge in either family
LOOPBACK_AUTO = "auto"
IPV4_DEFAULT = IPv4Network("0.0.0.0/0")  # `to: default`
UNSPECIFIED = IPv4Network("0.0.0.0/8")
UNSPECIFIED6 = IPv6Network("::/8")  # the unspecified and loopback addresses, IPv4-mapped and -compatible ones


class BadValue(ValueError):
    """A value that cannot be parsed; its text is the user-facing reason."""


# parsing, for the checks and the builder alike


def _not_an_address(text: Any) -> str:
    """The reason `text` is no address, in the family it looks like."""
    if isinstance(text, str) and ":" in text:
        return f"{text!r} is not an IPv6 address"
    if isinstance(text, str) and re.fullmatch(r"[\d./\s]*", text):
        return f"{text!r} is not an IPv4 address"
    return f"{text!r} is not an IPv4 or IPv6 address"


def _ip_interface(text: Any) -> IPInterface:
    if not isinstance(text, str):
        raise BadValue(_not_an_address(text))
    return _parsed_interface(text)


@functools.lru_cache(maxsize=1 << 16)
def _parsed_interface(text: str) -> IPInterface:
    """Parsed once: a routed lab names the same destinations and gateways in every namespace,
    and the checks and the builder read each (ipaddress parses ~20 us a string)."""
    try:
        value = ip_interface(text)
    except ValueError:
        raise BadValue(_not_an_address(text)) from None
    if isinstance(value, IPv6Interface) and value.ip.scope_id is not None:
        raise BadValue(f"{text!r} has a zone index (%...): give the interface with `dev:` instead")
    return value


def parse_network(text: Any) -> IPNetwork:
    """A network written with its prefix length and without host bits: `10.0.0.0/24`, `fd00::/64`."""
    iface = _ip_interface(text)
    if "/" not in text:
        raise BadValue(f"{text!r} needs a prefix length, e.g. {text}/{24 if iface.version == 4 else 64}")
    if iface.ip != iface.network.network_address:
        raise BadValue(f"{text!r} has host bits set; did you mean {iface.network}?")
    return iface.network


def _unicast_range(network: IPNetwork) -> str | None:
    """Why a range cannot hold a lab's unicast addresses, if it cannot."""
    if isinstance(network, IPv4Network):
        if network.is_loopback or network.is_multicast or network.subnet_of(UNSPECIFIED):
            return f"{network} is a loopback, multicast or 0.0.0.0/8 range"
        return None
    if network.is_multicast or network.is_link_local or network.overlaps(UNSPECIFIED6):
        return f"{network} is a multicast, link-local or ::/8 range"
    return None


def parse_subnet(text: Any) -> IPNetwork:
    """A bridge subnet of either family."""
    network = parse_network(text)
    _check_prefix(network)
    reason = _unicast_range(network)
    if reason:
        raise BadValue(f"{reason}; a bridge needs unicast addresses")
    return network


def _check_prefix(network: IPNetwork) -> None:
    low, high = (MIN_PREFIX, MAX_PREFIX) if network.version == 4 else (MIN_PREFIX6, MAX_PREFIX6)
    if not low <= network.prefixlen <= high:
        raise BadValue(f"prefix /{network.prefixlen} is outside /{low}../{high}: no room for a gateway and hosts")


def parse_address(text: Any, prefixes: Mapping[int, int], missing: str = "") -> IPInterface:
    """`addr` (takes the prefix of its family in `prefixes`) or `addr/prefix`; `missing` says why a
    family without a default prefix needs one."""
    iface = _ip_interface(text)
    if "/" in text:
        return iface
    if iface.version not in prefixes:
        raise BadValue(f"{text!r} needs a prefix length{missing}")
    return ip_interface(f"{iface.ip}/{prefixes[iface.version]}")


def parse_interface_address(text: Any, subnet: IPNetwork | None = None) -> IPInterface:
    """`a.b.c.d` (takes the subnet's prefix) or `a.b.c.d/prefix`; `subnet` is the bridge's of the address's family."""
    return parse_address(text, {subnet.version: subnet.prefixlen} if subnet else {}, " because its bridge has no subnet")


def interface_address(text: Any, subnets: Mapping[int, IPNetwork]) -> IPInterface:
    """An interface's address; without a prefix, it takes its bridge's subnet's of its family."""
    return parse_interface_address(text, subnets.get(_ip_interface(text).version))


def parse_destination(text: Any) -> IPNetwork:
    """A route's `to`: `default` (IPv4's), or a network of either family; a bare address is a host route."""
    if text == "default":
        return IPV4_DEFAULT
    iface = _ip_interface(text)
    if iface.ip != iface.network.network_address:
        raise BadValue(f"{text!r} has host bits set; did you mean {iface.network}?")
    return iface.network


def parse_ip(text: Any) -> IPAddress:
    if not isinstance(text, str) or "/" in text:
        raise BadValue(_not_an_address(text))
    return _ip_interface(text).ip


def is_endpoint(text: Any) -> bool:
    """`namespace:interface`: one colon, which no IPv6 address has."""
    return isinstance(text, str) and text.count(":") == 1


def parse_endpoint(text: str) -> Endpoint:
    namespace, _, interface = text.partition(":")
    return Endpoint(namespace, interface)


def parse_gateway(text: Any) -> IPAddress | Endpoint:
    """One `via`: an address or a link end."""
    return parse_endpoint(text) if is_endpoint(text) else parse_ip(text)


def default_gateway(subnet: IPNetwork | None) -> IPAddress | None:
    """The subnet's first host: `.1`, `::1`."""
    return None if subnet is None else subnet.network_address + 1


def items(value: Any) -> list[tuple[tuple[int, ...], Any]]:
    """A string-or-list value's items, each with its key path suffix (none for a lone string)."""
    return [((i,), item) for i, item in enumerate(value)] if isinstance(value, list) else [((), value)]


def per_family(value: Any, parse: Callable[[Any], T], what: str) -> Iterator[tuple[tuple[int, ...], T | BadValue]]:
    """Each item parsed, or the reason it cannot be; a second item of one family is refused."""
    seen: set[int] = set()
    for suffix, text in items(value):
        try:
            parsed = parse(text)
        except BadValue as err:
            yield suffix, err
            continue
        if parsed.version in seen:
            yield suffix, BadValue(f"a second IPv{parsed.version} {what}: give at most one per family")
            continue
        seen.add(parsed.version)
        yield suffix, parsed


def by_family(value: Any, parse: Callable[[Any], T], what: str = "address") -> dict[int, T]:
    """The parsed items by family (for data the checks passed)."""
    return {parsed.version: parsed for _, parsed in per_family(value, parse, what) if not isinstance(parsed, BadValue)}


def bridge_subnets(spec: Mapping[str, Any]) -> dict[int, IPNetwork]:
    return by_family(spec["subnet"], parse_subnet, "network") if "subnet" in spec else {}


def bridge_gateways(spec: Mapping[str, Any], subnets: Mapping[int, IPNetwork]) -> dict[int, IPAddress]:
    """The gateway of each family: given, or the subnet's first host; none with `gateway: none`."""
    raw = spec.get("gateway")
    if raw == GATEWAY_NONE:
        return {}
    given: dict[int, IPAddress] = by_family(raw, parse_ip) if raw is not None else {}
    return {version: given.get(version) or subnet.network_address + 1 for version, subnet in subnets.items()}  # .1, ::1


def pool_networks(spec: Mapping[str, Any]) -> dict[int, IPNetwork]:
    """A pool's networks by family (as written: under the wrong key, a network is not the pool's)."""
    found: dict[int, IPNetwork] = {}
    for version, key in ((4, "ipv4"), (6, "ipv6")):
        try:
            network = parse_network(spec[key]) if key in spec else None
        except BadValue:
            continue
        if network is not None and network.version == version:
            found[version] = network
    return found


def pool_prefixes(spec: Mapping[str, Any] | None, defaults: tuple[int, int]) -> dict[int, int]:
    spec = spec or {}
    return {4: spec.get("prefix", defaults[0]), 6: spec.get("prefix6", defaults[1])}


def link_prefixes(p2p: Mapping[str, Any] | None) -> dict[int, int]:
    """The prefix a pinned link address without one takes: the p2p pool's, else /31 and /127."""
    return pool_prefixes(p2p, P2P_PREFIXES)


def loopback_address(text: Any) -> IPInterface:
    return parse_address(text, {4: LOOPBACK_PREFIXES[0], 6: LOOPBACK_PREFIXES[1]})


def canonical_address(text: str) -> str:
    """An address as claims compare it (`fd00:0::1` is `fd00::1`); other text as written."""
    try:
        return str(ip_address(text))
    except ValueError:
        return text


SHAPE_ERRORS = (LookupError, TypeError, AttributeError, ValueError)


# what the checks share: every bridge's, pool's and link's networks, parsed once


@dataclass
class _Bridge:
    subnets: dict[int, IPNetwork]
    gateways: dict[int, IPAddress]
    defaulted: set[int]  # the families whose gateway is the default, the subnet's first host


@dataclass(eq=False)  # one per link, by identity
class _Link:
    index: int
    ends: tuple[Endpoint, Endpoint]
    families: set[int]  # the families both ends have an address in, pinned or from the pool
    networks: dict[int, IPNetwork] = field(default_factory=dict)  # pinned, per family


@dataclass
class _Context:
    data: dict[str, Any]
    tolerant: bool
    bridges: dict[str, _Bridge] = field(default_factory=dict)
    pools: dict[str, dict[int, IPNetwork]] = field(default_factory=dict)  # "p2p", "loopback" -> its networks
    links: list[_Link] = field(default_factory=list)  # the links whose two ends are valid
    ends: dict[tuple[str, str], tuple[_Link, int]] = field(default_factory=dict)
    ends_in: dict[str, list[tuple[str, _Link]]] = field(default_factory=dict)  # namespace -> its link ends
    used: dict[IPAddress, str] = field(default_factory=dict)  # every pinned address and its user

    def namespaces(self) -> dict[str, Any]:
        found = self.data.get("namespaces") or {}
        return found if isinstance(found, dict) else {}

    def pool_label(self, kind: str) -> str:
        return f"the {kind} pool (addressing.{kind})"


def _guarded(ctx: _Context, make: Callable[[], None]) -> None:
    try:
        make()
    except SHAPE_ERRORS:
        if not ctx.tolerant:
            raise


def _context(data: dict[str, Any], tolerant: bool) -> _Context:
    ctx = _Context(data, tolerant)
    _guarded(ctx, lambda: ctx.bridges.update(_bridges(data)))
    _guarded(ctx, lambda: ctx.pools.update(_pools(data)))
    _guarded(ctx, lambda: _collect_links(ctx))
    return ctx


def _bridges(data: dict[str, Any]) -> Iterator[tuple[str, _Bridge]]:
    for name, spec in (data.get("bridges") or {}).items():
        spec = spec or {}
        subnets = bridge_subnets(spec)
        try:
            gateways = bridge_gateways(spec, subnets)
            given = set(by_family(spec["gateway"], parse_ip)) if spec.get("gateway") not in (None, GATEWAY_NONE) else set()
        except SHAPE_ERRORS:
            gateways, given = {}, set()  # reported by _check_bridges
        yield name, _Bridge(subnets, gateways, set(gateways) - given)


def _pools(data: dict[str, Any]) -> Iterator[tuple[str, dict[int, IPNetwork]]]:
    for kind, spec in (data.get("addressing") or {}).items():
        if isinstance(spec, dict):
            yield kind, pool_networks(spec)


def _collect_links(ctx: _Context) -> None:
    """The links whose ends are two valid ends in two namespaces, each end once."""
    namespaces = ctx.namespaces()
    p2p = ctx.pools.get("p2p", {})
    prefixes = link_prefixes((ctx.data.get("addressing") or {}).get("p2p"))
    for index, spec in enumerate(ctx.data.get("links") or ()):
        ends = spec.get("endpoints") if isinstance(spec, dict) else None
        if not (isinstance(ends, list) and len(ends) == 2 and all(is_endpoint(e) for e in ends)):
            continue
        a, b = (parse_endpoint(e) for e in ends)
        if a.namespace == b.namespace or a.namespace not in namespaces or b.namespace not in namespaces or a.key in ctx.ends or b.key in ctx.ends:
            continue
        pinned = [_pinned(spec, str(end), prefixes) for end in (a, b)]
        both = {v for v in (4, 6) if v in pinned[0] and v in pinned[1]}
        neither = {v for v in p2p if v not in pinned[0] and v not in pinned[1]}
        link = _Link(index, (a, b), both | neither, {v: pinned[0][v].network for v in both})
        ctx.links.append(link)
        for side, end in enumerate(link.ends):
            ctx.ends[end.key] = (link, side)
            ctx.ends_in.setdefault(end.namespace, []).append((end.interface, link))


def _pinned(spec: dict[str, Any], end: str, prefixes: Mapping[int, int]) -> dict[int, IPInterface]:
    addresses = spec.get("addresses") or {}
    if not isinstance(addresses, dict) or end not in addresses:
        return {}
    return by_family(addresses[end], lambda text: parse_address(text, prefixes))


# the checks


def semantic_problems(data: dict[str, Any], tolerant: bool = False) -> list[tuple[tuple[Any, ...], str]]:
    """Every semantic problem, in file order.

    With `tolerant`, the data may be schema-invalid: a check family that meets
    a wrong shape stops there and the others still run (the schema errors say
    where the shape is wrong).
    """
    ctx = _context(data, tolerant)
    found: list[tuple[tuple[Any, ...], str]] = []
    for check in (
        _check_addressing,
        _check_bridges,
        _check_interfaces,
        _check_loopbacks,
        _check_links,
        _check_routes,
        _check_sysctls,
        _check_forwards,
        _check_checks,
    ):
        try:
            for problem in check(ctx):
                found.append(problem)
        except SHAPE_ERRORS:
            if not tolerant:
                raise
    return found


K = TypeVar("K")


def sweep(entries: list[tuple[K, IPNetwork]], order: Callable[[K], int]) -> dict[K, tuple[K, IPNetwork, IPNetwork]]:
    """Overlapping networks by one sweep in address order (not all pairs): for each entry that
    overlaps one coming earlier by `order`, (that entry, its network, the entry's own network), once."""
    found: dict[K, tuple[K, IPNetwork, IPNetwork]] = {}
    for version in (4, 6):
        cover: tuple[K, IPNetwork] | None = None  # the network so far reaching furthest
        family = sorted((e for e in entries if e[1].version == version), key=lambda e: (int(e[1].network_address), e[1].prefixlen))
        for key, network in family:
            if cover and int(network.network_address) <= int(cover[1].broadcast_address):
                (early, early_net), (late, late_net) = sorted([cover, (key, network)], key=lambda e: order(e[0]))
                found.setdefault(late, (early, early_net, late_net))
                if int(network.broadcast_address) > int(cover[1].broadcast_address):
                    cover = (key, network)
            else:
                cover = (key, network)
    return found


def _overlaps(subnets: list[tuple[str, IPNetwork]]) -> dict[str, str]:
    """Bridge -> the overlap reported on it; each is reported on the bridge that comes later in the file."""
    order = {name: i for i, (name, _) in enumerate(subnets)}
    return {late: f"{net} overlaps {early_net} of bridge {early}" for late, (early, early_net, net) in sweep(subnets, order.__getitem__).items()}


class _Ranges:
    """Networks of one kind (bridge subnets, a pool), to find one that a network overlaps in
    O(log n): sorted by start, with the furthest end reached so far."""

    def __init__(self, networks: list[tuple[str, IPNetwork]]):
        ordered = sorted(networks, key=lambda n: (n[1].version, int(n[1].network_address)))
        self._starts = [(n.version, int(n.network_address)) for _, n in ordered]
        self._reach: list[tuple[int, str, IPNetwork]] = []
        for label, network in ordered:
            end = int(network.broadcast_address)
            if self._reach and self._reach[-1][2].version == network.version and self._reach[-1][0] >= end:
                self._reach.append(self._reach[-1])
            else:
                self._reach.append((end, label, network))

    def overlapping(self, network: IPNetwork) -> tuple[str, IPNetwork] | None:
        i = bisect.bisect_right(self._starts, (network.version, int(network.broadcast_address))) - 1
        if i < 0 or self._starts[i][0] != network.version:
            return None
        end, label, found = self._reach[i]
        return (label, found) if found.version == network.version and end >= int(network.network_address) else None


# addressing


def _check_addressing(ctx: _Context) -> Found:
    addressing = ctx.data.get("addressing") or {}
    seen: list[tuple[str, IPNetwork]] = []
    bridges = _Ranges(list(_labelled_bridges(ctx)))
    for kind, defaults in (("p2p", P2P_PREFIXES), ("loopback", LOOPBACK_PREFIXES)):
        spec = addressing.get(kind)
        if spec is None:
            continue
        path = ("addressing", kind)
        prefixes = pool_prefixes(spec, defaults)
        for version, key, prefix_key in ((4, "ipv4", "prefix"), (6, "ipv6", "prefix6")):
            if key not in spec:
                if prefix_key in spec:
                    yield (*path, prefix_key), f"{prefix_key} without {key}: the pool has no IPv{version} network to cut into blocks"
                continue
            try:
                network = parse_network(spec[key])
            except BadValue as err:
                yield (*path, key), str(err)
                continue
            if network.version != version:
                yield (*path, key), f"{network} is IPv{network.version}: write it under ipv{network.version}"
                continue
            reason = _unicast_range(network)
            if reason:
                yield (*path, key), f"{reason}; a pool needs unicast addresses"
                continue
            yield from _check_pool_prefix((*path, prefix_key), kind, network, prefixes[version])
            other = next((f"{n} of {label}" for label, n in seen if n.overlaps(network)), None) or _of(bridges.overlapping(network))
            if other:
                yield (*path, key), f"{network} overlaps {other}: a pool's addresses must be its own"
            seen.append((ctx.pool_label(kind), network))
            yield from _check_pool_room(ctx, (*path, key), kind, network, prefixes[version])


def _of(found: tuple[str, IPNetwork] | None) -> str | None:
    return None if found is None else f"{found[1]} of {found[0]}"


def _check_pool_prefix(path: tuple[Any, ...], kind: str, network: IPNetwork, prefix: int) -> Found:
    if prefix < network.prefixlen:
        yield path, f"/{prefix} blocks do not fit in {network}: give a prefix of at least {network.prefixlen}"
    elif kind == "p2p" and prefix == network.max_prefixlen:
        yield path, f"a /{prefix} block holds one address and a link needs two: give {prefix - 1} or less"


def _check_pool_room(ctx: _Context, path: tuple[Any, ...], kind: str, network: IPNetwork, prefix: int) -> Found:
    """A pool has a block for each of its users (blocks holding a pinned address excluded)."""
    if prefix < network.prefixlen or prefix > network.max_prefixlen:
        return
    version = network.version
    if kind == "p2p":
        users = sum(1 for link in ctx.links if version in link.families and version not in link.networks)
        pinned = [link.networks[version] for link in ctx.links if version in link.networks]
        what = "link takes" if users == 1 else "links take"
    else:
        auto = [name for name, ns in ctx.namespaces().items() if (ns or {}).get("loopback") == LOOPBACK_AUTO]
        users = len(auto)
        pinned = [a.network for ns in ctx.namespaces().values() for a in _pinned_loopbacks(ns).values() if a.version == version]
        what = "namespace takes" if users == 1 else "namespaces take"
    taken: set[IPNetwork] = {n.supernet(new_prefix=prefix) if n.prefixlen > prefix else n for n in pinned if n.subnet_of(network)}  # type: ignore[arg-type]
    room = 2 ** (prefix - network.prefixlen) - sum(2 ** max(0, prefix - n.prefixlen) for n in taken)
    if kind != "p2p" and prefix == network.max_prefixlen and network.num_addresses > 1:
        room -= 1  # a loopback pool never gives out its own network address (engine/addressing.py)
    if users > room:
        yield path, f"{network} has room for {room} /{prefix} block{'s' if room != 1 else ''}, but {users} {what} an address from it"


# bridges


def _check_bridges(ctx: _Context) -> Found:
    overlaps = _overlaps([(name, net) for name, b in ctx.bridges.items() for net in b.subnets.values()])
    for name, spec in (ctx.data.get("bridges") or {}).items():
        spec = spec or {}
        path = ("bridges", name)
        bridge = ctx.bridges.get(name)
        if "subnet" in spec:
            for suffix, parsed in per_family(spec["subnet"], parse_subnet, "network"):
                if isinstance(parsed, BadValue):
                    yield (*path, "subnet", *suffix), str(parsed)
            if name in overlaps:
                yield (*path, "subnet"), overlaps[name]
        if "gateway" in spec and spec["gateway"] != GATEWAY_NONE:
            yield from _check_gateways(path, spec["gateway"], bridge, "subnet" in spec)
        if spec.get("masquerade") and "subnet" not in spec:
            yield (*path, "masquerade"), "masquerade needs a subnet on the bridge (it source-NATs that subnet)"
        if spec.get("allow_overlap") and "subnet" not in spec:
            yield (*path, "allow_overlap"), "allow_overlap needs a subnet on the bridge (only a subnet can overlap the host's networks)"


def _gateway(text: Any) -> IPAddress:
    if text == GATEWAY_NONE:
        raise BadValue("`none` stands alone: `gateway: none`")
    return parse_ip(text)


def _check_gateways(path: tuple[Any, ...], value: Any, bridge: _Bridge | None, has_subnet: bool) -> Found:
    for suffix, gateway in per_family(value, _gateway, "gateway"):
        where = (*path, "gateway", *suffix)
        if isinstance(gateway, BadValue):
            yield where, str(gateway)
            continue
        if not has_subnet:
            yield where, "a gateway needs a subnet on the bridge"
            return
        if bridge is None or not bridge.subnets:
            continue  # the subnet is wrong: reported with it
        subnet = bridge.subnets.get(gateway.version)
        if subnet is None:
            yield where, f"{gateway} is IPv{gateway.version}, but the bridge has no IPv{gateway.version} subnet"
            continue
        reason = _unusable_host(gateway, subnet)
        if reason:
            yield where, f"{gateway} {reason}"


def _unusable_host(address: IPAddress, subnet: IPNetwork) -> str | None:
    if address not in subnet:
        return f"is outside subnet {subnet}"
    if address == subnet.network_address:
        return f"is the network address of {subnet}" if subnet.version == 4 else f"is the subnet-router anycast address of {subnet}"
    if address == subnet.broadcast_address and subnet.version == 4:
        return f"is the broadcast address of {subnet}"
    return None


# interfaces


def _interfaces(data: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for ns_name, ns in (data.get("namespaces") or {}).items():
        for if_name, spec in ((ns or {}).get("interfaces") or {}).items():
            yield ns_name, if_name, spec


def _check_interfaces(ctx: _Context) -> Found:
    ports: dict[str, int] = defaultdict(int)
    pools = _Ranges([*_labelled_pool(ctx, "p2p"), *_labelled_pool(ctx, "loopback")])
    for ns_name, if_name, spec in _interfaces(ctx.data):
        path = ("namespaces", ns_name, "interfaces", if_name)
        if if_name in RESERVED_INTERFACES:
            yield path, f"{if_name!r} is reserved: nsnet brings up lo in every namespace itself"
        bridge = spec["bridge"]
        if bridge not in ctx.bridges:
            yield (*path, "bridge"), f"unknown bridge {bridge!r} (not under bridges:)"
            continue
        ports[bridge] += 1
        if ports[bridge] == MAX_BRIDGE_PORTS + 1:
            yield (
                (*path, "bridge"),
                f"bridge {bridge} would get more than {MAX_BRIDGE_PORTS} ports, the Linux bridge limit; split the namespaces over several bridges",
            )
        if "address" in spec:
            for suffix, text in items(spec["address"]):
                yield from _check_address(ctx, (*path, "address", *suffix), text, bridge, pools)
            yield from _second_of_a_family((*path, "address"), spec["address"], "address")
        if "mac" in spec:
            yield from _check_mac((*path, "mac"), spec["mac"])
    yield from _check_capacity(ctx, ports)


def _second_of_a_family(path: tuple[Any, ...], value: Any, what: str) -> Found:
    """Two items of one family (each item's own problems are reported where it is checked)."""
    for suffix, parsed in per_family(value, _ip_interface, what):
        if isinstance(parsed, BadValue) and str(parsed).startswith("a second"):
            yield (*path, *suffix), str(parsed)


def _check_mac(path: tuple[Any, ...], mac: str) -> Found:
    if int(mac.split(":")[0], 16) & 1:
        yield path, f"{mac} is a multicast address; an interface needs a unicast MAC"
    elif set(mac.replace(":", "")) == {"0"}:
        yield path, f"{mac} is not a usable MAC address (the kernel refuses all zeros)"


def _check_capacity(ctx: _Context, ports: dict[str, int]) -> Found:
    """A subnet must hold the gateway and one address per port (network and broadcast excluded)."""
    for bridge, count in ports.items():
        for version, subnet in ctx.bridges[bridge].subnets.items():
            gateway = version in ctx.bridges[bridge].gateways
            room = subnet.num_addresses - (2 if version == 4 else 1) - (1 if gateway else 0)
            if count > room:
                yield (
                    ("bridges", bridge, "subnet"),
                    f"{subnet} has room for {room} interface address{'es' if room != 1 else ''}{' besides the gateway' if gateway else ''}, "
                    f"but {count} interfaces use bridge {bridge}",
                )


def _check_address(ctx: _Context, path: tuple[Any, ...], text: Any, bridge_name: str, pools: _Ranges) -> Found:
    bridge = ctx.bridges[bridge_name]
    try:
        raw = _ip_interface(text)
        subnet = bridge.subnets.get(raw.version)
        if bridge.subnets and subnet is None:
            yield path, f"{raw.ip} is IPv{raw.version}, but bridge {bridge_name} has no IPv{raw.version} subnet"
            return
        address = parse_interface_address(text, subnet)
    except BadValue as err:
        yield path, str(err)
        return
    where = ".".join(path[1:4:2])
    yield from _claim(ctx, path, address.ip, where)
    if subnet is None:  # the address brings its own network: it must still be a host of it
        try:
            _check_prefix(address.network)
        except BadValue as err:
            yield path, str(err)
            return
        reason = _unusable_host(address.ip, address.network)
        if reason:
            yield path, f"{address.ip} {reason}"
        elif (pool := pools.overlapping(address.network)) is not None:
            yield path, f"{address.network} overlaps {pool[1]} of {pool[0]}: pin an address outside the pools"
        return
    reason = _unusable_host(address.ip, subnet)
    if reason:
        yield path, f"{address.ip} {reason} of bridge {bridge_name}"
    elif address.network != subnet:
        yield path, f"prefix /{address.network.prefixlen} differs from subnet {subnet} of bridge {bridge_name}"
    elif address.ip == bridge.gateways.get(address.version):
        hint = (
            " (by default, its subnet's first host): give the bridge `gateway: none` (a plain switch, when a namespace on it "
            "routes) or another `gateway:`, or pin another address here"
            if address.version in bridge.defaulted
            else ""
        )
        yield path, f"{address.ip} is the gateway of bridge {bridge_name}{hint}"


def _claim(ctx: _Context, path: tuple[Any, ...], ip: IPAddress, where: str) -> Found:
    """Every pinned address has one user in the whole topology."""
    if ip in ctx.used:
        yield path, f"{ip} is already used by {ctx.used[ip]}"
        return
    ctx.used[ip] = where


# loopbacks


def _check_loopbacks(ctx: _Context) -> Found:
    outside = _Ranges([*_labelled_bridges(ctx), *_labelled_pool(ctx, "p2p")])
    for ns_name, ns in ctx.namespaces().items():
        value = (ns or {}).get("loopback")
        if value is None:
            continue
        path = ("namespaces", ns_name, "loopback")
        if value == LOOPBACK_AUTO:
            if not ctx.pools.get("loopback"):
                yield path, "`loopback: auto` needs a loopback pool: give `addressing: loopback:` an ipv4 or ipv6 network"
            continue
        for suffix, parsed in per_family(value, _loopback_address, "address"):
            where = (*path, *suffix)
            if isinstance(parsed, BadValue):
                yield where, str(parsed)
                continue
            if parsed.ip.is_loopback:
                yield where, f"{parsed.ip} is on every lo already: give the namespace an address of its own"
            elif parsed.ip.is_multicast or parsed.ip.is_unspecified or parsed.ip.is_link_local:
                yield where, f"{parsed.ip} is not a unicast address"
            elif (other := outside.overlapping(parsed.network)) is not None:
                yield where, f"{parsed.network} overlaps {other[1]} of {other[0]}: a loopback address must be of its own"
            else:
                yield from _claim(ctx, where, parsed.ip, f"{ns_name}.{LOOPBACK}")


def _pinned_loopbacks(ns: Any) -> dict[int, IPInterface]:
    value = (ns or {}).get("loopback")
    return {} if value is None or value == LOOPBACK_AUTO else by_family(value, _loopback_address)


def _loopback_address(text: Any) -> IPInterface:
    if text == LOOPBACK_AUTO:
        raise BadValue("`auto` stands alone: `loopback: auto`")
    if isinstance(text, str) and not any(c in text for c in ".:"):
        raise BadValue(f"{text!r} is neither `auto` nor an address")
    return loopback_address(text)


def _labelled_bridges(ctx: _Context) -> Iterator[tuple[str, IPNetwork]]:
    return ((f"bridge {name}", net) for name, b in ctx.bridges.items() for net in b.subnets.values())


def _labelled_pool(ctx: _Context, kind: str) -> Iterator[tuple[str, IPNetwork]]:
    return ((ctx.pool_label(kind), net) for net in ctx.pools.get(kind, {}).values())


# links


def _check_links(ctx: _Context) -> Found:
    namespaces = ctx.namespaces()
    ends_seen: dict[tuple[str, str], int] = {}
    outside = _Ranges([*_labelled_bridges(ctx), *_labelled_pool(ctx, "loopback")])
    shared = _shared_link_networks(ctx)
    for index, spec in enumerate(ctx.data.get("links") or ()):
        path = ("links", index)
        ends = [parse_endpoint(e) if is_endpoint(e) else None for e in spec["endpoints"]]
        for j, end in enumerate(ends):
            if end is not None:
                yield from _check_end((*path, "endpoints", j), end, namespaces, ends_seen, index)
        if len(ends) == 2 and ends[0] is not None and ends[1] is not None and ends[0].namespace == ends[1].namespace:
            yield (*path, "endpoints", 1), f"both ends are in namespace {ends[0].namespace}: a link joins two namespaces"
        names = [str(e) for e in ends if e is not None]
        if isinstance(spec.get("netem"), dict):
            yield from _check_netem((*path, "netem"), spec["netem"], names)
        if isinstance(spec.get("addresses"), dict):
            yield from _check_link_addresses(ctx, path, spec["addresses"], names, outside)
        if index in shared:
            yield (*path, "addresses"), shared[index]


def _shared_link_networks(ctx: _Context) -> dict[int, str]:
    """Link -> the pinned network it shares with an earlier link."""
    pinned = [(link, network) for link in ctx.links for network in link.networks.values()]
    return {
        late.index: f"{net} {'is already' if net == early_net else f'overlaps {early_net},'} the network of links item {early.index} "
        f"({early.ends[0]}, {early.ends[1]}): each link needs a network of its own (two ends, no third)"
        for late, (early, early_net, net) in sweep(pinned, lambda link: link.index).items()
    }


def _check_end(path: tuple[Any, ...], end: Endpoint, namespaces: dict[str, Any], seen: dict[tuple[str, str], int], index: int) -> Found:
    if end.namespace not in namespaces:
        yield path, f"unknown namespace {end.namespace!r} (not under namespaces:)"
        return
    if (namespaces[end.namespace] or {}).get("path") is not None:
        yield path, f"namespace {end.namespace} is a data source (`path:`): links join namespaces that nsnet creates"
    if end.interface in RESERVED_INTERFACES:
        yield path, f"{end.interface!r} is reserved: nsnet brings up lo in every namespace itself"
    elif end.interface in ((namespaces[end.namespace] or {}).get("interfaces") or {}):
        yield path, f"namespace {end.namespace} already has an interface {end.interface} (namespaces.{end.namespace}.interfaces)"
    elif end.key in seen:
        yield path, f"{end} is already an end of links item {seen[end.key]}"
    else:
        seen[end.key] = index


NETEM_KEYS = frozenset(f.name for f in fields(netem.Netem))


def _check_netem(path: tuple[Any, ...], spec: dict[str, Any], ends: list[str]) -> Found:
    """Impairments for both ends, or per end: the endpoints as keys (other keys: the schema's to refuse)."""
    per_end = [key for key in spec if is_endpoint(key)]
    if not per_end:
        yield from _netem_units(path, {k: v for k, v in spec.items() if k in NETEM_KEYS})
        return
    for key, value in spec.items():
        if key in NETEM_KEYS:
            yield (*path, key), "impairments are for both ends, or per end under the endpoints as keys, not both"
        elif key not in per_end:
            continue
        elif key not in ends:
            yield (*path, key), f"{key} is not an end of this link ({', '.join(ends)})"
        elif not isinstance(value, dict):
            yield (*path, key), "an end's impairments are a mapping, e.g. {delay: 20ms}"
        else:
            yield from _netem_units((*path, key), value)


def _netem_units(path: tuple[Any, ...], spec: dict[str, Any]) -> Found:
    try:
        netem.parse(spec)
    except netem.UnitError as err:
        key, _, message = str(err).partition(": ")
        yield (*path, key), message


def _check_link_addresses(ctx: _Context, path: tuple[Any, ...], addresses: dict[str, Any], ends: list[str], outside: _Ranges) -> Found:
    prefixes = link_prefixes((ctx.data.get("addressing") or {}).get("p2p"))
    pinned: dict[str, dict[int, IPInterface | None]] = {}  # None: given, but refused
    for end, value in addresses.items():
        where = (*path, "addresses", end)
        if end not in ends:
            yield where, f"{end} is not an end of this link ({', '.join(ends)})"
            continue
        pinned[end] = {}
        for suffix, parsed in per_family(value, lambda text: parse_address(text, prefixes), "address"):
            if isinstance(parsed, BadValue):
                yield (*where, *suffix), str(parsed)
                continue
            problem = _link_address_problem(parsed, outside)
            pinned[end].setdefault(parsed.version, None if problem else parsed)
            if problem:
                yield (*where, *suffix), problem
            else:
                yield from _claim(ctx, (*where, *suffix), parsed.ip, end)
    if len(ends) != 2 or not pinned:
        return
    a, b = ends
    for version in (4, 6):
        first, second = pinned.get(a, {}), pinned.get(b, {})
        if (version in first) != (version in second):
            have, lack = (a, b) if version in first else (b, a)
            yield (
                (*path, "addresses", have),
                (f"{have} has an IPv{version} address but {lack} has none: pin both ends of a family, or neither to take both from the p2p pool"),
            )
        elif (one := first.get(version)) is not None and (two := second.get(version)) is not None and two.network != one.network:
            yield (*path, "addresses", b), f"{two} is not in {one.network}, the network of {a}: both ends of a link share one network"


def _link_address_problem(address: IPInterface, outside: _Ranges) -> str | None:
    if address.ip.is_loopback or address.ip.is_multicast or address.ip.is_unspecified or address.ip.is_link_local:
        return f"{address.ip} is not a unicast address"
    if address.network.prefixlen == address.max_prefixlen:
        return f"a /{address.max_prefixlen} holds one address, and a link has two ends: give /{address.max_prefixlen - 1} or shorter"
    if address.network.prefixlen < address.max_prefixlen - 1:
        reason = _unusable_host(address.ip, address.network)
        if reason:
            return f"{address.ip} {reason}"
    other = outside.overlapping(address.network)
    if other is not None:
        return f"{address.network} overlaps {other[1]} of {other[0]}"
    return None


# routes


@dataclass
class _Reach:
    """What a namespace reaches directly: the networks of its interfaces and link ends, and its devices."""

    networks: list[IPNetwork]
    devices: set[str]


def _reach(ctx: _Context, ns_name: str, ns: dict[str, Any]) -> _Reach:
    networks: list[IPNetwork] = []
    devices = {LOOPBACK}
    for if_name, spec in (ns.get("interfaces") or {}).items():
        devices.add(if_name)
        bridge = ctx.bridges.get(spec["bridge"])
        subnets = dict(bridge.subnets) if bridge else {}
        for _, text in items(spec.get("address", [])):
            try:  # a pinned address: its own network (its subnet's, without a prefix)
                address = interface_address(text, subnets)
            except BadValue:
                continue
            networks.append(address.network)
            subnets.pop(address.version, None)
        networks += subnets.values()  # the families allocated from the bridge
    p2p = ctx.pools.get("p2p", {})
    for interface, link in ctx.ends_in.get(ns_name, ()):
        devices.add(interface)
        networks += link.networks.values()
        networks += [p2p[v] for v in link.families if v not in link.networks and v in p2p]
    return _Reach(networks, devices)


def _check_routes(ctx: _Context) -> Found:
    for ns_name, ns in ctx.namespaces().items():
        ns = ns or {}
        if "routes" not in ns:
            continue
        reach = _reach(ctx, ns_name, ns)
        destinations: dict[IPNetwork, int] = {}
        for index, route in enumerate(ns.get("routes") or ()):
            path = ("namespaces", ns_name, "routes", index)
            destination = None
            try:
                destination = parse_destination(route["to"])
            except BadValue as err:
                yield (*path, "to"), str(err)
            else:
                if destination in destinations:
                    yield (*path, "to"), f"route to {route['to']} is already defined (routes item {destinations[destination]})"
                destinations[destination] = index
            yield from _check_route(ctx, path, ns_name, route, destination, reach)


def _check_route(ctx: _Context, path: tuple[Any, ...], ns_name: str, route: dict[str, Any], destination: IPNetwork | None, reach: _Reach) -> Found:
    kind = route.get("type")
    if kind is not None:
        for key, what in (("via", "gateway"), ("dev", "device")):
            if key in route:
                yield (*path, key), f"a {kind} route has no {what}: drop `{key}` (or `type`)"
        return
    if "via" not in route and "dev" not in route:
        yield path, "a route needs `via` (a gateway) or `dev` (a device route), or a `type` (blackhole, unreachable or prohibit)"
        return
    if "dev" in route and route["dev"] not in reach.devices:
        yield (*path, "dev"), f"namespace {ns_name} has no interface {route['dev']!r} (its interfaces, link ends and lo)"
    seen: set[Any] = set()
    for suffix, text in items(route.get("via", [])):
        where = (*path, "via", *suffix)
        try:
            gateway = parse_gateway(text)
        except BadValue as err:
            yield where, str(err)
            continue
        if gateway in seen:
            yield where, f"gateway {text} is listed twice"
            continue
        seen.add(gateway)
        if isinstance(gateway, Endpoint):
            yield from _check_via_end(ctx, where, ns_name, gateway, destination)
            continue
        if destination is not None and gateway.version != destination.version:
            yield where, f"gateway {gateway} is IPv{gateway.version}, but the route to {route['to']} is IPv{destination.version}"
        elif gateway.is_link_local and gateway.version == 6:
            if "dev" not in route:
                yield where, f"gateway {gateway} is link-local: give `dev:` to say on which link"
        elif not any(gateway in net for net in reach.networks if net.version == gateway.version):
            yield where, f"gateway {gateway} is not reachable: no interface of {ns_name} is in a network containing it"


def _check_via_end(ctx: _Context, path: tuple[Any, ...], ns_name: str, end: Endpoint, destination: IPNetwork | None) -> Found:
    found = ctx.ends.get(end.key)
    if found is None:
        yield path, f"{end} is not a link end (no link under links: has it)"
        return
    link, side = found
    peer = link.ends[1 - side]
    if peer.namespace != ns_name:
        yield path, f"{end} is no neighbour of {ns_name}: the other end of its link (links item {link.index}) is {peer}"
        return
    if destination is not None and destination.version not in link.families:
        family = "ipv4" if destination.version == 4 else "ipv6"
        yield (
            path,
            (
                f"{end} has no IPv{destination.version} address: pin one in links item {link.index}'s addresses, "
                f"or give the p2p pool an {family} network (addressing.p2p.{family})"
            ),
        )


# sysctls


def _check_sysctls(ctx: _Context) -> Found:
    """`forwarding: true` sets both forwarding keys to 1: an explicit other value contradicts it."""
    for ns_name, ns in ctx.namespaces().items():
        if not (ns or {}).get("forwarding"):
            continue
        for key, value in (ns.get("sysctls") or {}).items():
            if key in FORWARDING_KEYS and sysctl_text(value) != FORWARDING_ON:
                yield ("namespaces", ns_name, "sysctls", key), f"{key}: {value} contradicts `forwarding: true`, which sets it to {FORWARDING_ON}"


# port forwards


def _check_forwards(ctx: _Context) -> Found:
    namespaces = ctx.namespaces()
    earlier: dict[tuple[str, int], list[tuple[Claim, int]]] = {}  # (protocol, port) -> claims so far
    for index, forward in enumerate(ctx.data.get("port_forwards") or ()):
        path = ("port_forwards", index)
        host = None
        if "host_address" in forward:
            try:
                host = parse_ip(forward["host_address"])
            except BadValue as err:
                yield (*path, "host_address"), str(err)
            else:
                problem = _host_address_problem(host)
                if problem:
                    yield (*path, "host_address"), problem
                    host = None  # no target to judge for it
        yield from _check_forward_target(ctx, path, forward, namespaces, host)
        claim = (forward.get("protocol", "tcp"), canonical_address(forward.get("host_address", "*")), forward["host_port"])
        same_port = earlier.setdefault((claim[0], claim[2]), [])
        clash = next((i for other, i in same_port if claims_clash(claim, other)), None)
        if clash is not None:
            yield (*path, "host_port"), f"{claim[0]} port {claim[2]} is already forwarded by port_forwards item {clash}"
        same_port.append((claim, index))


def _host_address_problem(host: IPAddress) -> str | None:
    if host.is_unspecified:
        return f"{host} matches no packet; omit host_address to publish on every address"
    if isinstance(host, IPv6Address) and host.is_loopback:
        return (
            "::1 cannot be forwarded into a namespace: the kernel never routes ::1 off the host, and IPv6 has no "
            "route_localnet to allow it as IPv4 does for 127.0.0.1; publish on 127.0.0.1 or on an address of the host"
        )
    return None


def _check_forward_target(ctx: _Context, path: tuple[Any, ...], forward: dict[str, Any], namespaces: dict[str, Any], host: IPAddress | None) -> Found:
    ns_name = forward["namespace"]
    if ns_name not in namespaces:
        yield (*path, "namespace"), f"unknown namespace {ns_name!r} (not under namespaces:)"
        return
    interfaces = (namespaces[ns_name] or {}).get("interfaces") or {}
    if not isinstance(interfaces, dict):
        return  # a wrong shape: the schema error says where
    if not interfaces:
        yield (*path, "namespace"), f"namespace {ns_name} has no interface to forward to"
        return
    if_name = forward.get("interface", next(iter(interfaces)))
    if if_name not in interfaces:
        yield (*path, "interface"), f"namespace {ns_name} has no interface {if_name!r}"
        return
    spec = interfaces[if_name]
    bridge = ctx.bridges.get(spec["bridge"])
    if bridge is None:
        return  # an unknown bridge, reported with the interface
    families = set(bridge.subnets) | (set(by_family(spec["address"], _ip_interface)) if "address" in spec else set())
    if "address" not in spec and not bridge.subnets:
        yield (*path, "namespace"), f"interface {ns_name}.{if_name} has no address (its bridge has no subnet)"
    elif host is not None and families and host.version not in families:
        yield (
            (*path, "host_address"),
            (
                f"an IPv{host.version} forward needs an IPv{host.version} address on {ns_name}.{if_name}: "
                f"bridge {spec['bridge']} has no IPv{host.version} subnet"
            ),
        )


# checks of `nsnet test`


def _check_checks(ctx: _Context) -> Found:
    namespaces = ctx.namespaces()
    for index, check in enumerate(ctx.data.get("checks") or ()):
        path = ("checks", index)
        if check["from"] not in namespaces:
            yield (*path, "from"), f"unknown namespace {check['from']!r} (not under namespaces:)"
        target = check["to"]
        address = None
        if target not in namespaces:
            try:
                address = parse_ip(target)
            except BadValue:
                yield (*path, "to"), f"{target!r} is neither a namespace of this file nor an IPv4 or IPv6 address"
        if check.get("ping") and "port" in check:
            yield path, "a check pings (`ping: true`) or connects to a `port`, not both"
        elif not check.get("ping") and "port" not in check:
            yield path, "a check needs `ping: true` or a `port` to connect to"
        if "protocol" in check and "port" not in check:
            yield (*path, "protocol"), "protocol is for a check with a `port`; a ping has none"
        if address is not None and "family" in check and check["family"] != address.version:
            yield (*path, "family"), f"family {check['family']}, but {address} is IPv{address.version}"
