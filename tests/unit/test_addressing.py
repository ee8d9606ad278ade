"""Allocation of automatic addresses in both families: bridge ports, link ends, loopbacks."""

from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_interface

import pytest

from netplan_lite.engine.addressing import AllocationError, allocate, allocate6
from netplan_lite.model.topology import Addressing, Bridge, Interface, Link, LinkEnd, Namespace, Pool, Topology


def lab(links=2, **addressing) -> Topology:
    pools = addressing or {
        "p2p": Pool(IPv4Network("10.1.0.0/24"), 31, IPv6Network("fd00:1::/64"), 127),
        "loopback": Pool(IPv4Network("10.0.0.0/24"), 32, IPv6Network("fd00::/64"), 128),
    }
    routers = [Namespace(f"r{i}", loopback_auto=True) for i in range(1, links + 2)]
    wires = tuple(Link((LinkEnd(f"r{i}", f"e{i}{i + 1}"), LinkEnd(f"r{i + 1}", f"e{i + 1}{i}"))) for i in range(1, links + 1))
    return Topology("t", namespaces=tuple(routers), links=wires, addressing=Addressing(**pools))


def test_links_take_pool_blocks_in_file_order_the_first_endpoint_the_lower_address():
    v4, v6 = allocate(lab(), {}), allocate6(lab(), {})
    assert v4[("r1", "e12")] == IPv4Interface("10.1.0.0/31") and v4[("r2", "e21")] == IPv4Interface("10.1.0.1/31")
    assert v4[("r2", "e23")] == IPv4Interface("10.1.0.2/31") and v4[("r3", "e32")] == IPv4Interface("10.1.0.3/31")
    assert v6[("r1", "e12")] == IPv6Interface("fd00:1::/127") and v6[("r2", "e21")] == IPv6Interface("fd00:1::1/127")


def test_loopbacks_start_after_the_pools_network_address_in_name_order():
    v4, v6 = allocate(lab(), {}), allocate6(lab(), {})
    assert [str(v4[(f"r{i}", "lo")]) for i in (1, 2, 3)] == ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]
    assert str(v6[("r3", "lo")]) == "fd00::3/128"


def test_allocation_is_sticky_when_other_links_come_and_go():
    before = allocate(lab(links=2), {})
    kept = {key: a for key, a in before.items() if key[0] != "r1" and key[1] != "e21"}  # the first link left the file
    smaller = Topology("t", namespaces=lab().namespaces, links=lab().links[1:], addressing=lab().addressing)
    after = allocate(smaller, kept)
    assert after[("r2", "e23")] == before[("r2", "e23")] and after[("r3", "lo")] == before[("r3", "lo")]


def test_a_moved_address_is_not_kept():
    kept = {("r1", "e12"): ip_interface("10.1.0.1/31"), ("r2", "e21"): ip_interface("10.1.0.0/31")}  # swapped by hand
    assert allocate(lab(), kept)[("r1", "e12")] == IPv4Interface("10.1.0.0/31")


def test_pinned_link_addresses_are_used_and_skipped_by_the_pool():
    base = lab(links=1)
    pinned = Link((LinkEnd("r1", "x", (ip_interface("10.1.0.0/31"),)), LinkEnd("r2", "y", (ip_interface("10.1.0.1/31"),))))
    topology = Topology("t", namespaces=base.namespaces, links=(pinned, *base.links), addressing=base.addressing)
    v4 = allocate(topology, {})
    assert v4[("r1", "x")] == IPv4Interface("10.1.0.0/31") and v4[("r1", "e12")] == IPv4Interface("10.1.0.2/31")


def test_an_exhausted_pool_is_an_error_naming_it():
    small = lab(links=3, p2p=Pool(IPv4Network("10.1.0.0/30"), 31))
    with pytest.raises(AllocationError, match=r"the p2p pool 10.1.0.0/30 \(blocks of /31\) has no free block left") as err:
        allocate(small, {})
    assert err.value.key == "addressing.p2p"


def test_bridge_ports_get_an_address_in_every_family_of_their_bridge():
    bridge = Bridge("br0", IPv4Network("172.30.0.0/24"), None, subnet6=IPv6Network("fd00:10::/64"), gateway6=None)
    ns = Namespace("h", (Interface("eth0", "br0", "vh"),))
    router = Namespace("r", (Interface("lan0", "br0", "vr", ip_interface("172.30.0.1/24"), address6=ip_interface("fd00:10::1/64")),))
    topology = Topology("t", (bridge,), (ns, router))
    assert allocate(topology, {})[("h", "eth0")] == IPv4Interface("172.30.0.2/24")
    assert allocate6(topology, {})[("h", "eth0")] == IPv6Interface("fd00:10::2/64")


@pytest.mark.parametrize(
    "mac, address",
    [
        ("02:7a:8c:9c:9d:c9", "fe80::7a:8cff:fe9c:9dc9/64"),
        ("02:00:ab:a5:68:55", "fe80::abff:fea5:6855/64"),
        ("00:00:00:00:00:01", "fe80::200:ff:fe00:1/64"),
    ],
)
def test_a_link_local_address_is_the_kernels_eui64_in_its_own_text(mac, address):
    from netplan_lite.resources.macs import link_local

    assert link_local(mac) == address


def test_a_thousand_links_take_distinct_blocks_around_a_pinned_network_wider_than_a_block():
    pinned = Link((LinkEnd("r1", "x", (ip_interface("10.1.0.4/30"),)), LinkEnd("r2", "y", (ip_interface("10.1.0.5/30"),))))
    links = tuple(Link((LinkEnd("r1", f"a{i}"), LinkEnd("r2", f"b{i}"))) for i in range(1000))
    topology = Topology(
        "t",
        namespaces=(Namespace("r1"), Namespace("r2")),
        links=(pinned, *links),
        addressing=Addressing(p2p=Pool(IPv4Network("10.1.0.0/20"), 31)),
    )
    v4 = allocate(topology, {})
    blocks = [v4[("r1", f"a{i}")].network for i in range(1000)]
    assert len(set(blocks)) == 1000 and blocks[:3] == [IPv4Network("10.1.0.0/31"), IPv4Network("10.1.0.2/31"), IPv4Network("10.1.0.8/31")]
