"""Pre-flight warnings (kernel/preflight/checks.py): pure checks over plain host facts (no root, no kernel)."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from netplan_lite.kernel.preflight import checks
from netplan_lite.engine.desired import allocate
from netplan_lite.resources.nat import IP_FORWARD, desired_nat
from netplan_lite.engine.warnings import PreflightWarning
from netplan_lite.kernel.preflight.checks import ForwardChain, HostFacts, HostRoute, Listener, check
from netplan_lite.model.topology import Firewall, PortForward, Topology

from builders import doc, topology

SUBNET = "10.1.0.0/24"


def one_bridge(namespaces: int = 2, forwards: list[dict] | None = None, masquerade: bool = False, name: str = "demo"):
    bridge = {"subnet": SUBNET, **({"masquerade": True} if masquerade else {})}
    spaces = {f"ns{i}": {"interfaces": {"eth0": {"bridge": "br0"}}} for i in range(namespaces)}
    return topology(doc({"br0": bridge}, spaces, forwards, name=name))


def two_bridges(routes: list | None = None, forwards: list[dict] | None = None, masquerade: bool = False):
    """a on br-a, b on br-b; `routes` for both (None: the implicit default route via the gateway)."""
    extra = {} if routes is None else {"routes": routes}
    return topology(
        doc(
            {"br-a": {"subnet": "10.1.0.0/24", **({"masquerade": True} if masquerade else {})}, "br-b": {"subnet": "10.2.0.0/24"}},
            {"a": {"interfaces": {"eth0": {"bridge": "br-a"}}, **extra}, "b": {"interfaces": {"eth0": {"bridge": "br-b"}}, **extra}},
            forwards,
        )
    )


def codes(warnings: list[PreflightWarning]) -> list[str]:
    return [w.code for w in warnings]


def only(warnings: list[PreflightWarning], code: str) -> PreflightWarning:
    found = [w for w in warnings if w.code == code]
    assert len(found) == 1, warnings
    return found[0]


def test_line_format():
    w = PreflightWarning("host-port-in-use", "tcp port 80 is in use", "publish another host_port")
    assert w.line() == "warning: tcp port 80 is in use (publish another host_port)"


def test_no_facts_no_warnings():
    assert check(one_bridge(forwards=[{"host_port": 8080, "namespace": "ns0", "port": 80}], masquerade=True), HostFacts()) == []


def test_a_quiet_host_gives_no_warnings():
    facts = HostFacts(
        ip_forward=True,
        bridge_nf_call_iptables=True,
        forward_chains=(ForwardChain("inet", "fw", "forward", "accept"),),
        listeners=(Listener("tcp", "0.0.0.0", 22),),
        routes=(HostRoute(IPv4Network("0.0.0.0/0"), "eth0", proto=3, via="192.0.2.1"),),
    )
    assert check(two_bridges(forwards=[{"host_port": 8080, "namespace": "a", "port": 80}]), facts) == []


# ip-forward-off / ip-forward-temporary


def test_ip_forward_off_warns_when_namespaces_route_between_bridges_and_nsnet_will_not_enable_it():
    w = only(check(two_bridges(), HostFacts(ip_forward=False)), "ip-forward-off")
    assert "net.ipv4.ip_forward is 0" in w.message
    assert "br-a -> br-b" in w.message and "br-b -> br-a" in w.message
    assert "sysctl -w net.ipv4.ip_forward=1" in w.hint


def test_ip_forward_off_is_not_a_warning_when_nsnet_turns_it_on():
    """With a port forward or masquerade, the plan itself sets ip_forward=1."""
    assert check(two_bridges(masquerade=True), HostFacts(ip_forward=False)) == []
    assert check(two_bridges(forwards=[{"host_port": 8080, "namespace": "a", "port": 80}]), HostFacts(ip_forward=False)) == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: one_bridge(),
        lambda: one_bridge(masquerade=True),
        lambda: one_bridge(forwards=[{"host_port": 8080, "namespace": "ns0", "port": 80}]),
        lambda: one_bridge(forwards=[{"host_port": 8080, "namespace": "ns0", "port": 80, "host_address": "127.0.0.1"}]),
        lambda: two_bridges(),
        lambda: two_bridges(masquerade=True),
    ],
)
def test_nsnet_enables_ip_forward_agrees_with_the_plan(build):
    t = build()
    _, sysctls = desired_nat(t, allocate(t, {}))
    assert checks.nsnet_enables_ip_forward(t) == any(s.key == IP_FORWARD for s in sysctls)


def test_ip_forward_off_is_silent_without_routing_between_bridges():
    off = HostFacts(ip_forward=False)
    assert check(one_bridge(), off) == []  # same-bridge traffic is bridged, not routed
    assert check(two_bridges(routes=[]), off) == []  # isolated networks, like examples/two-bridges.yaml
    assert check(two_bridges(), HostFacts(ip_forward=True)) == []
    assert check(two_bridges(), HostFacts()) == []  # unknown: no warning


def test_a_route_through_a_router_namespace_needs_no_host_forwarding():
    t = topology(
        doc(
            {"br-a": {"subnet": "10.1.0.0/24"}, "br-b": {"subnet": "10.2.0.0/24"}},
            {
                "a": {"interfaces": {"eth0": {"bridge": "br-a"}}, "routes": [{"to": "10.2.0.0/24", "via": "10.1.0.254"}]},
                "router": {
                    "interfaces": {"eth0": {"bridge": "br-a", "address": "10.1.0.254"}, "eth1": {"bridge": "br-b", "address": "10.2.0.254"}},
                    "routes": [],
                },
                "b": {"interfaces": {"eth0": {"bridge": "br-b"}}, "routes": [{"to": "10.1.0.0/24", "via": "10.2.0.254"}]},
            },
        )
    )
    assert checks.cross_bridge_routes(t) == []
    assert check(t, HostFacts(ip_forward=False)) == []


def test_a_more_specific_route_through_a_router_wins_over_the_default_route():
    t = topology(
        doc(
            {"br-a": {"subnet": "10.1.0.0/24"}, "br-b": {"subnet": "10.2.0.0/24"}},
            {
                "a": {
                    "interfaces": {"eth0": {"bridge": "br-a"}},
                    "routes": [{"to": "default", "via": "10.1.0.1"}, {"to": "10.2.0.0/24", "via": "10.1.0.254"}],
                },
                "router": {
                    "interfaces": {"eth0": {"bridge": "br-a", "address": "10.1.0.254"}, "eth1": {"bridge": "br-b", "address": "10.2.0.254"}},
                    "routes": [],
                },
            },
        )
    )
    assert checks.cross_bridge_routes(t) == []


def test_an_explicit_route_via_the_gateway_to_the_other_subnet_counts():
    t = topology(
        doc(
            {"br-a": {"subnet": "10.1.0.0/24"}, "br-b": {"subnet": "10.2.0.0/24"}},
            {
                "a": {"interfaces": {"eth0": {"bridge": "br-a"}}, "routes": [{"to": "10.0.0.0/8", "via": "10.1.0.1"}]},
                "b": {"interfaces": {"eth0": {"bridge": "br-b"}}, "routes": [{"to": "10.3.0.0/16", "via": "10.2.0.1"}]},
            },
        )
    )
    assert checks.cross_bridge_routes(t) == [("a", "br-a", "br-b")]  # b's route leads elsewhere
    assert "br-a -> br-b" in only(check(t, HostFacts(ip_forward=False)), "ip-forward-off").message


def test_ip_forward_held_only_by_another_topology_is_temporary():
    facts = HostFacts(ip_forward=True, ip_forward_holders=("other",), ip_forward_original="0")
    w = only(check(two_bridges(), facts), "ip-forward-temporary")
    assert "topology other" in w.message and "restores 0" in w.message
    assert check(two_bridges(), HostFacts(ip_forward=True, ip_forward_holders=("other",), ip_forward_original="1")) == []
    assert check(two_bridges(routes=[]), facts) == []


# forward-policy-drop

DOCKER = ForwardChain("ip", "filter", "FORWARD", "drop", frozenset({"docker0"}), frozenset({"docker0"}))


def test_docker_forward_drop_warns_about_port_forwards_naming_table_and_chain():
    t = one_bridge(namespaces=1, forwards=[{"host_port": 8080, "namespace": "ns0", "port": 80}])
    w = only(check(t, HostFacts(forward_chains=(DOCKER,))), "forward-policy-drop")
    assert "nft chain ip filter FORWARD" in w.message and "policy drop" in w.message
    assert "bridge br0" in w.message and "port forwards" in w.message
    assert w.hint == "accept it: `nft insert rule ip filter FORWARD iifname br0 accept` and `nft insert rule ip filter FORWARD oifname br0 accept`"


LEGACY_DROP = ForwardChain(checks.LEGACY, "filter", "FORWARD", "drop")


@pytest.mark.parametrize("chain", [DOCKER, LEGACY_DROP], ids=["iptables-nft", "iptables-legacy"])
def test_with_docker_s_chain_nsnet_accepts_the_bridges_there_so_iptables_forward_is_no_warning(chain: ForwardChain):
    t = one_bridge(masquerade=True)
    assert check(t, HostFacts(bridge_nf_call_iptables=True, forward_chains=(chain,), docker_user=True)) == []
    other = ForwardChain("inet", "fw", "forward", "drop")  # a table of the host's own: still warned about
    assert codes(check(t, HostFacts(forward_chains=(chain, other), docker_user=True))) == ["forward-policy-drop"]


def test_turned_off_the_docker_warning_names_the_key_and_the_exact_commands():
    data = doc({"br0": {"subnet": SUBNET}}, {f"ns{i}": {"interfaces": {"eth0": {"bridge": "br0"}}} for i in range(2)}, None)
    t = topology({**data, "firewall": {"docker_user": False}})
    w = only(check(t, HostFacts(bridge_nf_call_iptables=True, forward_chains=(DOCKER,), docker_user=True)), "forward-policy-drop")
    assert "traffic between its namespaces" in w.message
    assert w.hint == (
        "the topology's `firewall: {docker_user: false}` keeps nsnet out of Docker's DOCKER-USER chain: remove it and nsnet "
        "accepts br0 there, or run `iptables -I DOCKER-USER -i br0 -j ACCEPT` and `iptables -I DOCKER-USER -o br0 -j ACCEPT`"
    )


def test_firewalld_is_told_to_trust_the_bridge():
    chain = ForwardChain("inet", "firewalld", "filter_FORWARD", "drop")
    w = only(check(one_bridge(masquerade=True), HostFacts(forward_chains=(chain,))), "forward-policy-drop")
    assert w.hint == "accept it: `firewall-cmd --zone=trusted --add-interface=br0` (and the same with --permanent to keep it)"


def test_forward_policy_accept_or_rules_accepting_the_bridge_give_no_warning():
    t = one_bridge(forwards=[{"host_port": 8080, "namespace": "ns0", "port": 80}], masquerade=True)
    accept = ForwardChain("ip", "filter", "FORWARD", "accept")
    handled = ForwardChain("inet", "fw", "forward", "drop", frozenset({"br*"}), frozenset({"br0"}))
    assert check(t, HostFacts(bridge_nf_call_iptables=True, forward_chains=(accept, handled))) == []
    half = ForwardChain("inet", "fw", "forward", "drop", frozenset({"br0"}), frozenset())
    assert codes(check(t, HostFacts(forward_chains=(half,)))) == ["forward-policy-drop"]


def test_same_bridge_traffic_crosses_forward_only_with_br_netfilter():
    t = one_bridge()  # two namespaces, no forwards, no masquerade
    assert check(t, HostFacts(bridge_nf_call_iptables=False, forward_chains=(DOCKER,))) == []
    w = only(check(t, HostFacts(bridge_nf_call_iptables=True, forward_chains=(DOCKER,))), "forward-policy-drop")
    assert "traffic between its namespaces (bridge-nf-call-iptables=1)" in w.message


def test_a_lone_namespace_talking_to_the_host_or_a_loopback_forward_never_crosses_forward():
    t = one_bridge(namespaces=1, forwards=[{"host_port": 8080, "namespace": "ns0", "port": 80, "host_address": "127.0.0.1"}])
    assert check(t, HostFacts(bridge_nf_call_iptables=True, forward_chains=(DOCKER,))) == []


def test_masquerade_and_routing_between_bridges_cross_forward():
    assert (
        "masqueraded traffic"
        in only(check(one_bridge(namespaces=1, masquerade=True), HostFacts(forward_chains=(DOCKER,))), "forward-policy-drop").message
    )
    found = check(two_bridges(), HostFacts(forward_chains=(DOCKER,)))
    assert codes(found) == ["forward-policy-drop"] * 2
    assert "bridge br-a" in found[0].message and "traffic to and from br-b" in found[0].message


def test_bridge_family_forward_drop_blocks_frames_between_ports():
    chain = ForwardChain("bridge", "bf", "forward", "drop")
    w = only(check(one_bridge(), HostFacts(forward_chains=(chain,))), "forward-policy-drop")
    assert "nft chain bridge bf forward" in w.message and "traffic between its namespaces" in w.message
    assert check(one_bridge(namespaces=1, masquerade=True), HostFacts(forward_chains=(chain,))) == []
    handled = ForwardChain("bridge", "bf", "forward", "drop", frozenset({"br0"}))
    assert check(one_bridge(), HostFacts(forward_chains=(handled,))) == []


def test_legacy_iptables_chain_is_named_as_such():
    w = only(check(one_bridge(masquerade=True), HostFacts(forward_chains=(LEGACY_DROP,))), "forward-policy-drop")
    assert "iptables-legacy chain filter FORWARD" in w.message
    assert w.hint == "accept it: `iptables-legacy -I FORWARD -i br0 -j ACCEPT` and `iptables-legacy -I FORWARD -o br0 -j ACCEPT`"


# host-port-in-use


def forward(port: int = 8080, **extra):
    return one_bridge(namespaces=1, forwards=[{"host_port": port, "namespace": "ns0", "port": 80, **extra}])


def test_a_listener_on_loopback_loses_the_hosts_connections_to_a_forward_on_every_address():
    w = only(check(forward(), HostFacts(listeners=(Listener("tcp", "127.0.0.1", 8080),))), "host-port-in-use")
    assert "a socket listens on 127.0.0.1:8080" in w.message
    assert "forward tcp *:8080 -> ns0:80 sends this host's connections to 127.0.0.1:8080 to ns0 instead of to that socket" in w.message
    assert "ss -ltnp 'sport = :8080'" in w.hint


def test_a_wildcard_listener_loses_ipv4_connections_to_every_host_address():
    for address in ("0.0.0.0", "::"):
        w = only(check(forward(), HostFacts(listeners=(Listener("tcp", address, 8080),))), "host-port-in-use")
        assert "IPv4 connections to port 8080 of every host address" in w.message


def test_listeners_the_ipv4_dnat_cannot_reach_are_fine():
    facts = HostFacts(
        listeners=(
            Listener("tcp", "::1", 8080),  # IPv6 only
            Listener("tcp", "fe80::1", 8080),
            Listener("udp", "0.0.0.0", 8080),  # other protocol
            Listener("tcp", "0.0.0.0", 8081),  # other port
        )
    )
    assert check(forward(), facts) == []


def test_a_forward_on_one_address_conflicts_with_that_address_and_with_wildcards_only():
    on_loopback = forward(host_address="127.0.0.1")
    assert check(on_loopback, HostFacts(listeners=(Listener("tcp", "192.0.2.2", 8080),))) == []
    w = only(check(on_loopback, HostFacts(listeners=(Listener("tcp", "0.0.0.0", 8080),))), "host-port-in-use")
    assert "this host's connections to 127.0.0.1:8080" in w.message
    mapped = only(check(on_loopback, HostFacts(listeners=(Listener("tcp", "::ffff:127.0.0.1", 8080),))), "host-port-in-use")
    assert "[::ffff:127.0.0.1]:8080" in mapped.message
    w = only(check(forward(host_address="192.0.2.2"), HostFacts(listeners=(Listener("tcp", "192.0.2.2", 8080),))), "host-port-in-use")
    assert "connections to 192.0.2.2:8080 (the host's own too)" in w.message


def test_udp_wording():
    w = only(check(forward(5353, protocol="udp"), HostFacts(listeners=(Listener("udp", "127.0.0.53", 5353),))), "host-port-in-use")
    assert "udp port 5353" in w.message and "a socket is bound to 127.0.0.53:5353" in w.message
    assert "datagrams to 127.0.0.53:5353" in w.message and "ss -lunp" in w.hint


def test_several_listeners_on_a_port_give_one_warning():
    facts = HostFacts(listeners=(Listener("tcp", "0.0.0.0", 8080), Listener("tcp", "::", 8080)))
    w = only(check(forward(), facts), "host-port-in-use")
    assert "0.0.0.0:8080 and [::]:8080" in w.message


# subnet-overlaps-route


def route(net: str, device: str | None = "eth1", **extra) -> HostRoute:
    return HostRoute(IPv4Network(net), device, **extra)


def routes_check(*routes: HostRoute, t=None) -> list[PreflightWarning]:
    return check(t or one_bridge(), HostFacts(routes=routes))


def test_default_routes_do_not_overlap():
    assert routes_check(route("0.0.0.0/0", "eth0", via="192.0.2.1", proto=3)) == []
    assert routes_check(route("0.0.0.0/1", "tun0"), route("0.0.0.0/1", "tun0")) == []  # a VPN's split default


def test_a_broader_route_containing_the_subnet_warns():
    w = only(routes_check(route("10.1.0.0/16", proto=4)), "subnet-overlaps-route")
    assert "bridge br0's subnet 10.1.0.0/24 lies inside host route 10.1.0.0/16 dev eth1" in w.message
    assert "ip -4 route show match 10.1.0.0/24" in w.hint


def test_a_more_specific_route_inside_the_subnet_warns():
    w = only(routes_check(route("10.1.0.128/25", "wg0", via="10.9.0.1", proto=4)), "subnet-overlaps-route")
    assert "host route 10.1.0.128/25 via 10.9.0.1 dev wg0 lies inside bridge br0's subnet 10.1.0.0/24" in w.message
    assert "ip -4 route show root 10.1.0.0/24" in w.hint
    blackhole = only(routes_check(route("10.1.0.7/32", None, kind="blackhole", proto=4)), "subnet-overlaps-route")
    assert "host route 10.1.0.7/32 (blackhole) lies inside" in blackhole.message


def test_the_same_network_on_another_device_warns():
    w = only(routes_check(route("10.1.0.0/24", "docker0", proto=4)), "subnet-overlaps-route")
    assert "already has a host route, 10.1.0.0/24 dev docker0" in w.message


def allowing(overlap: bool):
    bridge = {"subnet": SUBNET, **({"allow_overlap": True} if overlap else {})}
    return topology(doc({"br0": bridge}, {"a": {"interfaces": {"eth0": {"bridge": "br0"}}}}))


@pytest.mark.parametrize("net", ["10.1.0.0/24", "10.1.0.0/16", "10.1.0.128/25"])
def test_a_connected_route_of_a_link_nsnet_does_not_own_is_the_plans_error_not_a_warning(net: str):
    assert routes_check(route(net, "eth0"), t=allowing(False)) == []  # reconcile refuses it (test_host_cutoff.py)


def test_with_allow_overlap_the_connected_route_warns_with_its_consequence():
    w = only(routes_check(route("10.1.0.0/16", "eth0"), t=allowing(True)), "subnet-overlaps-route")
    assert "lies inside host route 10.1.0.0/16 dev eth0: once br0 has it, the host sends traffic for 10.1.0.0/24 to br0" in w.message
    assert w.hint.startswith("bridge br0 has `allow_overlap: true`, so nsnet applies it anyway; `ip -4 route show match 10.1.0.0/24`")


def test_only_a_connected_route_is_refused():
    for other in (route("10.1.0.0/16", "eth0", proto=4), route("10.1.0.0/16", "eth0", via="10.9.0.1"), route("10.1.0.0/16", None, kind="blackhole")):
        w = only(routes_check(other, t=allowing(False)), "subnet-overlaps-route")
        assert w.hint.startswith("choose a subnet no host route overlaps")
    assert not route("10.1.0.0/16", "eth0", via="10.9.0.1").connected and route("10.1.0.0/16", "eth0").connected


def test_routes_elsewhere_do_not_overlap():
    assert routes_check(route("10.2.0.0/24"), route("10.0.255.0/24"), route("192.0.2.0/24", "eth0")) == []
    assert check(topology(doc({"br0": {}})), HostFacts(routes=(route("10.1.0.0/16"),))) == []  # no subnet


def test_the_bridges_own_routes_are_ignored_but_another_topologys_bridge_is_not():
    own = route("10.1.0.0/24", "br0", owner="demo", proto=checks.PROTO_KERNEL)
    assert routes_check(own) == []
    assert routes_check(route("10.1.0.0/25", "br0", owner="demo", proto=225)) == []
    assert routes_check(route("10.1.0.128/25", "br0", owner="demo", proto=4)) == []  # by hand, but to the bridge itself
    other = only(routes_check(route("10.1.0.0/24", "br9", owner="other", proto=checks.PROTO_KERNEL)), "subnet-overlaps-route")
    assert "dev br9 (a bridge of nsnet topology other)" in other.message
    unlabelled = only(routes_check(route("10.1.0.0/24", "br0", owner=None, proto=4)), "subnet-overlaps-route")
    assert "dev br0" in unlabelled.message  # a foreign br0: plan refuses it too


def test_warnings_come_in_a_stable_order():
    t = two_bridges(forwards=[{"host_port": 8080, "namespace": "a", "port": 80}])
    facts = HostFacts(
        ip_forward=False,
        forward_chains=(DOCKER,),
        listeners=(Listener("tcp", "0.0.0.0", 8080),),
        routes=(route("10.2.0.0/16", proto=4), route("10.1.0.0/16", proto=4)),
    )
    assert codes(check(t, facts)) == [
        "forward-policy-drop",
        "forward-policy-drop",
        "host-port-in-use",
        "subnet-overlaps-route",
        "subnet-overlaps-route",
    ]
    t = two_bridges()
    assert codes(check(t, facts))[0] == "ip-forward-off"
    assert check(t, facts) == check(t, facts)


# dual-stack


def dual(t: Topology) -> Topology:
    """Every bridge with an IPv6 subnet too (fd00:<n>::/64, gateway ::1), as the loader's dual-stack keys build it."""
    six = tuple(
        dataclasses.replace(b, subnet6=IPv6Network(f"fd00:{n + 1}::/64"), gateway6=IPv6Address(f"fd00:{n + 1}::1")) for n, b in enumerate(t.bridges)
    )
    return dataclasses.replace(t, bridges=six)


def with_forward(t: Topology, **extra) -> Topology:
    return dataclasses.replace(t, port_forwards=(*t.port_forwards, PortForward(8080, t.namespaces[0].name, 80, **extra)))


IP6_DROP = ForwardChain("ip6", "filter", "FORWARD", "drop")  # ip6tables-nft's FORWARD, Docker's with ip6tables on
LEGACY6_DROP = ForwardChain(checks.LEGACY6, "filter", "FORWARD", "drop")


def test_bridge_nf_call_ip6tables_with_an_ip6_forward_drop_warns_for_a_bridge_carrying_ipv6():
    t = dual(one_bridge())
    w = only(check(t, HostFacts(bridge_nf_call_ip6tables=True, forward_chains=(IP6_DROP,))), "forward-policy-drop")
    assert "nft chain ip6 filter FORWARD (hook forward) has policy drop and no rule there accepts bridge br0" in w.message
    assert "traffic between its namespaces (bridge-nf-call-ip6tables=1)" in w.message
    assert w.hint == "accept it: `nft insert rule ip6 filter FORWARD iifname br0 accept` and `nft insert rule ip6 filter FORWARD oifname br0 accept`"
    assert check(t, HostFacts(bridge_nf_call_ip6tables=False, forward_chains=(IP6_DROP,))) == []
    assert check(one_bridge(), HostFacts(bridge_nf_call_ip6tables=True, forward_chains=(IP6_DROP,))) == []  # no IPv6 on br0
    # the IPv4 switch does not put IPv6 frames through an ip6 chain, nor the IPv6 one IPv4's through an ip chain
    assert check(t, HostFacts(bridge_nf_call_iptables=True, forward_chains=(IP6_DROP,))) == []
    assert check(t, HostFacts(bridge_nf_call_ip6tables=True, forward_chains=(DOCKER,))) == []


def test_ipv6_forwards_and_masquerade_cross_an_ip6_chain_and_ipv4_only_ones_do_not():
    t = dual(one_bridge(namespaces=1))
    w = only(check(with_forward(t), HostFacts(forward_chains=(IP6_DROP,))), "forward-policy-drop")
    assert "port forwards from other hosts and namespaces" in w.message
    assert check(with_forward(t, host_address=IPv4Address("10.1.0.1")), HostFacts(forward_chains=(IP6_DROP,))) == []
    assert check(with_forward(t, host_address=IPv6Address("fd00:1::1")), HostFacts(forward_chains=(DOCKER,))) == []
    masq = dual(one_bridge(namespaces=1, masquerade=True))
    assert "masqueraded traffic" in only(check(masq, HostFacts(forward_chains=(IP6_DROP,))), "forward-policy-drop").message


def test_routing_between_ipv6_bridges_crosses_an_ip6_chain():
    found = check(dual(two_bridges()), HostFacts(forward_chains=(IP6_DROP,)))
    assert codes(found) == ["forward-policy-drop"] * 2 and "traffic to and from br-b" in found[0].message


def test_an_inet_chain_sees_both_versions_once():
    t = dual(one_bridge(masquerade=True))
    chain = ForwardChain("inet", "fw", "forward", "drop")
    w = only(check(t, HostFacts(bridge_nf_call_iptables=True, bridge_nf_call_ip6tables=True, forward_chains=(chain,))), "forward-policy-drop")
    assert w.message.endswith(
        "it drops br0's masqueraded traffic to the outside, traffic between its namespaces (bridge-nf-call-iptables=1), "
        "traffic between its namespaces (bridge-nf-call-ip6tables=1)"
    )


def test_with_docker_s_ip6tables_chain_nsnet_accepts_the_bridges_there():
    t = dual(one_bridge())
    bridged = HostFacts(bridge_nf_call_ip6tables=True, forward_chains=(IP6_DROP, LEGACY6_DROP), docker_user6=True)
    assert check(t, bridged) == []
    assert check(t, dataclasses.replace(bridged, docker_user6=False, docker_user=True)) != []  # iptables' chain is not ip6tables'
    off = dataclasses.replace(t, firewall=Firewall(docker_user=False))
    w = check(off, dataclasses.replace(bridged, forward_chains=(IP6_DROP,)))[0]
    assert "`ip6tables -I DOCKER-USER -i br0 -j ACCEPT` and `ip6tables -I DOCKER-USER -o br0 -j ACCEPT`" in w.hint


def test_legacy_ip6tables_chain_is_named_as_such():
    w = only(check(dual(one_bridge(masquerade=True)), HostFacts(forward_chains=(LEGACY6_DROP,))), "forward-policy-drop")
    assert "ip6tables-legacy chain filter FORWARD" in w.message
    assert w.hint == "accept it: `ip6tables-legacy -I FORWARD -i br0 -j ACCEPT` and `ip6tables-legacy -I FORWARD -o br0 -j ACCEPT`"


# accept-ra-forwarding

RA = HostFacts(ipv6_forwarding=False, ra_defaults=("eth0",))


def test_ipv6_forwarding_nsnet_sets_warns_where_a_default_route_comes_from_router_advertisements():
    w = only(check(dual(one_bridge(masquerade=True)), RA), "accept-ra-forwarding")
    assert w.message == (
        "the topology needs the host to forward IPv6 (masquerade of fd00:1::/64), so nsnet sets net.ipv6.conf.all.forwarding=1; "
        "eth0 then ignores router advertisements (accept_ra=1 accepts them only while not forwarding), and the default IPv6 "
        "route learned from them expires"
    )
    assert w.hint.startswith("`sysctl -w net.ipv6.conf.eth0.accept_ra=2` keeps accepting them while forwarding")
    assert "namespaces routing between bridges (br-a -> br-b, br-b -> br-a)" in only(check(dual(two_bridges()), RA), "accept-ra-forwarding").message


def test_no_ra_warning_without_ipv6_forwarding_or_when_the_host_forwards_already():
    assert codes(check(one_bridge(masquerade=True), RA)) == []  # IPv4 only
    assert codes(check(dual(one_bridge()), RA)) == []  # one bridge, nothing forwarded
    assert codes(check(dual(one_bridge(masquerade=True)), dataclasses.replace(RA, ipv6_forwarding=True))) == []
    assert codes(check(dual(one_bridge(masquerade=True)), dataclasses.replace(RA, ra_defaults=()))) == []
    assert codes(check(dual(one_bridge(masquerade=True)), HostFacts(ra_defaults=("eth0",)))) == []  # forwarding unknown


# host-port-in-use, IPv6


def test_a_wildcard_ipv6_listener_loses_both_versions_to_a_dual_stack_forward():
    t = dual(forward())
    w = only(check(t, HostFacts(listeners=(Listener("tcp", "::", 8080),))), "host-port-in-use")
    assert (
        "sends IPv4 connections to port 8080 of every host address (the host's own too) and IPv6 connections to port 8080 "
        "of every host address but [::1] (the host's own too) to ns0"
    ) in w.message


def test_the_ipv6_dnat_leaves_loopback_and_link_local_listeners_alone_and_takes_its_own_address():
    t = dual(forward())
    assert check(t, HostFacts(listeners=(Listener("tcp", "::1", 8080), Listener("tcp", "fe80::1", 8080)))) == []
    w = only(check(t, HostFacts(listeners=(Listener("tcp", "fd00:1::1", 8080),))), "host-port-in-use")
    assert "a socket listens on [fd00:1::1]:8080" in w.message and "connections to [fd00:1::1]:8080 (the host's own too)" in w.message
    on6 = with_forward(dual(one_bridge(namespaces=1)), host_address=IPv6Address("fd00:1::1"))
    w = only(check(on6, HostFacts(listeners=(Listener("tcp", "fd00:1::1", 8080), Listener("tcp", "127.0.0.1", 8080)))), "host-port-in-use")
    assert "the port forward tcp [fd00:1::1]:8080 -> ns0:80 sends connections to [fd00:1::1]:8080 (the host's own too)" in w.message
    assert check(on6, HostFacts(listeners=(Listener("tcp", "fd00:1::2", 8080),))) == []
