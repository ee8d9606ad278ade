"""The CNI plugin's input: the environment (read_request) and the network configuration (network_conf).

The helpers `doc`, `conf` and `ENV` are shared with the other test_cni_* files."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from netplan_lite.cni.config import PortMapping, Range, Request, RouteConf, known_args, network_conf, parse_stdin, read_request
from netplan_lite.cni.spec import Code, CniError

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"}
V4 = {"subnet": "10.88.0.0/24"}
V6 = {"subnet": "fd00:88::/64"}


def doc(*range_sets: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """A network configuration as libcni passes it: one range set per argument (10.88.0.0/24 if none)."""
    ipam = {"ranges": [[r] for r in range_sets or (V4,)]}
    return {"cniVersion": "1.0.0", "name": "net", "type": "nsnet", "bridge": "br-net", "ipam": ipam, **keys}


def conf(*range_sets: dict[str, Any], env: dict[str, str] | None = None, **keys: Any):
    return network_conf(doc(*range_sets, **keys), read_request({**ENV, **(env or {})}))


def refused(code: Code, call, *args: Any, **kwargs: Any) -> CniError:
    """The error `call` raises, which must have `code`."""
    with pytest.raises(CniError) as raised:
        call(*args, **kwargs)
    assert raised.value.code == code, raised.value.msg
    return raised.value


def refused_conf(code: Code, *range_sets: dict[str, Any], **keys: Any) -> str:
    return refused(code, conf, *range_sets, **keys).msg


# read_request


@pytest.mark.parametrize(
    ("command", "needed"),
    [
        ("ADD", {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"}),
        ("CHECK", {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"}),
        ("DEL", {"CNI_CONTAINERID", "CNI_IFNAME"}),
    ],
)
def test_each_verb_names_exactly_the_variables_it_misses(command, needed):
    for missing in needed:
        for absent in ({}, {missing: ""}):  # unset and empty are alike
            env = {**{k: v for k, v in ENV.items() if k != missing}, "CNI_COMMAND": command, **absent}
            err = refused(Code.INVALID_ENVIRONMENT, read_request, env)
            assert err.msg == f"{command} needs {missing}"
    err = refused(Code.INVALID_ENVIRONMENT, read_request, {"CNI_COMMAND": command})
    assert set(err.details.split(": ", 1)[1].split(", ")) == needed


@pytest.mark.parametrize("command", ["STATUS", "GC", "VERSION"])
def test_network_verbs_need_no_container(command):
    request = read_request({"CNI_COMMAND": command})
    assert (request.command, request.container_id, request.ifname, request.path) == (command, "", "", ())


def test_del_without_a_namespace_is_read():
    request = read_request({**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""})
    assert request == Request("DEL", "abc123", "", "eth0", {}, ("/opt/cni/bin", "/usr/lib/cni"))


@pytest.mark.parametrize("command", ["", "add", "FOO"])
def test_unknown_command_is_refused(command):
    assert "CNI_COMMAND" in refused(Code.INVALID_ENVIRONMENT, read_request, {**ENV, "CNI_COMMAND": command}).msg


@pytest.mark.parametrize(
    ("text", "parsed"), [("", {}), ("IP=10.88.0.9", {"IP": "10.88.0.9"}), ("A=1;;B=x=y;", {"A": "1", "B": "x=y"}), ("K=", {"K": ""})]
)
def test_cni_args_are_key_value_pairs(text, parsed):
    assert read_request({**ENV, "CNI_ARGS": text}).args == parsed


@pytest.mark.parametrize("text", ["IP", "=1", "A=1;B"])
def test_malformed_cni_args_are_refused(text):
    assert "CNI_ARGS" in refused(Code.INVALID_ENVIRONMENT, read_request, {**ENV, "CNI_ARGS": text}).msg


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_CONTAINERID", "a b"),
        ("CNI_CONTAINERID", "a/b"),
        ("CNI_CONTAINERID", "abc\n"),
        ("CNI_IFNAME", "a" * 16),
        ("CNI_IFNAME", "eth 0"),
        ("CNI_IFNAME", "eth/0"),
        ("CNI_IFNAME", "eth:0"),
        ("CNI_IFNAME", "."),
        ("CNI_IFNAME", ".."),
        pytest.param(
            "CNI_IFNAME",
            "é" * 15,
        ),
    ],
)
def test_invalid_container_id_or_ifname_is_refused(variable, value):
    assert variable in refused(Code.INVALID_ENVIRONMENT, read_request, {**ENV, variable: value}).msg


@pytest.mark.parametrize(("container_id", "ifname"), [("a", "e"), ("A1_b.c-d", "a" * 15), ("f" * 64, "net1.100")])
def test_valid_names_are_taken(container_id, ifname):
    request = read_request({**ENV, "CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname})
    assert (request.container_id, request.ifname) == (container_id, ifname)


@pytest.mark.parametrize("args", ["", "IP=10.88.0.9;MAC=02:00:00:00:00:01", "IgnoreUnknown=1;K8S_POD_NAME=p", "IgnoreUnknown=true;X=1;Y=2"])
def test_known_or_ignored_args(args):
    known_args(read_request({**ENV, "CNI_ARGS": args}))


@pytest.mark.parametrize(("args", "named"), [("K8S_POD_NAME=p", "K8S_POD_NAME"), ("IgnoreUnknown=0;Y=1;X=1", "X, Y"), ("IP=10.88.0.9;Z=", "Z")])
def test_unknown_args_are_named(args, named):
    assert refused(Code.INVALID_ENVIRONMENT, known_args, read_request({**ENV, "CNI_ARGS": args})).msg == f"unknown CNI_ARGS {named}"


# parse_stdin


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"nan-json"])
def test_stdin_that_is_not_json(data):
    refused(Code.DECODING_FAILURE, parse_stdin, data)


@pytest.mark.parametrize("data", [b"[]", b"1", b'"x"', b"null"])
def test_stdin_that_is_not_an_object(data):
    assert "not a JSON object" in refused(Code.DECODING_FAILURE, parse_stdin, data).msg


def test_stdin_object():
    assert parse_stdin(b'{"name": "net"}') == {"name": "net"}


# network_conf: versions, name, keys


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_supported_versions(version):
    assert conf(cniVersion=version).version == version


@pytest.mark.parametrize(
    ("version", "code"),
    [
        (None, Code.INVALID_CONFIG),
        ("", Code.INVALID_CONFIG),
        (1, Code.INVALID_CONFIG),
        ("0.2.0", Code.INCOMPATIBLE_VERSION),
        ("1.2.0", Code.INCOMPATIBLE_VERSION),
    ],
)
def test_missing_or_unsupported_version(version, code):
    configuration = doc()
    configuration.pop("cniVersion") if version is None else configuration.update(cniVersion=version)
    refused(code, network_conf, configuration, read_request(ENV))


@pytest.mark.parametrize("name", ["n", "net-1", "a" * 32])
def test_network_names(name):
    assert conf(name=name).name == name


@pytest.mark.parametrize("name", [None, "", "1net", "Net", "net_1", "net.1", "a" * 33, 7])
def test_bad_network_names(name):
    assert refused_conf(Code.INVALID_CONFIG, name=name).startswith("name:")


def test_unknown_top_level_key_is_named():
    assert refused_conf(Code.UNSUPPORTED_FIELD, colour="blue") == "unknown key 'colour'"


@pytest.mark.parametrize(
    "key", ["vlan", "vlanTrunk", "preserveDefaultVlan", "macspoofchk", "enabledad", "disableContainerInterface", "promiscMode", "topology"]
)
def test_bridge_keys_nsnet_does_not_implement(key):
    message = refused_conf(Code.UNSUPPORTED_FIELD, **{key: True})
    assert message.startswith(f"{key}: ") and message.endswith(" is not supported by nsnet")


@pytest.mark.parametrize("key", ["vlan", "promiscMode"])
def test_bridge_keys_nsnet_does_not_implement_pass_when_off(key):
    assert conf(**{key: False}).name


def test_defaults():
    c = conf()
    assert (c.bridge, c.is_gateway, c.is_default_gateway, c.ip_masq, c.mtu, c.hairpin, c.delegated) == (
        "br-net",
        False,
        False,
        False,
        None,
        False,
        False,
    )
    assert (c.port_mappings, c.ips, c.mac, c.prev_result, c.routes) == ((), (), None, None, ())


def test_bridge_defaults_to_the_reference_plugins():
    configuration = doc()
    del configuration["bridge"]
    assert network_conf(configuration, read_request(ENV)).bridge == "cni0"


@pytest.mark.parametrize(
    "bridge",
    [
        "",
        "a" * 16,
        "br 0",
        7,
        None,
        pytest.param(".."),
    ],
)
def test_bad_bridge_names(bridge):
    assert refused_conf(Code.INVALID_CONFIG, bridge=bridge).startswith("bridge:")


@pytest.mark.parametrize(
    ("keys", "gateway", "default"),
    [
        ({}, False, False),
        ({"isGateway": True}, True, False),
        ({"isDefaultGateway": True}, True, True),
        ({"isGateway": False, "isDefaultGateway": True}, True, True),
    ],
)
def test_default_gateway_implies_gateway(keys, gateway, default):
    c = conf(**keys)
    assert (c.is_gateway, c.is_default_gateway) == (gateway, default)


@pytest.mark.parametrize(("key", "attribute"), [("isGateway", "is_gateway"), ("ipMasq", "ip_masq"), ("hairpinMode", "hairpin")])
def test_flags(key, attribute):
    assert getattr(conf(**{key: True}), attribute) is True
    assert refused_conf(Code.INVALID_CONFIG, **{key: "true"}).startswith(f"{key}:")


def test_force_address_is_a_flag():
    refused_conf(Code.INVALID_CONFIG, forceAddress="yes")
    assert conf(forceAddress=True).name


@pytest.mark.parametrize(("mtu", "parsed"), [(None, None), (0, None), (68, 68), (1500, 1500), (65535, 65535)])
def test_mtu(mtu, parsed):
    assert conf(mtu=mtu).mtu == parsed


@pytest.mark.parametrize("mtu", [67, 65536, -1, "1500", 1500.0, True, pytest.param(False)])
def test_bad_mtu(mtu):
    assert refused_conf(Code.INVALID_CONFIG, mtu=mtu).startswith("mtu:")


@pytest.mark.parametrize("key", ["ipam", "runtimeConfig", "dns", "prevResult"])
def test_objects_must_be_objects(key):
    assert refused_conf(Code.INVALID_CONFIG, **{key: []}).startswith(f"{key}:")


def test_dns_and_prev_result_are_kept():
    c = conf(dns={"nameservers": ["10.88.0.1"]}, prevResult={"cniVersion": "1.0.0", "ips": []})
    assert (c.dns, c.prev_result) == ({"nameservers": ["10.88.0.1"]}, {"cniVersion": "1.0.0", "ips": []})


# ipam


def test_host_local_ranges():
    r = conf({"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.20", "gateway": "10.88.0.254"}).ranges
    assert r == (Range(ip_network("10.88.0.0/24"), ip_address("10.88.0.254"), ip_address("10.88.0.10"), ip_address("10.88.0.20")),)


def test_gateway_defaults_to_the_first_address():
    assert conf(V4, V6).ranges == (
        Range(ip_network("10.88.0.0/24"), ip_address("10.88.0.1")),
        Range(ip_network("fd00:88::/64"), ip_address("fd00:88::1")),
    )


def test_flat_subnet():
    c = network_conf({**doc(), "ipam": {"subnet": "10.89.0.0/16", "gateway": "10.89.0.1", "rangeStart": "10.89.1.0"}}, read_request(ENV))
    assert c.ranges == (Range(ip_network("10.89.0.0/16"), ip_address("10.89.0.1"), ip_address("10.89.1.0")),)


def test_only_the_first_range_of_a_set_is_used():
    c = network_conf({**doc(), "ipam": {"ranges": [[V4, {"subnet": "10.99.0.0/24"}]]}}, read_request(ENV))
    assert [str(r.subnet) for r in c.ranges] == ["10.88.0.0/24"]


@pytest.mark.parametrize(
    ("ipam", "where"),
    [
        ({}, "ipam:"),
        ({"ranges": "10.88.0.0/24"}, "ipam.ranges:"),
        ({"ranges": [[]]}, "ipam.ranges:"),
        ({"ranges": [["10.88.0.0/24"]]}, "ipam.ranges:"),
        ({"ranges": [[V4], [{"subnet": "10.99.0.0/24"}]]}, "ipam.ranges:"),  # two sets of one family
        ({"ranges": [[V6], [{"subnet": "fd00:99::/64"}]]}, "ipam.ranges:"),
        ({"ranges": [[{"subnet": "10.88.0.1/24"}]]}, "ipam.ranges.0.0.subnet:"),  # host bits
        ({"ranges": [[V4], [{"subnet": "fd00::1/64"}]]}, "ipam.ranges.1.0.subnet:"),
        ({"ranges": [[{"subnet": "10.88.0.0/31"}]]}, "ipam.ranges.0.0.subnet:"),  # too small
        ({"ranges": [[{"subnet": "fd00::/127"}]]}, "ipam.ranges.0.0.subnet:"),
        ({"ranges": [[{}]]}, "ipam.ranges.0.0.subnet:"),
        ({"subnet": "10.88.0.0/33"}, "ipam.subnet:"),
        ({"ranges": [[{**V4, "gateway": "10.89.0.1"}]]}, "ipam.ranges.0.0.gateway:"),
        ({"ranges": [[{**V4, "rangeStart": "fd00::1"}]]}, "ipam.ranges.0.0.rangeStart:"),
        ({"ranges": [[{**V4, "rangeEnd": "10.88.1.0"}]]}, "ipam.ranges.0.0.rangeEnd:"),
        ({"ranges": [[{**V4, "gateway": "x"}]]}, "ipam.ranges.0.0.gateway:"),
        pytest.param({"ranges": []}, "ipam"),
        pytest.param(
            {"ranges": [[{**V4, "rangeStart": "10.88.0.20", "rangeEnd": "10.88.0.10"}]]},
            "ipam.ranges.0.0.",
        ),
    ],
)
def test_bad_ranges_are_named(ipam, where):
    assert refused(Code.INVALID_CONFIG, network_conf, {**doc(), "ipam": ipam}, read_request(ENV)).msg.startswith(where)


@pytest.mark.parametrize("subnet", ["10.88.0.0/30", "fd00::/126"])
def test_smallest_ranges(subnet):
    assert str(conf({"subnet": subnet}).ranges[0].subnet) == subnet


def test_unknown_ipam_key_is_named():
    configuration = {**doc(), "ipam": {"subnet": "10.88.0.0/24", "pool": "x"}}
    assert refused(Code.UNSUPPORTED_FIELD, network_conf, configuration, read_request(ENV)).msg == "unknown key 'ipam.pool'"


@pytest.mark.parametrize("ipam_type", ["", "nsnet"])
def test_nsnets_own_allocator(ipam_type):
    c = network_conf({**doc(), "ipam": {"type": ipam_type, "subnet": "10.88.0.0/24"}}, read_request(ENV))
    assert (c.delegated, c.ipam_type, len(c.ranges)) == (False, None, 1)


def test_other_ipam_types_are_delegated_as_they_are():
    ipam = {"type": "host-local", "ranges": [[V4]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/x", "hostLocalOnlyKey": 1}
    c = network_conf({**doc(), "ipam": ipam}, read_request(ENV))
    assert (c.delegated, c.ipam_type, c.ranges, c.routes) == (True, "host-local", (), ())


def test_ipam_type_must_be_a_name():
    assert refused(Code.INVALID_CONFIG, network_conf, {**doc(), "ipam": {"type": 1}}, read_request(ENV)).msg.startswith("ipam.type:")


def test_ipam_routes():
    routes = [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.88.0.254"}, {"dst": "fd01::/64", "gw": ""}]
    configuration = {**doc(), "ipam": {"ranges": [[V4]], "routes": routes}}
    assert network_conf(configuration, read_request(ENV)).routes == (
        RouteConf(ip_network("0.0.0.0/0")),
        RouteConf(ip_network("192.168.0.0/16"), ip_address("10.88.0.254")),
        RouteConf(ip_network("fd01::/64")),
    )


@pytest.mark.parametrize(
    ("routes", "where"),
    [
        ({"dst": "0.0.0.0/0"}, "ipam.routes:"),
        (["0.0.0.0/0"], "ipam.routes.0:"),
        ([{"dst": "10.0.0.1/8"}], "ipam.routes.0.dst:"),
        ([{}], "ipam.routes.0.dst:"),
        ([{"dst": "0.0.0.0/0", "gw": "gw"}], "ipam.routes.0.gw:"),
    ],
)
def test_bad_ipam_routes(routes, where):
    configuration = {**doc(), "ipam": {"ranges": [[V4]], "routes": routes}}
    assert refused(Code.INVALID_CONFIG, network_conf, configuration, read_request(ENV)).msg.startswith(where)


@pytest.mark.parametrize(
    ("ipam", "runtime"),
    [
        ({"subnet": "10.88.0.0/24", "gateway": 173539329}, {}),
        ({"ranges": [[V4]], "routes": [{"dst": 0}]}, {}),
        ({"ranges": [[V4]]}, {"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": 5}]}),
        ({"ranges": [[V4]]}, {"ips": [173539337]}),
    ],
)
def test_numbers_are_not_addresses(ipam, runtime):
    refused(Code.INVALID_CONFIG, network_conf, {**doc(), "ipam": ipam, "runtimeConfig": runtime}, read_request(ENV))


# runtimeConfig: portMappings, ips, mac


def mapping(**keys: Any) -> dict[str, Any]:
    return {"hostPort": 8080, "containerPort": 80, **keys}


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (mapping(), PortMapping(8080, 80, "tcp")),
        (mapping(protocol="tcp"), PortMapping(8080, 80, "tcp")),
        (mapping(protocol="UDP"), PortMapping(8080, 80, "udp")),
        (mapping(hostIP="127.0.0.1"), PortMapping(8080, 80, "tcp", ip_address("127.0.0.1"))),
        (mapping(hostIP="::1"), PortMapping(8080, 80, "tcp", ip_address("::1"))),
        (mapping(hostIP=""), PortMapping(8080, 80, "tcp")),
        (mapping(hostIP="0.0.0.0"), PortMapping(8080, 80, "tcp")),  # all addresses, as no hostIP
        (mapping(hostIP="::"), PortMapping(8080, 80, "tcp")),
        ({"hostPort": 1, "containerPort": 65535}, PortMapping(1, 65535)),
    ],
)
def test_port_mappings(given, parsed):
    assert conf(runtimeConfig={"portMappings": [given]}).port_mappings == (parsed,)


def test_sctp_is_unsupported():
    assert "protocol" in refused_conf(Code.UNSUPPORTED_FIELD, runtimeConfig={"portMappings": [mapping(protocol="sctp")]})


@pytest.mark.parametrize(
    ("mappings", "where"),
    [
        ("x", "runtimeConfig.portMappings:"),
        ([1], "runtimeConfig.portMappings.0:"),
        ([{"containerPort": 80}], "runtimeConfig.portMappings.0.hostPort:"),
        ([mapping(), mapping(containerPort=0)], "runtimeConfig.portMappings.1.containerPort:"),
        ([mapping(hostPort=65536)], "runtimeConfig.portMappings.0.hostPort:"),
        ([mapping(hostPort="80")], "runtimeConfig.portMappings.0.hostPort:"),
        ([mapping(hostPort=True)], "runtimeConfig.portMappings.0.hostPort:"),
        ([mapping(hostIP="localhost")], "runtimeConfig.portMappings.0.hostIP:"),
    ],
)
def test_bad_port_mappings(mappings, where):
    assert refused_conf(Code.INVALID_CONFIG, runtimeConfig={"portMappings": mappings}).startswith(where)


@pytest.mark.parametrize(
    ("runtime", "args", "ips"),
    [
        ({}, "", ()),
        ({"ips": ["10.88.0.9/24", "fd00:88::9"]}, "", ("10.88.0.9/24", "fd00:88::9")),
        ({}, "IP=10.88.0.9", ("10.88.0.9",)),
        ({"ips": ["10.88.0.9"]}, "IP=fd00:88::9,10.88.0.10", ("10.88.0.9", "fd00:88::9", "10.88.0.10")),
    ],
)
def test_requested_addresses(runtime, args, ips):
    assert conf(V4, V6, runtimeConfig=runtime, env={"CNI_ARGS": args}).ips == ips


@pytest.mark.parametrize(("runtime", "args"), [({"ips": "10.88.0.9"}, ""), ({"ips": ["10.88.0.300"]}, ""), ({}, "IP=x"), ({}, "IP=")])
def test_bad_requested_addresses(runtime, args):
    assert "ips" in refused_conf(Code.INVALID_CONFIG, runtimeConfig=runtime, env={"CNI_ARGS": args})


@pytest.mark.parametrize(
    ("runtime", "args", "mac"),
    [
        ({}, "", None),
        ({"mac": "02:AB:cd:00:00:01"}, "", "02:ab:cd:00:00:01"),
        ({}, "MAC=02:00:00:00:00:02", "02:00:00:00:00:02"),
        ({"mac": "02:00:00:00:00:01"}, "MAC=02:00:00:00:00:02", "02:00:00:00:00:01"),
    ],
)
def test_requested_mac(runtime, args, mac):
    assert conf(runtimeConfig=runtime, env={"CNI_ARGS": args}).mac == mac


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "02:00:00:00:00", "02-00-00-00-00-01", "02:00:00:00:00:0g", 2])
def test_bad_mac(mac):
    assert refused_conf(Code.INVALID_CONFIG, runtimeConfig={"mac": mac}).startswith("mac:")
