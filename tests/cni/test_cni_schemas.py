"""The CNI schemas in schemas/cni: current with their generator, valid for a stock validator, and each rule
tells a right document from a wrong one (the reference plugins' real output is in test_reference_conformance.py).
No root needed."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import specschema
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from specschema import SCHEMA_DIR, VERSIONS, assert_valid, attachment_problems, problems

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")

# The bridge plugin's result in the appendix "Add example" of SPEC.md at spec-v1.0.0 and spec-v1.1.0 (identical
# in both), with the cniVersion section 5 requires and the example leaves out.
SPEC_EXAMPLE: dict[str, Any] = {
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"},
    ],
    "dns": {"nameservers": ["10.1.0.1"]},
}
INTERFACE_EXTRAS = {"mtu": 1500, "socketPath": "/run/vhost/eth0.sock", "pciID": "0000:00:1f.6"}
ROUTE_EXTRAS = {"mtu": 1400, "advmss": 1360, "priority": 100, "table": 254, "scope": 0}


def example(version: str) -> dict[str, Any]:
    """SPEC_EXAMPLE in `version`'s shape (0.x: each IP entry carries its version)."""
    doc = copy.deepcopy(SPEC_EXAMPLE) | {"cniVersion": version}
    if specschema.SPECS[version].ip_version_key:
        doc["ips"] = [{"version": "4", **ip} for ip in doc["ips"]]
    return doc


def full_1_1_0() -> dict[str, Any]:
    """Every key 1.1.0 defines, dual-stack."""
    doc = example("1.1.0")
    doc["interfaces"][2] |= INTERFACE_EXTRAS
    doc["ips"].append({"address": "fd00:1::5/64", "gateway": "fd00:1::1", "interface": 2})
    doc["routes"] = [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", **ROUTE_EXTRAS}, {"dst": "::/0", "gw": "fd00:1::1"}]
    doc["dns"] = {"nameservers": ["10.1.0.1", "fd00:1::1"], "domain": "lab", "search": ["lab", "example"], "options": ["ndots:2"]}
    return doc


def test_schema_files_are_current_and_complete():
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    files = specschema.generated()
    assert on_disk == set(files)
    stale = [name for name, text in files.items() if (SCHEMA_DIR / name).read_text() != text]
    assert not stale, f"run python tests/cni/specschema.py: {stale}"


@pytest.mark.parametrize("name", sorted(specschema.generated()))
def test_each_file_is_a_self_contained_2020_12_schema(name):
    text = (SCHEMA_DIR / name).read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/cni/" + name)
    assert '"$ref"' not in text


def test_a_stock_validator_reads_the_patterns(tmp_path):
    """check-jsonschema (ECMA regular expressions): a valid result, error and VERSION answer pass, a wrong one fails."""
    docs = {
        "result": (full_1_1_0(), {**full_1_1_0(), "ips": [{"address": "10.1.0.5"}]}),
        "error": ({"cniVersion": "1.1.0", "code": 50, "msg": "not ready"}, {"cniVersion": "1.1.0", "code": 8, "msg": "x"}),
        "version": ({"cniVersion": "1.1.0", "supportedVersions": list(VERSIONS)}, {"cniVersion": "1.1.0", "supportedVersions": ["1.0"]}),
    }
    for kind, (good, bad) in docs.items():
        schema = str(SCHEMA_DIR / specschema.file_name(kind, "1.1.0"))
        for doc, want in ((good, 0), (bad, 1)):
            path = tmp_path / f"{kind}-{want}.json"
            path.write_text(json.dumps(doc))
            done = subprocess.run([str(CHECK_JSONSCHEMA), "--schemafile", schema, str(path)], capture_output=True, text=True, timeout=60)
            assert done.returncode == want, f"{kind} {doc}: {done.stdout}{done.stderr}"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_spec_example_is_a_result_of_every_version(version):
    doc = example(version)
    assert_valid("result", version, doc)
    assert attachment_problems(doc, "eth0", "/var/run/netns/blue") == []


def test_every_key_of_1_1_0_is_accepted_there_and_only_there():
    doc = full_1_1_0()
    assert_valid("result", "1.1.0", doc)
    older = {**doc, "cniVersion": "1.0.0"}
    found = "\n".join(problems("result", "1.0.0", older))
    for key in [*INTERFACE_EXTRAS, *ROUTE_EXTRAS]:
        assert repr(key) in found, f"1.0.0 accepts {key}"


def test_a_1_0_0_result_is_a_1_1_0_result():
    """1.1.0 only adds optional keys: a 1.0.0 result re-labelled is valid (how the 1.1.0 schema meets real output)."""
    assert_valid("result", "1.1.0", {**example("1.0.0"), "cniVersion": "1.1.0"})


def _ip(doc: dict[str, Any]) -> dict[str, Any]:
    ip: dict[str, Any] = doc["ips"][0]
    return ip


Mutation = Callable[[dict[str, Any]], Any]
WRONG_RESULTS: list[tuple[str, tuple[str, ...], Mutation]] = [
    # (what is wrong, the versions where it is wrong, how to make it)
    ("ips[].version missing", ("0.3.0", "0.3.1", "0.4.0"), lambda d: _ip(d).pop("version", None)),
    ("ips[].version present", ("1.0.0", "1.1.0"), lambda d: _ip(d).update(version="4")),
    ("ips[].version not 4 or 6", VERSIONS, lambda d: _ip(d).update(version=4)),
    ("version 6 on an IPv4 address", VERSIONS, lambda d: _ip(d).update(version="6")),
    ("IPv6 gateway for an IPv4 address", VERSIONS, lambda d: _ip(d).update(gateway="fd00::1")),
    ("address without prefix length", VERSIONS, lambda d: _ip(d).update(address="10.1.0.5")),
    ("address is no address", VERSIONS, lambda d: _ip(d).update(address="10.1.0.256/16")),
    ("gateway with a prefix length", VERSIONS, lambda d: _ip(d).update(gateway="10.1.0.1/16")),
    ("negative interface index", VERSIONS, lambda d: _ip(d).update(interface=-1)),
    ("interface index as a string", VERSIONS, lambda d: _ip(d).update(interface="2")),
    ("IPv6 gateway on an IPv4 route", VERSIONS, lambda d: d["routes"][0].update(gw="fd00::1")),
    ("route without dst", VERSIONS, lambda d: d["routes"][0].pop("dst")),
    ("interface without name", VERSIONS, lambda d: d["interfaces"][0].pop("name")),
    ("MAC with dashes", VERSIONS, lambda d: d["interfaces"][0].update(mac="00-11-22-33-44-55")),
    ("MAC of 5 octets", VERSIONS, lambda d: d["interfaces"][0].update(mac="00:11:22:33:44")),
    ("nameserver that is no address", VERSIONS, lambda d: d["dns"].update(nameservers=["dns.example"])),
    ("unknown DNS key", VERSIONS, lambda d: d["dns"].update(servers=["10.1.0.1"])),
    ("unknown top-level key", VERSIONS, lambda d: d.update(ip=[])),
    ("cniVersion of another version", VERSIONS, lambda d: d.update(cniVersion="0.2.0")),
    ("no cniVersion", VERSIONS, lambda d: d.pop("cniVersion")),
    ("interfaces is an object", VERSIONS, lambda d: d.update(interfaces={})),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("what", "wrong_in", "mutate"), WRONG_RESULTS, ids=[w[0] for w in WRONG_RESULTS])
def test_wrong_results_are_refused_where_the_spec_says_so(version, what, wrong_in, mutate):
    doc = example(version)
    mutate(doc)
    assert bool(problems("result", version, doc)) == (version in wrong_in), what


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("doc", "valid_from"),
    [
        ({"code": 1, "msg": "incompatible CNI versions", "details": 'config is "9.9.9"'}, "0.3.0"),
        ({"code": 4, "msg": "required env variables [CNI_NETNS] missing"}, "0.3.0"),
        ({"code": 11, "msg": "try again"}, "0.3.0"),
        ({"code": 100, "msg": "nsnet's own"}, "0.3.0"),
        ({"code": 999, "msg": "container veth name provided (eth0) already exists"}, "0.3.0"),
        ({"code": 50, "msg": "not ready"}, "1.1.0"),
        ({"code": 51, "msg": "limited connectivity"}, "1.1.0"),
        ({"code": 0, "msg": "reserved"}, None),
        ({"code": 8, "msg": "reserved, undefined"}, None),
        ({"code": 99, "msg": "reserved, undefined"}, None),
        ({"code": "7", "msg": "code as a string"}, None),
        ({"code": 7}, None),
        ({"code": 7, "msg": ""}, None),
        ({"code": 7, "msg": "x", "error": "unknown key"}, None),
    ],
)
def test_error_documents(version, doc, valid_from):
    valid = valid_from is not None and VERSIONS.index(version) >= VERSIONS.index(valid_from)
    assert bool(problems("error", version, {"cniVersion": version, **doc})) != valid
    assert problems("error", version, doc), "an error without cniVersion is accepted"


@pytest.mark.parametrize("version", VERSIONS)
def test_version_answers(version):
    echoes = specschema.SPECS[version].version_echoes_input
    assert not problems("version", version, {"cniVersion": version, "supportedVersions": sorted({"0.3.1", version})})
    assert bool(problems("version", version, {"cniVersion": "1.0.0" if version != "1.0.0" else "0.4.0", "supportedVersions": [version]})) == echoes
    for wrong in ([], ["1.0"], [version, version]):
        assert problems("version", version, {"cniVersion": version, "supportedVersions": wrong}), wrong
    assert problems("version", version, {"cniVersion": version})


def test_attachment_problems_name_what_a_runtime_misses():
    doc = example("1.0.0")
    doc["interfaces"][2].pop("mac")
    doc["ips"][0]["interface"] = 5
    assert attachment_problems(doc, "eth0", "/run/netns/other") == [
        "ips[0].interface 5 is not an index into interfaces",
        "eth0's sandbox is '/var/run/netns/blue', not CNI_NETNS '/run/netns/other'",
        "eth0 has no mac",
        "ips[0] is on interface 5, not eth0's (2)",
    ]
    assert attachment_problems(doc, "eth1", "/var/run/netns/blue")[-1] == "0 interfaces named eth1 with a sandbox (want 1)"


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


@given(st.ip_addresses(v=6), st.integers(0, 128))
def test_ipv6_patterns_take_every_text_form(address, prefix):
    forms = {str(address), address.exploded, address.compressed.upper()}
    if address.ipv4_mapped:
        forms.add(f"::ffff:{address.ipv4_mapped}")
    for form in forms:
        assert _matches(specschema.IPV6, form), form
        assert _matches(specschema.IPV6_CIDR, f"{form}/{prefix}"), form
        assert not _matches(specschema.IPV4, form)


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_ipv4_patterns_take_every_address(address, prefix):
    assert _matches(specschema.IPV4, str(address))
    assert _matches(specschema.IPV4_CIDR, f"{address}/{prefix}")
    assert not _matches(specschema.IPV6, str(address))


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("IPV4", "1.2.3"),
        ("IPV4", "1.2.3.4.5"),
        ("IPV4", "01.2.3.4"),
        ("IPV4", "1.2.3.256"),
        ("IPV4_CIDR", "1.2.3.4/33"),
        ("IPV6", "1:2:3:4:5:6:7:8:9"),
        ("IPV6", "1::2::3"),
        ("IPV6", "12345::1"),
        ("IPV6", ":1"),
        ("IPV6_CIDR", "fd00::1/129"),
    ],
)
def test_patterns_refuse_what_is_no_address(pattern, text):
    assert not _matches(getattr(specschema, pattern), text)
    with pytest.raises(ValueError):  # the case really is wrong
        ipaddress.ip_interface(text) if "/" in text else ipaddress.ip_address(text)


def test_no_zone_index():
    """Python takes fe80::1%eth0; a result's addresses never carry one (Go's net.IP prints none)."""
    assert not _matches(specschema.IPV6, "fe80::1%eth0")
