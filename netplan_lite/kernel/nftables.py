"""The only module that runs nft. Input goes on stdin as JSON, never via a shell.

nsnet owns exactly one table per topology, `inet nsnet-<topology>` (both IP
versions), and reads no other table's rules except other nsnet tables (to find
their host ports). A change replaces the whole table in one `nft -f`
transaction. nsnet before dual-stack wrote `ip nsnet-<topology>`: such a table
is read as the topology's (family ip), and every replace or delete removes the
name in both families within its transaction, so moving to inet leaves no
moment without the rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from ..errors import KernelError
from ..faults import checkpoint
from ..resources.nat import TABLE_PREFIX, canonical
from ..resources.nft_table import FAMILY, LEGACY_FAMILY, NftChain, NftElement, NftMap, NftRule, NftTableState

FAMILIES = (FAMILY, LEGACY_FAMILY)
MISSING = "nft is not installed (apt-get install nftables): port forwards and masquerade need it"


def available() -> bool:
    return shutil.which("nft") is not None


def unusable() -> str | None:
    """Why nft cannot serve nsnet here (not installed, or the kernel refuses it), or None."""
    if not available():
        return MISSING
    done = _nft(["list", "tables"])
    return None if done.returncode == 0 else f"nft list tables: {done.stderr.strip() or 'failed'}"


def require() -> None:
    """Fail before any change when the plan needs nft and it is missing."""
    if not available():
        raise KernelError(MISSING)


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("nft")
    if binary is None:
        raise KernelError(MISSING)
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, check=False)


def _last_line(stderr: str) -> str:
    """The last line of what nft printed on failure (with JSON input, its whole message)."""
    return stderr.strip().splitlines()[-1] if stderr.strip() else "failed"


def _run(args: list[str], stdin: str | None = None) -> str:
    if stdin is not None:
        checkpoint()  # a change (reads pass no input)
    done = _nft(args, stdin)
    if done.returncode != 0:
        raise KernelError(f"nft {' '.join(args)}: {_last_line(done.stderr)}")
    return done.stdout


def _listed() -> list[tuple[str, str]]:
    """(family, name) of the nsnet tables on the host, in either family."""
    if shutil.which("nft") is None:
        return []
    doc = json.loads(_run(["-j", "list", "tables"]) or '{"nftables": []}')
    tables = (item["table"] for item in doc["nftables"] if "table" in item)
    return sorted((t["family"], t["name"]) for t in tables if t["family"] in FAMILIES and t["name"].startswith(TABLE_PREFIX))


def list_tables() -> list[str]:
    """Names of the nsnet tables on the host."""
    return sorted({name for _, name in _listed()})


def read_table(name: str, family: str = FAMILY) -> NftTableState | None:
    """The table as nft lists it, or None when it does not exist."""
    if shutil.which("nft") is None:
        return None
    done = _nft(["-j", "list", "table", family, name])
    if done.returncode != 0:
        if "No such file or directory" in done.stderr:
            return None
        raise KernelError(f"nft list table {family} {name}: {done.stderr.strip()}")
    return parse_table(name, json.loads(done.stdout), family)


def read_tables() -> dict[str, NftTableState]:
    """Every nsnet table, by name (one may vanish between listing and reading). A name in both
    families (an older nsnet applied after this one) is one table holding both's chains and
    rules, as family ip: the kernel runs both, and the next replace leaves only the inet one."""
    found: dict[str, list[NftTableState]] = {}
    for family, name in _listed():
        if (table := read_table(name, family)) is not None:
            found.setdefault(name, []).append(table)
    return {name: tables[0] if len(tables) == 1 else _merged(name, tables) for name, tables in found.items()}


def _merged(name: str, tables: list[NftTableState]) -> NftTableState:
    chains = tuple(sorted({c for t in tables for c in t.chains}))
    return NftTableState(name, LEGACY_FAMILY, chains, tuple(sorted({r for t in tables for r in t.rules})))


def parse_table(name: str, doc: dict[str, Any], family: str = FAMILY) -> NftTableState:
    chains, rules, maps = [], [], []
    for item in doc.get("nftables", []):
        if "map" in item:
            maps.append(_parse_map(item["map"]))
        elif "chain" in item:
            c = item["chain"]
            chains.append(NftChain(c["name"], c.get("type", ""), c.get("hook", ""), c.get("prio", 0)))
        elif "rule" in item:
            r = item["rule"]
            rules.append(NftRule(r["chain"], r.get("comment", ""), canonical(r["expr"])))
    return NftTableState(name, family, tuple(sorted(chains)), tuple(sorted(rules)), tuple(sorted(maps)))


def _parts(value: Any) -> tuple[str | int, ...]:
    """A concatenation's parts (`tcp . 8080`), or a lone value."""
    return tuple(value["concat"]) if isinstance(value, dict) and "concat" in value else (value,)


def _parse_map(doc: dict[str, Any]) -> NftMap:
    key = doc["type"] if isinstance(doc["type"], list) else [doc["type"]]
    elements = []
    for key_doc, value_doc in doc.get("elem", []):
        inner = key_doc.get("elem", {}) if isinstance(key_doc, dict) and "elem" in key_doc else {"val": key_doc}
        elements.append(NftElement(_parts(inner["val"]), _parts(value_doc), inner.get("comment", "")))
    return NftMap(doc["name"], tuple(key), tuple(str(doc["map"]).split(" . ")), tuple(sorted(elements)))


def _map_command(family: str, table: str, nft_map: NftMap) -> dict[str, Any]:
    return {"add": {"map": {"family": family, "table": table, "name": nft_map.name, "type": list(nft_map.key), "map": " . ".join(nft_map.value)}}}


def _element(family: str, table: str, map_name: str, element: NftElement, with_value: bool = True) -> dict[str, Any]:
    key = {"elem": {"val": {"concat": list(element.key)}, "comment": element.comment}} if element.comment else {"concat": list(element.key)}
    item: Any = [key, {"concat": list(element.value)}] if with_value else key
    return {"element": {"family": family, "table": table, "name": map_name, "elem": [item]}}


def add_elements(table: str, elements: list[tuple[str, NftElement]]) -> None:
    """(map, element) pairs in one transaction: `create` fails on a key a map has (another owner's)."""
    _run(["-j", "-f", "-"], json.dumps({"nftables": [{"create": _element(FAMILY, table, name, e)} for name, e in elements]}))


def delete_elements(table: str, keys: list[tuple[str, tuple[str | int, ...]]]) -> None:
    """Remove the (map, key) elements; those already gone are fine (a DEL runs again and again):
    one transaction, else one at a time when some are gone."""

    def delete(items: list[tuple[str, tuple[str | int, ...]]]) -> subprocess.CompletedProcess[str]:
        commands = [{"delete": _element(FAMILY, table, name, NftElement(key, ()), False)} for name, key in items]
        return _nft(["-j", "-f", "-"], json.dumps({"nftables": commands}))

    checkpoint()
    if delete(keys).returncode == 0:
        return
    for item in keys:
        done = delete([item])
        if done.returncode != 0 and "No such file or directory" not in done.stderr:
            raise KernelError(f"nft delete element {table} {item[0]}: {_last_line(done.stderr)}")


def _table_ref(family: str, name: str) -> dict[str, Any]:
    return {"table": {"family": family, "name": name}}


def _removal(name: str) -> list[dict[str, Any]]:
    """Commands deleting the name in both families; each add first, so that its delete cannot fail."""
    return [command for family in FAMILIES for command in ({"add": _table_ref(family, name)}, {"delete": _table_ref(family, name)})]


def replace_table(table: NftTableState, kept: NftTableState | None = None) -> None:
    """Create or replace the whole table atomically (one transaction), in its family; the same
    name in the other family goes in that transaction (the move from ip to inet, and back on a rollback).
    The elements of `kept`'s maps (the live table's: port mappings, resources of their own) are
    put back in the same transaction."""
    family = table.family
    commands: list[dict[str, Any]] = [*_removal(table.name), {"add": _table_ref(family, table.name)}]
    live = {m.name: m for m in kept.maps} if kept else {}
    for nft_map in table.maps:
        commands.append(_map_command(family, table.name, nft_map))
        if live.get(nft_map.name) == nft_map:  # the same map (a map's equality leaves its elements out)
            commands += [{"add": _element(family, table.name, nft_map.name, e)} for e in live[nft_map.name].elements]
    for chain in table.chains:
        commands.append(
            {
                "add": {
                    "chain": {
                        "family": family,
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
                        "family": family,
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
    """Delete the table, in both families."""
    _run(["-j", "-f", "-"], json.dumps({"nftables": _removal(name)}))


def other_firewall_tables() -> str | None:
    """Why a host-wide switch may still be needed: other tools' nft tables, if any."""
    if shutil.which("nft") is None:
        return None
    doc = json.loads(_run(["-j", "list", "tables"]) or '{"nftables": []}')
    others = sorted(f"{t['family']} {t['name']}" for item in doc["nftables"] if (t := item.get("table")) and not t["name"].startswith(TABLE_PREFIX))
    return f"other firewall tables may rely on it ({', '.join(others)})" if others else None
