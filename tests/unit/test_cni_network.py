"""A CNI network as an nsnet topology: derived names and MACs, the bridge, the routes, one attachment."""

from __future__ import annotations

import dataclasses
import re
from ipaddress import ip_address, ip_interface, ip_network

import pytest
from test_cni_config import ENV, V4, V6, conf, doc

from netplan_lite.cni import network
from netplan_lite.cni.config import network_conf, read_request
from netplan_lite.cni.verbs import _new_attachment
from netplan_lite.model.topology import Bridge, Interface, PortForward, Protocol, Route

KEYS = [("net", "abc", "eth0"), ("net", "abd", "eth0"), ("net", "abc", "eth1"), ("other", "abc", "eth0"), ("net", "abc" * 30, "eth0")]
DEFAULT4, DEFAULT6 = ip_network("0.0.0.0/0"), ip_network("::/0")


@pytest.mark.parametrize("derive", [network.host_veth, network.container_mac, network.host_mac])
def test_derived_per_network_container_and_ifname(derive):
    assert [derive(*k) for k in KEYS] == [derive(*k) for k in KEYS]  # deterministic
    assert len({derive(*k) for k in KEYS}) == len(KEYS)


def test_host_veth_is_a_kernel_link_name():
    for key in KEYS:
        assert re.fullmatch(r"nsv[0-9a-f]{12}", network.host_veth(*key))


def test_macs_are_unicast_locally_administered_and_distinct_ends():
    for key in KEYS:
        ends = network.container_mac(*key), network.host_mac(*key)
        assert ends[0] != ends[1]
        assert all(re.fullmatch(r"02(:[0-9a-f]{2}){5}", mac) for mac in ends)


def test_attachment_name():
    """Within its network's records: derived from the container ID and ifname, readable by the ID's start."""
    pairs = [(cid, ifname) for _, cid, ifname in KEYS[:3]] + [("0123456789abX", "e"), ("0123456789abY", "e")]
    names = [network.attachment_name(*pair) for pair in pairs]
    assert names == [network.attachment_name(*pair) for pair in pairs] and len(set(names)) == len(names)
    assert names[0].startswith("abc-") and names[3].startswith("0123456789ab-")
    assert all(len(network.attachment_name(cid, "eth0")) <= 23 for cid in ("a", "f" * 64))


# the bridge


def bridge(subnet=None, gateway=None, subnet6=None, gateway6=None, **keys) -> Bridge:
    def net(text):
        return ip_network(text) if text else None

    def address(text):
        return ip_address(text) if text else None

    return Bridge("br-net", net(subnet), address(gateway), subnet6=net(subnet6), gateway6=address(gateway6), allow_overlap=True, **keys)


@pytest.mark.parametrize(
    ("keys", "ranges", "expected"),
    [
        ({}, (V4,), bridge("10.88.0.0/24")),
        ({"isGateway": True}, (V4,), bridge("10.88.0.0/24", "10.88.0.1")),
        ({"isDefaultGateway": True, "mtu": 1400, "ipMasq": True}, (V4,), bridge("10.88.0.0/24", "10.88.0.1", mtu=1400, masquerade=True)),
        ({"isGateway": True}, (V4, {**V6, "gateway": "fd00:88::fe"}), bridge("10.88.0.0/24", "10.88.0.1", "fd00:88::/64", "fd00:88::fe")),
        ({}, (V6,), bridge(subnet6="fd00:88::/64")),
        ({"isGateway": True}, (V6, V4), bridge("10.88.0.0/24", "10.88.0.1", "fd00:88::/64", "fd00:88::1")),
    ],
)
def test_bridge_of(keys, ranges, expected):
    c = conf(*ranges, **keys)
    assert network.bridge_of(c) == expected
    assert (network.gateway_of(c, 4), network.gateway_of(c, 6)) == (expected.gateway, expected.gateway6)


# the container's routes


def routed(routes, *ranges, **keys):
    """The configuration with `ipam.routes`."""
    configuration = doc(*ranges, **keys)
    configuration["ipam"]["routes"] = routes
    return network_conf(configuration, read_request(ENV))


def via(dst, gw=None) -> Route:
    return Route(ip_network(dst), (ip_address(gw),) if gw else ())


@pytest.mark.parametrize(
    ("keys", "ranges", "routes"),
    [
        ({}, (V4,), ()),
        ({"isGateway": True}, (V4,), ()),
        ({"isDefaultGateway": True}, (V4,), (via("0.0.0.0/0", "10.88.0.1"),)),
        ({"isDefaultGateway": True}, ({**V4, "gateway": "10.88.0.254"}, V6), (via("0.0.0.0/0", "10.88.0.254"), via("::/0", "fd00:88::1"))),
    ],
)
def test_default_routes(keys, ranges, routes):
    assert network.routes_of(conf(*ranges, **keys)) == routes


def test_ipam_routes_go_via_their_gw_or_the_ranges_gateway():
    routes = [
        {"dst": "192.168.0.0/16", "gw": "10.88.0.254"},
        {"dst": "172.16.0.0/12"},
        {"dst": "fd01::/64"},
        {"dst": "fd02::/64", "gw": "fd00:88::9"},
    ]
    assert network.routes_of(routed(routes, V4, V6)) == (
        via("192.168.0.0/16", "10.88.0.254"),
        via("172.16.0.0/12", "10.88.0.1"),
        via("fd01::/64", "fd00:88::1"),
        via("fd02::/64", "fd00:88::9"),
    )


def test_a_route_of_a_family_without_a_range_has_no_gateway():
    assert network.routes_of(routed([{"dst": "fd01::/64"}], V4)) == (via("fd01::/64"),)


def test_the_default_route_is_given_once():
    routes = [{"dst": "0.0.0.0/0", "gw": "10.88.0.254"}, {"dst": "10.0.0.0/8"}]
    assert network.routes_of(routed(routes, V4, isDefaultGateway=True)) == (via("0.0.0.0/0", "10.88.0.1"), via("10.0.0.0/8", "10.88.0.1"))


# one attachment


def attachment_of(c, *addresses: str, env=None):
    return dataclasses.replace(_new_attachment(c, read_request({**ENV, **(env or {})})), addresses=addresses)


def test_the_network_alone():
    c = conf(V4, isGateway=True)
    topology = network.topology_of(c, None)
    assert (topology.name, topology.bridges, topology.namespaces, topology.port_forwards, topology.forward_maps) == (
        "net",
        (network.bridge_of(c),),
        (),
        (),
        True,
    )


def test_one_dual_stack_attachment():
    c = conf(V4, V6, isDefaultGateway=True, mtu=1400, hairpinMode=True)
    attachment = attachment_of(c, "10.88.0.2/24", "fd00:88::2/64")
    topology = network.topology_of(c, attachment)
    (namespace,) = topology.namespaces
    assert (namespace.name, namespace.path, namespace.routes) == (
        network.attachment_name("abc123", "eth0"),
        "/run/netns/x",
        (via("0.0.0.0/0", "10.88.0.1"), via("::/0", "fd00:88::1")),
    )
    assert namespace.interfaces == (
        Interface(
            name="eth0",
            bridge="br-net",
            host_name=network.host_veth("net", "abc123", "eth0"),
            address=ip_interface("10.88.0.2/24"),
            mtu=1400,
            mac=network.container_mac("net", "abc123", "eth0"),
            address6=ip_interface("fd00:88::2/64"),
            hairpin=True,
            host_mac=network.host_mac("net", "abc123", "eth0"),
        ),
    )
    assert topology.bridges == (network.bridge_of(c),) and topology.forward_maps and topology.port_forwards == ()


def test_a_requested_mac_is_the_containers():
    c = conf(runtimeConfig={"mac": "02:AA:00:00:00:01"})
    (namespace,) = network.topology_of(c, attachment_of(c, "10.88.0.2/24")).namespaces
    assert namespace.interfaces[0].mac == "02:aa:00:00:00:01"
    assert namespace.interfaces[0].address6 is None


def test_port_mappings_are_forwards_to_the_attachment():
    mappings = [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        {"hostPort": 8443, "containerPort": 443, "hostIP": "0.0.0.0"},
        {"hostPort": 9000, "containerPort": 9000, "hostIP": "::1"},
    ]
    c = conf(runtimeConfig={"portMappings": mappings})
    attachment = attachment_of(c, "10.88.0.2/24", env={"CNI_IFNAME": "net1"})
    name = attachment.name
    assert network.topology_of(c, attachment).port_forwards == (
        PortForward(8080, name, 80, Protocol.TCP, None, "net1"),
        PortForward(5353, name, 53, Protocol.UDP, ip_address("127.0.0.1"), "net1"),
        PortForward(8443, name, 443, Protocol.TCP, None, "net1"),
        PortForward(9000, name, 9000, Protocol.TCP, ip_address("::1"), "net1"),
    )
