"""kernel/nftables.py without nft: what it sends (one transaction per change) and how it reads
the inet table, an older nsnet's ip table, and both at once."""

from __future__ import annotations

import json
import subprocess

import pytest

from netplan_lite.kernel import nftables
from netplan_lite.resources.nft_table import NftChain, NftRule, NftTableState

OUTPUT = NftChain("output", "nat", "output", -100)
RULE = NftRule("output", "forward tcp *:8080 -> web:80", '[{"dnat":{"addr":"10.1.0.10","port":80}}]')
RULE6 = NftRule("output", "forward tcp *:8080 -> web:80 (IPv6)", '[{"dnat":{"addr":"fd00::10","family":"ip6","port":80}}]')


def listing(family: str, name: str, rules: list[NftRule]) -> dict:
    items = [
        {"table": {"family": family, "name": name}},
        {"chain": {"family": family, "table": name, "name": "output", "type": "nat", "hook": "output", "prio": -100}},
    ]
    items += [{"rule": {"family": family, "table": name, "chain": r.chain, "comment": r.comment, "expr": json.loads(r.expr)}} for r in rules]
    return {"nftables": items}


class FakeNft:
    """`nft` as far as nftables.py asks it: tables by (family, name), every transaction kept."""

    def __init__(self, tables: dict[tuple[str, str], list[NftRule]]):
        self.tables = tables
        self.sent: list[list[dict]] = []

    def __call__(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if stdin is not None:
            self.sent.append(json.loads(stdin)["nftables"])
            return subprocess.CompletedProcess(args, 0, "", "")
        if args == ["-j", "list", "tables"]:
            doc = {"nftables": [{"table": {"family": f, "name": n}} for f, n in [*self.tables, ("inet", "firewalld"), ("bridge", "nsnet-x")]]}
            return subprocess.CompletedProcess(args, 0, json.dumps(doc), "")
        family, name = args[-2:]
        if (family, name) not in self.tables:
            return subprocess.CompletedProcess(args, 1, "", "Error: No such file or directory")
        return subprocess.CompletedProcess(args, 0, json.dumps(listing(family, name, self.tables[(family, name)])), "")


@pytest.fixture
def nft(monkeypatch):
    def install(tables: dict[tuple[str, str], list[NftRule]]) -> FakeNft:
        fake = FakeNft(tables)
        monkeypatch.setattr(nftables.shutil, "which", lambda name: "/usr/sbin/nft")
        monkeypatch.setattr(nftables, "_nft", fake)
        return fake

    return install


def test_tables_of_both_families_are_read_and_an_old_ip_table_says_so(nft):
    nft({("inet", "nsnet-new"): [RULE, RULE6], ("ip", "nsnet-old"): [RULE]})
    assert nftables.list_tables() == ["nsnet-new", "nsnet-old"]  # not another tool's, not another family's
    tables = nftables.read_tables()
    assert tables["nsnet-new"] == NftTableState("nsnet-new", "inet", (OUTPUT,), (RULE, RULE6))
    assert tables["nsnet-old"] == NftTableState("nsnet-old", "ip", (OUTPUT,), (RULE,))


def test_a_name_in_both_families_is_one_table_holding_both_as_family_ip(nft):
    """What the kernel runs is both: the plan must not call that converged."""
    nft({("inet", "nsnet-lab"): [RULE6], ("ip", "nsnet-lab"): [RULE]})
    assert nftables.read_tables() == {"nsnet-lab": NftTableState("nsnet-lab", "ip", (OUTPUT,), (RULE, RULE6))}


def test_a_replace_is_one_transaction_that_removes_the_name_in_both_families_first(nft):
    fake = nft({})
    nftables.replace_table(NftTableState("nsnet-lab", chains=(OUTPUT,), rules=(RULE6,)))
    (commands,) = fake.sent
    tables = [(verb, c[verb]["table"]["family"]) for c in commands for verb in c if "table" in c[verb]]
    assert tables == [("add", "inet"), ("delete", "inet"), ("add", "ip"), ("delete", "ip"), ("add", "inet")]
    assert {c["add"]["chain"]["family"] for c in commands if "chain" in c.get("add", {})} == {"inet"}
    assert [c["add"]["rule"]["expr"] for c in commands if "rule" in c.get("add", {})] == [json.loads(RULE6.expr)]


def test_a_rollback_to_an_old_ip_table_writes_it_back_in_its_family(nft):
    fake = nft({})
    nftables.replace_table(NftTableState("nsnet-lab", "ip", (OUTPUT,), (RULE,)))
    assert fake.sent[0][-2]["add"]["chain"]["family"] == "ip" and fake.sent[0][-1]["add"]["rule"]["family"] == "ip"


def test_a_delete_removes_the_name_in_both_families(nft):
    fake = nft({})
    nftables.delete_table("nsnet-lab")
    assert [(verb, c[verb]["table"]["family"]) for c in fake.sent[0] for verb in c] == [
        ("add", "inet"),
        ("delete", "inet"),
        ("add", "ip"),
        ("delete", "ip"),
    ]
