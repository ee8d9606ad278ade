"""The only module that runs nft. Input goes on stdin as JSON, never via a shell.

nsnet owns exactly one table per topology, `ip nsnet-<topology>`, and reads
no other table's rules except other nsnet tables (to find their host ports).
A change replaces the whole table in one `nft -f` transaction.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from ..errors import KernelError
from ..faults import checkpoint
from ..resources.nat import TABLE_PREFIX, canonical
from ..resources.nft_table import NftChain, NftRule, NftTableState

FAMILY = "ip"
MISSING = "nft is not installed (apt-get install nftables): port forwards and masquerade need it"


def require() -> None:
    """Fail before any change when the plan needs nft and it is missing."""
    if shutil.which("nft") is None:
        raise KernelError(MISSING)


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("nft")
    if binary is None:
        raise KernelError(MISSING)
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, check=False)


def _run(args: list[str], stdin: str | None = None) -> str:
    if stdin is not None:
        checkpoint()  # a change (reads pass no input)
    done = _nft(args, stdin)
    if done.returncode != 0:
        raise KernelError(f"nft {' '.join(args)}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return done.stdout


def list_tables() -> list[str]:
    """Names of the nsnet tables (family ip) on the host."""
    if shutil.which("nft") is None:
        return []
    doc = json.loads(_run(["-j", "list", "tables", FAMILY]) or '{"nftables": []}')
    return sorted(item["table"]["name"] for item in doc["nftables"] if "table" in item and item["table"]["name"].startswith(TABLE_PREFIX))


def read_table(name: str) -> NftTableState | None:
    """The table as nft lists it, or None when it does not exist."""
    if shutil.which("nft") is None:
        return None
    done = _nft(["-j", "list", "table", FAMILY, name])
    if done.returncode != 0:
        if "No such file or directory" in done.stderr:
            return None
        raise KernelError(f"nft list table {FAMILY} {name}: {done.stderr.strip()}")
    return parse_table(name, json.loads(done.stdout))


def read_tables() -> dict[str, NftTableState]:
    """Every nsnet table, by name (one may vanish between listing and reading)."""
    return {name: t for name in list_tables() if (t := read_table(name)) is not None}


def parse_table(name: str, doc: dict[str, Any]) -> NftTableState:
    chains, rules = [], []
    for item in doc.get("nftables", []):
        if "chain" in item:
            c = item["chain"]
            chains.append(NftChain(c["name"], c.get("type", ""), c.get("hook", ""), c.get("prio", 0)))
        elif "rule" in item:
            r = item["rule"]
            rules.append(NftRule(r["chain"], r.get("comment", ""), canonical(r["expr"])))
    return NftTableState(name, tuple(sorted(chains)), tuple(sorted(rules)))


def _table_ref(name: str) -> dict[str, Any]:
    return {"table": {"family": FAMILY, "name": name}}


def replace_table(table: NftTableState) -> None:
    """Create or replace the whole table atomically (one transaction)."""
    commands: list[dict[str, Any]] = [
        {"add": _table_ref(table.name)},  # so that the delete cannot fail
        {"delete": _table_ref(table.name)},
        {"add": _table_ref(table.name)},
    ]
    for chain in table.chains:
        commands.append(
            {
                "add": {
                    "chain": {
                        "family": FAMILY,
                        "table": table.name,
                        "name": chain.name,
                        "type": chain.type,
                        "hook": chain.hook,
                        "prio": chain.prio,
                        "policy": "accept",
                    }
                }
            }
        )
    for rule in table.rules:
        commands.append(
            {
                "add": {
                    "rule": {
                        "family": FAMILY,
                        "table": table.name,
                        "chain": rule.chain,
                        "expr": json.loads(rule.expr),
                        "comment": rule.comment,
                    }
                }
            }
        )
    _run(["-j", "-f", "-"], json.dumps({"nftables": commands}))


def delete_table(name: str) -> None:
    commands = [{"add": _table_ref(name)}, {"delete": _table_ref(name)}]
    _run(["-j", "-f", "-"], json.dumps({"nftables": commands}))


def other_firewall_tables() -> str | None:
    """Why a host-wide switch may still be needed: other tools' nft tables, if any."""
    if shutil.which("nft") is None:
        return None
    doc = json.loads(_run(["-j", "list", "tables"]) or '{"nftables": []}')
    others = sorted(f"{t['family']} {t['name']}" for item in doc["nftables"] if (t := item.get("table")) and not t["name"].startswith(TABLE_PREFIX))
    return f"other firewall tables may rely on it ({', '.join(others)})" if others else None
