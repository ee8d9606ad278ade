"""Semantic checks and building of routed labs: address pools, loopbacks and point-to-point links.

Every error is asserted as the whole line a user sees: file:line:column: key: message.
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

import pytest
from builders import problems, topology

from netplan_lite.model import netem
from netplan_lite.model.topology import Addressing, Link, LinkEnd, Pool

LAB = """\
name: lab
addressing:
  p2p: {ipv4: 10.1.0.0/16, ipv6: "fd00:1::/48"}
  loopback: {ipv4: 10.0.0.0/24}
bridges:
  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"], gateway: none}
namespaces:
  r1: {forwarding: true, interfaces: {eth0: {bridge: br0}}}
  r2: {forwarding: true}
  r3: {}
links:
  - {endpoints: [r1:e12, r2:e21]}
  - {endpoints: [r2:e23, r3:e32]}
"""


def lab(*changes: tuple[str, str], add: str = "") -> str:
    """LAB with lines replaced (each change: old text, new text) and text added at the end."""
    text = LAB
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text + add


POOLS = '  p2p: {ipv4: 10.1.0.0/16, ipv6: "fd00:1::/48"}\n  loopback: {ipv4: 10.0.0.0/24}\n'


def pools(text: str) -> str:
    return lab((POOLS, text))


def link(n: int, text: str) -> tuple[str, str]:
    """A change replacing links item n."""
    return (["  - {endpoints: [r1:e12, r2:e21]}", "  - {endpoints: [r2:e23, r3:e32]}"][n], text)


# the lab as it is


def test_the_lab_loads_with_pools_links_and_defaults():
    topo = topology(LAB)
    assert topo.addressing == Addressing(
        p2p=Pool(IPv4Network("10.1.0.0/16"), 31, IPv6Network("fd00:1::/48"), 127), loopback=Pool(IPv4Network("10.0.0.0/24"), 32, None, 128)
    )
    assert topo.links == (
        Link((LinkEnd("r1", "e12"), LinkEnd("r2", "e21"))),
        Link((LinkEnd("r2", "e23"), LinkEnd("r3", "e32"))),
    )
    assert topo.links[0].up and topo.links[0].mtu is None


def test_no_addressing_is_no_pools():
    assert topology("name: lab\n").addressing == Addressing(None, None)


def test_pool_prefixes_are_kept():
    topo = topology(
        pools('  p2p: {ipv4: 10.1.0.0/16, prefix: 30, ipv6: "fd00:1::/48", prefix6: 64}\n  loopback: {ipv6: "fd00::/64", prefix6: 120}\n')
    )
    assert topo.addressing.p2p == Pool(IPv4Network("10.1.0.0/16"), 30, IPv6Network("fd00:1::/48"), 64)
    assert topo.addressing.loopback == Pool(None, 32, IPv6Network("fd00::/64"), 120)


# address pools


def test_pool_network_without_a_prefix():
    assert problems(pools("  p2p: {ipv4: 10.1.0.0}\n")) == ["t.yaml:3:9: addressing.p2p.ipv4: '10.1.0.0' needs a prefix length, e.g. 10.1.0.0/24"]


def test_pool_network_under_the_other_family():
    assert problems(pools('  p2p: {ipv4: "fd00:1::/48"}\n')) == ["t.yaml:3:9: addressing.p2p.ipv4: fd00:1::/48 is IPv6: write it under ipv6"]


def test_pool_of_loopback_addresses():
    assert problems(pools("  loopback: {ipv4: 127.0.0.0/8}\n")) == [
        "t.yaml:3:14: addressing.loopback.ipv4: 127.0.0.0/8 is a loopback, multicast or 0.0.0.0/8 range; a pool needs unicast addresses"
    ]


def test_pool_blocks_larger_than_the_pool():
    assert problems(pools("  p2p: {ipv4: 10.1.0.0/16, prefix: 8}\n")) == [
        "t.yaml:3:28: addressing.p2p.prefix: /8 blocks do not fit in 10.1.0.0/16: give a prefix of at least 16"
    ]


def test_p2p_blocks_of_one_address():
    assert problems(pools('  p2p: {ipv6: "fd00:1::/48", prefix6: 128}\n')) == [
        "t.yaml:3:30: addressing.p2p.prefix6: a /128 block holds one address and a link needs two: give 127 or less"
    ]


def test_pool_prefix_without_its_network():
    assert problems(pools("  p2p: {ipv4: 10.1.0.0/16, prefix6: 64}\n")) == [
        "t.yaml:3:28: addressing.p2p.prefix6: prefix6 without ipv6: the pool has no IPv6 network to cut into blocks"
    ]


def test_overlapping_pools():
    assert problems(pools("  p2p: {ipv4: 10.0.0.0/16}\n  loopback: {ipv4: 10.0.0.0/24}\n")) == [
        "t.yaml:4:14: addressing.loopback.ipv4: 10.0.0.0/24 overlaps 10.0.0.0/16 of the p2p pool (addressing.p2p): a pool's addresses must be its own"
    ]


def test_pool_overlapping_a_bridge_subnet():
    assert problems(pools('  p2p: {ipv6: "fd00:30::/32"}\n')) == [
        "t.yaml:3:9: addressing.p2p.ipv6: fd00:30::/32 overlaps fd00:30::/64 of bridge br0: a pool's addresses must be its own"
    ]


def test_p2p_pool_without_room_for_its_links():
    text = lab(("  p2p: {ipv4: 10.1.0.0/16,", "  p2p: {ipv4: 10.1.0.0/31,"))
    assert problems(text) == ["t.yaml:3:9: addressing.p2p.ipv4: 10.1.0.0/31 has room for 1 /31 block, but 2 links take an address from it"]


def test_pinned_links_take_no_pool_block_but_occupy_theirs():
    pinned = "  - {endpoints: [r2:e23, r3:e32], addresses: {r2:e23: 10.1.0.1/30, r3:e32: 10.1.0.2/30}}"
    two_blocks = ("10.1.0.0/16,", "10.1.0.0/29, prefix: 30,")
    assert topology(lab(two_blocks, link(1, pinned)))  # one block pinned, one for links item 0
    text = lab(two_blocks, link(1, pinned), add="  - {endpoints: [r1:e13, r3:e31]}\n")
    assert problems(text) == ["t.yaml:3:9: addressing.p2p.ipv4: 10.1.0.0/29 has room for 1 /30 block, but 2 links take an address from it"]


def test_loopback_pool_without_room_for_its_namespaces():
    text = lab(
        ("{ipv4: 10.0.0.0/24}", "{ipv4: 10.0.0.0/32}"), ("  r2: {forwarding: true}", "  r2: {loopback: auto}"), ("  r3: {}", "  r3: {loopback: auto}")
    )
    assert problems(text) == ["t.yaml:4:14: addressing.loopback.ipv4: 10.0.0.0/32 has room for 1 /32 block, but 2 namespaces take an address from it"]


# loopbacks


def test_loopback_auto_and_pinned_loopbacks_are_built():
    text = lab(("  r2: {forwarding: true}", "  r2: {loopback: auto}"), ("  r3: {}", '  r3: {loopback: [10.0.0.3, "fd00::3/64"]}'))
    r2, r3 = topology(text).namespaces[1:]
    assert r2.loopback_auto and r2.loopback == ()
    assert not r3.loopback_auto and r3.loopback == (IPv4Interface("10.0.0.3/32"), IPv6Interface("fd00::3/64"))
    only = lab(("  r3: {}", '  r3: {loopback: "fd00::3"}'))
    assert topology(only).namespaces[2].loopback == (IPv6Interface("fd00::3/128"),)


def test_loopback_auto_needs_a_loopback_pool():
    text = lab(("  loopback: {ipv4: 10.0.0.0/24}\n", ""), ("  r3: {}", "  r3: {loopback: auto}"))
    assert problems(text) == [
        "t.yaml:9:8: namespaces.r3.loopback: `loopback: auto` needs a loopback pool: give `addressing: loopback:` an ipv4 or ipv6 network"
    ]


@pytest.mark.parametrize(
    "value, column, key, message",
    [
        ("[10.0.0.3, 10.0.0.4]", 29, ".1", "a second IPv4 address: give at most one per family"),
        ("127.0.0.2", 8, "", "127.0.0.2 is on every lo already: give the namespace an address of its own"),
        ("224.0.0.1", 8, "", "224.0.0.1 is not a unicast address"),
        ("172.30.0.9", 8, "", "172.30.0.9/32 overlaps 172.30.0.0/24 of bridge br0: a loopback address must be of its own"),
        ("10.1.2.3", 8, "", "10.1.2.3/32 overlaps 10.1.0.0/16 of the p2p pool (addressing.p2p): a loopback address must be of its own"),
        ("[auto]", 19, ".0", "`auto` stands alone: `loopback: auto`"),
        ("Auto", 8, "", "'Auto' is neither `auto` nor an address"),
    ],
)
def test_bad_pinned_loopback(value, column, key, message):
    assert problems(lab(("  r3: {}", f"  r3: {{loopback: {value}}}"))) == [f"t.yaml:10:{column}: namespaces.r3.loopback{key}: {message}"]


def test_loopback_address_used_twice():
    text = lab(("  r2: {forwarding: true}", "  r2: {loopback: 10.0.0.3}"), ("  r3: {}", "  r3: {loopback: 10.0.0.3/32}"))
    assert problems(text) == ["t.yaml:10:8: namespaces.r3.loopback: 10.0.0.3 is already used by r2.lo"]


def test_loopback_may_be_pinned_inside_the_loopback_pool():
    assert topology(lab(("  r3: {}", "  r3: {loopback: 10.0.0.200}"))).namespaces[2].loopback == (IPv4Interface("10.0.0.200/32"),)


# links: ends


def test_link_options_are_built():
    text = lab(link(1, "  - {endpoints: [r2:e23, r3:e32], mtu: 9000, up: false}"))
    assert topology(text).links[1] == Link((LinkEnd("r2", "e23"), LinkEnd("r3", "e32")), 9000, False)


def test_link_end_in_an_unknown_namespace():
    assert problems(lab(link(1, "  - {endpoints: [r2:e23, r9:e92]}"))) == [
        "t.yaml:13:26: links.1.endpoints.1: unknown namespace 'r9' (not under namespaces:)"
    ]


def test_link_end_in_a_data_source():
    text = lab(("  r3: {}", "  r3: {path: /run/netns/other}"))
    assert problems(text) == ["t.yaml:13:26: links.1.endpoints.1: namespace r3 is a data source (`path:`): links join namespaces that nsnet creates"]


def test_link_within_one_namespace():
    assert problems(lab(link(1, "  - {endpoints: [r2:e23, r2:e32]}"))) == [
        "t.yaml:13:26: links.1.endpoints.1: both ends are in namespace r2: a link joins two namespaces"
    ]


def test_link_end_named_lo():
    assert problems(lab(link(1, "  - {endpoints: [r2:lo, r3:e32]}"))) == [
        "t.yaml:13:18: links.1.endpoints.0: 'lo' is reserved: nsnet brings up lo in every namespace itself"
    ]


def test_link_end_named_as_a_bridged_interface():
    assert problems(lab(link(0, "  - {endpoints: [r1:eth0, r2:e21]}"))) == [
        "t.yaml:12:18: links.0.endpoints.0: namespace r1 already has an interface eth0 (namespaces.r1.interfaces)"
    ]


def test_link_end_used_by_two_links():
    assert problems(lab(link(1, "  - {endpoints: [r2:e21, r3:e32]}"))) == [
        "t.yaml:13:18: links.1.endpoints.0: r2:e21 is already an end of links item 0"
    ]


@pytest.mark.parametrize(
    "endpoints, message",
    [
        ("[r1:e12]", "1 item, fewer than the 2 needed"),
        ("[r1:e12, r2:e21, r3:e31]", "3 items, more than the 2 allowed"),
    ],
)
def test_a_link_has_two_ends(endpoints, message):
    assert problems(lab(link(0, f"  - {{endpoints: {endpoints}}}"))) == [f"t.yaml:12:6: links.0.endpoints: {message}"]


def test_endpoint_without_an_interface():
    assert problems(lab(link(0, "  - {endpoints: [r1, r2:e21]}"))) == [
        "t.yaml:12:18: links.0.endpoints.0: 'r1' is not allowed here (A link end, `namespace:interface` (e.g. `r1:e12`): "
        "a namespace of this file and the name of the end inside it.)"
    ]


# links: impairments


def test_netem_on_both_ends_and_per_end():
    both = topology(lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {delay: 20ms, loss: 1%}}"))).links[0]
    assert both.ends[0].netem == both.ends[1].netem == netem.Netem(delay=20_000_000, loss=netem.parse_percent("1%"))
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {r2:e21: {rate: 100mbit}}}"))
    one = topology(text).links[0]
    assert one.ends[0].netem is None and one.ends[1].netem == netem.Netem(rate=12_500_000)
    assert topology(lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {}}"))).links[0].ends[0].netem is None


@pytest.mark.parametrize(
    "spec, column, key, message",
    [
        ("{delay: 20 ms}", 43, "delay", "'20 ms' is not a time (a number and s, ms, us or ns, e.g. 20ms)"),
        ("{loss: 150%}", 43, "loss", "'150%' is more than 100%"),
        ("{rate: 1bit}", 43, "rate", "'1bit' is less than 8bit, the smallest rate the kernel holds (1 byte/s)"),
        ("{jitter: 5ms}", 43, "jitter", "varies the delay: give a delay too"),
        ("{limit: 0}", 43, "limit", "0 is not a packet count (1 to 4294967295)"),
    ],
)
def test_netem_values_out_of_their_units(spec, column, key, message):
    text = lab(link(0, f"  - {{endpoints: [r1:e12, r2:e21], netem: {spec}}}"))
    assert problems(text) == [f"t.yaml:12:{column}: links.0.netem.{key}: {message}"]


def test_netem_unit_error_of_one_end():
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {r1:e12: {delay: 5 parsecs}}}"))
    assert problems(text) == ["t.yaml:12:52: links.0.netem.r1:e12.delay: '5 parsecs' is not a time (a number and s, ms, us or ns, e.g. 20ms)"]


def test_netem_for_an_end_of_another_link():
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {r3:e32: {delay: 5ms}}}"))
    assert problems(text) == ["t.yaml:12:43: links.0.netem.r3:e32: r3:e32 is not an end of this link (r1:e12, r2:e21)"]


def test_netem_for_both_ends_and_per_end_at_once():
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {delay: 5ms, r1:e12: {loss: 1%}}}"))
    assert problems(text) == ["t.yaml:12:43: links.0.netem.delay: impairments are for both ends, or per end under the endpoints as keys, not both"]


def test_impairments_of_an_end_are_a_mapping():
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {r1:e12: 5ms}}"))
    assert problems(text) == ["t.yaml:12:43: links.0.netem.r1:e12: an end's impairments are a mapping, e.g. {delay: 20ms}"]


def test_unknown_netem_key_of_an_end():
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {r1:e12: {latency: 5ms}}}"))
    assert problems(text) == [
        "t.yaml:12:52: links.0.netem.r1:e12.latency: unknown netem key (known: delay, jitter, loss, duplicate, reorder, corrupt, rate, limit)"
    ]


def test_unknown_netem_key():
    text = lab(link(0, "  - {endpoints: [r1:e12, r2:e21], netem: {latency: 5ms}}"))
    assert problems(text) == [
        "t.yaml:12:43: links.0.netem.latency: 'latency' is not allowed here (A netem key (delay, jitter, loss, duplicate, reorder, "
        "corrupt, rate, limit), or an endpoint `namespace:interface` of the link with its own impairments.)"
    ]


# links: pinned addresses


def pinned(a: str, b: str, n: int = 1) -> tuple[str, str]:
    ends = ["r1:e12", "r2:e21"] if n == 0 else ["r2:e23", "r3:e32"]
    return link(n, f"  - endpoints: [{ends[0]}, {ends[1]}]\n    addresses: {{{ends[0]}: {a}, {ends[1]}: {b}}}")


def test_pinned_link_addresses_are_built_with_the_pool_prefix():
    ends = topology(lab(pinned('[10.1.99.0, "fd00:1:99::1/64"]', '[10.1.99.1/31, "fd00:1:99::2/64"]'))).links[1].ends
    assert ends[0].addresses == (IPv4Interface("10.1.99.0/31"), IPv6Interface("fd00:1:99::1/64"))
    assert ends[1].addresses == (IPv4Interface("10.1.99.1/31"), IPv6Interface("fd00:1:99::2/64"))
    without_pool = lab(('  p2p: {ipv4: 10.1.0.0/16, ipv6: "fd00:1::/48"}\n', ""), pinned("10.9.0.0", "10.9.0.1"))
    assert topology(without_pool).links[1].ends[1].addresses == (IPv4Interface("10.9.0.1/31"),)


def test_pinned_addresses_of_an_end_of_another_link():
    text = lab(link(1, "  - endpoints: [r2:e23, r3:e32]\n    addresses: {r1:e12: 10.9.0.0/31}"))
    assert problems(text) == ["t.yaml:14:17: links.1.addresses.r1:e12: r1:e12 is not an end of this link (r2:e23, r3:e32)"]


def test_a_family_pinned_on_one_end_only():
    text = lab(link(1, "  - endpoints: [r2:e23, r3:e32]\n    addresses: {r3:e32: 10.9.0.1/31}"))
    assert problems(text) == [
        "t.yaml:14:17: links.1.addresses.r3:e32: r3:e32 has an IPv4 address but r2:e23 has none: "
        "pin both ends of a family, or neither to take both from the p2p pool"
    ]


def test_link_ends_in_two_networks():
    assert problems(lab(pinned("10.9.0.0/31", "10.9.0.3/31"))) == [
        "t.yaml:14:38: links.1.addresses.r3:e32: 10.9.0.3/31 is not in 10.9.0.0/31, the network of r2:e23: both ends of a link share one network"
    ]


@pytest.mark.parametrize(
    "a, b, column, message",
    [
        ("10.9.0.0/32", "10.9.0.1/31", 17, "a /32 holds one address, and a link has two ends: give /31 or shorter"),
        ("10.9.0.0/30", "10.9.0.1/30", 17, "10.9.0.0 is the network address of 10.9.0.0/30"),
        ("127.0.0.2/31", "127.0.0.3/31", 17, "127.0.0.2 is not a unicast address"),
        ("172.30.0.8/31", "172.30.0.9/31", 17, "172.30.0.8/31 overlaps 172.30.0.0/24 of bridge br0"),
        ("10.0.0.8/31", "10.0.0.9/31", 17, "10.0.0.8/31 overlaps 10.0.0.0/24 of the loopback pool (addressing.loopback)"),
    ],
)
def test_bad_pinned_link_address(a, b, column, message):
    found = problems(lab(pinned(a, b)))
    assert found[0] == f"t.yaml:14:{column}: links.1.addresses.r2:e23: {message}"


def test_link_address_that_is_the_anycast_address():
    assert problems(lab(pinned('"fd00:9::/64"', '"fd00:9::1/64"'))) == [
        "t.yaml:14:17: links.1.addresses.r2:e23: fd00:9:: is the subnet-router anycast address of fd00:9::/64"
    ]


def test_a_link_address_used_by_an_interface():
    text = lab(
        ('  br0: {subnet: [172.30.0.0/24, "fd00:30::/64"], gateway: none}', "  br0: {}"),
        ("{eth0: {bridge: br0}}", "{eth0: {bridge: br0, address: 10.9.0.1/24}}"),
        pinned("10.9.0.0/31", "10.9.0.1/31"),
    )
    assert problems(text) == ["t.yaml:14:38: links.1.addresses.r3:e32: 10.9.0.1 is already used by r1.eth0"]


def test_a_slash_31_with_three_users():
    text = lab(pinned("10.9.0.0/31", "10.9.0.1/31", 0), pinned("10.9.0.1/31", "10.9.0.0/31"))
    assert problems(text) == [
        "t.yaml:15:17: links.1.addresses.r2:e23: 10.9.0.1 is already used by r2:e21",
        "t.yaml:15:38: links.1.addresses.r3:e32: 10.9.0.0 is already used by r1:e12",
        "t.yaml:15:5: links.1.addresses: 10.9.0.0/31 is already the network of links item 0 (r1:e12, r2:e21): "
        "each link needs a network of its own (two ends, no third)",
    ]


def test_overlapping_link_networks():
    text = lab(pinned('"fd00:9::/127"', '"fd00:9::1/127"', 0), pinned('"fd00:9::2/126"', '"fd00:9::3/126"'))
    assert problems(text) == [
        "t.yaml:15:5: links.1.addresses: fd00:9::/126 overlaps fd00:9::/127, the network of links item 0 (r1:e12, r2:e21): "
        "each link needs a network of its own (two ends, no third)"
    ]


def test_a_second_address_of_a_family_on_a_link_end():
    assert problems(lab(pinned("[10.9.0.0/31, 10.9.0.2/31]", "10.9.0.1/31")))[0] == (
        "t.yaml:14:39: links.1.addresses.r2:e23.1: a second IPv4 address: give at most one per family"
    )
