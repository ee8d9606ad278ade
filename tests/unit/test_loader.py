"""loader: file -> schema -> semantic checks -> frozen Topology, errors located."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from builders import EXAMPLE, doc, messages, problems, topology

from netplan_lite.errors import NsnetError, Problem, TopologyError
from netplan_lite.model.loader import HOST_VETH_PREFIX, build, host_veth_name, load_bytes, load_file
from netplan_lite.model.topology import Bridge, Interface, Namespace, PortForward, Protocol, Route, Topology

CORPUS_GOOD = Path(__file__).resolve().parents[1] / "corpus" / "good"

MIXED = """\
name: demo
bridges:
  br0:
    subnet: 172.30.0.0/24
    colour: red
namespaces:
  web1:
    interfaces:
      eth0: {bridge: br0, address: 10.0.0.5}
"""


def file_problems(tmp_path, text: str | bytes, name: str = "topo.yaml") -> list[str]:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(TopologyError) as info:
        load_file(path)
    return [str(p) for p in info.value.problems]


# reading files


def test_example_loads():
    topo = load_file(EXAMPLE)
    assert topo.name == "demo"
    assert [b.name for b in topo.bridges] == ["br-demo"]
    assert [n.name for n in topo.namespaces] == ["web1", "web2"]
    assert topo.source == str(EXAMPLE)


def test_missing_file_is_one_problem(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(TopologyError) as info:
        load_file(path)
    assert [str(p) for p in info.value.problems] == [f"{path}: no such file"]


def test_directory_is_one_problem(tmp_path):
    with pytest.raises(TopologyError) as info:
        load_file(tmp_path)
    assert info.value.lines() == [f"{tmp_path}: is a directory, not a topology file"]


def test_source_error_carries_file_and_position(tmp_path):
    path = tmp_path / "topo.yaml"
    assert file_problems(tmp_path, "name: a\nname: b\n") == [f"{path}:2:1: name: duplicate key (first defined on line 1)"]


def test_source_error_without_position_names_only_the_file(tmp_path):
    assert file_problems(tmp_path, b"name: \xff\n") == [f"{tmp_path / 'topo.yaml'}: not UTF-8 text (byte 6)"]


def test_topology_error_is_an_nsnet_error_with_one_line_per_problem():
    with pytest.raises(NsnetError) as info:
        load_bytes(MIXED.encode(), "t.yaml")
    assert len(info.value.lines()) == 2
    assert str(info.value) == "; ".join(info.value.lines())


# schema problems


def test_schema_and_semantic_problems_are_reported_together(tmp_path):
    path = tmp_path / "topo.yaml"
    assert file_problems(tmp_path, MIXED) == [
        f"{path}:5:5: bridges.br0.colour: unknown key 'colour' (known keys: allow_overlap, gateway, masquerade, mtu, subnet)",
        f"{path}:9:27: namespaces.web1.interfaces.eth0.address: 10.0.0.5 is outside subnet 172.30.0.0/24 of bridge br0",
    ]


def test_missing_name_is_a_schema_problem_at_the_top():
    assert problems("bridges: {}\n") == ["t.yaml:1:1: 'name' is a required property"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(text):
    assert problems(text) == ["t.yaml:1:1: the top level must be a mapping with at least `name:`"]


def test_pattern_problem_shows_the_schema_description():
    assert problems("name: Demo\n") == [
        "t.yaml:1:1: name: 'Demo' is not allowed here (Topology name; labels every object nsnet creates (link alias `nsnet:<name>`).)"
    ]


def test_type_problem_names_the_expected_type():
    found = messages("name: demo\nbridges:\n  br0: {mtu: big}\n")
    assert found == [("bridges.br0.mtu", "'big' should be of type integer")]


def test_range_problem_is_located_at_the_key():
    assert problems("name: demo\nbridges:\n  br0: {subnet: 10.0.0.0/24, mtu: 10}\n") == [
        "t.yaml:3:30: bridges.br0.mtu: 10 is less than the minimum of 68"
    ]


def test_enum_problem_lists_the_choices():
    data = doc(
        bridges={"br0": {"subnet": "10.1.0.0/24"}},
        namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0"}}}},
        port_forwards=[{"host_port": 80, "namespace": "a", "port": 80, "protocol": "sctp"}],
    )
    assert messages(data) == [("port_forwards.0.protocol", "'sctp' is not one of ['tcp', 'udp']")]


def test_unknown_top_level_key_lists_known_keys():
    assert messages("name: demo\nbrdiges: {}\n") == [
        ("brdiges", "unknown key 'brdiges' (known keys: addressing, bridges, checks, firewall, links, name, namespaces, port_forwards)")
    ]


def test_every_schema_problem_is_reported():
    text = "name: demo\nbridges:\n  br0: {mtu: 10}\nnamespaces:\n  a:\n    interfaces:\n      eth0: {bridge: br0, mac: zz}\n"
    assert [path for path, _ in messages(text)] == ["bridges.br0.mtu", "namespaces.a.interfaces.eth0.mac"]


def test_required_property_of_a_list_item_points_at_the_item():
    found = problems("name: demo\nnamespaces: {a: {}}\nport_forwards:\n  - {namespace: a, port: 80}\n")
    assert found[0] == "t.yaml:4:5: port_forwards.0: 'host_port' is a required property"
    assert found[1:] == ["t.yaml:4:6: port_forwards.0.namespace: namespace a has no interface to forward to"]


def test_interface_name_of_16_characters_is_refused():
    found = messages(doc(bridges={"br0": {}}, namespaces={"a": {"interfaces": {"a" * 16: {"bridge": "br0"}}}}))
    assert found == [
        (
            f"namespaces.a.interfaces.{'a' * 16}",
            f"{'a' * 16!r} is not allowed here (A Linux interface name: 1-15 characters, starting with a letter.)",
        )
    ]


def test_interface_name_of_15_characters_is_accepted():
    topo = topology(doc(bridges={"br0": {}}, namespaces={"a": {"interfaces": {"e" * 15: {"bridge": "br0"}}}}))
    assert topo.namespaces[0].interfaces[0].name == "e" * 15


def test_bridge_name_over_15_characters_is_refused():
    assert messages(doc(bridges={"b" * 16: {}}))[0][0] == "bridges." + "b" * 16


def test_bad_interface_name_is_located_at_the_name_itself():
    text = (
        "name: demo\nbridges: {br0: {}}\nnamespaces:\n  a:\n    interfaces:\n      eth0: {bridge: br0}\n      averyveryverylongname: {bridge: br0}\n"
    )
    assert problems(text) == [
        "t.yaml:7:7: namespaces.a.interfaces.averyveryverylongname: 'averyveryverylongname' is not allowed here "
        "(A Linux interface name: 1-15 characters, starting with a letter.)"
    ]


# building the model


def test_address_without_prefix_takes_the_subnet_prefix():
    topo = topology(
        doc(bridges={"br0": {"subnet": "10.1.0.0/16"}}, namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0", "address": "10.1.2.3"}}}})
    )
    assert topo.namespaces[0].interfaces[0].address == IPv4Interface("10.1.2.3/16")


def test_address_with_prefix_is_kept_as_written():
    topo = topology(doc(bridges={"br0": {}}, namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0", "address": "10.1.2.3/8"}}}}))
    assert topo.namespaces[0].interfaces[0].address == IPv4Interface("10.1.2.3/8")


def test_bridge_gateway_defaults_to_the_first_host():
    assert topology(doc(bridges={"br0": {"subnet": "10.1.0.0/24"}})).bridges[0].gateway == IPv4Address("10.1.0.1")


def test_bridge_without_subnet_has_no_gateway():
    assert topology(doc(bridges={"br0": {}})).bridges[0] == Bridge("br0")


def test_full_model_is_built():
    data = doc(
        bridges={"br1": {"subnet": "10.1.0.0/24", "gateway": "10.1.0.254", "mtu": 9000, "masquerade": True}},
        namespaces={
            "a": {
                "interfaces": {"eth0": {"bridge": "br1", "mtu": 1400, "mac": "02:AA:bb:cc:dd:ee"}},
                "routes": [{"to": "10.9.0.0/16", "via": "10.1.0.254"}],
            }
        },
        port_forwards=[{"host_port": 8080, "namespace": "a", "port": 80, "protocol": "udp", "host_address": "127.0.0.1", "interface": "eth0"}],
    )
    assert topology(data) == Topology(
        "demo",
        (Bridge("br1", IPv4Network("10.1.0.0/24"), IPv4Address("10.1.0.254"), 9000, True),),
        (
            Namespace(
                "a",
                (Interface("eth0", "br1", host_veth_name("demo", "a", "eth0"), None, 1400, "02:aa:bb:cc:dd:ee"),),
                (Route(IPv4Network("10.9.0.0/16"), (IPv4Address("10.1.0.254"),)),),
            ),
        ),
        (PortForward(8080, "a", 80, Protocol.UDP, IPv4Address("127.0.0.1"), "eth0"),),
    )


def test_port_forward_defaults():
    data = doc(
        bridges={"br0": {"subnet": "10.1.0.0/24"}},
        namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0"}}}},
        port_forwards=[{"host_port": 8080, "namespace": "a", "port": 80}],
    )
    assert topology(data).port_forwards == (PortForward(8080, "a", 80, Protocol.TCP, None, None),)


def test_routes_absent_is_none_and_empty_list_is_empty():
    topo = topology(doc(namespaces={"a": {}, "b": {"routes": []}}))
    assert [n.routes for n in topo.namespaces] == [None, ()]


def test_route_to_default_is_the_zero_network():
    data = doc(
        bridges={"br0": {"subnet": "10.1.0.0/24"}},
        namespaces={"a": {"interfaces": {"eth0": {"bridge": "br0"}}, "routes": [{"to": "default", "via": "10.1.0.1"}]}},
    )
    (only,) = topology(data).namespaces[0].routes
    assert (only.to, only.destination) == (IPv4Network("0.0.0.0/0"), "default")


def test_namespaces_and_bridges_are_sorted_by_name_interfaces_keep_file_order():
    data = doc(bridges={"zz": {}, "aa": {}}, namespaces={"web2": {}, "web1": {"interfaces": {"eth1": {"bridge": "zz"}, "eth0": {"bridge": "aa"}}}})
    topo = topology(data)
    assert [b.name for b in topo.bridges] == ["aa", "zz"]
    assert [n.name for n in topo.namespaces] == ["web1", "web2"]
    assert [i.name for i in topo.namespaces[0].interfaces] == ["eth1", "eth0"]


def test_model_is_frozen():
    topo = load_file(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        topo.name = "other"  # type: ignore[misc]


def test_source_does_not_take_part_in_equality(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_bytes(EXAMPLE.read_bytes())
    assert load_file(path) == load_file(EXAMPLE)


# host veth names


def test_host_veth_name_is_deterministic_and_fits_ifnamsiz():
    name = host_veth_name("demo", "web1", "eth0")
    assert name == host_veth_name("demo", "web1", "eth0")
    assert len(name) == 15 and name.startswith(HOST_VETH_PREFIX)


@pytest.mark.parametrize("other", [("demo2", "web1", "eth0"), ("demo", "web2", "eth0"), ("demo", "web1", "eth1")])
def test_host_veth_name_depends_on_topology_namespace_and_interface(other):
    assert host_veth_name(*other) != host_veth_name("demo", "web1", "eth0")


def test_host_veth_name_stays_short_for_the_longest_names():
    assert len(host_veth_name("t" * 32, "n" * 64, "i" * 15)) == 15


def test_host_veth_name_is_not_ambiguous_across_name_boundaries():
    assert host_veth_name("ab", "c", "eth0") != host_veth_name("a", "bc", "eth0")


def test_loaded_interface_uses_host_veth_name():
    topo = load_file(EXAMPLE)
    assert topo.namespaces[0].interfaces[0].host_name == host_veth_name("demo", "web1", "eth0")


def test_problem_str_formats():
    assert str(Problem("f", 3, 7, "a.b", "bad")) == "f:3:7: a.b: bad"
    assert str(Problem("f", 3, None, "", "bad")) == "f:3: bad"
    assert str(Problem("f", None, None, "", "bad")) == "f: bad"


# routed labs


def test_a_routed_lab_is_built_whole():
    topo = load_file(CORPUS_GOOD / "routed_lab.yaml")
    assert topo.addressing.p2p is not None and topo.addressing.p2p.prefix == 31 and topo.addressing.p2p.prefix6 == 127
    assert [b.name for b in topo.bridges] == ["br-lan"] and topo.bridges[0].gateway is None and topo.bridges[0].gateway6 is None
    r1 = topo.namespace("r1")
    assert r1 is not None and r1.loopback_auto and r1.sysctls == (("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1"))
    assert [str(e.endpoint) for link in topo.links for e in link.ends] == ["r1:e12", "r2:e21", "r2:e23", "r3:e32"]
    first, second = topo.links
    assert first.ends[0].netem == first.ends[1].netem and first.ends[0].netem is not None and first.ends[0].netem.delay == 20_000_000
    assert second.ends[0].netem is None and second.ends[1].netem is not None and (second.mtu, second.up) == (9000, False)
    assert set(topo.link_ends()) == {("r1", "e12"), ("r2", "e21"), ("r2", "e23"), ("r3", "e32")}
    assert [(c.source, c.to, c.line) for c in topo.checks] == [("h1", "r3", 47), ("h1", "r2", 48), ("h1", "10.66.0.5", 49)]


def test_checks_built_without_a_document_have_no_line():
    data = {"name": "t", "namespaces": {"a": {}}, "checks": [{"from": "a", "to": "a", "ping": True}]}
    assert build(data).checks[0].line is None
