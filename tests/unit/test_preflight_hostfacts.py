"""Pre-flight's host facts (kernel/preflight/hostfacts.py): parsers fed with sample output
and readers with their sources replaced (no root, no kernel)."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import struct
import subprocess
from ipaddress import IPv6Address, IPv6Network

import pytest

from netplan_lite.kernel.preflight import hostfacts
from netplan_lite.kernel.preflight.checks import LEGACY, LEGACY6, ForwardChain, HostFacts, Listener, check
from netplan_lite.resources.ids import Kind

from builders import doc, topology


def forward(port: int = 8080):
    """One namespace behind br0 with one tcp port forward."""
    spaces = {"ns0": {"interfaces": {"eth0": {"bridge": "br0"}}}}
    return topology(doc({"br0": {"subnet": "10.1.0.0/24"}}, spaces, [{"host_port": port, "namespace": "ns0", "port": 80}]))


# nft and legacy iptables


def _match(key: str, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


def test_parse_ruleset_finds_forward_base_chains_and_accepted_interfaces():
    ruleset = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "filter", "handle": 1}},
            {
                "chain": {
                    "family": "ip",
                    "table": "filter",
                    "name": "FORWARD",
                    "handle": 1,
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "drop",
                }
            },
            {
                "chain": {
                    "family": "ip",
                    "table": "filter",
                    "name": "INPUT",
                    "handle": 2,
                    "type": "filter",
                    "hook": "input",
                    "prio": 0,
                    "policy": "accept",
                }
            },
            {"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER", "handle": 3}},
            {
                "chain": {
                    "family": "ip",
                    "table": "nat",
                    "name": "PREROUTING",
                    "handle": 1,
                    "type": "nat",
                    "hook": "prerouting",
                    "prio": -100,
                    "policy": "accept",
                }
            },
            {
                "chain": {
                    "family": "ip6",
                    "table": "filter6",
                    "name": "FORWARD",
                    "handle": 1,
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "drop",
                }
            },
            {
                "chain": {
                    "family": "inet",
                    "table": "fw",
                    "name": "fwd",
                    "handle": 1,
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "accept",
                }
            },
            {
                "rule": {
                    "family": "ip",
                    "table": "filter",
                    "chain": "FORWARD",
                    "expr": [_match("iifname", "docker0"), _match("oifname", "docker0", "!="), {"counter": None}, {"accept": None}],
                }
            },
            {
                "rule": {
                    "family": "ip",
                    "table": "filter",
                    "chain": "DOCKER-USER",
                    "expr": [_match("oifname", {"set": ["br-x", "br-y*"]}), {"accept": None}],
                }
            },
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": [_match("iifname", "jumped"), {"jump": {"target": "X"}}]}},
            {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "expr": [_match("iifname", "inputonly"), {"accept": None}]}},
        ]
    }
    chains = hostfacts.parse_ruleset(ruleset)
    assert chains == [
        ForwardChain("inet", "fw", "fwd", "accept"),
        ForwardChain("ip", "filter", "FORWARD", "drop", frozenset({"docker0"}), frozenset({"br-x", "br-y*"})),
        ForwardChain("ip6", "filter6", "FORWARD", "drop"),  # sees IPv6: ip6tables' FORWARD (Docker's, say)
    ]


def test_nft_rules_are_listed_only_for_tables_with_a_dropping_forward_chain(monkeypatch):
    chains = {
        "nftables": [
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "policy": "drop"}},
            {"chain": {"family": "inet", "table": "open", "name": "fwd", "type": "filter", "hook": "forward", "policy": "accept"}},
            {"chain": {"family": "ip", "table": "nsnet-demo", "name": "guard", "type": "filter", "hook": "prerouting", "policy": "accept"}},
        ]
    }
    table = {
        "nftables": [
            {"table": {"family": "ip", "name": "filter"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "policy": "drop"}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": [_match("iifname", "br0"), {"accept": None}]}},
        ]
    }
    calls = []

    def nft(args, stdin=None):
        calls.append(args)
        doc = chains if args == ["-j", "list", "chains"] else table
        return subprocess.CompletedProcess(args, 0, json.dumps(doc), "")

    monkeypatch.setattr(hostfacts.shutil, "which", lambda name: "/usr/sbin/nft")
    monkeypatch.setattr(hostfacts.nftables, "_nft", nft)
    assert hostfacts.read_nft_forward_chains() == [
        ForwardChain("inet", "open", "fwd", "accept"),
        ForwardChain("ip", "filter", "FORWARD", "drop", frozenset({"br0"})),
    ]
    assert calls == [["-j", "list", "chains"], ["-j", "list", "table", "ip", "filter"]]


def _ipt_entry(verdict: int, iniface: bytes = b"", outiface: bytes = b"", invflags: int = 0, kind: type = hostfacts._IptEntry) -> bytes:
    """One legacy iptables (ip6tables) entry with a standard target (as IPT_SO_GET_ENTRIES returns it)."""
    entry = kind()
    entry.ip.iniface, entry.ip.outiface, entry.ip.invflags = iniface, outiface, invflags
    target = struct.pack("=H29sB", 40, b"", 0) + struct.pack("=i", verdict) + b"\0" * 4  # XT_ALIGN(36) == 40
    entry.target_offset = ctypes.sizeof(entry)
    entry.next_offset = ctypes.sizeof(entry) + len(target)
    return bytes(entry) + target


def test_parse_ipt_entries_reads_the_forward_policy_and_accepted_interfaces():
    ACCEPT, DROP = -2, -1
    entries = [
        _ipt_entry(ACCEPT, iniface=b"inputonly"),  # INPUT rule
        _ipt_entry(ACCEPT),  # INPUT policy
        _ipt_entry(ACCEPT, iniface=b"docker0", outiface=b"docker0"),  # FORWARD rules
        _ipt_entry(ACCEPT, iniface=b"br-+"),
        _ipt_entry(ACCEPT, iniface=b"notme", invflags=hostfacts.IPT_INV_VIA_IN),
        _ipt_entry(DROP),  # FORWARD policy
        _ipt_entry(ACCEPT),  # OUTPUT policy
    ]
    offsets = [sum(len(e) for e in entries[:i]) for i in range(len(entries))]
    hooks = 0b1110  # INPUT, FORWARD, OUTPUT
    hook_entry = [0, offsets[0], offsets[2], offsets[6], 0]
    underflow = [0, offsets[1], offsets[5], offsets[6], 0]
    chain = hostfacts.parse_ipt_entries(b"".join(entries), hook_entry, underflow, hooks)
    assert chain == ForwardChain(LEGACY, "filter", "FORWARD", "drop", frozenset({"docker0", "br-*"}), frozenset({"docker0"}))


def test_parse_ipt_entries_reads_ip6tables_entries_too():
    """struct ip6t_entry is 168 bytes (the kernel's), ipt_entry 112: the same walk over either."""
    ACCEPT, DROP = -2, -1
    assert (ctypes.sizeof(hostfacts._IptEntry), ctypes.sizeof(hostfacts._Ip6tEntry)) == (112, 168)
    entries = [_ipt_entry(verdict, *ifaces, kind=hostfacts._Ip6tEntry) for verdict, *ifaces in [(ACCEPT, b"br0", b"br0"), (DROP,)]]
    hook_entry = [0, 0, 0, len(entries[0]) + len(entries[1]), 0]
    underflow = [0, 0, len(entries[0]), len(entries[0]) + len(entries[1]), 0]
    chain = hostfacts.parse_ipt_entries(b"".join(entries), hook_entry, underflow, 0b0100, hostfacts.LEGACY_TABLES[1])
    assert chain == ForwardChain(LEGACY6, "filter", "FORWARD", "drop", frozenset({"br0"}), frozenset({"br0"}))


# router advertisements

IPV6_ROUTE = """\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003 eth1
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00040001 wlan0.5
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
"""


def test_only_default_routes_learned_from_router_advertisements_count():
    """eth0: a default route from an RA (RTF_ADDRCONF); eth1: a static one; wlan0.5: an RA prefix, not a default."""
    assert hostfacts.ra_default_links(IPV6_ROUTE.splitlines()) == ["eth0"]


def dual_stack_forward():
    """forward() with an IPv6 subnet on br0 too: its forward publishes both versions."""
    t = forward()
    bridge = dataclasses.replace(t.bridges[0], subnet6=IPv6Network("fd00:10::/64"), gateway6=IPv6Address("fd00:10::1"))
    return dataclasses.replace(t, bridges=(bridge,))


def test_the_router_advertised_links_are_read_only_when_the_topology_forwards_ipv6(monkeypatch, tmp_path):
    (tmp_path / "ipv6_route").write_text(IPV6_ROUTE)
    conf = tmp_path / "conf"
    (conf / "eth0").mkdir(parents=True)
    (conf / "eth0" / "accept_ra").write_text("1\n")
    monkeypatch.setattr(hostfacts, "PROC_NET", str(tmp_path))
    monkeypatch.setattr(hostfacts, "ACCEPT_RA", str(conf / "{}" / "accept_ra"))
    monkeypatch.setattr(hostfacts.hostsysctl, "read", lambda key: "0")
    monkeypatch.setattr(hostfacts.shutil, "which", lambda _name: None)  # no nft, no iptables
    facts = hostfacts.gather(dual_stack_forward())
    assert facts.ipv6_forwarding is False and facts.ra_defaults == ("eth0",)
    (conf / "eth0" / "accept_ra").write_text("2\n")  # accepts them while forwarding too
    assert hostfacts.gather(dual_stack_forward()).ra_defaults == ()
    assert hostfacts.gather(forward()).ipv6_forwarding is None  # IPv4 only: not read


# sockets


TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1522 1 0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1523 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1524 1 0 100 0 0 10 0
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
   2: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
"""
UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0 0
  11: 0100007F:0035 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 98 2 0 0
"""


@pytest.mark.skipif(struct.pack("=I", 1)[0] != 1, reason="the sample /proc lines are little-endian")
def test_read_listeners_parses_proc_net_tables(tmp_path):
    for name, text in {"tcp": TCP, "tcp6": TCP6, "udp": UDP}.items():
        (tmp_path / name).write_text(text)
    found = hostfacts.read_listeners({("tcp", 8080), ("tcp", 8081), ("udp", 53)}, proc_net=str(tmp_path), diag=False)
    assert found == [
        Listener("tcp", "127.0.0.1", 8080),
        Listener("tcp", "::", 8080),
        Listener("tcp", "::1", 8080),
        Listener("tcp", "::ffff:127.0.0.1", 8081),
        Listener("udp", "127.0.0.53", 53),  # the connected socket on 127.0.0.1:53 is not a server
    ]
    assert hostfacts.read_listeners(set(), proc_net=str(tmp_path), diag=False) == []
    assert hostfacts.read_listeners({("tcp", 22)}, proc_net=str(tmp_path / "missing"), diag=False) == []


# gather: best effort


def test_gather_never_raises_and_skips_what_it_cannot_read(monkeypatch):
    def broken(*_args, **_kwargs):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(hostfacts.hostsysctl, "read", broken)
    monkeypatch.setattr(hostfacts, "BRIDGE_NF_CALL_IPTABLES", "/nonexistent/bridge-nf-call-iptables")
    monkeypatch.setattr(hostfacts, "BRIDGE_NF_CALL_IP6TABLES", "/nonexistent/bridge-nf-call-ip6tables")
    monkeypatch.setattr(hostfacts.shutil, "which", lambda _name: None)
    monkeypatch.setattr(hostfacts, "read_legacy_forward", broken)
    monkeypatch.setattr(hostfacts, "read_listeners", broken)
    monkeypatch.setattr(hostfacts, "RtnlSocket", broken)
    facts = hostfacts.gather(forward())
    # no iptables: no Docker chain; br_netfilter not loaded: bridged frames skip both
    assert facts == HostFacts(bridge_nf_call_iptables=False, bridge_nf_call_ip6tables=False, docker_user=False, docker_user6=False)
    assert check(forward(), facts) == []


def test_a_forward_chain_ending_in_an_unconditional_reject_drops_like_a_policy_drop():
    """firewalld's filter_FORWARD has policy accept and ends with `reject with icmpx admin-prohibited`."""
    head = {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "type": "filter", "hook": "forward", "policy": "accept"}}

    def rule(expr):
        return {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": expr}}

    reject = rule([{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}])
    ends_in_reject = {"nftables": [head, rule([_match("iifname", "lo"), {"accept": None}]), reject]}
    assert [c.policy for c in hostfacts.parse_ruleset(ends_in_reject)] == ["drop"]
    conditional = rule([_match("iifname", "eth9"), {"reject": None}])
    assert [c.policy for c in hostfacts.parse_ruleset({"nftables": [head, reject, conditional]})] == ["accept"]


def test_firewalld_s_table_is_listed_though_its_forward_policy_is_accept(monkeypatch):
    head = {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "type": "filter", "hook": "forward", "policy": "accept"}}
    calls = []

    def nft(args, stdin=None):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, json.dumps({"nftables": [head]}), "")

    monkeypatch.setattr(hostfacts.shutil, "which", lambda name: "/usr/sbin/nft")
    monkeypatch.setattr(hostfacts.nftables, "_nft", nft)
    hostfacts.read_nft_forward_chains()
    assert calls == [["-j", "list", "chains"], ["-j", "list", "table", "inet", "firewalld"]]


def test_docker_s_chain_known_from_the_observation_is_not_read_again(monkeypatch):
    monkeypatch.setattr(hostfacts.iptables, "read_chain", lambda *args: pytest.fail("read Docker's chain twice"))
    facts = hostfacts.gather(forward(), docker_user=True, docker_user6=False)
    assert facts.docker_user is True and facts.docker_user6 is False


def test_docker_s_ip6tables_chain_is_read_when_the_observation_did_not(monkeypatch):
    read = []
    monkeypatch.setattr(hostfacts.iptables, "read_chain", lambda kind, chain: read.append(kind) or [])
    assert hostfacts.gather(forward(), docker_user=True).docker_user6 is True
    assert read == [Kind.IP6TABLES_RULE]
