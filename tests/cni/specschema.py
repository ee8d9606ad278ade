"""JSON Schemas (draft 2020-12) for what a CNI plugin prints, per spec version, and checks against them.

    python tests/cni/specschema.py           write schemas/cni/*.schema.json
    python tests/cni/specschema.py --check   exit 1 (one line on stderr) if a file there is out of date

Every rule is written once, here, with the spec text it comes from
(containernetworking/cni, SPEC.md at the tag spec-v<VERSION>; the commits are
in SPECS); the files in schemas/cni are generated from it so that the five
versions cannot drift apart by hand-editing, and each file validates on its
own (no $ref to another file), like the other published schemas.
schemas/cni/README.md lists the rules and their sources.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "schemas" / "cni"
ID_BASE = "https://nsnet.invalid/schemas/cni/"
KINDS = ("result", "error", "version")


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one spec version says about the documents a plugin prints, where it differs from the others."""

    version: str
    commit: str  # of the tag spec-v<version> in github.com/containernetworking/cni
    ip_version_key: bool  # ips[].version "4" or "6" is part of the entry (0.3.0 to 0.4.0; 1.0.0 removed it)
    interface_extras: bool  # interfaces[].mtu, socketPath, pciID (added in 1.1.0)
    route_extras: bool  # routes[].mtu, advmss, priority, table, scope (added in 1.1.0)
    version_echoes_input: bool  # VERSION answers with the input's cniVersion (1.0.0 on); before, "the version in use for this output"
    status_codes: bool  # error codes 50 and 51, defined for STATUS (1.1.0)


SPECS = {
    s.version: s
    for s in (
        Spec("0.3.0", "71c4a60741c87e17325ea6b03234a38fabd06986", True, False, False, False, False),
        Spec("0.3.1", "9445711fa568010ad2e4275aadac134f5e1453e5", True, False, False, False, False),
        Spec("0.4.0", "7d76556571b6cf1ab90d7026a73092ac8d5e0c23", True, False, False, False, False),
        Spec("1.0.0", "5608690f77380743f29bb314458da9a9fb88c003", False, False, False, True, False),
        Spec("1.1.0", "df52e9460d3a819920b63e28c4d5d6f12bed6758", False, True, True, True, True),
    )
}
VERSIONS = tuple(SPECS)

# Error codes. 0-99 are reserved for well-known errors in every version. 0.3.x defines 1 and 2, 0.4.0 adds 3
# and 11, 1.0.0 adds 4-7 (libcni 1.x, and so Debian's reference plugins, use 4, 6 and 7 under every config
# version: the codes name conditions every version has), 1.1.0 adds 50 and 51 for STATUS, which only 1.1.0 has.
WELL_KNOWN_CODES = (1, 2, 3, 4, 5, 6, 7, 11)
STATUS_CODES = (50, 51)
FIRST_PLUGIN_CODE = 100

# Address syntax (patterns, not "format": a 2020-12 validator treats format as an annotation unless told).
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = "[0-9a-fA-F]{1,4}"
_IPV6 = (
    "("
    + "|".join(  # RFC 4291 section 2.2 text forms (compressed or not; dotted tail as Go and Python print it); no zone
        (
            rf"({_H}:){{7}}{_H}",
            rf"({_H}:){{1,7}}:",
            rf"({_H}:){{1,6}}:{_H}",
            rf"({_H}:){{1,5}}(:{_H}){{1,2}}",
            rf"({_H}:){{1,4}}(:{_H}){{1,3}}",
            rf"({_H}:){{1,3}}(:{_H}){{1,4}}",
            rf"({_H}:){{1,2}}(:{_H}){{1,5}}",
            rf"{_H}:(:{_H}){{1,6}}",
            rf":((:{_H}){{1,7}}|:)",
            rf"({_H}:){{6}}{_IPV4}",
            rf"::([fF]{{4}}(:0{{1,4}})?:)?{_IPV4}",
        )
    )
    + ")"
)
IPV4 = f"^{_IPV4}$"
IPV6 = f"^{_IPV6}$"
IPV4_CIDR = rf"^{_IPV4}/(3[0-2]|[12]?[0-9])$"
IPV6_CIDR = rf"^{_IPV6}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$"
MAC = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}((:[0-9a-fA-F]{2}){2}|(:[0-9a-fA-F]{2}){14})?$"  # 6, 8 or 20 octets, as Go's net.ParseMAC
SEMVER = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"

UINT: dict[str, Any] = {"type": "integer", "minimum": 0}


def _pattern(regex: str) -> dict[str, Any]:
    return {"type": "string", "pattern": regex}


def _either(first: str, second: str) -> dict[str, Any]:
    return {"type": "string", "anyOf": [{"pattern": first}, {"pattern": second}]}


def _same_family(cidr_key: str, address_key: str) -> dict[str, Any]:
    """`address_key` (if present) has the IP version of `cidr_key`: the spec's "must be valid for the given version"."""
    return {
        "if": {"required": [cidr_key], "properties": {cidr_key: {"pattern": IPV4_CIDR}}},
        "then": {"properties": {address_key: _pattern(IPV4)}},
        "else": {"properties": {address_key: _pattern(IPV6)}},
    }


def _object(properties: dict[str, Any], required: list[str], **more: Any) -> dict[str, Any]:
    # Closed objects: the spec lists every key; a runtime (libcni) drops any other, so one is a mistake.
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties, **more}


def _interface(spec: Spec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1},
        "mac": {**_pattern(MAC), "description": "required where L2 addresses are meaningful (podman rejects a result without it)"},
        "sandbox": {"type": "string", "description": "the container's CNI_NETNS; empty or absent for host interfaces"},
    }
    if spec.interface_extras:
        properties |= {"mtu": UINT, "socketPath": _pattern("^/"), "pciID": {"type": "string"}}
    return _object(properties, ["name"])


def _ip(spec: Spec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "address": _either(IPV4_CIDR, IPV6_CIDR),
        "gateway": _either(IPV4, IPV6),
        "interface": {**UINT, "description": "index into interfaces; absent in an IPAM plugin's abbreviated result"},
    }
    required = ["address"]
    rules = [_same_family("address", "gateway")]
    if spec.ip_version_key:
        properties = {"version": {"enum": ["4", "6"]}} | properties
        required = ["version", "address"]
        rules.append(
            {
                "if": {"properties": {"version": {"const": "4"}}},
                "then": {"properties": {"address": _pattern(IPV4_CIDR)}},
                "else": {"properties": {"address": _pattern(IPV6_CIDR)}},
            }
        )
    return _object(properties, required, allOf=rules)


def _route(spec: Spec) -> dict[str, Any]:
    properties: dict[str, Any] = {"dst": _either(IPV4_CIDR, IPV6_CIDR), "gw": _either(IPV4, IPV6)}
    if spec.route_extras:
        properties |= {name: UINT for name in ("mtu", "advmss", "priority", "table", "scope")}
    return _object(properties, ["dst"], allOf=[_same_family("dst", "gw")])


def _dns() -> dict[str, Any]:
    strings = {"type": "array", "items": {"type": "string"}}
    return _object(
        {"nameservers": {"type": "array", "items": _either(IPV4, IPV6)}, "domain": {"type": "string"}, "search": strings, "options": strings}, []
    )


def _document(spec: Spec, kind: str, title: str, description: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{ID_BASE}{kind}-{spec.version}.schema.json",
        "title": title,
        "description": description,
        "$comment": f"Generated by tests/cni/specschema.py from CNI SPEC.md at spec-v{spec.version} ({spec.commit}); see schemas/cni/README.md.",
    }


def result_schema(spec: Spec) -> dict[str, Any]:
    def array(item: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "items": item}

    properties = {
        "cniVersion": {"const": spec.version},
        "interfaces": array(_interface(spec)),
        "ips": array(_ip(spec)),
        "routes": array(_route(spec)),
        "dns": _dns(),
    }
    head = _document(
        spec, "result", f"CNI {spec.version} ADD result", "What a plugin prints on stdout after a successful ADD (also the prevResult it is given)."
    )
    return head | _object(properties, ["cniVersion"])


def error_schema(spec: Spec) -> dict[str, Any]:
    codes = [*WELL_KNOWN_CODES, *(STATUS_CODES if spec.status_codes else ())]
    properties = {
        "cniVersion": {"const": spec.version},
        "code": {"type": "integer", "anyOf": [{"enum": codes}, {"minimum": FIRST_PLUGIN_CODE}]},
        "msg": {"type": "string", "minLength": 1},
        "details": {"type": "string"},
    }
    head = _document(spec, "error", f"CNI {spec.version} error", "What a plugin prints on stdout when it fails (with a non-zero exit status).")
    return head | _object(properties, ["cniVersion", "code", "msg"])


def version_schema(spec: Spec) -> dict[str, Any]:
    answered = {"const": spec.version} if spec.version_echoes_input else _pattern(SEMVER)
    properties = {"cniVersion": answered, "supportedVersions": {"type": "array", "minItems": 1, "uniqueItems": True, "items": _pattern(SEMVER)}}
    head = _document(
        spec,
        "version",
        f"CNI {spec.version} VERSION answer",
        f"What a plugin prints for CNI_COMMAND=VERSION when stdin says cniVersion {spec.version}.",
    )
    return head | _object(properties, ["cniVersion", "supportedVersions"])


BUILDERS = {"result": result_schema, "error": error_schema, "version": version_schema}


def file_name(kind: str, version: str) -> str:
    return f"{kind}-{version}.schema.json"


def generated() -> dict[str, str]:
    """Every schema file's name and text."""
    return {file_name(kind, v): json.dumps(BUILDERS[kind](SPECS[v]), indent=2) + "\n" for kind in KINDS for v in VERSIONS}


# checking documents


@functools.cache
def validator(kind: str, version: str) -> Draft202012Validator:
    """The published file alone (what a stock validator gets)."""
    schema = json.loads((SCHEMA_DIR / file_name(kind, version)).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(kind: str, version: str, doc: Any) -> list[str]:
    """Where `doc` breaks the `kind` schema of `version`, one line each (empty: valid)."""
    errors = sorted(validator(kind, version).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def assert_valid(kind: str, version: str, doc: Any) -> None:
    found = problems(kind, version, doc)
    assert not found, f"not a valid CNI {version} {kind}:\n  " + "\n  ".join(found) + f"\ndocument: {json.dumps(doc)}"


def attachment_problems(result: dict[str, Any], ifname: str, netns: str) -> list[str]:
    """What a runtime needs from an ADD result beyond its schema: the container interface, found by name, in
    CNI_NETNS with a MAC, and every `interface` index pointing into `interfaces` (the IPs on the container's)."""
    interfaces = result.get("interfaces", [])
    found = [
        f"ips[{n}].interface {ip['interface']} is not an index into interfaces"
        for n, ip in enumerate(result.get("ips", []))
        if ip.get("interface", 0) >= len(interfaces)
    ]
    container = [n for n, i in enumerate(interfaces) if i["name"] == ifname and i.get("sandbox")]
    if len(container) != 1:
        return [*found, f"{len(container)} interfaces named {ifname} with a sandbox (want 1)"]
    own = interfaces[container[0]]
    if own["sandbox"] != netns:
        found.append(f"{ifname}'s sandbox is {own['sandbox']!r}, not CNI_NETNS {netns!r}")
    if "mac" not in own:
        found.append(f"{ifname} has no mac")
    found += [
        f"ips[{n}] is on interface {ip.get('interface')}, not {ifname}'s ({container[0]})"
        for n, ip in enumerate(result.get("ips", []))
        if ip.get("interface") != container[0]
    ]
    return found


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv not in ([], ["--check"]):
        print("usage: specschema.py [--check]", file=sys.stderr)
        return 2
    files = generated()
    stale = sorted(name for name, text in files.items() if not (SCHEMA_DIR / name).is_file() or (SCHEMA_DIR / name).read_text() != text)
    extra = sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json") if p.name not in files) if SCHEMA_DIR.is_dir() else []
    if check:
        if stale or extra:
            print(f"schemas/cni is out of date (run python tests/cni/specschema.py): {', '.join(stale + extra)}", file=sys.stderr)
            return 1
        return 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (SCHEMA_DIR / name).write_text(files[name])
    for name in extra:
        (SCHEMA_DIR / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
