"""The only module that runs iptables and ip6tables: nsnet's rules in Docker's chain.

Through the `iptables` commands, not nft: on an iptables-nft host their
tables carry the tool's own metadata (nft warns "managed by iptables-nft, do
not touch"), and on a legacy host nft cannot see them at all; `iptables`
resolves to the backend the host (and so Docker) uses. argv lists only, and
`-w` waits for the xtables lock that Docker takes too. nsnet inserts and
deletes single rules it labelled (comment `nsnet:<topology>`); it never
flushes, replaces or reorders Docker's chains.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

from ..errors import KernelError
from ..faults import checkpoint
from ..resources.docker_user import DIRECTIONS, DOCKER_USER, IptablesRulesState, accept, parse_accept
from ..resources.ids import Kind

TOOLS = {Kind.IPTABLES_RULE: "iptables", Kind.IP6TABLES_RULE: "ip6tables"}
FLAGS = dict(zip(DIRECTIONS, ("-i", "-o"), strict=True))
TABLE = "filter"


def _command(tool: str, *args: str) -> subprocess.CompletedProcess[str] | None:
    binary = shutil.which(tool)
    if binary is None:
        return None
    return subprocess.run([binary, "-w", "-t", TABLE, *args], capture_output=True, text=True, check=False)


def read_chain(kind: Kind, chain: str) -> list[str] | None:
    """The chain's rules as `-S` prints them; None when the host has no such chain (or no tool)."""
    done = _command(TOOLS[kind], "-S", chain)
    if done is None or done.returncode != 0:
        return None
    return done.stdout.splitlines()


def labelled_accepts(lines: list[str], chain: str, comment: str) -> tuple[str, ...]:
    """nsnet's accept rules among a chain's `-S` lines, as the state holds them. A rule that
    carries the comment but not exactly nsnet's shape was edited by someone: not nsnet's."""
    found = []
    for line in lines:
        words = shlex.split(line)  # only splits the quoted comment; no shell is involved
        if len(words) != 10 or words[:2] != ["-A", chain] or words[4:] != ["-m", "comment", "--comment", comment, "-j", "ACCEPT"]:
            continue
        direction = next((d for d, flag in FLAGS.items() if words[2] == flag), None)
        if direction is not None:
            found.append(accept(words[3], direction))
    return tuple(sorted(found))


def _rule(rule: str, comment: str) -> list[str]:
    bridge, direction = parse_accept(rule)
    return [FLAGS[direction], bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]


def _change(kind: Kind, *args: str) -> None:
    checkpoint()
    tool = TOOLS[kind]
    done = _command(tool, *args)
    if done is None:
        raise KernelError(f"{tool} is not installed: nsnet cannot change Docker's {args[1]} chain")
    if done.returncode != 0:
        raise KernelError(f"{tool} {' '.join(args)}: {done.stderr.strip() or 'failed'}")


def add(rules: IptablesRulesState, accepts: tuple[str, ...], comment: str) -> None:
    """Insert at the top of the chain (Docker's own last rule is RETURN), in the state's order."""
    for rule in reversed(accepts):
        _change(rules.kind, "-I", rules.chain, "1", *_rule(rule, comment))


def remove(rules: IptablesRulesState, accepts: tuple[str, ...], comment: str) -> None:
    """Delete each rule by its exact spec (iptables removes the first match, nothing else); every
    one is tried, so undoing a half-made create removes what it made."""
    refused = []
    for rule in accepts:
        try:
            _change(rules.kind, "-D", rules.chain, *_rule(rule, comment))
        except KernelError as err:
            refused.append(err)
    if refused:
        raise refused[0]


def docker_chains(comment: str) -> dict[Kind, tuple[str, ...]]:
    """Each family whose iptables has Docker's chain -> nsnet's accept rules in it."""
    found = {}
    for kind in TOOLS:
        lines = read_chain(kind, DOCKER_USER)
        if lines is not None:
            found[kind] = labelled_accepts(lines, DOCKER_USER, comment)
    return found
