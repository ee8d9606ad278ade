"""Semantic checks of schema-valid topology data.

Each check returns (key path, message) pairs so the loader can point at the
offending line. Parsing helpers live here too because the checks and the
model builder must read addresses the same way.
"""

from __future__ import annotations

from collections import defaultdict
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, IPv4Network, NetmaskValueError, ip_interface
from typing import Any, Iterator

from .claims import Claim, claims_clash
from .topology import FORWARDING_KEYS, FORWARDING_ON, sysctl_text

Found = Iterator[tuple[tuple[Any, ...], str]]

MAX_BRIDGE_PORTS = 1024  # the kernel's BR_MAX_PORTS
MIN_PREFIX, MAX_PREFIX = 8, 30
RESERVED_INTERFACES = {"lo"}


class BadValue(ValueError):
    """A value that cannot be parsed; its text is the user-facing reason."""


def _ipv4_interface(text: str) -> IPv4Interface:
    if not isinstance(text, str):
        raise BadValue(f"{text!r} is not an IPv4 address")
    try:
        value = ip_interface(text)
    except ValueError:
        raise BadValue(f"{text!r} is not an IPv4 address") from None
    if not isinstance(value, IPv4Interface):
        raise BadValue(f"{text!r} is IPv6; nsnet addresses are IPv4")
    return value


def parse_subnet(text: str) -> IPv4Network:
    iface = _ipv4_interface(text)
    if "/" not in text:
        raise BadValue(f"{text!r} needs a prefix length, e.g. {text}/24")
    if iface.ip != iface.network.network_address:
        raise BadValue(f"{text!r} has host bits set; did you mean {iface.network}?")
    _check_prefix(iface.network)
    network = iface.network
    if network.is_loopback or network.is_multicast or network.subnet_of(UNSPECIFIED):
        raise BadValue(f"{network} is a loopback, multicast or 0.0.0.0/8 range; a bridge needs unicast addresses")
    return network


UNSPECIFIED = IPv4Network("0.0.0.0/8")


def _check_prefix(network: IPv4Network) -> None:
    if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
        raise BadValue(f"prefix /{network.prefixlen} is outside /{MIN_PREFIX}../{MAX_PREFIX}: no room for a gateway and hosts")


def parse_interface_address(text: str, subnet: IPv4Network | None = None) -> IPv4Interface:
    """`a.b.c.d` (takes the subnet's prefix) or `a.b.c.d/prefix`."""
    iface = _ipv4_interface(text)
    if "/" in text:
        return iface
    if subnet is None:
        raise BadValue(f"{text!r} needs a prefix length because its bridge has no subnet")
    return IPv4Interface(f"{iface.ip}/{subnet.prefixlen}")


def parse_destination(text: str) -> IPv4Network:
    if text == "default":
        return IPv4Network("0.0.0.0/0")
    iface = _ipv4_interface(text)
    if iface.ip != iface.network.network_address:
        raise BadValue(f"{text!r} has host bits set; did you mean {iface.network}?")
    return iface.network


def parse_ipv4(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except (AddressValueError, NetmaskValueError):
        raise BadValue(f"{text!r} is not an IPv4 address") from None


def default_gateway(subnet: IPv4Network | None) -> IPv4Address | None:
    return None if subnet is None else subnet.network_address + 1


SHAPE_ERRORS = (LookupError, TypeError, AttributeError, ValueError)


def semantic_problems(data: dict[str, Any], tolerant: bool = False) -> list[tuple[tuple[Any, ...], str]]:
    """Every semantic problem, in file order.

    With `tolerant`, the data may be schema-invalid: a check family that meets
    a wrong shape stops there and the others still run (the schema errors say
    where the shape is wrong).
    """
    try:
        subnets = dict(_bridge_subnets(data))
    except SHAPE_ERRORS:
        if not tolerant:
            raise
        subnets = {}
    found: list[tuple[tuple[Any, ...], str]] = []
    for check in (_check_bridges, _check_interfaces, _check_routes, _check_sysctls, _check_forwards):
        try:
            for problem in check(data, subnets):
                found.append(problem)
        except SHAPE_ERRORS:
            if not tolerant:
                raise
    return found


def _bridge_subnets(data: dict[str, Any]) -> Iterator[tuple[str, IPv4Network | None]]:
    for name, spec in (data.get("bridges") or {}).items():
        try:
            yield name, parse_subnet(spec["subnet"]) if spec and "subnet" in spec else None
        except BadValue:
            yield name, None  # reported by _check_bridges


def _overlaps(subnets: dict[str, IPv4Network | None]) -> dict[str, str]:
    """Bridge -> the overlap reported on it, by one sweep in address order (not all pairs).

    Each overlap is reported on the bridge that comes later in the file.
    """
    order = {name: i for i, name in enumerate(subnets)}
    found: dict[str, str] = {}
    cover: tuple[str, IPv4Network] | None = None  # the subnet so far reaching furthest
    for name, subnet in sorted(((n, s) for n, s in subnets.items() if s), key=lambda i: (i[1].network_address, i[1].prefixlen)):
        if cover and subnet.network_address <= cover[1].broadcast_address:
            (early, early_net), (late, late_net) = sorted([cover, (name, subnet)], key=lambda i: order[i[0]])
            found.setdefault(late, f"{late_net} overlaps {early_net} of bridge {early}")
            if subnet.broadcast_address > cover[1].broadcast_address:
                cover = (name, subnet)
        else:
            cover = (name, subnet)
    return found


def _check_bridges(data: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> Found:
    overlaps = _overlaps(subnets)
    for name, spec in (data.get("bridges") or {}).items():
        spec = spec or {}
        path = ("bridges", name)
        if "subnet" in spec:
            try:
                parse_subnet(spec["subnet"])
            except BadValue as err:
                yield (*path, "subnet"), str(err)
            if name in overlaps:
                yield (*path, "subnet"), overlaps[name]
        if "gateway" in spec:
            yield from _check_gateway(path, spec["gateway"], subnets.get(name), "subnet" in spec)
        if spec.get("masquerade") and "subnet" not in spec:
            yield (*path, "masquerade"), "masquerade needs a subnet on the bridge (it source-NATs that subnet)"
        if spec.get("allow_overlap") and "subnet" not in spec:
            yield (*path, "allow_overlap"), "allow_overlap needs a subnet on the bridge (only a subnet can overlap the host's networks)"


def _check_gateway(path: tuple[Any, ...], text: str, subnet: IPv4Network | None, has_subnet: bool) -> Found:
    try:
        gateway = parse_ipv4(text)
    except BadValue as err:
        yield (*path, "gateway"), str(err)
        return
    if not has_subnet:
        yield (*path, "gateway"), "a gateway needs a subnet on the bridge"
    elif subnet is not None:
        reason = _unusable_host(gateway, subnet)
        if reason:
            yield (*path, "gateway"), f"{gateway} {reason}"


def _unusable_host(address: IPv4Address, subnet: IPv4Network) -> str | None:
    if address not in subnet:
        return f"is outside subnet {subnet}"
    if address == subnet.network_address:
        return f"is the network address of {subnet}"
    if address == subnet.broadcast_address:
        return f"is the broadcast address of {subnet}"
    return None


def _gateway_of(data: dict[str, Any], bridge: str, subnet: IPv4Network | None) -> IPv4Address | None:
    spec = (data.get("bridges") or {}).get(bridge) or {}
    try:
        return parse_ipv4(spec["gateway"]) if "gateway" in spec else default_gateway(subnet)
    except BadValue:
        return None


def _interfaces(data: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for ns_name, ns in (data.get("namespaces") or {}).items():
        for if_name, spec in ((ns or {}).get("interfaces") or {}).items():
            yield ns_name, if_name, spec


def _check_interfaces(data: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> Found:
    used: dict[IPv4Address, str] = {}
    ports: dict[str, int] = defaultdict(int)
    for ns_name, if_name, spec in _interfaces(data):
        path = ("namespaces", ns_name, "interfaces", if_name)
        if if_name in RESERVED_INTERFACES:
            yield path, f"{if_name!r} is reserved: nsnet brings up lo in every namespace itself"
        bridge = spec["bridge"]
        if bridge not in subnets:
            yield (*path, "bridge"), f"unknown bridge {bridge!r} (not under bridges:)"
            continue
        ports[bridge] += 1
        if ports[bridge] == MAX_BRIDGE_PORTS + 1:
            yield (
                (*path, "bridge"),
                f"bridge {bridge} would get more than {MAX_BRIDGE_PORTS} ports, the Linux bridge limit; split the namespaces over several bridges",
            )
        if "address" in spec:
            yield from _check_address(data, path, spec["address"], bridge, subnets[bridge], used)
        if "mac" in spec:
            yield from _check_mac((*path, "mac"), spec["mac"])
    yield from _check_capacity(data, subnets, ports)


def _check_mac(path: tuple[Any, ...], mac: str) -> Found:
    if int(mac.split(":")[0], 16) & 1:
        yield path, f"{mac} is a multicast address; an interface needs a unicast MAC"
    elif set(mac.replace(":", "")) == {"0"}:
        yield path, f"{mac} is not a usable MAC address (the kernel refuses all zeros)"


def _check_capacity(data: dict[str, Any], subnets: dict[str, IPv4Network | None], ports: dict[str, int]) -> Found:
    """A subnet must hold the gateway and one address per port (network and broadcast excluded)."""
    for bridge, count in ports.items():
        subnet = subnets.get(bridge)
        if subnet is not None and count > subnet.num_addresses - 3:
            room = subnet.num_addresses - 3
            yield (
                ("bridges", bridge, "subnet"),
                f"{subnet} has room for {room} interface address{'es' if room != 1 else ''} besides the gateway, "
                f"but {count} interfaces use bridge {bridge}",
            )


def _check_address(
    data: dict[str, Any],
    path: tuple[Any, ...],
    text: str,
    bridge: str,
    subnet: IPv4Network | None,
    used: dict[IPv4Address, str],
) -> Found:
    path = (*path, "address")
    try:
        address = parse_interface_address(text, subnet)
    except BadValue as err:
        yield path, str(err)
        return
    where = ".".join(path[1:4:2])
    if address.ip in used:
        yield path, f"{address.ip} is already used by {used[address.ip]}"
    used[address.ip] = where
    if subnet is None:  # the address brings its own network: it must still be a host of it
        try:
            _check_prefix(address.network)
        except BadValue as err:
            yield path, str(err)
            return
        reason = _unusable_host(address.ip, address.network)
        if reason:
            yield path, f"{address.ip} {reason}"
        return
    reason = _unusable_host(address.ip, subnet)
    if reason:
        yield path, f"{address.ip} {reason} of bridge {bridge}"
    elif address.network != subnet:
        yield path, f"prefix /{address.network.prefixlen} differs from subnet {subnet} of bridge {bridge}"
    elif address.ip == _gateway_of(data, bridge, subnet):
        yield path, f"{address.ip} is the gateway of bridge {bridge}"


def _reachable_networks(data: dict[str, Any], ns: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> list[IPv4Network]:
    networks = []
    for spec in (ns.get("interfaces") or {}).values():
        subnet = subnets.get(spec["bridge"])
        try:
            if "address" in spec:
                networks.append(parse_interface_address(spec["address"], subnet).network)
            elif subnet is not None:
                networks.append(subnet)
        except BadValue:
            pass
    return networks


def _check_routes(data: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> Found:
    for ns_name, ns in (data.get("namespaces") or {}).items():
        ns = ns or {}
        networks = _reachable_networks(data, ns, subnets)
        destinations: dict[IPv4Network, int] = {}
        for index, route in enumerate(ns.get("routes") or ()):
            path = ("namespaces", ns_name, "routes", index)
            try:
                destination = parse_destination(route["to"])
            except BadValue as err:
                yield (*path, "to"), str(err)
            else:
                if destination in destinations:
                    yield (*path, "to"), f"route to {route['to']} is already defined (routes item {destinations[destination]})"
                destinations[destination] = index
            try:
                via = parse_ipv4(route["via"])
            except BadValue as err:
                yield (*path, "via"), str(err)
                continue
            if not any(via in net for net in networks):
                yield (*path, "via"), f"gateway {via} is not reachable: no interface of {ns_name} is in a network containing it"


def _check_sysctls(data: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> Found:
    """`forwarding: true` sets both forwarding keys to 1: an explicit other value contradicts it."""
    for ns_name, ns in (data.get("namespaces") or {}).items():
        if not (ns or {}).get("forwarding"):
            continue
        for key, value in (ns.get("sysctls") or {}).items():
            if key in FORWARDING_KEYS and sysctl_text(value) != FORWARDING_ON:
                yield ("namespaces", ns_name, "sysctls", key), f"{key}: {value} contradicts `forwarding: true`, which sets it to {FORWARDING_ON}"


def _check_forwards(data: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> Found:
    namespaces = data.get("namespaces") or {}
    earlier: dict[tuple[str, int], list[tuple[Claim, int]]] = {}  # (protocol, port) -> claims so far
    for index, forward in enumerate(data.get("port_forwards") or ()):
        path = ("port_forwards", index)
        yield from _check_forward_target(path, forward, namespaces, subnets)
        claim = (forward.get("protocol", "tcp"), forward.get("host_address", "*"), forward["host_port"])
        if claim[1] != "*":
            try:
                if parse_ipv4(claim[1]).is_unspecified:
                    yield (*path, "host_address"), "0.0.0.0 matches no packet; omit host_address to publish on every address"
            except BadValue as err:
                yield (*path, "host_address"), str(err)
        same_port = earlier.setdefault((claim[0], claim[2]), [])
        clash = next((i for other, i in same_port if claims_clash(claim, other)), None)
        if clash is not None:
            yield (*path, "host_port"), f"{claim[0]} port {claim[2]} is already forwarded by port_forwards item {clash}"
        same_port.append((claim, index))


def _check_forward_target(
    path: tuple[Any, ...], forward: dict[str, Any], namespaces: dict[str, Any], subnets: dict[str, IPv4Network | None]
) -> Found:
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
    if spec["bridge"] not in subnets:
        return  # an unknown bridge, reported with the interface
    if "address" not in spec and subnets[spec["bridge"]] is None:
        yield (*path, "namespace"), f"interface {ns_name}.{if_name} has no address (its bridge has no subnet)"
