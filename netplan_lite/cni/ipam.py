"""nsnet's own address allocator for CNI networks (`ipam` without a `type`, or `type: nsnet`).

Sticky: an attachment that asks again (an ADD retried after a crash) gets the
addresses it has. New addresses are taken from just after the last one given
out, wrapping around, so a released address is not reused at once (a
neighbour's stale ARP entry for it expires first) and finding a free one
costs O(1) while the range has room, whatever the number of containers.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from typing import Iterator

from . import records
from .config import NetConf, Range
from .spec import Code, CniError

Address = IPv4Address | IPv6Address


def first_and_last(r: Range) -> tuple[int, int]:
    """The range's usable addresses: host-local's defaults (after the network address, before IPv4's broadcast)."""
    net = r.subnet
    low = int(r.start) if r.start else int(net.network_address) + 1
    high = int(r.end) if r.end else int(net.broadcast_address) - (1 if net.version == 4 else 0)
    return low, high


def allocate(conf: NetConf, owner: str) -> tuple[str, ...]:
    """One address per range (with its prefix), IPv4 first, claimed for `owner`: those asked for, or free ones."""
    asked = _asked(conf)
    taken: list[tuple[Address, str]] = []
    try:
        for r in sorted(conf.ranges, key=lambda r: r.subnet.version):
            address = asked.get(r.subnet.version)
            taken.append((_claim_asked(conf, r, address, owner) if address else _claim_free(conf.name, r, owner), f"/{r.subnet.prefixlen}"))
    except CniError:
        for address, _ in taken:
            records.release(conf.name, str(address), owner)
        raise
    return tuple(f"{address}{prefix}" for address, prefix in taken)


def _asked(conf: NetConf) -> dict[int, Address]:
    """The requested addresses by family: each must fall to a range, one per family (as host-local)."""
    asked: dict[int, Address] = {}
    families = {r.subnet.version for r in conf.ranges}
    for text in conf.ips:
        address = ip_interface(text).ip
        if address.version not in families or address.version in asked:
            why = "no range of its family" if address.version not in families else f"a second IPv{address.version} address"
            raise CniError(Code.INVALID_CONFIG, f"requested address {address}: {why} to take it", "ips / CNI_ARGS IP=: one address per range")
        asked[address.version] = address
    return asked


def _claim_asked(conf: NetConf, r: Range, address: Address, owner: str) -> Address:
    low, high = first_and_last(r)
    if not low <= int(address) <= high or address == r.gateway:
        raise CniError(Code.INVALID_CONFIG, f"requested address {address} is outside the range {r.subnet} or is its gateway", "ips / CNI_ARGS IP=")
    if not records.claim(conf.name, str(address), owner):
        raise CniError(
            Code.CONFLICT, f"requested address {address} is in use by {records.lease_owner(conf.name, str(address))}", "ips / CNI_ARGS IP="
        )
    return address


def _claim_free(network: str, r: Range, owner: str) -> Address:
    version = r.subnet.version
    for candidate in _candidates(r, records.cursor(network, version)):
        address = ip_address(candidate)
        if address == r.gateway:
            continue
        if records.claim(network, str(address), owner):
            records.set_cursor(network, version, str(address))
            return address
    raise CniError(Code.ADDRESSES_EXHAUSTED, f"no free address left in {r.subnet}", f"network {network}: every address of the range is leased")


def _candidates(r: Range, after: str | None) -> Iterator[int]:
    """Every address of the range, starting just after `after` and wrapping around."""
    low, high = first_and_last(r)
    start = int(ip_address(after)) + 1 if after else low
    if not low <= start <= high:
        start = low
    yield from range(start, high + 1)
    yield from range(low, start)


def exhausted(conf: NetConf) -> bool:
    """Every address of some range is leased (STATUS)."""
    leased = records.leases(conf.name)
    for r in conf.ranges:
        low, high = first_and_last(r)
        inside = sum(1 for a in leased if ip_address(a) in r.subnet)
        if inside >= high - low + 1 - (1 if low <= int(r.gateway or 0) <= high else 0):
            return True
    return False
