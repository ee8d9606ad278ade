"""Addresses nsnet derives from names: stable MACs, and their EUI-64 link-local addresses."""

from __future__ import annotations

import hashlib
from ipaddress import IPv6Address


def link_local(mac: str) -> str:
    """The EUI-64 link-local address the kernel would derive from `mac` (fe80::/64).

    nsnet adds it itself, with nodad, instead of letting the kernel make it
    (`addrgenmode eui64`): the kernel's goes through duplicate address
    detection, and while it is tentative a router forwards no IPv6 over the
    link (measured: every IPv6 ping across a fresh ring failed for 1-2 s;
    with this address, from the first packet)."""
    octets = [int(b, 16) for b in mac.split(":")]
    octets[0] ^= 0x02
    eui = bytes(octets[:3] + [0xFF, 0xFE] + octets[3:])
    return f"{IPv6Address(bytes.fromhex('fe80000000000000') + eui)}/64"  # in the kernel's own (compressed) text


def stable_mac(*names: str) -> str:
    """A locally administered MAC derived from names, the same each time the link is made.

    Bridges: without one the kernel gives a bridge the lowest MAC of its ports,
    which changes whenever a port comes or goes, and the namespaces' ARP entries
    for the gateway go stale (measured: connections to the gateway time out);
    Docker fixes docker0's MAC the same way. Interfaces without a pinned MAC: a
    namespace removed and made again (or an interface replaced) keeps its MAC, so
    its neighbours' ARP entries for its address stay right (measured: with a
    random MAC a neighbour's connections timed out until its entry expired).
    """
    digest = hashlib.sha256("\0".join(names).encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])
