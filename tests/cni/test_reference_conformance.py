"""Debian's reference plugins (bridge + host-local, containernetworking-plugins 1.1.1) through tests/cni/invoke.py,
exactly as a runtime runs them: their output for every verb and every version they speak validates against
schemas/cni (this proves the schemas on real output), and their answers to wrong calls are recorded here,
exact codes included, as the baseline nsnet's plugin is compared with. Where the reference departs from the
spec (no cniVersion in its errors, plugins#810), the test says so by name.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Any

import pytest
from helpers import CNI_BIN, IFNAME, addresses_in, bridge_config, call
from hoststate import CniNetwork, HostState, Namespaces, must
from invoke import Outcome, cni_env, invoke
from specschema import SPECS, VERSIONS, assert_valid, attachment_problems, problems

from netplan_lite.kernel import hostsysctl

pytestmark = pytest.mark.netns

BRIDGE, HOST_LOCAL = CNI_BIN / "bridge", CNI_BIN / "host-local"
SUPPORTED = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]  # what 1.1.1's VERSION lists (libcni 1.1)
SPOKEN = [v for v in VERSIONS if v in SUPPORTED]  # the schema versions the reference can be run in: all but 1.1.0
REQUIRED_ENV = {  # what the reference refuses to run without (code 4); the spec makes CNI_PATH optional and DEL's CNI_NETNS too
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
}


@pytest.fixture(autouse=True)
def reference_plugins() -> None:
    if not (BRIDGE.is_file() and HOST_LOCAL.is_file()):
        pytest.skip("containernetworking-plugins is not installed (bash scripts/setup --cni installs it)")


def leases(net: CniNetwork) -> list[str]:
    """host-local's reservations: one file per address, named after it (beside its lock and last_reserved_ip.N)."""
    return sorted(p.name for p in net.state_dir.rglob("*") if is_address(p.name))


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def firewall_leftovers(host: HostState) -> list[str]:
    return [line for line in host.leftovers() if line.startswith(("iptables", "ip6tables"))]


def assert_reference_error(outcome: Outcome, version: str, code: int) -> dict[str, Any]:
    """A non-zero exit with an error document for `version`, except that libcni 1.1's errors carry no cniVersion
    (its types.Error has code, msg and details only): the schema is applied with the config's version put in."""
    assert outcome.code != 0, outcome
    doc = outcome.doc
    assert isinstance(doc, dict) and "cniVersion" not in doc, outcome
    assert_valid("error", version, {"cniVersion": version, **doc})
    assert doc["code"] == code, outcome
    return doc


def add(host: HostState, netns: str, config: dict[str, Any], container_id: str = "c0") -> Outcome:
    """ADD, watched by `host`, with the bridge and the host interfaces of the result declared to it."""
    host.own_link(config["bridge"])
    with host.watch():
        added = invoke(BRIDGE, config, call("ADD", netns, container_id))
    host.own_result(added.doc)
    return added


# VERSION


@pytest.mark.parametrize("plugin", [BRIDGE, HOST_LOCAL], ids=["bridge", "host-local"])
@pytest.mark.parametrize("version", VERSIONS)
def test_version_answers(plugin, version):
    outcome = invoke(plugin, {"cniVersion": version}, cni_env("VERSION"))
    assert (outcome.code, outcome.doc["supportedVersions"]) == (0, SUPPORTED), outcome
    assert outcome.doc["cniVersion"] == "1.0.0"  # whatever is asked: libcni 1.1's own newest version
    if version in SPOKEN:
        assert_valid("version", version, outcome.doc)
    else:  # 1.1.0 wants its own version echoed; the reference cannot speak it
        assert problems("version", version, outcome.doc)


def test_version_ignores_an_undecodable_stdin():
    for stdin in ("", "{nope"):
        outcome = invoke(BRIDGE, stdin, cni_env("VERSION"))
        assert outcome.code == 0 and outcome.doc["supportedVersions"] == SUPPORTED, outcome


# ADD, CHECK, DEL


def assert_versions_told_apart(result: dict[str, Any], version: str) -> None:
    """The schema of the other shape refuses the real result: `ips[].version` is required up to 0.4.0, refused from 1.0.0."""
    if SPECS[version].ip_version_key:
        assert problems("result", "1.0.0", {**result, "cniVersion": "1.0.0"})
    else:
        assert problems("result", "0.4.0", {**result, "cniVersion": "0.4.0"})
        assert_valid("result", "1.1.0", {**result, "cniVersion": "1.1.0"})  # 1.1.0 adds only optional keys


@pytest.mark.parametrize("version", SPOKEN)
def test_add_check_del(version, cni_network, netns, host):
    config = bridge_config(cni_network, version)
    added = add(host, netns, config)
    assert added.code == 0, added
    result = added.doc
    assert_valid("result", version, result)
    assert attachment_problems(result, IFNAME, netns) == []
    assert addresses_in(netns) == {ip["address"] for ip in result["ips"]}
    assert result["dns"] == config["dns"] and len(result["routes"]) == 3
    assert_versions_told_apart(result, version)

    checked = invoke(BRIDGE, config | {"prevResult": result}, call("CHECK", netns))
    if version in ("0.3.0", "0.3.1"):  # CHECK came with 0.4.0
        assert assert_reference_error(checked, version, 1)["msg"] == "config version does not allow CHECK"
    else:
        assert (checked.code, checked.doc) == (0, None), checked

    for prev in ({"prevResult": result}, {}):  # DEL twice, the second time without prevResult: both succeed
        deleted = invoke(BRIDGE, config | prev, call("DEL", netns))
        assert (deleted.code, deleted.doc) == (0, None), deleted
    host_veth = result["interfaces"][1]["name"]
    assert not Path("/sys/class/net", host_veth).exists() and not leases(cni_network) and not firewall_leftovers(host)
    left = host.leftovers()  # what the reference leaves after the last DEL of its network (the fixture removes it)
    assert f"link {cni_network.bridge}" in left and hostsysctl.read("net.ipv4.ip_forward") == "1", left


def test_host_local_alone_gives_an_abbreviated_result(cni_network, netns):
    """As a delegated IPAM plugin: no interfaces, no interface index; still valid for every version's schema."""
    config = {
        "cniVersion": "",
        "name": cni_network.name,
        "ipam": {"type": "host-local", "dataDir": str(cni_network.state_dir), "ranges": cni_network.ranges()},
    }
    for number, version in enumerate(SPOKEN):
        added = invoke(HOST_LOCAL, config | {"cniVersion": version}, call("ADD", netns, f"c{number}"))
        assert added.code == 0, added
        assert_valid("result", version, added.doc)
        assert "interfaces" not in added.doc and all("interface" not in ip for ip in added.doc["ips"])
        assert invoke(HOST_LOCAL, config | {"cniVersion": version}, call("DEL", netns, f"c{number}")).code == 0
    assert not leases(cni_network)


def test_add_on_an_existing_ifname_fails_and_keeps_nothing(cni_network, namespaces, host):
    netns = namespaces.make()
    assert add(host, netns, bridge_config(cni_network, "1.0.0")).code == 0
    again = add(host, netns, bridge_config(cni_network, "1.0.0"), container_id="c1")
    doc = assert_reference_error(again, "1.0.0", 999)  # the reference's own code (>= 100)
    assert doc["msg"] == f"container veth name provided ({IFNAME}) already exists"
    assert len(leases(cni_network)) == 2  # c0's two addresses; c1's were given back
    assert invoke(BRIDGE, bridge_config(cni_network, "1.0.0"), call("DEL", netns)).code == 0


def test_del_with_an_empty_netns_leaks_the_masquerade_chain(cni_network, netns, host):
    """plugins#810: DEL with CNI_NETNS="" succeeds and releases the addresses but leaves the iptables rules
    (which `host` then removes by their exact text: the recorder at work)."""
    assert add(host, netns, bridge_config(cni_network, "1.0.0")).code == 0
    deleted = invoke(BRIDGE, bridge_config(cni_network, "1.0.0"), call("DEL", netns, CNI_NETNS=""))
    assert (deleted.code, deleted.doc) == (0, None), deleted
    assert not leases(cni_network)
    left = firewall_leftovers(host)
    for binary in ("iptables", "ip6tables"):  # per family: the POSTROUTING jump and the chain with the MASQUERADE
        mine = [line for line in left if line.startswith(f"{binary} -t nat ")]
        assert len(mine) == 2 and "-A POSTROUTING " in mine[0] and " chain CNI-" in mine[1], left


# wrong calls


@pytest.mark.parametrize(("command", "variable"), [(c, v) for c, names in REQUIRED_ENV.items() for v in (*names, "CNI_NETNS")])
def test_missing_environment(command, variable, cni_network, netns):
    config = bridge_config(cni_network, "1.0.0")
    outcome = invoke(BRIDGE, config, call(command, netns, **{variable: None}))
    if variable in REQUIRED_ENV[command]:
        doc = assert_reference_error(outcome, "1.0.0", 4)
        assert doc["msg"] == f"required env variables [{variable}] missing"
    else:  # DEL without CNI_NETNS: clean up what can be, and succeed
        assert (outcome.code, outcome.doc) == (0, None), outcome


def test_missing_environment_names_every_variable(cni_network):
    outcome = invoke(BRIDGE, bridge_config(cni_network, "1.0.0"), cni_env("ADD"))
    assert assert_reference_error(outcome, "1.0.0", 4)["msg"] == "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"


@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
@pytest.mark.parametrize("stdin", ["{nope", "", "[]"], ids=["bad-json", "empty", "array"])
def test_undecodable_config(command, stdin, netns):
    doc = assert_reference_error(invoke(BRIDGE, stdin, call(command, netns)), "1.0.0", 6)
    assert doc["msg"].startswith("error unmarshall network config: ")


@pytest.mark.parametrize("version", ["1.1.0", "9.9.9"])
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_unsupported_version(version, command, cni_network, netns):
    outcome = invoke(BRIDGE, bridge_config(cni_network, version), call(command, netns))
    doc = assert_reference_error(outcome, "1.1.0", 1)  # the newest schema: a plugin cannot answer in a version it lacks
    if command == "CHECK":  # the reference's CHECK asks whether the version allows CHECK before anything else
        assert doc == {"code": 1, "msg": "plugin version does not allow CHECK"}
    else:
        assert doc["msg"] == "incompatible CNI versions" and f'config is "{version}"' in doc["details"]


@pytest.mark.parametrize(
    ("change", "code", "msg"),
    [
        ({"mtu": "x"}, 999, "failed to load netconf: json: cannot unmarshal string into Go struct field NetConf.mtu of type int"),
        ({"name": ""}, 7, "missing network name"),
    ],
    ids=["mistyped", "no-name"],
)
def test_wrong_config_fields(change, code, msg, cni_network, netns, host):
    """The reference names a mistyped key only inside a Go message, under its own code 999."""
    assert assert_reference_error(add(host, netns, bridge_config(cni_network, "1.0.0") | change), "1.0.0", code)["msg"] == msg


def test_unknown_config_keys_are_ignored(cni_network, netns, host):
    assert add(host, netns, bridge_config(cni_network, "1.0.0") | {"noSuchKey": 1}).code == 0


def test_a_failed_ipam_leaves_the_veth(cni_network, netns, host):
    """An ADD whose IPAM fails (host-local: a bad subnet) exits with the IPAM's message but keeps the veth it made
    (no rollback): the next ADD finds CNI_IFNAME taken. (The namespace's deletion removes the pair.)"""
    config = bridge_config(cni_network, "1.0.0")
    config["ipam"] = config["ipam"] | {"ranges": [[{"subnet": "nope"}]]}
    assert assert_reference_error(add(host, netns, config), "1.0.0", 999)["msg"] == "invalid CIDR address: nope"
    assert must("ip", "-n", Path(netns).name, "-br", "link", "show", "dev", IFNAME).startswith(IFNAME)


@pytest.mark.parametrize("command", ["STATUS", "GC", "FOO", "add"])
def test_unknown_commands(command, cni_network, netns):
    """1.1.1 predates STATUS and GC (spec 1.1.0): it refuses them like any unknown command."""
    doc = assert_reference_error(invoke(BRIDGE, bridge_config(cni_network, "1.0.0"), call(command, netns)), "1.0.0", 4)
    assert doc["msg"] == f"unknown CNI_COMMAND: {command}"


@pytest.mark.parametrize("command", ["", None], ids=["empty", "absent"])
def test_no_command_prints_an_about_line_on_stderr(command, cni_network, netns):
    outcome = invoke(BRIDGE, bridge_config(cni_network, "1.0.0"), call("", netns, CNI_COMMAND=command))
    assert (outcome.code, outcome.doc) == (0, None)
    assert outcome.stderr.splitlines() == ["CNI bridge plugin version unknown", f"CNI protocol versions supported: {', '.join(SUPPORTED)}"]


# the fixtures


def test_the_fixtures_leave_nothing(namespaces: Namespaces, host: HostState, cni_network):
    """Two attachments on one bridge, not deleted: the fixtures' teardown must remove all of it."""
    for number in range(2):
        assert add(host, namespaces.make(), bridge_config(cni_network, "0.4.0"), container_id=f"c{number}").code == 0
    assert len(host.links) == 3  # the bridge and two host veths
    assert host.leftovers()


def test_a_declared_chain_goes_with_its_rules(host):
    """A chain that carries no prefix (portmap's CNI-HOSTPORT-* are shared like that) is removed once declared."""
    chain = f"CNIT-{secrets.token_hex(4)}"
    host.own_chain("iptables", "nat", chain)
    with host.watch():  # iptables-nft may make the nat table for it
        must("iptables", "-w", "-t", "nat", "-N", chain)
        must("iptables", "-w", "-t", "nat", "-A", chain, "-j", "RETURN")
    assert f"iptables -t nat chain {chain}" in host.leftovers()
