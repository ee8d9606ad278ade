"""Property-based fuzzing of the loader: any bytes in, a Topology or a TopologyError out.

Three generators feed `load_bytes`:
(a) arbitrary YAML documents: a recursive strategy of dicts, lists and scalars
    with keys from the topology vocabulary, dumped with yaml.safe_dump;
(b) mutations of examples/ and tests/corpus/good: byte flips, deletions,
    insertions of YAML-special characters, key renames and value swaps;
(c) topology-shaped documents whose values come from small pools of valid
    and invalid names and addresses, so the semantic checks (which run
    unguarded on schema-valid data) see every combination.
Nothing else may escape: a KeyError, TypeError, RecursionError... is a bug.
Derandomized, no example database: CI runs the same examples every time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from builders import topology_keys
from hypothesis import strategies as st

from netplan_lite.errors import Problem, TopologyError
from netplan_lite.model.loader import load_bytes
from netplan_lite.model.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
SEED_FILES = sorted(ROOT.glob("examples/*.yaml")) + sorted((ROOT / "tests" / "corpus" / "good").glob("*.yaml"))
SEEDS = {p.name: p.read_bytes() for p in SEED_FILES}
SOURCE = "fuzz.yaml"
NO_LINE_OK = re.compile(
    r"file is empty|not UTF-8 text|binary data \(NUL byte\)|-byte limit|nodes \(alias bomb\?\)|document has over \d+ nodes"
    r"|unacceptable character|nesting deeper than"
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def loads_or_refuses(raw: bytes) -> Topology | TopologyError:
    """The property: a Topology, or a TopologyError made of located Problems."""
    try:
        topology = load_bytes(raw, SOURCE)
    except TopologyError as err:
        assert err.problems
        for problem in err.problems:
            assert isinstance(problem, Problem)
            assert problem.file == SOURCE
            assert problem.line is not None or NO_LINE_OK.search(problem.message), problem
        return err
    assert isinstance(topology, Topology)
    return topology


# vocabulary

TOPOLOGY_KEYS = topology_keys()
NAMES = ["demo", "br0", "br1", "web", "db", "eth0", "eth1", "lo", "a" * 16, "a" * 65, "Demo", "br/0", "..", "web;id", "bр0"]
ADDRESSES = [
    "10.0.0.0/24",
    "10.0.0.0/16",
    "10.0.0.0/30",
    "10.0.0.0/8",
    "10.0.0.0/31",
    "10.0.0.0/32",
    "0.0.0.0/0",
    "10.0.0.5/24",
    "10.0.0.0",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.5",
    "10.0.0.255",
    "10.0.1.5",
    "10.0.0.5/16",
    "10.1.0.0/16",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "999.1.1.1",
    "1.2.3",
    "01.2.3.4",
    "default",
    "::1",
    "::",
    "::/0",
    "fd00::/64",
    "fd00::/127",
    "fd00::1",
    "fd00::1/64",
    "fd00::2/127",
    "fd00:1::/48",
    "fe80::1",
    "ff02::1",
    "fd00::1%eth0",
    "10.1.0.0/31",
    "10.1.0.1/31",
    "a:eth0",
    "b:eth1",
    "a:lo",
    "none",
    "auto",
    "",
    "*",
    "10.0.0.1\n",
]
MACS = ["02:00:00:00:00:01", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "zz:zz:zz:zz:zz:zz", "02:00:00:00:01"]
WORDS = NAMES + ADDRESSES + MACS + ["tcp", "udp", "sctp", "TCP", "yes", "no", "null", "~", "<<", "&a", "*a", "!!binary", "%", "-", ":"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 67, 68, 80, 1500, 65535, 65536, -1, 8080]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(WORDS),
    st.binary(max_size=6),
)
keys = st.one_of(
    st.sampled_from(TOPOLOGY_KEYS + NAMES),
    st.text(max_size=8),
    st.integers(min_value=-5, max_value=5),
    st.none(),
    st.booleans(),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5))


values = st.recursive(scalars, _containers, max_leaves=25)


def dump(data: Any, flow: bool | None) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=flow, allow_unicode=True).encode("utf-8")


@st.composite
def yaml_documents(draw: Callable) -> bytes:
    """(a) any document, often a mapping that starts with a plausible `name:`."""
    if draw(st.booleans()):
        data = values
    else:
        data = st.builds(
            lambda name, rest: {"name": name, **rest},
            st.one_of(st.sampled_from(["demo", "a", "x" * 32]), scalars),
            st.dictionaries(st.sampled_from(TOPOLOGY_KEYS), values, max_size=4),
        )
    return dump(draw(data), draw(st.sampled_from([False, True, None])))


# (b) mutations

SPECIAL = [
    b":",
    b": ",
    b"-",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"&a ",
    b"*a",
    b"!",
    b"!!python/object:os.system ",
    b"!!binary ",
    b"|",
    b">",
    b"'",
    b'"',
    b"#",
    b"%",
    b"@",
    b"`",
    b"\t",
    b"\n",
    b"\r",
    b"? ",
    b"<<: ",
    b"---\n",
    b"...\n",
    b"~",
    b"&",
    b"*",
    b"\\",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"  ",
    b"\x07",
    b"\xe2\x80\xa8",
]


def _collect(data: Any, found: list[tuple[Any, Any]]) -> None:
    """Every (container, key-or-index) slot, depth first."""
    if isinstance(data, dict):
        for key in list(data):
            found.append((data, key))
            _collect(data[key], found)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found.append((data, index))
            _collect(item, found)


def _rename_key(draw: Callable, data: Any) -> None:
    slots = [(c, k) for c, k in _slots(data) if isinstance(c, dict)]
    if not slots:
        return
    container, old = draw(st.sampled_from(slots))
    new = draw(st.one_of(st.sampled_from(TOPOLOGY_KEYS + NAMES), st.text(max_size=6)))
    items = [(new if k == old else k, v) for k, v in container.items()]
    container.clear()
    container.update(items)


def _swap_values(draw: Callable, data: Any) -> None:
    slots = _slots(data)
    if len(slots) < 2:
        return
    (c1, k1), (c2, k2) = draw(st.lists(st.sampled_from(slots), min_size=2, max_size=2))
    if c1 is c2 and k1 == k2:
        return
    v1, v2 = c1[k1], c2[k2]
    if _contains(v1, v2) or _contains(v2, v1):
        return  # a swap would make the document contain itself
    c1[k1], c2[k2] = v2, v1


def _replace_value(draw: Callable, data: Any) -> None:
    slots = _slots(data)
    if slots:
        container, key = draw(st.sampled_from(slots))
        container[key] = draw(scalars)


def _drop(draw: Callable, data: Any) -> None:
    slots = _slots(data)
    if slots:
        container, key = draw(st.sampled_from(slots))
        del container[key]


def _slots(data: Any) -> list[tuple[Any, Any]]:
    found: list[tuple[Any, Any]] = []
    _collect(data, found)
    return found


def _contains(outer: Any, inner: Any) -> bool:
    if outer is inner:
        return True
    if isinstance(outer, dict):
        return any(_contains(v, inner) for v in outer.values())
    if isinstance(outer, list):
        return any(_contains(v, inner) for v in outer)
    return False


STRUCTURAL = {"rename": _rename_key, "swap": _swap_values, "replace": _replace_value, "drop": _drop}


def _flip(draw: Callable, raw: bytes) -> bytes:
    if not raw:
        return raw
    at = draw(st.integers(0, len(raw) - 1))
    return raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]


def _delete(draw: Callable, raw: bytes) -> bytes:
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + raw[at + draw(st.integers(1, 24)) :]


def _insert(draw: Callable, raw: bytes) -> bytes:
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + draw(st.sampled_from(SPECIAL)) + raw[at:]


def _duplicate_line(draw: Callable, raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    at = draw(st.integers(0, len(lines) - 1))
    return b"\n".join(lines[: at + 1] + lines[at:])


BYTEWISE = {"flip": _flip, "delete": _delete, "insert": _insert, "duplicate_line": _duplicate_line}


@st.composite
def mutated_seeds(draw: Callable) -> bytes:
    """(b) a known-good file, changed structurally and/or byte by byte."""
    raw = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    structural = draw(st.lists(st.sampled_from(sorted(STRUCTURAL)), max_size=3))
    if structural:
        data = yaml.safe_load(raw)  # a fresh copy each time: mutated in place
        for op in structural:
            STRUCTURAL[op](draw, data)
        raw = dump(data, draw(st.sampled_from([False, True, None])))
    bytewise = draw(st.lists(st.sampled_from(sorted(BYTEWISE)), min_size=0 if structural else 1, max_size=4))
    for op in bytewise:
        raw = BYTEWISE[op](draw, raw)
    return raw


# (c) topology-shaped documents

# (pool, the part of it the schema accepts)
NAME_POOL = (["demo", "x" * 32, "Demo", "demo\n"], ["demo", "x" * 32])
BRIDGE_POOL = (["br0", "br1", "br2", "lo", "br/0"], ["br0", "br1", "br2", "lo"])
NS_POOL = (["a", "b", "c", "web.1", ".."], ["a", "b", "c", "web.1"])
IF_POOL = (["eth0", "eth1", "lo", "eth0\n", "eth 0"], ["eth0", "eth1", "lo"])
PORT_POOL = ([1, 80, 8080, 65535, 0, 65536, 8080.0, "80"], [1, 80, 8080, 65535])
MTU_POOL = ([68, 1500, 9000, 65535, 0, 67, 70000, 1500.0], [68, 1500, 9000, 65535])
MAC_POOL = (MACS, [m for m in MACS if re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", m)])
PROTOCOL_POOL = (["tcp", "udp", "sctp"], ["tcp", "udp"])
ADDRESS_POOL = (ADDRESSES, ADDRESSES)  # subnet, address, to: any string passes the schema
IP_POOL = (ADDRESSES, [a for a in ADDRESSES if re.fullmatch(r"[0-9A-Fa-f.:]{2,45}", a)])  # host_address
GATEWAY_POOL = (ADDRESSES, [a for a in ADDRESSES if re.fullmatch(r"none|[0-9A-Fa-f.:]{2,45}", a)])
ENDPOINT_POOL = (["a:eth0", "b:eth1", "c:e1", "a:lo", "a", "a:b:c", "x:eth0"], ["a:eth0", "b:eth1", "c:e1", "a:lo", "x:eth0"])
NEXTHOP_POOL = (ADDRESSES + ENDPOINT_POOL[0], IP_POOL[1] + ENDPOINT_POOL[1])
NETEM_POOL = (["20ms", "5ms", "1%", "100%", "101%", "100mbit", "1bit", "0", "20 ms", 1000], ["20ms", "5ms", "1%", "101%", "100mbit", "1bit", "20 ms"])
POOL_PREFIX_POOL = ([0, 16, 24, 31, 32, 64, 127, 128, 129, -1], [0, 16, 24, 31, 32])


def _maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def topology_documents(level: int) -> st.SearchStrategy[dict[str, Any]]:
    """Topology-shaped data. level 0: only values the schema accepts, so the
    semantic checks (unguarded on schema-valid data) see every combination;
    1: invalid pool values too; 2: sometimes any scalar at all."""

    def pooled(pool: tuple[list[Any], list[Any]]) -> st.SearchStrategy[Any]:
        choices = st.sampled_from(pool[1] if level == 0 else pool[0])
        return st.one_of(choices, scalars) if level == 2 else choices

    addresses, ip = pooled(ADDRESS_POOL), pooled(IP_POOL)

    def one_or_two(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(item, st.lists(item, min_size=1, max_size=2))

    endpoint, nexthop = pooled(ENDPOINT_POOL), pooled(NEXTHOP_POOL)
    pool = _maybe(ipv4=addresses, prefix=pooled(POOL_PREFIX_POOL), ipv6=addresses, prefix6=pooled(POOL_PREFIX_POOL))
    bridge_specs = st.one_of(
        st.none(), _maybe(subnet=one_or_two(addresses), gateway=one_or_two(pooled(GATEWAY_POOL)), mtu=pooled(MTU_POOL), masquerade=st.booleans())
    )
    interface_specs = st.fixed_dictionaries(
        {"bridge": pooled(BRIDGE_POOL)}, optional={"address": one_or_two(addresses), "mtu": pooled(MTU_POOL), "mac": pooled(MAC_POOL)}
    )
    route_specs = st.fixed_dictionaries(
        {"to": addresses},
        optional={
            "via": st.one_of(nexthop, st.lists(nexthop, min_size=1, max_size=3)),
            "type": st.sampled_from(["blackhole", "unreachable", "prohibit"]),
            "dev": pooled(IF_POOL),
            "metric": st.sampled_from([0, 50, 4294967295]),
        },
    )
    namespace_specs = st.one_of(
        st.none(),
        _maybe(
            interfaces=st.one_of(st.none(), st.dictionaries(pooled(IF_POOL), interface_specs, max_size=3)),
            routes=st.lists(route_specs, max_size=3),
            loopback=st.one_of(st.just("auto"), one_or_two(addresses)),
            forwarding=st.booleans(),
            path=st.just("/run/netns/other"),
        ),
    )
    netem_values = st.dictionaries(st.sampled_from(["delay", "jitter", "loss", "rate", "limit", "reorder"]), pooled(NETEM_POOL), max_size=3)
    link_specs = st.fixed_dictionaries(
        {"endpoints": st.lists(endpoint, min_size=2, max_size=2)},
        optional={
            "netem": st.one_of(netem_values, st.dictionaries(endpoint, netem_values, max_size=2)),
            "addresses": st.dictionaries(endpoint, one_or_two(addresses), max_size=2),
            "mtu": pooled(MTU_POOL),
            "up": st.booleans(),
        },
    )
    check_specs = st.fixed_dictionaries(
        {"from": pooled(NS_POOL), "to": st.one_of(pooled(NS_POOL), ip)},
        optional={
            "ping": st.booleans(),
            "port": pooled(PORT_POOL),
            "protocol": pooled(PROTOCOL_POOL),
            "expect": st.sampled_from(["reachable", "unreachable"]),
            "family": st.sampled_from([4, 6]),
        },
    )
    forward_specs = st.fixed_dictionaries(
        {"host_port": pooled(PORT_POOL), "namespace": pooled(NS_POOL), "port": pooled(PORT_POOL)},
        optional={"protocol": pooled(PROTOCOL_POOL), "host_address": ip, "interface": pooled(IF_POOL)},
    )
    sections = _maybe(
        addressing=_maybe(p2p=pool, loopback=pool),
        bridges=st.dictionaries(pooled(BRIDGE_POOL), bridge_specs, max_size=3),
        namespaces=st.dictionaries(pooled(NS_POOL), namespace_specs, max_size=3),
        links=st.lists(link_specs, max_size=3),
        port_forwards=st.lists(forward_specs, max_size=3),
        checks=st.lists(check_specs, max_size=2),
    )
    return st.builds(lambda name, rest: {"name": name, **rest}, pooled(NAME_POOL), sections)


topologies = st.one_of(topology_documents(0), topology_documents(1), topology_documents(2))


# the properties


@FUZZ
@given(yaml_documents())
def test_arbitrary_yaml_documents(raw: bytes):
    loads_or_refuses(raw)


@FUZZ
@given(mutated_seeds())
def test_mutated_good_files(raw: bytes):
    loads_or_refuses(raw)


@FUZZ
@given(topologies, st.sampled_from([False, True, None]))
def test_topology_shaped_documents(data: dict[str, Any], flow: bool | None):
    loads_or_refuses(dump(data, flow))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seeds_are_valid(name: str):
    assert isinstance(loads_or_refuses(SEEDS[name]), Topology)
