"""nsnet first in a conflist, chained with Debian's `tuning` and `firewall` plugins (containernetworking-plugins 1.1.1),
driven as libcni drives a list: ADD in order, each plugin given the result before it as prevResult; CHECK in order and
DEL in reverse order, each given the list's final result. tuning changes the container's interface (a sysctl in its
namespace, its MTU or its MAC); firewall (iptables backend) adds CNI-FORWARD rules naming the container's addresses.
Their calls run watched by `host`, which puts iptables back as it was: firewall's DEL removes its rules but leaves its
chains (CNI-FORWARD, CNI-ADMIN and the FORWARD jump), which the test records and the fixture removes when it made them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CNI_BIN, IFNAME, NsnetNetwork, call, nsnet_config
from hoststate import EMPTY, IPTABLES, HostState, iptables_save, must
from invoke import Outcome, invoke
from specschema import assert_valid

pytestmark = pytest.mark.netns

TUNING, FIREWALL = CNI_BIN / "tuning", CNI_BIN / "firewall"
VERSIONS = ("0.4.0", "1.0.0")  # firewall speaks 0.4.0 on, tuning (libcni 1.1) up to 1.0.0; podman writes 0.4.0 lists
RP_FILTER = "net.ipv4.conf.eth0.rp_filter"  # written out: tuning 1.1.1's CHECK does not replace IFNAME in a key
FIREWALL_CHAINS = ("CNI-FORWARD", "CNI-ADMIN")
FIREWALL_JUMP = '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD'
MAC = "02:00:00:c0:ff:ee"
TUNINGS = [
    pytest.param({"sysctl": {RP_FILTER: "2"}, "mtu": 1400}, id="sysctl-mtu"),
    pytest.param({"mac": MAC}, id="mac"),  # CHECK takes the interface's MAC from prevResult, as the spec says
]


@pytest.fixture(autouse=True)
def reference_plugins() -> None:
    if not (TUNING.is_file() and FIREWALL.is_file()):
        pytest.skip("containernetworking-plugins is not installed (bash scripts/setup --cni installs it)")


@pytest.fixture
def firewall_chains(host: HostState) -> list[tuple[str, str]]:
    """firewall's chains the host did not have before the test, declared to `host` (which removes them): (binary, chain)."""
    new = [(b, c) for b in IPTABLES for c in FIREWALL_CHAINS if c not in host.iptables[b].get("filter", EMPTY).chains]
    for binary, chain in new:
        host.own_chain(binary, "filter", chain)
    return new


class Chain:
    """A conflist's plugins in one container, run as libcni runs them; what was added is DELed in the end whatever happens."""

    def __init__(self, nsnet: NsnetNetwork, host: HostState, netns: str, plugins: list[tuple[Path, dict[str, Any]]]) -> None:
        self.nsnet, self.host, self.netns, self.plugins = nsnet, host, netns, plugins
        self.added: list[tuple[Path, dict[str, Any]]] = []
        self.result: dict[str, Any] | None = None

    def run(self, plugin: Path, verb: str, config: dict[str, Any]) -> Outcome:
        if plugin == self.nsnet.plugin:
            return self.nsnet.add(config, self.netns) if verb == "ADD" else self.nsnet.run(verb, config, self.netns)
        with self.host.watch():
            return invoke(plugin, config, call(verb, self.netns, CNI_PATH=f"{self.nsnet.plugin.parent}:{CNI_BIN}"))

    def with_result(self, config: dict[str, Any]) -> dict[str, Any]:
        return config | ({"prevResult": self.result} if self.result is not None else {})

    def add(self) -> list[dict[str, Any]]:
        """Every plugin's result, each valid for the list's version."""
        results = []
        for plugin, config in self.plugins:
            added = self.run(plugin, "ADD", self.with_result(config))
            assert added.code == 0, (plugin.name, added)
            assert_valid("result", config["cniVersion"], added.doc)
            self.added.append((plugin, config))
            self.result = added.doc
            results.append(added.doc)
        return results

    def check(self) -> list[tuple[str, Outcome]]:
        return [(plugin.name, self.run(plugin, "CHECK", self.with_result(config))) for plugin, config in self.added]

    def delete(self) -> list[tuple[str, Outcome]]:
        deleted = []
        while self.added:
            plugin, config = self.added.pop()
            deleted.append((plugin.name, self.run(plugin, "DEL", self.with_result(config))))
        return deleted


@pytest.fixture
def chain(nsnet, host, netns) -> Iterator[Callable[[list[tuple[Path, dict[str, Any]]]], Chain]]:
    made: list[Chain] = []

    def make(plugins: list[tuple[Path, dict[str, Any]]]) -> Chain:
        made.append(Chain(nsnet, host, netns, plugins))
        return made[-1]

    yield make
    for each in made:
        each.delete()


def firewall_rules(addresses: list[str]) -> dict[str, set[str]]:
    """The two rules firewall adds to CNI-FORWARD per container address, by iptables binary."""
    rules: dict[str, set[str]] = {binary: set() for binary in IPTABLES}
    for address in (a.split("/")[0] for a in addresses):
        binary, host_prefix = ("ip6tables", 128) if ":" in address else ("iptables", 32)
        rules[binary] |= {
            f"-A CNI-FORWARD -d {address}/{host_prefix} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A CNI-FORWARD -s {address}/{host_prefix} -j ACCEPT",
        }
    return rules


def rules_naming(addresses: list[str]) -> dict[str, set[str]]:
    """The filter rules on the host that name one of the addresses (as firewall writes them), by binary."""
    hosts = [f" {a.split('/')[0]}/" for a in addresses]
    return {b: {r for r in iptables_save(b).get("filter", EMPTY).rules if any(h in r for h in hosts)} for b in IPTABLES}


def assert_tuned(tuning: dict[str, Any], netns: str) -> None:
    """The container's interface as tuning left it (nsnet's MTU is the default's)."""
    (link,) = json.loads(must("ip", "-n", Path(netns).name, "-j", "link", "show", "dev", IFNAME))
    for key, value in tuning.get("sysctl", {}).items():
        assert must("ip", "netns", "exec", Path(netns).name, "sysctl", "-n", key).strip() == value
    assert link["mtu"] == tuning.get("mtu", 1500) and link["address"] == tuning.get("mac", link["address"])


@pytest.mark.parametrize("tuning", TUNINGS)
@pytest.mark.parametrize("version", VERSIONS)
def test_chain_with_tuning_and_firewall(version, tuning, nsnet, netns, host, firewall_chains, chain, tmp_path):
    tuning_dir = tmp_path / "tuning"  # where tuning keeps what it changed, to put back on DEL
    network = {"cniVersion": version, "name": nsnet.net.name}
    plugins = chain(
        [
            (nsnet.plugin, nsnet_config(nsnet.net, version)),
            (TUNING, network | {"type": "tuning", "dataDir": str(tuning_dir), **tuning}),
            (FIREWALL, network | {"type": "firewall", "backend": "iptables"}),
        ]
    )
    ours, _, final = plugins.add()
    expected = json.loads(json.dumps(ours))  # nsnet's result, with the MAC tuning gave the container
    for interface in expected["interfaces"]:
        if interface.get("sandbox"):
            interface["mac"] = tuning.get("mac", interface["mac"])
    assert final == expected
    addresses = [ip["address"] for ip in ours["ips"]]
    assert len(addresses) == 2 and rules_naming(addresses) == firewall_rules(addresses)
    assert_tuned(tuning, netns)

    checks = plugins.check()
    deletions = plugins.delete()
    assert [(name, outcome.code) for name, outcome in deletions] == [("firewall", 0), ("tuning", 0), ("nsnet", 0)], deletions
    assert nsnet.leftovers() == [] and rules_naming(addresses) == {b: set() for b in IPTABLES}
    assert not tuning_dir.exists() or not any(tuning_dir.iterdir())  # tuning put back what it changed
    # firewall's DEL leaves its chains and the FORWARD jump (the `host` fixture removes those it made)
    left = {f"{b} -t filter chain {c}" for b, c in firewall_chains} | {f"{b} -t filter {FIREWALL_JUMP}" for b, _ in firewall_chains}
    assert set(host.leftovers()) == left
    assert [(name, outcome.code, outcome.doc) for name, outcome in checks] == [("nsnet", 0, None), ("tuning", 0, None), ("firewall", 0, None)]
