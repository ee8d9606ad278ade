"""load: topology file -> schema check -> semantic checks -> frozen Topology.

Schema and semantic problems are collected together and raised as one
TopologyError, each located by file, line, column and key path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from importlib import resources
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any, Mapping, TypeVar

from . import netem, semantic as checks, schemacheck, yamlsource
from ..errors import Problem, TopologyError
from .topology import (
    FORWARDING_KEYS,
    FORWARDING_ON,
    LOOPBACK_PREFIXES,
    P2P_PREFIXES,
    Addressing,
    Bridge,
    Check,
    Expect,
    Firewall,
    Interface,
    IPInterface,
    IPNetwork,
    Link,
    LinkEnd,
    Namespace,
    Pool,
    PortForward,
    Protocol,
    Route,
    RouteType,
    Topology,
    sysctl_text,
)

HOST_VETH_PREFIX = "nsv"


@functools.cache
def topology_schema() -> dict[str, Any]:
    text = resources.files("netplan_lite").joinpath("schemas/topology.schema.json").read_text()
    return json.loads(text)


def read_source(path: str | Path) -> bytes:
    """The bytes of a topology (or saved plan) file; unreadable files are a TopologyError."""
    name = str(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TopologyError([Problem(name, None, None, "", "no such file")]) from None
    except IsADirectoryError:
        raise TopologyError([Problem(name, None, None, "", "is a directory, not a topology file")]) from None
    except OSError as err:
        raise TopologyError([Problem(name, None, None, "", f"cannot read: {err.strerror}")]) from None


def load_file(path: str | Path) -> Topology:
    """Read and validate a topology file; raise TopologyError on any problem."""
    return load_bytes(read_source(path), str(path))


_remembered: dict[tuple[str, bytes], Topology] = {}  # filled by the agent for its children
REMEMBER_AT_MOST = 16


def remember(raw: bytes, source: str) -> None:
    """Load now, so that loading the same text under the same name later costs nothing."""
    topology = load_bytes(raw, source)
    if len(_remembered) >= REMEMBER_AT_MOST:
        _remembered.pop(next(iter(_remembered)))
    _remembered[(source, hashlib.sha256(raw).digest())] = topology


def load_bytes(raw: bytes, source: str = "<memory>") -> Topology:
    """Validate topology text; `source` names it in error messages."""
    if _remembered:
        known = _remembered.get((source, hashlib.sha256(raw).digest()))
        if known is not None:
            return known
    try:
        doc = yamlsource.parse(raw)
    except yamlsource.SourceError as err:
        raise TopologyError([Problem(source, err.line, err.column, err.path, err.message)]) from None
    doc = yamlsource.Document(_empty_maps_as_mappings(doc.data), doc.root)
    found = _schema_problems(doc)
    found += _semantic_problems(doc.data, complete=not found)
    if found:
        raise TopologyError([_locate(doc, source, path, message) for path, message in found])
    return build(doc.data, source, doc)


def _schema_problems(doc: yamlsource.Document) -> list[tuple[tuple[Any, ...], str]]:
    if not isinstance(doc.data, dict):
        return [((), "the top level must be a mapping with at least `name:`")]
    if schemacheck.is_valid(doc.data, topology_schema()):
        return []  # jsonschema (and its import) only when there are errors to explain
    validator = _validator_class()(topology_schema())
    try:
        split = _deduplicated(doc.data)
    except (TypeError, ValueError):  # keys JSON cannot sort or hold: validate as it is
        problems = [_schema_problem(e) for e in validator.iter_errors(doc.data)]
    else:
        problems = _split_problems(validator, *split)
    return sorted(problems, key=lambda p: list(map(str, p[0])))


def _split_problems(
    validator: Any, distinct: dict[str, Any], names: dict[str, Any], twins: dict[tuple[str, str], list[str]]
) -> list[tuple[tuple[Any, ...], str]]:
    """Problems of the whole document from its distinct specs and its names (see _deduplicated)."""
    problems = []
    for error in validator.iter_errors(distinct):
        path, message = _schema_problem(error)
        if len(path) == 2 and path[0] in SECTIONS and _is_name_error(error):
            continue  # names are checked all at once below
        same = twins.get((str(path[0]), str(path[1]))) if len(path) >= 2 else None
        problems += [((path[0], key, *path[2:]), message) for key in same] if same else [(path, message)]
    for section, keys in names.items():
        bad = [key for key in keys if not (isinstance(key, str) and _name_pattern(section).search(key))]
        for key in bad:  # jsonschema only for the few bad names, for its exact message
            problems += [_schema_problem(e) for e in validator.iter_errors({section: {key: {}}}) if _is_name_error(e)]
    return problems


@functools.cache
def _name_pattern(section: str) -> re.Pattern[str]:
    """The schema's pattern for the keys of `section` (bridges: ifname, namespaces: nsname)."""
    ref = topology_schema()["properties"][section]["propertyNames"]["$ref"]
    return re.compile(topology_schema()["$defs"][ref.rsplit("/", 1)[1]]["pattern"])


def _empty_maps_as_mappings(data: Any) -> Any:
    """`web1:` with nothing under it means an empty mapping, not null."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for section in ("bridges", "namespaces"):
        items = data.get(section)
        if isinstance(items, dict):
            data[section] = {k: {} if v is None else v for k, v in items.items()}
    for name, ns in (data.get("namespaces") or {}).items() if isinstance(data.get("namespaces"), dict) else ():
        if isinstance(ns, dict) and ns.get("interfaces", {}) is None:
            data["namespaces"][name] = {**ns, "interfaces": {}}
    return data


@functools.cache
def _validator_class() -> Any:
    """Draft 2020-12, except that 1500.0 or true is not an integer (JSON Schema says it is)."""
    import jsonschema

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)


SECTIONS = ("bridges", "namespaces")
MAX_FORWARDS = 2048  # the schema's maxItems: jsonschema costs ~0.3 ms a forward


def _deduplicated(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[tuple[str, str], list[str]]]:
    """The document with each distinct bridge or namespace spec once, every section's
    names, and which keys share each kept spec.

    Labs repeat the same namespace spec hundreds of times and jsonschema costs
    about 0.3 ms per namespace: validating each distinct spec once and
    copying its problems to its twins gives the same problems, linearly.
    """
    distinct = dict(data)
    names: dict[str, Any] = {}  # section -> its keys, checked against the name pattern
    twins: dict[tuple[str, str], list[str]] = {}
    for section in SECTIONS:
        items = data.get(section)
        if not isinstance(items, dict):
            continue
        kept: dict[str, str] = {}  # fingerprint -> the key whose spec is validated
        for key, value in items.items():
            first = kept.setdefault(json.dumps(value, sort_keys=True, default=_typed), key)
            twins.setdefault((section, str(first)), []).append(key)
        distinct[section] = {key: items[key] for key in kept.values()}
        names[section] = list(items)
    forwards = data.get("port_forwards")
    if isinstance(forwards, list) and len(forwards) > MAX_FORWARDS:  # maxItems fails anyway: validate no more
        distinct["port_forwards"] = forwards[: MAX_FORWARDS + 1]
    return distinct, names, twins


def _typed(value: Any) -> str:
    """A JSON stand-in for YAML values JSON lacks (dates...), distinct from any string."""
    return f"<{type(value).__name__} {value!r}>"


def _semantic_problems(data: Any, complete: bool) -> list[tuple[tuple[Any, ...], str]]:
    """Semantic checks; on schema-invalid data, as far as its shape allows."""
    if not isinstance(data, dict):
        return []
    return checks.semantic_problems(data, tolerant=not complete)


def _schema_problem(error: Any) -> tuple[tuple[Any, ...], str]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(map(str, set(error.instance) - set(error.schema.get("properties", {}))))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        return (*path, extra[0]), f"unknown key {', '.join(map(repr, extra))} (known keys: {known})"
    if _is_name_error(error):
        return (*path, error.instance), _schema_message(error)
    return path, _schema_message(error)


def _is_name_error(error: Any) -> bool:
    """Errors inside a propertyNames subschema are about a key, not a value."""
    return "propertyNames" in error.absolute_schema_path


def _schema_message(error: Any) -> str:
    if error.validator == "pattern":
        return f"{_short(error.instance)} is not allowed here ({error.schema.get('description') or 'must match ' + error.schema['pattern']})"
    if error.validator == "propertyNames":
        return f"name {error.instance!r} is not allowed: {error.message}"
    if error.validator == "maxItems":
        return f"{len(error.instance)} items, more than the {error.validator_value} allowed"
    if error.validator == "type":
        kinds = error.validator_value
        kinds = kinds if isinstance(kinds, str) else " or ".join("list" if k == "array" else k for k in kinds)
        return f"{_short(error.instance)} should be of type {kinds}"
    if error.validator == "minItems":
        return f"{len(error.instance)} item{'s' if len(error.instance) != 1 else ''}, fewer than the {error.validator_value} needed"
    return error.message if len(error.message) <= 200 else error.message[:200] + "..."


def _short(value: Any, limit: int = 60) -> str:
    """A value as it appears in a message: its repr, cut to one readable piece."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def located(err: TopologyError, raw: bytes) -> TopologyError:
    """`err` with a line and column for each problem found after loading (a plan's, against the
    live host), by its key path in the file's text."""
    doc = yamlsource.parse(raw)
    problems = [
        p if p.line is not None or not p.path else _locate(doc, p.file, tuple(int(s) if s.isdigit() else s for s in p.path.split(".")), p.message)
        for p in err.problems
    ]
    return TopologyError(problems)


def _locate(doc: yamlsource.Document, source: str, path: tuple[Any, ...], message: str) -> Problem:
    line, column = doc.locate_key(path) if path else doc.locate(path)
    return Problem(source, line, column, ".".join(map(str, path)), message)


def host_veth_name(topology: str, namespace: str, interface: str) -> str:
    """Deterministic host-side veth name: 15 characters, stable across runs."""
    digest = hashlib.sha256(f"{topology}\0{namespace}\0{interface}".encode()).hexdigest()
    return HOST_VETH_PREFIX + digest[:12]


def build(data: dict[str, Any], source: str = "<memory>", doc: yamlsource.Document | None = None) -> Topology:
    """Turn validated data into model objects (no checks left to do here); `doc` gives each check its line."""
    name = data["name"]
    addressing = _addressing(data.get("addressing") or {})
    bridges = tuple(_bridge(n, b or {}) for n, b in sorted((data.get("bridges") or {}).items()))
    subnets: dict[str, dict[int, IPNetwork]] = {b.name: {s.version: s for s in b.subnets} for b in bridges}
    namespaces = tuple(_namespace(name, n, ns or {}, subnets) for n, ns in sorted((data.get("namespaces") or {}).items()))
    forwards = tuple(_forward(f) for f in data.get("port_forwards") or ())
    firewall = Firewall(**(data.get("firewall") or {}))
    p2p = checks.link_prefixes((data.get("addressing") or {}).get("p2p"))
    links = tuple(_link(raw, p2p) for raw in data.get("links") or ())
    lines = (lambda i: doc.locate(("checks", i))[0]) if doc is not None else (lambda i: None)
    tests = tuple(_check(raw, {n.name for n in namespaces}, lines(i)) for i, raw in enumerate(data.get("checks") or ()))
    return Topology(name, bridges, namespaces, forwards, firewall, source, addressing, links, tests)


def _addressing(raw: dict[str, Any]) -> Addressing:
    return Addressing(
        *(_pool(raw[kind], defaults) if kind in raw else None for kind, defaults in (("p2p", P2P_PREFIXES), ("loopback", LOOPBACK_PREFIXES)))
    )


def _pool(raw: dict[str, Any], defaults: tuple[int, int]) -> Pool:
    networks = checks.pool_networks(raw)
    prefix, prefix6 = checks.pool_prefixes(raw, defaults).values()
    return Pool(_of(networks, IPv4Network), prefix, _of(networks, IPv6Network), prefix6)


V = TypeVar("V")


def _of(found: Mapping[int, object], kind: type[V]) -> V | None:
    """The value of that type in `found` (values keyed by their family, which their type says)."""
    return next((v for v in found.values() if isinstance(v, kind)), None)


def _bridge(name: str, raw: dict[str, Any]) -> Bridge:
    subnets = checks.bridge_subnets(raw)
    gateways = checks.bridge_gateways(raw, subnets)
    return Bridge(
        name,
        _of(subnets, IPv4Network),
        _of(gateways, IPv4Address),
        raw.get("mtu"),
        bool(raw.get("masquerade", False)),
        bool(raw.get("allow_overlap", False)),
        _of(subnets, IPv6Network),
        _of(gateways, IPv6Address),
    )


def _namespace(topology: str, name: str, raw: dict[str, Any], subnets: Mapping[str, Mapping[int, IPNetwork]]) -> Namespace:
    interfaces = tuple(_interface(topology, name, ifname, spec, subnets[spec["bridge"]]) for ifname, spec in (raw.get("interfaces") or {}).items())
    routes = tuple(_route(r) for r in raw["routes"]) if "routes" in raw else None
    loopback = raw.get("loopback")
    auto = loopback == checks.LOOPBACK_AUTO
    pinned = {} if loopback is None or auto else checks.by_family(loopback, checks.loopback_address)
    return Namespace(name, interfaces, routes, namespace_sysctls(raw), raw.get("path"), _by_version(pinned), auto)


def _interface(topology: str, namespace: str, name: str, spec: dict[str, Any], subnets: Mapping[int, IPNetwork]) -> Interface:
    pinned = checks.by_family(spec["address"], lambda text: checks.interface_address(text, subnets)) if "address" in spec else {}
    return Interface(
        name=name,
        bridge=spec["bridge"],
        host_name=host_veth_name(topology, namespace, name),
        address=_of(pinned, IPv4Interface),
        mtu=spec.get("mtu"),
        mac=spec["mac"].lower() if "mac" in spec else None,
        address6=_of(pinned, IPv6Interface),
    )


def _by_version(found: Mapping[int, IPInterface]) -> tuple[IPInterface, ...]:
    """IPv4 first."""
    return tuple(found[v] for v in sorted(found))


def _route(raw: dict[str, Any]) -> Route:
    via = tuple(checks.parse_gateway(text) for _, text in checks.items(raw["via"])) if "via" in raw else ()
    kind = RouteType(raw["type"]) if "type" in raw else RouteType.UNICAST
    return Route(checks.parse_destination(raw["to"]), via, kind, raw.get("dev"), raw.get("metric"))


def _link(raw: dict[str, Any], prefixes: Mapping[int, int]) -> Link:
    a, b = (checks.parse_endpoint(text) for text in raw["endpoints"])
    impaired = raw.get("netem") or {}
    per_end = any(checks.is_endpoint(key) for key in impaired)
    ends = []
    for end in (a, b):
        spec = impaired.get(str(end)) if per_end else impaired
        pinned = checks.by_family((raw.get("addresses") or {}).get(str(end), []), lambda text: checks.parse_address(text, prefixes))
        ends.append(LinkEnd(end.namespace, end.interface, _by_version(pinned), netem.parse(spec) if spec else None))
    return Link((ends[0], ends[1]), raw.get("mtu"), bool(raw.get("up", True)))


def _check(raw: dict[str, Any], namespaces: set[str], line: int | None) -> Check:
    target = raw["to"]
    return Check(
        source=raw["from"],
        to=target if target in namespaces else checks.canonical_address(target),  # a namespace first, as the checks read it
        ping=bool(raw.get("ping", False)),
        port=raw.get("port"),
        protocol=Protocol(raw.get("protocol", "tcp")),
        expect=Expect(raw.get("expect", "reachable")),
        family=raw.get("family"),
        line=line,
    )


def namespace_sysctls(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """`sysctls:` with `forwarding: true` expanded (the semantic checks refuse a contradiction)."""
    wanted = {key: FORWARDING_ON for key in FORWARDING_KEYS} if raw.get("forwarding") else {}
    wanted.update({key: sysctl_text(value) for key, value in (raw.get("sysctls") or {}).items()})
    return tuple(sorted(wanted.items()))


def _forward(raw: dict[str, Any]) -> PortForward:
    return PortForward(
        host_port=raw["host_port"],
        namespace=raw["namespace"],
        port=raw["port"],
        protocol=Protocol(raw.get("protocol", "tcp")),
        host_address=checks.parse_ip(raw["host_address"]) if "host_address" in raw else None,
        interface=raw.get("interface"),
    )
