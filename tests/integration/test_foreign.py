"""Never touching what isn't ours: foreign objects made first (a docker0-like
bridge with addresses, a namespace with interfaces, an nft table with a NAT
rule, a veth named like nsnet's) are byte-identical after two topologies are
applied, mutated, re-applied and destroyed around them."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from deepdiff import DeepDiff

from netplan_lite.model.loader import host_veth_name

pytestmark = pytest.mark.netns

TIMERS = ("_timer",)
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def _json(*cmd: str) -> object:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def _without_timers(links: object) -> object:
    """Bridge and port timers tick on their own: they are not something nsnet could change."""
    for link in links:  # type: ignore[attr-defined]
        for part in ("info_data", "info_slave_data"):
            info = link.get("linkinfo", {}).get(part, {})
            for key in [k for k in info if k.endswith(TIMERS)]:
                del info[key]
        for stat in ("stats", "stats64"):
            link.pop(stat, None)
    return links


def _settled(names: dict[str, str]) -> dict[str, object]:
    """A snapshot once the kernel has finished with the new objects (IPv6 DAD, link-local routes)."""
    deadline = time.monotonic() + 10
    previous = _snapshot(names)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = _snapshot(names)
        if current == previous and "tentative" not in json.dumps(current):
            return current
        previous = current
    return previous


def _snapshot(names: dict[str, str]) -> dict[str, object]:
    return {
        "bridge": _without_timers(_json("ip", "-d", "-j", "link", "show", "dev", names["bridge"])),
        "bridge_addr": _json("ip", "-j", "addr", "show", "dev", names["bridge"]),
        "veth": _without_timers(_json("ip", "-d", "-j", "link", "show", "dev", names["veth"])),
        "ns_links": _without_timers(_json("ip", "-n", names["ns"], "-d", "-j", "link", "show")),
        "ns_addr": _json("ip", "-n", names["ns"], "-j", "addr", "show"),
        "ns_routes": _json("ip", "-n", names["ns"], "-j", "route", "show", "table", "all"),
        "routes": [r for r in _json("ip", "-j", "route", "show", "table", "all") if r.get("dev") == names["bridge"]],
        "table": _json("nft", "-j", "list", "table", "ip", names["table"]),
    }


@pytest.fixture
def foreign(lab):
    """Foreign objects, made with plain ip/nft before nsnet runs; removed by exact name."""
    p = lab.prefix
    subnet = lab.new_subnet()
    first = lab.example()
    names = {"bridge": f"{p}dock0", "ns": f"{p}-foreign", "veth": f"{p}fv0", "table": f"{p}-foreign"}
    lab.links.update({names["bridge"], names["veth"]})
    lab.namespaces.add(names["ns"])
    cmds = [
        ["ip", "link", "add", names["bridge"], "type", "bridge"],
        ["ip", "addr", "add", f"{subnet[1]}/24", "dev", names["bridge"]],
        ["ip", "link", "set", names["bridge"], "up"],
        ["ip", "netns", "add", names["ns"]],
        ["ip", "link", "add", names["veth"], "type", "veth", "peer", "name", "eth0", "netns", names["ns"]],
        ["ip", "link", "set", names["veth"], "master", names["bridge"], "up"],
        ["ip", "-n", names["ns"], "addr", "add", f"{subnet[2]}/24", "dev", "eth0"],
        ["ip", "-n", names["ns"], "link", "set", "eth0", "up"],
        ["ip", "-n", names["ns"], "route", "add", "default", "via", str(subnet[1])],
    ]
    for cmd in cmds:
        subprocess.run(cmd, check=True)
    rules = (
        f"table ip {names['table']} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat;\n"
        f"    tcp dport {30000 + secrets.randbelow(10000)} dnat to {subnet[2]}:80\n  }}\n}}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    forward = Path(IP_FORWARD).read_text()
    try:
        yield names, first
    finally:
        subprocess.run(["nft", "delete", "table", "ip", names["table"]], capture_output=True)
        # with this foreign NAT table present, nsnet rightly left ip_forward on at destroy: put it back
        Path(IP_FORWARD).write_text(forward)


def test_foreign_objects_are_byte_identical_after_two_topologies_come_and_go(lab, foreign):
    names, first = foreign
    second = lab.example("b")
    # a veth with the very name nsnet would pick for a namespace the second topology adds later
    wanted = host_veth_name(second.topology, f"{lab.prefix}b-web3", "eth0")
    subprocess.run(["ip", "link", "add", wanted, "type", "veth", "peer", "name", f"{lab.prefix}fv1"], check=True)
    lab.links.update({wanted, f"{lab.prefix}fv1"})
    names_with_decoy = {**names, "veth": wanted}
    before = _settled(names), _settled(names_with_decoy)["veth"]

    docs = []
    for ex in (first, second):
        doc = ex.doc()
        doc["port_forwards"] = [{"host_port": 20000 + secrets.randbelow(10000), "namespace": ex.web1, "port": 80}]
        docs.append(doc)
        lab.write(doc, ex.path)
        assert lab.nsnet("apply", ex.path)[0] == 0
    # mutate: drop a namespace from the first, add one to the second whose veth name is taken
    docs[0]["namespaces"].pop(first.web2)
    lab.write(docs[0], first.path)
    assert lab.nsnet("apply", first.path)[0] == 0
    docs[1]["namespaces"][f"{lab.prefix}b-web3"] = {"interfaces": {"eth0": {"bridge": second.bridge}}}
    lab.write(docs[1], second.path)
    rc, _, err = lab.nsnet("apply", second.path)
    assert rc == 1 and wanted in err and "not made by nsnet" in err  # refused, not taken over
    docs[1]["namespaces"].pop(f"{lab.prefix}b-web3")
    lab.write(docs[1], second.path)
    for ex in (first, second):
        assert lab.nsnet("apply", ex.path)[0] == 0
        assert lab.nsnet("destroy", ex.path)[0] == 0

    after = _snapshot(names), _snapshot(names_with_decoy)["veth"]
    assert after == before, DeepDiff(before, after).pretty()
