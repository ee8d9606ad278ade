"""Semantic checks: every rule of netplan_lite/checks.py, located by key path."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network

import pytest
from builders import doc, messages, problems, topology

from netplan_lite.model import semantic as checks
from netplan_lite.model.semantic import MAX_BRIDGE_PORTS, BadValue
from netplan_lite.errors import TopologyError
from netplan_lite.model.loader import load_file


DEFAULT_GATEWAY_HINT = (
    " (by default, its subnet's first host): give the bridge `gateway: none` (a plain switch, when a namespace on it routes) "
    "or another `gateway:`, or pin another address here"
)


def bridged(bridges: dict, **namespaces: dict) -> dict:
    """Namespaces given as {ifname: interface spec}."""
    return doc(bridges=bridges, namespaces={ns: {"interfaces": ifs} for ns, ifs in namespaces.items()})


def with_address(address: str, subnet: str = "172.30.0.0/24", **bridge: str) -> dict:
    return bridged({"br0": {"subnet": subnet, **bridge}}, a={"eth0": {"bridge": "br0", "address": address}})


def with_routes(*routes: dict, address: str | None = None) -> dict:
    eth0 = {"bridge": "br0", **({"address": address} if address else {})}
    return doc(bridges={"br0": {"subnet": "172.30.0.0/24"}}, namespaces={"a": {"interfaces": {"eth0": eth0}, "routes": list(routes)}})


def with_forwards(*forwards: dict, namespaces: dict | None = None) -> dict:
    namespaces = namespaces or {"a": {"interfaces": {"eth0": {"bridge": "br0"}}}}
    return doc(bridges={"br0": {"subnet": "172.30.0.0/24"}, "br1": {}}, namespaces=namespaces, port_forwards=list(forwards))


def fwd(host_port: int = 8080, namespace: str = "a", **extra) -> dict:
    return {"host_port": host_port, "namespace": namespace, "port": 80, **extra}


# bridges


def test_valid_topology_file_has_no_problems(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: demo\nbridges:\n  br0: {subnet: 10.0.0.0/24}\nnamespaces:\n  a:\n    interfaces:\n      eth0: {bridge: br0}\n")
    assert load_file(path).name == "demo"


def test_overlapping_subnets_name_the_earlier_bridge(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: demo\nbridges:\n  br0: {subnet: 172.30.0.0/24}\n  br1: {subnet: 172.30.0.0/16}\n")
    with pytest.raises(TopologyError) as info:
        load_file(path)
    assert info.value.lines() == [f"{path}:4:9: bridges.br1.subnet: 172.30.0.0/16 overlaps 172.30.0.0/24 of bridge br0"]


def test_disjoint_subnets_do_not_overlap():
    assert topology(doc(bridges={"br0": {"subnet": "10.0.0.0/24"}, "br1": {"subnet": "10.0.1.0/24"}}))


def test_overlap_is_reported_once_per_bridge_against_an_earlier_one():
    # one report per bridge keeps 1000 overlapping bridges linear (not half a million lines)
    data = doc(bridges={"br0": {"subnet": "10.0.0.0/24"}, "br1": {"subnet": "10.0.1.0/24"}, "br2": {"subnet": "10.0.0.0/16"}})
    assert messages(data) == [
        ("bridges.br2.subnet", "10.0.0.0/16 overlaps 10.0.0.0/24 of bridge br0"),
    ]


@pytest.mark.parametrize(
    "subnet, message",
    [
        ("10.4.0.5/24", "'10.4.0.5/24' has host bits set; did you mean 10.4.0.0/24?"),
        ("0.0.0.0/0", "prefix /0 is outside /8../30: no room for a gateway and hosts"),
        ("10.0.0.0/7", "prefix /7 is outside /8../30: no room for a gateway and hosts"),
        ("10.0.0.0/31", "prefix /31 is outside /8../30: no room for a gateway and hosts"),
        ("10.0.0.0/32", "prefix /32 is outside /8../30: no room for a gateway and hosts"),
        ("10.0.0.0", "'10.0.0.0' needs a prefix length, e.g. 10.0.0.0/24"),
        ("fd00::/127", "prefix /127 is outside /8../126: no room for a gateway and hosts"),
        ("banana", "'banana' is not an IPv4 or IPv6 address"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IPv4 address"),
    ],
)
def test_bad_subnet(subnet, message):
    assert messages(doc(bridges={"br0": {"subnet": subnet}})) == [("bridges.br0.subnet", message)]


@pytest.mark.parametrize("subnet", ["10.0.0.0/8", "10.0.0.0/30", "192.168.7.0/24"])
def test_subnet_prefix_limits_are_inclusive(subnet):
    assert topology(doc(bridges={"br0": {"subnet": subnet}})).bridges[0].subnet == IPv4Network(subnet)


@pytest.mark.parametrize(
    "gateway, message",
    [
        ("10.2.0.1", "10.2.0.1 is outside subnet 10.1.0.0/24"),
        ("10.1.0.0", "10.1.0.0 is the network address of 10.1.0.0/24"),
        ("10.1.0.255", "10.1.0.255 is the broadcast address of 10.1.0.0/24"),
        ("999.1.1.1", "'999.1.1.1' is not an IPv4 address"),
    ],
)
def test_bad_gateway(gateway, message):
    assert messages(doc(bridges={"br0": {"subnet": "10.1.0.0/24", "gateway": gateway}})) == [("bridges.br0.gateway", message)]


def test_gateway_without_subnet():
    assert problems(doc(bridges={"br0": {"gateway": "10.0.0.1"}})) == ["t.yaml:4:5: bridges.br0.gateway: a gateway needs a subnet on the bridge"]


def test_gateway_is_not_judged_against_a_broken_subnet():
    data = doc(bridges={"br0": {"subnet": "10.1.0.5/24", "gateway": "10.9.0.1"}})
    assert [path for path, _ in messages(data)] == ["bridges.br0.subnet"]


def test_masquerade_needs_a_subnet():
    assert messages(doc(bridges={"br0": {"masquerade": True}})) == [
        ("bridges.br0.masquerade", "masquerade needs a subnet on the bridge (it source-NATs that subnet)")
    ]


def test_allow_overlap_needs_a_subnet():
    assert messages(doc(bridges={"br0": {"allow_overlap": True}})) == [
        ("bridges.br0.allow_overlap", "allow_overlap needs a subnet on the bridge (only a subnet can overlap the host's networks)")
    ]
    assert topology(doc(bridges={"br0": {"allow_overlap": False}})).bridges[0].allow_overlap is False


def test_ipv6_gateway_needs_an_ipv6_subnet():
    assert messages(doc(bridges={"br0": {"subnet": "10.1.0.0/24", "gateway": "fd00::1"}})) == [
        ("bridges.br0.gateway", "fd00::1 is IPv6, but the bridge has no IPv6 subnet")
    ]


# interfaces


def test_unknown_bridge():
    text = "name: demo\nnamespaces:\n  a:\n    interfaces:\n      eth0: {bridge: br9}\n"
    assert problems(text) == ["t.yaml:5:14: namespaces.a.interfaces.eth0.bridge: unknown bridge 'br9' (not under bridges:)"]


def test_lo_is_reserved():
    assert messages(bridged({"br0": {}}, a={"lo": {"bridge": "br0"}})) == [
        ("namespaces.a.interfaces.lo", "'lo' is reserved: nsnet brings up lo in every namespace itself")
    ]


@pytest.mark.parametrize(
    "address, message",
    [
        ("10.0.0.5", "10.0.0.5 is outside subnet 172.30.0.0/24 of bridge br0"),
        ("172.30.0.0", "172.30.0.0 is the network address of 172.30.0.0/24 of bridge br0"),
        ("172.30.0.255", "172.30.0.255 is the broadcast address of 172.30.0.0/24 of bridge br0"),
        ("172.30.0.1", f"172.30.0.1 is the gateway of bridge br0{DEFAULT_GATEWAY_HINT}"),
        ("172.30.0.10/16", "prefix /16 differs from subnet 172.30.0.0/24 of bridge br0"),
        ("fd00::1", "fd00::1 is IPv6, but bridge br0 has no IPv6 subnet"),
        ("fd00::1/64", "fd00::1 is IPv6, but bridge br0 has no IPv6 subnet"),
        ("nonsense", "'nonsense' is not an IPv4 or IPv6 address"),
    ],
)
def test_bad_address(address, message):
    assert messages(with_address(address)) == [("namespaces.a.interfaces.eth0.address", message)]


def test_address_equal_to_an_explicit_gateway():
    assert messages(with_address("172.30.0.254", gateway="172.30.0.254")) == [
        ("namespaces.a.interfaces.eth0.address", "172.30.0.254 is the gateway of bridge br0")
    ]


def test_first_host_is_free_when_the_gateway_is_elsewhere():
    topo = topology(with_address("172.30.0.1", gateway="172.30.0.254"))
    assert topo.namespaces[0].interfaces[0].address == IPv4Interface("172.30.0.1/24")


def test_address_located_exactly():
    text = (
        "name: demo\nbridges: {br0: {subnet: 172.30.0.0/24}}\n"
        "namespaces:\n  a:\n    interfaces:\n      eth0:\n        bridge: br0\n        address: 172.30.0.1\n"
    )
    assert problems(text) == [f"t.yaml:8:9: namespaces.a.interfaces.eth0.address: 172.30.0.1 is the gateway of bridge br0{DEFAULT_GATEWAY_HINT}"]


def test_address_on_a_bridge_without_subnet_needs_a_prefix():
    data = bridged({"br0": {}}, a={"eth0": {"bridge": "br0", "address": "10.0.0.1"}})
    assert messages(data) == [("namespaces.a.interfaces.eth0.address", "'10.0.0.1' needs a prefix length because its bridge has no subnet")]


def test_address_with_prefix_on_a_bridge_without_subnet_is_accepted():
    data = bridged({"br0": {}}, a={"eth0": {"bridge": "br0", "address": "10.0.0.1/24"}})
    assert topology(data).namespaces[0].interfaces[0].address == IPv4Interface("10.0.0.1/24")


def test_duplicate_address_names_the_first_user():
    data = bridged(
        {"br0": {"subnet": "172.30.0.0/24"}},
        a={"eth0": {"bridge": "br0", "address": "172.30.0.10"}},
        b={"eth0": {"bridge": "br0", "address": "172.30.0.10/24"}},
    )
    assert messages(data) == [("namespaces.b.interfaces.eth0.address", "172.30.0.10 is already used by a.eth0")]


def test_duplicate_address_across_bridges_without_subnet():
    data = bridged(
        {"br0": {}, "br1": {}}, a={"eth0": {"bridge": "br0", "address": "10.0.0.1/24"}, "eth1": {"bridge": "br1", "address": "10.0.0.1/24"}}
    )
    assert messages(data) == [("namespaces.a.interfaces.eth1.address", "10.0.0.1 is already used by a.eth0")]


def test_bridge_takes_1024_ports():
    namespaces = {f"n{i:04d}": {"interfaces": {"eth0": {"bridge": "br0"}}} for i in range(MAX_BRIDGE_PORTS)}
    assert checks.semantic_problems(doc(bridges={"br0": {"subnet": "10.0.0.0/16"}}, namespaces=namespaces)) == []


def test_bridge_over_1024_ports_is_reported_once_at_the_first_extra_port():
    namespaces = {f"n{i:04d}": {"interfaces": {"eth0": {"bridge": "br0"}}} for i in range(MAX_BRIDGE_PORTS + 3)}
    found = messages(doc(bridges={"br0": {"subnet": "10.0.0.0/16"}}, namespaces=namespaces))
    assert found == [
        (
            "namespaces.n1024.interfaces.eth0.bridge",
            "bridge br0 would get more than 1024 ports, the Linux bridge limit; split the namespaces over several bridges",
        )
    ]


# routes


def test_route_via_an_unreachable_gateway():
    assert messages(with_routes({"to": "10.0.0.0/8", "via": "192.168.1.1"})) == [
        ("namespaces.a.routes.0.via", "gateway 192.168.1.1 is not reachable: no interface of a is in a network containing it")
    ]


def test_route_via_a_gateway_in_the_bridge_subnet_is_reachable_for_an_auto_address():
    assert topology(with_routes({"to": "10.0.0.0/8", "via": "172.30.0.254"})).namespaces[0].routes


def test_route_reachability_uses_the_explicit_address_prefix():
    data = bridged({"br0": {}}, a={"eth0": {"bridge": "br0", "address": "10.0.0.2/24"}})
    data["namespaces"]["a"]["routes"] = [{"to": "default", "via": "10.0.1.1"}]
    assert messages(data)[0][0] == "namespaces.a.routes.0.via"


def test_duplicate_route_names_the_first_item():
    found = problems(with_routes({"to": "10.0.0.0/8", "via": "172.30.0.1"}, {"to": "10.0.0.0/8", "via": "172.30.0.2"}))
    assert found == ["t.yaml:13:7: namespaces.a.routes.1.to: route to 10.0.0.0/8 is already defined (routes item 0)"]


def test_default_and_zero_network_are_the_same_route():
    found = messages(with_routes({"to": "default", "via": "172.30.0.1"}, {"to": "0.0.0.0/0", "via": "172.30.0.1"}))
    assert found == [("namespaces.a.routes.1.to", "route to 0.0.0.0/0 is already defined (routes item 0)")]


def test_route_destination_with_host_bits():
    assert messages(with_routes({"to": "10.1.2.3/8", "via": "172.30.0.1"})) == [
        ("namespaces.a.routes.0.to", "'10.1.2.3/8' has host bits set; did you mean 10.0.0.0/8?")
    ]


def test_route_to_a_single_host_is_accepted():
    (only,) = topology(with_routes({"to": "10.1.2.3/32", "via": "172.30.0.1"})).namespaces[0].routes
    assert only.to == IPv4Network("10.1.2.3/32")


def test_ipv6_route_destination_needs_an_ipv6_gateway():
    assert messages(with_routes({"to": "fd00::/64", "via": "172.30.0.1"})) == [
        ("namespaces.a.routes.0.via", "gateway 172.30.0.1 is IPv4, but the route to fd00::/64 is IPv6")
    ]


def test_route_via_that_is_not_an_address():
    assert messages(with_routes({"to": "default", "via": "1.2.3.4.5"})) == [("namespaces.a.routes.0.via", "'1.2.3.4.5' is not an IPv4 address")]


# port forwards


def test_two_forwards_on_the_same_port_and_protocol():
    assert problems(with_forwards(fwd(), fwd())) == [
        "t.yaml:15:3: port_forwards.1.host_port: tcp port 8080 is already forwarded by port_forwards item 0"
    ]


def test_same_port_with_another_protocol_is_fine():
    assert len(topology(with_forwards(fwd(), fwd(protocol="udp"))).port_forwards) == 2


def test_same_port_on_two_specific_addresses_is_fine():
    assert topology(with_forwards(fwd(host_address="127.0.0.1"), fwd(host_address="127.0.0.2")))


@pytest.mark.parametrize("first, second", [({}, {"host_address": "127.0.0.1"}), ({"host_address": "127.0.0.1"}, {})])
def test_every_address_clashes_with_a_specific_address(first, second):
    assert messages(with_forwards(fwd(**first), fwd(**second))) == [
        ("port_forwards.1.host_port", "tcp port 8080 is already forwarded by port_forwards item 0")
    ]


def test_udp_clash_names_the_protocol():
    found = messages(with_forwards(fwd(9000), fwd(protocol="udp"), fwd(protocol="udp")))
    assert found == [("port_forwards.2.host_port", "udp port 8080 is already forwarded by port_forwards item 1")]


def test_forward_host_address_that_is_not_an_address():
    assert messages(with_forwards(fwd(host_address="1.2.3.4.5"))) == [("port_forwards.0.host_address", "'1.2.3.4.5' is not an IPv4 address")]


def test_forward_on_the_unspecified_address_is_refused():
    assert messages(with_forwards(fwd(host_address="0.0.0.0"))) == [
        ("port_forwards.0.host_address", "0.0.0.0 matches no packet; omit host_address to publish on every address")
    ]


def test_forward_to_an_unknown_namespace():
    assert messages(with_forwards(fwd(namespace="nope"))) == [("port_forwards.0.namespace", "unknown namespace 'nope' (not under namespaces:)")]


def test_forward_to_a_namespace_without_interfaces():
    assert messages(with_forwards(fwd(), namespaces={"a": {}})) == [("port_forwards.0.namespace", "namespace a has no interface to forward to")]


def test_forward_to_an_unknown_interface():
    assert messages(with_forwards(fwd(interface="eth9"))) == [("port_forwards.0.interface", "namespace a has no interface 'eth9'")]


def test_forward_to_an_interface_without_address():
    namespaces = {"a": {"interfaces": {"eth0": {"bridge": "br1"}}}}
    assert messages(with_forwards(fwd(), namespaces=namespaces)) == [
        ("port_forwards.0.namespace", "interface a.eth0 has no address (its bridge has no subnet)")
    ]


def test_forward_defaults_to_the_first_interface():
    namespaces = {"a": {"interfaces": {"eth0": {"bridge": "br1"}, "eth1": {"bridge": "br0"}}}}
    assert messages(with_forwards(fwd(), namespaces=namespaces))[0][1].startswith("interface a.eth0 has no address")
    assert topology(with_forwards(fwd(interface="eth1"), namespaces=namespaces))


def test_forward_to_an_explicit_address_on_a_bridge_without_subnet_is_fine():
    namespaces = {"a": {"interfaces": {"eth0": {"bridge": "br1", "address": "10.9.0.2/24"}}}}
    assert topology(with_forwards(fwd(), namespaces=namespaces))


# all together


def test_problems_come_in_check_order():
    data = doc(
        bridges={"br0": {"subnet": "10.0.0.5/24"}},
        namespaces={"a": {"interfaces": {"eth0": {"bridge": "nope"}}, "routes": [{"to": "default", "via": "10.9.9.9"}]}},
        port_forwards=[fwd(namespace="b")],
    )
    assert [path for path, _ in messages(data)] == [
        "bridges.br0.subnet",
        "namespaces.a.interfaces.eth0.bridge",
        "namespaces.a.routes.0.via",
        "port_forwards.0.namespace",
    ]


def test_semantic_problems_survive_an_unrelated_schema_error():
    data = with_forwards({"namespace": "a", "port": 80}, namespaces={"a": {"interfaces": {"eth0": {"bridge": "nope"}}}})
    assert [path for path, _ in messages(data)] == ["port_forwards.0", "namespaces.a.interfaces.eth0.bridge"]


def test_subnet_without_room_for_its_interfaces():
    data = bridged({"br0": {"subnet": "10.0.0.0/30"}}, a={"eth0": {"bridge": "br0"}}, b={"eth0": {"bridge": "br0"}})
    assert messages(data) == [
        ("bridges.br0.subnet", "10.0.0.0/30 has room for 1 interface address besides the gateway, but 2 interfaces use bridge br0")
    ]


def test_subnet_capacity_counts_pinned_addresses_too():
    data = bridged(
        {"br0": {"subnet": "10.0.0.0/29"}},
        **{f"n{i}": {"eth0": {"bridge": "br0", **({"address": f"10.0.0.{i + 2}"} if i < 3 else {})}} for i in range(6)},
    )
    assert [path for path, _ in messages(data)] == ["bridges.br0.subnet"]


def test_subnet_filled_exactly_is_accepted():
    data = bridged({"br0": {"subnet": "10.0.0.0/29"}}, **{f"n{i}": {"eth0": {"bridge": "br0"}} for i in range(5)})
    assert len(topology(data).namespaces) == 5


def test_multicast_mac_is_refused():
    data = bridged({"br0": {}}, a={"eth0": {"bridge": "br0", "mac": "01:00:5e:00:00:01"}})
    assert messages(data) == [("namespaces.a.interfaces.eth0.mac", "01:00:5e:00:00:01 is a multicast address; an interface needs a unicast MAC")]


def test_unicast_mac_is_accepted():
    data = bridged({"br0": {}}, a={"eth0": {"bridge": "br0", "mac": "02:00:5e:00:00:01"}})
    assert topology(data).namespaces[0].interfaces[0].mac == "02:00:5e:00:00:01"


# parsing helpers


def test_parse_interface_address_helpers():
    assert checks.parse_interface_address("10.0.0.2", IPv4Network("10.0.0.0/16")) == IPv4Interface("10.0.0.2/16")
    assert checks.parse_destination("default") == IPv4Network("0.0.0.0/0")
    assert checks.default_gateway(IPv4Network("10.0.0.0/24")) == checks.parse_ip("10.0.0.1")
    assert checks.default_gateway(None) is None


def test_bad_value_is_a_value_error():
    with pytest.raises(ValueError):
        checks.parse_subnet("10.0.0.1/24")
    assert issubclass(BadValue, ValueError)
