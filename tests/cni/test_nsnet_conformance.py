"""nsnet's CNI plugin against the spec: the executable `nsnet cni install` writes, run through tests/cni/invoke.py
exactly as a runtime runs it, for every verb in every version nsnet speaks, on the reference bridge plugin's
dual-stack configuration with only its type and IPAM changed (helpers.nsnet_config). Every document it prints
validates against schemas/cni for the configuration's version (its errors carry cniVersion, unlike the
reference's), and every wrong call gets the spec's exact code. What the network does (traffic, drift, port
mappings, parallel calls) is tests/integration/test_cni.py's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import IFNAME, NsnetNetwork, addresses_in, nsnet_config
from hoststate import must
from invoke import Outcome, cni_env, invoke
from specschema import VERSIONS, assert_valid, attachment_problems

pytestmark = pytest.mark.netns

NEWEST = VERSIONS[-1]  # what nsnet answers in when the configuration gives no version it speaks
SINCE = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0", "interfaces[].mtu": "1.1.0"}  # what later versions added
MTU = 1400
NEEDS = {  # the spec's required variables per verb (CNI_PATH is optional, and a DEL may come without the namespace)
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
}
ATTACHMENT_ENV = ("CNI_CONTAINERID", "CNI_IFNAME")  # STATUS and GC are about the network: a runtime gives them neither
VALID = "cni.dev/valid-attachments"
# (version, verb) of the calls a wrong configuration is tried with: ADD and DEL in every version, the others in the newest
CALLS = [(v, verb) for v in VERSIONS for verb in ("ADD", "DEL")] + [(NEWEST, verb) for verb in ("CHECK", "STATUS", "GC")]


def since(version: str, what: str) -> bool:
    return VERSIONS.index(version) >= VERSIONS.index(SINCE[what])


def succeeded(outcome: Outcome) -> None:
    assert (outcome.code, outcome.doc) == (0, None), outcome


def error_of(outcome: Outcome, version: str, code: int) -> dict[str, Any]:
    """A non-zero exit with an error document valid for `version` (so carrying it as cniVersion), with `code`."""
    assert outcome.code != 0 and isinstance(outcome.doc, dict), outcome
    assert_valid("error", version, outcome.doc)
    assert outcome.doc["code"] == code, outcome
    return outcome.doc


def names(word: str, msg: str) -> bool:
    """`word` is in `msg` whole (ipam.frob, not frob alone)."""
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w.])", msg) is not None


def call_on_network(nsnet: NsnetNetwork, verb: str, config: Any, netns: str) -> Outcome:
    """`verb` with the environment a runtime gives it: STATUS and GC name no attachment."""
    return nsnet.run(verb, config, None, CNI_CONTAINERID=None, CNI_IFNAME=None) if verb in ("STATUS", "GC") else nsnet.run(verb, config, netns)


# every verb in every version


@pytest.mark.parametrize("version", VERSIONS)
def test_every_verb(version, nsnet, netns):
    config = nsnet_config(nsnet.net, version, mtu=MTU)
    added = nsnet.add(config, netns)
    assert added.code == 0, added
    result = added.doc
    assert_valid("result", version, result)
    assert attachment_problems(result, IFNAME, netns) == []
    assert addresses_in(netns) == {ip["address"] for ip in result["ips"]} and len(result["ips"]) == 2
    assert result["dns"] == config["dns"] and len(result["routes"]) == 3
    (container,) = [i for i in result["interfaces"] if i.get("sandbox")]
    assert container.get("mtu") == (MTU if since(version, "interfaces[].mtu") else None)

    kept = config | {VALID: [{"containerID": "c0", "ifname": IFNAME}]}
    for verb, conf in (("CHECK", config | {"prevResult": result}), ("STATUS", config), ("GC", kept)):
        outcome = call_on_network(nsnet, verb, conf, netns)
        if since(version, verb):
            succeeded(outcome)
        else:  # a verb the configuration's version does not have
            assert names(verb, error_of(outcome, version, 1)["msg"])
    if since(version, "CHECK"):
        succeeded(nsnet.run("CHECK", config | {"prevResult": result}, netns))  # GC kept the attachment it was told is valid
        for unknown in ({"container_id": "c1"}, {"CNI_IFNAME": "eth1"}):
            error_of(nsnet.run("CHECK", config, netns, **unknown), version, 3)

    answer = invoke(nsnet.plugin, {"cniVersion": version}, cni_env("VERSION"))
    assert answer.code == 0, answer
    assert_valid("version", version, answer.doc)
    assert answer.doc == {"cniVersion": version, "supportedVersions": list(VERSIONS)}

    name = nsnet.net.name
    assert {f"link {nsnet.net.bridge}", f"nft table inet nsnet-{name}", f"net.ipv4.ip_forward held by {name}"} <= set(nsnet.leftovers())
    succeeded(nsnet.run("DEL", config | {"prevResult": result}, netns))
    assert nsnet.leftovers() == []  # the last DEL took the bridge, the table, the records and the forwarding hold
    succeeded(nsnet.run("DEL", config, netns))  # again, without prevResult


@pytest.mark.parametrize("stdin", ["", "{nope", "[]", {}, {"cniVersion": "0.2.0"}], ids=["empty", "bad-json", "array", "no-version", "0.2.0"])
def test_version_answers_in_the_newest_when_the_configuration_gives_none_it_speaks(stdin, plugin):
    answer = invoke(plugin, stdin, cni_env("VERSION"))
    assert answer.code == 0, answer
    assert_valid("version", NEWEST, answer.doc)


# wrong calls


MISSING = [(verb, (name,)) for verb, needed in NEEDS.items() for name in needed] + [(verb, needed) for verb, needed in NEEDS.items()]


@pytest.mark.parametrize(("verb", "missing"), MISSING, ids=[f"{verb}-{'-'.join(m)}" for verb, m in MISSING])
def test_missing_environment_is_named_exactly(verb, missing, nsnet, netns):
    doc = error_of(nsnet.run(verb, nsnet_config(nsnet.net, "1.0.0"), netns, **dict.fromkeys(missing)), "1.0.0", 4)
    assert set(re.findall(r"CNI_[A-Z]+", doc["msg"])) == set(missing), doc


@pytest.mark.parametrize(
    ("verb", "absent"), [("DEL", ("CNI_NETNS",)), ("STATUS", ATTACHMENT_ENV), ("GC", ATTACHMENT_ENV)], ids=["DEL", "STATUS", "GC"]
)
def test_what_a_verb_does_not_need_may_be_absent(verb, absent, nsnet):
    succeeded(nsnet.run(verb, nsnet_config(nsnet.net, NEWEST), None, **dict.fromkeys(absent)))


@pytest.mark.parametrize("stdin", ["{nope", "", "[]"], ids=["bad-json", "empty", "array"])
def test_undecodable_configuration(stdin, nsnet, netns):
    for verb in ("ADD", "CHECK", "DEL", "STATUS", "GC"):  # no version to answer in: the newest
        error_of(call_on_network(nsnet, verb, stdin, netns), NEWEST, 6)


def with_ipam(**keys: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda config: config | {"ipam": config["ipam"] | keys}


@pytest.mark.parametrize(
    ("change", "code", "key"),
    [
        (lambda config: config | {"frobnicate": True}, 2, "frobnicate"),
        (with_ipam(frob=1), 2, "ipam.frob"),
        (lambda config: config | {"mtu": "x"}, 7, "mtu"),
        (with_ipam(ranges=[[{"subnet": "nope"}]]), 7, "ipam.ranges.0.0.subnet"),
    ],
    ids=["unknown-key", "unknown-ipam-key", "invalid-value", "invalid-ipam-value"],
)
def test_wrong_configuration_names_the_key(change, code, key, nsnet, netns):
    for version, verb in CALLS:
        doc = error_of(call_on_network(nsnet, verb, change(nsnet_config(nsnet.net, version)), netns), version, code)
        assert names(key, doc["msg"]), (version, verb, doc)


@pytest.mark.parametrize("version", ["0.2.0", "9.9.9"])
def test_unsupported_version(version, nsnet, netns):
    for verb in ("ADD", "CHECK", "DEL", "STATUS", "GC"):
        doc = error_of(call_on_network(nsnet, verb, nsnet_config(nsnet.net, version), netns), NEWEST, 1)
        assert names(version, doc["msg"]), (verb, doc)


@pytest.mark.parametrize("version", VERSIONS)
def test_add_on_an_interface_the_container_has(version, nsnet, netns):
    must("ip", "-n", Path(netns).name, "link", "add", IFNAME, "type", "bridge")  # any link will do
    error_of(nsnet.add(nsnet_config(nsnet.net, version), netns), version, 101)
    assert nsnet.leftovers() == []


def test_add_on_an_interface_another_attachment_made(nsnet, netns):
    config = nsnet_config(nsnet.net, "1.0.0")
    assert nsnet.add(config, netns).code == 0
    error_of(nsnet.add(config, netns, container_id="c1"), "1.0.0", 101)
    succeeded(nsnet.run("CHECK", config, netns))
