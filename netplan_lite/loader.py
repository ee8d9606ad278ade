"""load: topology file -> schema check -> semantic checks -> frozen Topology.

Schema and semantic problems are collected together and raised as one
TopologyError, each located by file, line, column and key path.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from . import checks, yamlsource
from .errors import Problem, TopologyError
from .model import Bridge, Interface, Namespace, PortForward, Protocol, Route, Topology

HOST_VETH_PREFIX = "nsv"


@functools.cache
def topology_schema() -> dict[str, Any]:
    text = resources.files("netplan_lite").joinpath("schemas/topology.schema.json").read_text()
    return json.loads(text)


def load_file(path: str | Path) -> Topology:
    """Read and validate a topology file; raise TopologyError on any problem."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise TopologyError([Problem(name, None, None, "", "no such file")]) from None
    except IsADirectoryError:
        raise TopologyError([Problem(name, None, None, "", "is a directory, not a topology file")]) from None
    except OSError as err:
        raise TopologyError([Problem(name, None, None, "", f"cannot read: {err.strerror}")]) from None
    return load_bytes(raw, name)


def load_bytes(raw: bytes, source: str = "<memory>") -> Topology:
    """Validate topology text; `source` names it in error messages."""
    try:
        doc = yamlsource.parse(raw)
    except yamlsource.SourceError as err:
        raise TopologyError([Problem(source, err.line, err.column, err.path, err.message)]) from None
    doc = yamlsource.Document(_empty_maps_as_mappings(doc.data), doc.root)
    found = _schema_problems(doc)
    found += _semantic_problems(doc.data, complete=not found)
    if found:
        raise TopologyError([_locate(doc, source, path, message) for path, message in found])
    return build(doc.data, source)


def _schema_problems(doc: yamlsource.Document) -> list[tuple[tuple[Any, ...], str]]:
    import jsonschema  # imported here: it is the slowest import of validate

    validator = jsonschema.Draft202012Validator(topology_schema())
    if not isinstance(doc.data, dict):
        return [((), "the top level must be a mapping with at least `name:`")]
    if all(validator.is_valid(sample) for sample in _samples(doc.data)):
        return []
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path)))
    return [_schema_problem(e) for e in errors]


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


SECTIONS = ("bridges", "namespaces")


def _samples(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Documents that are valid exactly when `data` is, but quick to check.

    Labs repeat the same namespace spec hundreds of times, and jsonschema costs
    about 0.3 ms per namespace: validate each distinct spec once, and every
    name once (with an empty spec). On any error the full document is
    validated again to report every path.
    """
    distinct = dict(data)
    names = {key: value for key, value in data.items() if key not in SECTIONS}
    for section in SECTIONS:
        items = data.get(section)
        if isinstance(items, dict):
            seen: dict[str, Any] = {}
            for key, value in items.items():
                try:
                    fingerprint = json.dumps(value, sort_keys=True, default=_typed)
                except (TypeError, ValueError):  # keys JSON cannot sort or hold: no shortcut
                    return [data]
                seen.setdefault(fingerprint, (key, value))
            distinct[section] = dict(seen.values())
            names[section] = {key: {} for key in items}
    return [distinct, names]


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
        return f"{error.instance!r} is not allowed here ({error.schema.get('description') or 'must match ' + error.schema['pattern']})"
    if error.validator == "propertyNames":
        return f"name {error.instance!r} is not allowed: {error.message}"
    if error.validator == "type":
        return f"{error.instance!r} should be of type {error.validator_value}"
    return error.message


def _locate(doc: yamlsource.Document, source: str, path: tuple[Any, ...], message: str) -> Problem:
    line, column = doc.locate_key(path) if path else doc.locate(path)
    return Problem(source, line, column, ".".join(map(str, path)), message)


def host_veth_name(topology: str, namespace: str, interface: str) -> str:
    """Deterministic host-side veth name: 15 characters, stable across runs."""
    digest = hashlib.sha256(f"{topology}\0{namespace}\0{interface}".encode()).hexdigest()
    return HOST_VETH_PREFIX + digest[:12]


def build(data: dict[str, Any], source: str = "<memory>") -> Topology:
    """Turn validated data into model objects (no checks left to do here)."""
    name = data["name"]
    bridges = tuple(_bridge(n, b or {}) for n, b in sorted((data.get("bridges") or {}).items()))
    subnets = {b.name: b.subnet for b in bridges}
    namespaces = tuple(
        _namespace(name, n, ns or {}, subnets) for n, ns in sorted((data.get("namespaces") or {}).items())
    )
    forwards = tuple(_forward(f) for f in data.get("port_forwards") or ())
    return Topology(name, bridges, namespaces, forwards, source)


def _bridge(name: str, raw: dict[str, Any]) -> Bridge:
    subnet = checks.parse_subnet(raw["subnet"]) if "subnet" in raw else None
    gateway = IPv4Address(raw["gateway"]) if "gateway" in raw else checks.default_gateway(subnet)
    return Bridge(name, subnet, gateway, raw.get("mtu"), bool(raw.get("masquerade", False)))


def _namespace(topology: str, name: str, raw: dict[str, Any], subnets: dict[str, IPv4Network | None]) -> Namespace:
    interfaces = tuple(
        Interface(
            name=ifname,
            bridge=spec["bridge"],
            host_name=host_veth_name(topology, name, ifname),
            address=checks.parse_interface_address(spec["address"], subnets[spec["bridge"]]) if "address" in spec else None,
            mtu=spec.get("mtu"),
            mac=spec["mac"].lower() if "mac" in spec else None,
        )
        for ifname, spec in (raw.get("interfaces") or {}).items()
    )
    routes = None
    if "routes" in raw:
        routes = tuple(Route(checks.parse_destination(r["to"]), IPv4Address(r["via"])) for r in raw["routes"])
    return Namespace(name, interfaces, routes)


def _forward(raw: dict[str, Any]) -> PortForward:
    return PortForward(
        host_port=raw["host_port"],
        namespace=raw["namespace"],
        port=raw["port"],
        protocol=Protocol(raw.get("protocol", "tcp")),
        host_address=IPv4Address(raw["host_address"]) if "host_address" in raw else None,
        interface=raw.get("interface"),
    )
