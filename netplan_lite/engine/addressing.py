"""Automatic addresses, in each family: bridge ports from their bridge's subnet, link ends
from the p2p pool, loopbacks from the loopback pool.

Automatic addresses are sticky: an address nsnet assigned earlier (it carries
nsnet's address protocol marker in the kernel) is kept as long as it is still
valid, so adding or removing other namespaces or links never moves it. New
bridge ports take the lowest free host address of their subnet, in name
order; new links the lowest free block of the pool, in file order (the first
endpoint takes the block's lower address); new loopbacks the lowest free
block, in namespace name order.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Interface, ip_interface, ip_network
from itertools import islice
from typing import Iterable, Mapping, cast

from ..model.topology import LOOPBACK, Bridge, InterfaceKey, IPAddress, IPInterface, IPNetwork, Pool, Topology

Allocated = dict[InterfaceKey, IPInterface]


class AllocationError(ValueError):
    """No address is left for something the file asks for; `key` names the file's section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def allocate(
    topology: Topology, kept: Mapping[InterfaceKey, IPv4Interface], reserved: frozenset[IPv4Address] = frozenset()
) -> dict[InterfaceKey, IPv4Interface]:
    """The IPv4 address of every addressed interface, link end and loopback; `kept` are nsnet's
    earlier assignments, `reserved` addresses held by interfaces out of the plan's scope (never given out)."""
    return cast(dict[InterfaceKey, IPv4Interface], _allocate(topology, 4, kept, reserved))


def allocate6(
    topology: Topology, kept: Mapping[InterfaceKey, IPv6Interface], reserved: frozenset[IPAddress] = frozenset()
) -> dict[InterfaceKey, IPv6Interface]:
    """The same, IPv6."""
    return cast(dict[InterfaceKey, IPv6Interface], _allocate(topology, 6, kept, reserved))


def _allocate(topology: Topology, family: int, kept: Mapping[InterfaceKey, IPInterface], reserved: frozenset[IPAddress]) -> Allocated:
    result: Allocated = {}
    for bridge in topology.bridges:
        result.update(_allocate_bridge(topology, bridge, family, kept, reserved))
    for ns in topology.namespaces:
        for iface in ns.interfaces:
            pinned = iface.address if family == 4 else iface.address6
            if pinned is not None:
                result[(ns.name, iface.name)] = pinned
    result.update(_allocate_links(topology, family, kept))
    result.update(_allocate_loopbacks(topology, family, kept))
    return result


def pinned(addresses: Iterable[IPInterface], family: int) -> IPInterface | None:
    return next((a for a in addresses if a.version == family), None)


def allocated_interfaces(topology: Topology) -> list[InterfaceKey]:
    """The bridge ports whose IPv4 address nsnet allocates (no `address:` in the file)."""
    return [(ns.name, i.name) for ns in topology.namespaces for i in ns.interfaces if i.address is None]


# bridge ports


def _allocate_bridge(
    topology: Topology, bridge: Bridge, family: int, kept: Mapping[InterfaceKey, IPInterface], reserved: frozenset[IPAddress]
) -> Allocated:
    subnet, gateway = (bridge.subnet, bridge.gateway) if family == 4 else (bridge.subnet6, bridge.gateway6)
    if subnet is None:
        return {}
    ports = [(ns.name, i) for ns in topology.namespaces for i in ns.interfaces if i.bridge == bridge.name]
    fixed = [i.address if family == 4 else i.address6 for _, i in ports]
    used: set[IPAddress | None] = {a.ip for a in fixed if a is not None} | {gateway} | set(reserved)
    auto = sorted((ns, i.name) for (ns, i), a in zip(ports, fixed, strict=True) if a is None)
    result: Allocated = {}
    for key in auto:
        previous = kept.get(key)
        if previous is not None and previous.network == subnet and previous.ip not in used and _is_host(previous.ip, subnet):
            result[key] = previous
            used.add(previous.ip)
    free = (h for h in subnet.hosts() if h not in used)
    for key in auto:
        if key not in result:
            address = next(free, None)
            if address is None:
                raise AllocationError("bridges", f"bridge {bridge.name}: subnet {subnet} has no free address left for {key[0]}/{key[1]}")
            result[key] = ip_interface(f"{address}/{subnet.prefixlen}")
    return result


def _is_host(address: IPAddress, subnet: IPNetwork) -> bool:
    return address != subnet.network_address and (subnet.version == 6 or address != subnet.broadcast_address)


# pools: links and loopbacks


class _Blocks:
    """The blocks of one pool in one family, by index: which are taken, and the lowest free ones.
    Indexes, not networks: a 500-router ring takes a thousand blocks, and comparing each new one
    with every taken network made allocation quadratic (measured: 46% of its apply)."""

    def __init__(self, network: IPNetwork, prefix: int, taken: Iterable[IPNetwork], first: int = 0):
        self.network, self.prefix, self.first = network, prefix, first  # blocks before `first` are never given out
        self.size = 1 << (network.max_prefixlen - prefix)
        self.count = 1 << (prefix - network.prefixlen)
        self.taken: set[int] = set()
        for net in taken:
            self._take_overlapping(net)
        self.cursor = first  # every block below it is taken

    def _index(self, address: IPAddress) -> int:
        return (int(address) - int(self.network.network_address)) // self.size

    def _take_overlapping(self, net: IPNetwork) -> None:
        """Mark every block `net` overlaps (a pinned network may be larger or smaller than a block)."""
        if not net.overlaps(self.network):  # type: ignore[arg-type]
            return
        low = max(int(net.network_address), int(self.network.network_address))
        high = min(int(net.broadcast_address), int(self.network.broadcast_address))
        base = int(self.network.network_address)
        self.taken.update(range((low - base) // self.size, (high - base) // self.size + 1))

    def _block(self, index: int) -> IPNetwork:
        return ip_network((int(self.network.network_address) + index * self.size, self.prefix))

    def block_of(self, address: IPInterface) -> IPNetwork | None:
        """The pool block `address` is in, if it is one of this pool's."""
        if address.network.prefixlen != self.prefix or not address.network.subnet_of(self.network):  # type: ignore[arg-type]
            return None
        if self._index(address.network.network_address) < self.first:
            return None
        return address.network

    def is_free(self, block: IPNetwork) -> bool:
        return self._index(block.network_address) not in self.taken

    def take(self, block: IPNetwork) -> None:
        self.taken.add(self._index(block.network_address))

    def take_free(self, what: str) -> IPNetwork:
        while self.cursor < self.count and self.cursor in self.taken:
            self.cursor += 1
        if self.cursor >= self.count:
            raise AllocationError(f"addressing.{what}", f"the {what} pool {self.network} (blocks of /{self.prefix}) has no free block left")
        self.taken.add(self.cursor)
        return self._block(self.cursor)


def _pool_blocks(pool: Pool | None, family: int, taken: Iterable[IPNetwork], single: bool = False) -> _Blocks | None:
    """`single`: blocks of one address each (loopbacks), where the pool's own network address
    (10.0.0.0, fd00::) is not given out: the first loopback of 10.0.0.0/24 is 10.0.0.1."""
    if pool is None:
        return None
    network, prefix = (pool.ipv4, pool.prefix) if family == 4 else (pool.ipv6, pool.prefix6)
    if network is None:
        return None
    first = 1 if single and prefix == network.max_prefixlen and network.num_addresses > 1 else 0
    return _Blocks(network, prefix, (t for t in taken if t.version == family), first)


def block_hosts(block: IPNetwork, count: int) -> list[IPInterface]:
    """The first `count` addresses a block gives its users (a /31 or /127 both of its two)."""
    hosts = list(islice(block.hosts(), count)) if block.num_addresses > 1 else [block.network_address]
    return [ip_interface(f"{h}/{block.prefixlen}") for h in hosts]


def _allocate_links(topology: Topology, family: int, kept: Mapping[InterfaceKey, IPInterface]) -> Allocated:
    result: Allocated = {}
    pending = []
    for link in topology.links:
        ends = [pinned(end.addresses, family) for end in link.ends]
        if all(a is not None for a in ends):
            result.update({end.endpoint.key: a for end, a in zip(link.ends, ends, strict=True) if a is not None})
        elif any(a is not None for a in ends):
            raise AllocationError("links", f"link {link.ends[0].endpoint}-{link.ends[1].endpoint}: pin both ends' IPv{family} addresses, or neither")
        else:
            pending.append(link)
    blocks = _pool_blocks(topology.addressing.p2p, family, (a.network for a in result.values()))
    if blocks is None:
        return result
    fresh = []
    for link in pending:  # sticky: both ends still hold their block, as the first end takes it
        keys = [end.endpoint.key for end in link.ends]
        previous = [kept.get(k) for k in keys]
        block = blocks.block_of(previous[0]) if previous[0] is not None else None
        if block is not None and blocks.is_free(block) and previous == block_hosts(block, 2):
            blocks.take(block)
            result.update(zip(keys, block_hosts(block, 2), strict=True))
        else:
            fresh.append(keys)
    for keys in fresh:
        result.update(zip(keys, block_hosts(blocks.take_free("p2p"), 2), strict=True))
    return result


def _allocate_loopbacks(topology: Topology, family: int, kept: Mapping[InterfaceKey, IPInterface]) -> Allocated:
    result: Allocated = {}
    for ns in topology.namespaces:
        address = pinned(ns.loopback, family)
        if address is not None:
            result[(ns.name, LOOPBACK)] = address
    blocks = _pool_blocks(topology.addressing.loopback, family, (a.network for a in result.values()), single=True)
    auto = sorted(ns.name for ns in topology.namespaces if ns.loopback_auto and pinned(ns.loopback, family) is None)
    if blocks is None:
        return result
    fresh = []
    for name in auto:
        previous = kept.get((name, LOOPBACK))
        block = blocks.block_of(previous) if previous is not None else None
        if previous is not None and block is not None and blocks.is_free(block) and [previous] == block_hosts(block, 1):
            blocks.take(block)
            result[(name, LOOPBACK)] = previous
        else:
            fresh.append(name)
    for name in fresh:
        result[(name, LOOPBACK)] = block_hosts(blocks.take_free("loopback"), 1)[0]
    return result


def cidrs(key: InterfaceKey, *maps: Mapping[InterfaceKey, IPInterface]) -> tuple[str, ...]:
    """An interface's addresses as CIDRs, one per family, IPv4 first."""
    return tuple(str(m[key]) for m in maps if key in m)
