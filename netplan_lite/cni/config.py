"""What a runtime hands the plugin: the environment, and the network configuration on stdin.

The keys are the reference `bridge` plugin's, with the same meaning, so nsnet
drops in where `bridge` was (as flannel's `delegate` too). A key neither
plugin knows is refused by name, as is one of `bridge`'s that nsnet does not
implement (VLANs, spoof checks): silently ignoring it would build another
network than the one asked for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_interface, ip_network
from typing import Any, Mapping

from .spec import Code, CniError, answer_version

VERBS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
NEEDS_CONTAINER = ("ADD", "DEL", "CHECK")  # the verbs about one attachment
NETWORK_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")  # an nsnet topology name (the network is one)
CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")  # the spec's
IFNAME = re.compile(r"[^\s/:]{1,15}")  # what the kernel accepts as a link name (and at most 15 bytes: is_link_name)
DEFAULT_BRIDGE = "cni0"  # the reference plugin's default

VALID_ATTACHMENTS = ("cni.dev/valid-attachments", "cni.dev/attachments")  # GC's (the second: its spelling before 1.1.0)
GENERIC_KEYS = frozenset(
    {"cniVersion", "cniVersions", "name", "type", "args", "ipMasq", "ipam", "dns", "capabilities", "runtimeConfig", "prevResult", *VALID_ATTACHMENTS}
)
BRIDGE_KEYS = frozenset({"bridge", "isGateway", "isDefaultGateway", "forceAddress", "mtu", "hairpinMode", "promiscMode", "ipMasqBackend"})
# the bridge plugin's keys nsnet does not implement (refused when set, not ignored), and why
UNSUPPORTED = {
    "vlan": "VLAN filtering",
    "vlanTrunk": "VLAN trunks",
    "preserveDefaultVlan": "VLAN filtering",
    "macspoofchk": "MAC spoof checks",
    "enabledad": "DAD on the container's addresses (nsnet adds them with nodad)",
    "disableContainerInterface": "a container interface left down",
    "promiscMode": "a promiscuous bridge (hairpin traffic is masqueraded instead)",
    "topology": "attaching to a bridge of a topology file (not built yet)",
}
IPAM_KEYS = frozenset({"type", "ranges", "subnet", "rangeStart", "rangeEnd", "gateway", "routes", "dataDir", "resolvConf"})


@dataclass(frozen=True)
class Request:
    """The environment of one call."""

    command: str
    container_id: str = ""
    netns: str = ""  # empty: the runtime has no namespace any more (a DEL after it went)
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)  # CNI_ARGS, KEY=VALUE;...
    path: tuple[str, ...] = ()  # CNI_PATH: where delegated plugins are


@dataclass(frozen=True)
class Range:
    subnet: IPv4Network | IPv6Network
    gateway: IPv4Address | IPv6Address | None
    start: IPv4Address | IPv6Address | None = None
    end: IPv4Address | IPv6Address | None = None


@dataclass(frozen=True)
class RouteConf:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None = None


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: IPv4Address | IPv6Address | None = None


@dataclass(frozen=True)
class NetConf:
    """One plugin's configuration, as libcni passes it."""

    version: str
    name: str
    raw: Mapping[str, Any]
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    ip_masq: bool = False
    mtu: int | None = None
    hairpin: bool = False
    ipam_type: str | None = None  # None: nsnet's own allocator; else the plugin to delegate to
    ranges: tuple[Range, ...] = ()  # one per family (nsnet's allocator)
    routes: tuple[RouteConf, ...] = ()
    dns: Mapping[str, Any] = field(default_factory=dict)
    port_mappings: tuple[PortMapping, ...] = ()
    ips: tuple[str, ...] = ()  # requested addresses (the `ips` capability, or CNI_ARGS IP=)
    mac: str | None = None  # requested MAC (the `mac` capability, or CNI_ARGS MAC=)
    prev_result: Mapping[str, Any] | None = None

    @property
    def delegated(self) -> bool:
        return self.ipam_type is not None


def read_request(env: Mapping[str, str]) -> Request:
    """The call's environment; what a verb needs and lacks is named."""
    command = env.get("CNI_COMMAND", "")
    if command not in VERBS:
        raise CniError(Code.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}", f"one of {', '.join(VERBS)}")
    needed = ["CNI_CONTAINERID", "CNI_IFNAME"] + (["CNI_NETNS"] if command in ("ADD", "CHECK") else [])
    missing = [name for name in needed if command in NEEDS_CONTAINER and not env.get(name)]
    if missing:
        raise CniError(
            Code.INVALID_ENVIRONMENT, f"{command} needs {', '.join(missing)}", "missing or empty in the environment: " + ", ".join(missing)
        )
    request = Request(
        command,
        env.get("CNI_CONTAINERID", ""),
        env.get("CNI_NETNS", ""),
        env.get("CNI_IFNAME", ""),
        _cni_args(env.get("CNI_ARGS", "")),
        tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
    )
    if command in NEEDS_CONTAINER:
        _check_names(request)
    return request


def _check_names(request: Request) -> None:
    if not CONTAINER_ID.fullmatch(request.container_id):
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"invalid CNI_CONTAINERID {request.container_id!r}",
            "letters, digits, _ . - (and not starting with one of _ . -)",
        )
    if not is_link_name(request.ifname):
        raise CniError(Code.INVALID_ENVIRONMENT, f"invalid CNI_IFNAME {request.ifname!r}", "a link name: 1-15 bytes, no space, / or :")


def is_link_name(name: Any) -> bool:
    """What the kernel takes as a link name: 1-15 bytes (IFNAMSIZ with its NUL), no whitespace, / or :, not . or .."""
    return isinstance(name, str) and bool(IFNAME.fullmatch(name)) and len(name.encode()) <= 15 and name not in (".", "..")


def _cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS `K=V;K=V`; a malformed pair is refused."""
    args = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(Code.INVALID_ENVIRONMENT, f"invalid CNI_ARGS pair {pair!r}", "CNI_ARGS is KEY=VALUE pairs separated by ;")
        args[key] = value
    return args


def parse_stdin(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise CniError(Code.DECODING_FAILURE, "the network configuration on stdin is not JSON", str(err)) from None
    if not isinstance(doc, dict):
        raise CniError(Code.DECODING_FAILURE, "the network configuration on stdin is not a JSON object", f"got {type(doc).__name__}")
    return doc


def network_conf(doc: Mapping[str, Any], request: Request) -> NetConf:
    """The configuration a verb works with; every problem names its key."""
    version = answer_version(doc.get("cniVersion"))
    name = doc.get("name")
    if not isinstance(name, str) or not NETWORK_NAME.fullmatch(name):
        raise _invalid("name", name, "a network name of lowercase letters, digits and -, starting with a letter, at most 32 characters")
    _refuse_unknown(doc)
    ipam = _mapping(doc, "ipam")
    # what the runtime asks of a new attachment; a DEL, GC or STATUS needs none of it (and must not fail on it)
    runtime = _mapping(doc, "runtimeConfig") if request.command == "ADD" else {}
    gateway_default = _flag(doc, "isDefaultGateway")
    ipam_type = ipam.get("type")
    if ipam_type is not None and not isinstance(ipam_type, str):
        raise _invalid("ipam.type", ipam_type, "a plugin name")
    own = ipam_type in (None, "", "nsnet")
    return NetConf(
        version=version,
        name=name,
        raw=doc,
        bridge=_bridge(doc),
        is_gateway=_flag(doc, "isGateway") or gateway_default,
        is_default_gateway=gateway_default,
        ip_masq=_flag(doc, "ipMasq"),
        mtu=_mtu(doc),
        hairpin=_flag(doc, "hairpinMode"),
        ipam_type=None if own else ipam_type,
        ranges=_ranges(ipam) if own else (),
        routes=_routes(ipam.get("routes", [])) if own else (),
        dns=_mapping(doc, "dns"),
        port_mappings=_port_mappings(runtime.get("portMappings", [])),
        ips=_requested_ips(runtime, _mapping(doc, "args"), request) if request.command == "ADD" else (),
        mac=_requested_mac(runtime, request) if request.command == "ADD" else None,
        prev_result=_mapping(doc, "prevResult") or None,
    )


def _bridge(doc: Mapping[str, Any]) -> str:
    name = doc.get("bridge", DEFAULT_BRIDGE)
    if not is_link_name(name):
        raise _invalid("bridge", name, "a link name of 1-15 bytes")
    return name


def _refuse_unknown(doc: Mapping[str, Any]) -> None:
    for key, value in doc.items():
        if key in UNSUPPORTED and value not in (False, None, 0, "", [], {}):
            raise CniError(Code.UNSUPPORTED_FIELD, f"{key}: {UNSUPPORTED[key]} is not supported by nsnet", f"remove `{key}` from the configuration")
        if key not in GENERIC_KEYS | BRIDGE_KEYS | UNSUPPORTED.keys():
            raise CniError(Code.UNSUPPORTED_FIELD, f"unknown key {key!r}", "nsnet knows the reference bridge plugin's keys")
    for key in ("forceAddress",):  # accepted with its meaning: nsnet always repairs the container's address
        _flag(doc, key)
    if doc.get("ipMasqBackend", "nftables") != "nftables":
        raise CniError(Code.UNSUPPORTED_FIELD, f"ipMasqBackend: {doc['ipMasqBackend']!r} is not supported", "nsnet masquerades with nftables")
    ipam = doc.get("ipam")
    for key in ipam if isinstance(ipam, dict) and ipam.get("type") in (None, "", "nsnet") else ():
        if key not in IPAM_KEYS:
            raise CniError(
                Code.UNSUPPORTED_FIELD, f"unknown key 'ipam.{key}'", "nsnet's allocator knows host-local's keys: " + ", ".join(sorted(IPAM_KEYS))
            )


def _invalid(key: str, value: Any, want: str) -> CniError:
    return CniError(Code.INVALID_CONFIG, f"{key}: {json.dumps(value)} is not {want}", f"invalid value of `{key}`")


def _mapping(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(key, value, "an object")
    return value


def _flag(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise _invalid(key, value, "true or false")
    return value


def _text(doc: Mapping[str, Any], key: str, default: str | None, pattern: re.Pattern[str] | None, want: str) -> Any:
    value = doc.get(key, default)
    if value is not default and (not isinstance(value, str) or not value or (pattern and not pattern.fullmatch(value))):
        raise _invalid(key, value, want)
    return value


def _mtu(doc: Mapping[str, Any]) -> int | None:
    value = doc.get("mtu")
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 65535:
        raise _invalid("mtu", value, "an MTU between 68 and 65535")
    return value


def _ranges(ipam: Mapping[str, Any]) -> tuple[Range, ...]:
    """host-local's `ranges` (a list of range sets, each a list of ranges) or its older flat keys;
    nsnet takes one range per family: the first of each set."""
    if "ranges" in ipam:
        sets = ipam["ranges"]
        if not isinstance(sets, list) or not sets or not all(isinstance(s, list) and s and all(isinstance(r, dict) for r in s) for s in sets):
            raise _invalid("ipam.ranges", sets, "a list of range sets, each a non-empty list of {subnet, ...} objects")
        ranges = tuple(_range(s[0], f"ipam.ranges.{i}.0") for i, s in enumerate(sets))
    elif "subnet" in ipam:
        ranges = (_range(ipam, "ipam"),)
    else:
        raise CniError(Code.INVALID_CONFIG, "ipam: no range to allocate from", "give `ipam.ranges` (or `ipam.subnet`)")
    families = [r.subnet.version for r in ranges]
    if len(set(families)) != len(families):
        raise CniError(Code.INVALID_CONFIG, "ipam.ranges: at most one range set per family", f"families given: {families}")
    return ranges


def _text_address(value: Any) -> IPv4Address | IPv6Address:
    """An address written as text (ipaddress would also take a JSON number)."""
    if not isinstance(value, str):
        raise ValueError(value)
    return ip_address(value)


def _text_network(value: Any) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError(value)
    return ip_network(value)


def _range(doc: Mapping[str, Any], where: str) -> Range:
    try:
        subnet = _text_network(doc.get("subnet"))
    except (TypeError, ValueError):
        raise _invalid(f"{where}.subnet", doc.get("subnet"), "a network without host bits, e.g. 10.88.0.0/16") from None
    if subnet.num_addresses < 4:
        raise _invalid(f"{where}.subnet", doc.get("subnet"), "a network with room for a gateway and hosts")
    gateway, start, end = (_address(doc, f"{where}.{key}", key, subnet) for key in ("gateway", "rangeStart", "rangeEnd"))
    if start and end and int(start) > int(end):
        raise _invalid(f"{where}.rangeEnd", doc["rangeEnd"], f"an address after rangeStart {start}")
    return Range(subnet, gateway or subnet.network_address + 1, start, end)


def _address(doc: Mapping[str, Any], where: str, key: str, subnet: IPv4Network | IPv6Network) -> IPv4Address | IPv6Address | None:
    if key not in doc:
        return None
    try:
        value = _text_address(doc[key])
    except ValueError:
        raise _invalid(where, doc[key], "an address") from None
    if value not in subnet:
        raise _invalid(where, doc[key], f"an address in {subnet}")
    return value


def _routes(routes: Any) -> tuple[RouteConf, ...]:
    if not isinstance(routes, list):
        raise _invalid("ipam.routes", routes, "a list of {dst, gw} objects")
    parsed = []
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            raise _invalid(f"ipam.routes.{i}", route, "a {dst, gw} object")
        try:
            dst = _text_network(route.get("dst"))
        except ValueError:
            raise _invalid(f"ipam.routes.{i}.dst", route.get("dst"), "a network") from None
        try:
            gw = _text_address(route["gw"]) if route.get("gw") else None
        except ValueError:
            raise _invalid(f"ipam.routes.{i}.gw", route.get("gw"), "an address") from None
        parsed.append(RouteConf(dst, gw))
    return tuple(parsed)


def _port_mappings(value: Any) -> tuple[PortMapping, ...]:
    if not isinstance(value, list):
        raise _invalid("runtimeConfig.portMappings", value, "a list")
    return tuple(_port_mapping(m, f"runtimeConfig.portMappings.{i}") for i, m in enumerate(value))


def _port_mapping(doc: Any, where: str) -> PortMapping:
    if not isinstance(doc, dict):
        raise _invalid(where, doc, "an object")
    ports = [doc.get("hostPort"), doc.get("containerPort")]
    for key, port in zip(("hostPort", "containerPort"), ports, strict=True):
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _invalid(f"{where}.{key}", port, "a port between 1 and 65535")
    protocol = str(doc.get("protocol") or "tcp").lower()
    if protocol not in ("tcp", "udp"):
        raise CniError(Code.UNSUPPORTED_FIELD, f"{where}.protocol: {protocol!r} is not supported", "nsnet maps tcp and udp ports")
    host_ip = doc.get("hostIP") or None
    try:
        parsed = _text_address(host_ip) if host_ip else None
    except ValueError:
        raise _invalid(f"{where}.hostIP", host_ip, "an address") from None
    return PortMapping(ports[0], ports[1], protocol, None if parsed is not None and parsed.is_unspecified else parsed)  # type: ignore[arg-type]


def _requested_ips(runtime: Mapping[str, Any], args: Mapping[str, Any], request: Request) -> tuple[str, ...]:
    """Addresses asked for: the `ips` capability, `args.cni.ips` (host-local's convention) and CNI_ARGS IP=."""
    cni_args = args.get("cni", {}) if isinstance(args.get("cni", {}), dict) else {}
    asked: list[Any] = []
    for where, value in (("runtimeConfig.ips", runtime.get("ips", [])), ("args.cni.ips", cni_args.get("ips", []))):
        if not isinstance(value, list):
            raise _invalid(where, value, "a list of addresses")
        asked += value
    if "IP" in request.args:
        asked += request.args["IP"].split(",")
    for text in asked:
        if not isinstance(text, str):
            raise _invalid("ips", text, "an address (with or without its prefix)")
        try:
            ip_interface(text)
        except ValueError:
            raise _invalid("ips", text, "an address (with or without its prefix)") from None
    return tuple(dict.fromkeys(asked))


MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def _requested_mac(runtime: Mapping[str, Any], request: Request) -> str | None:
    mac = runtime.get("mac") or request.args.get("MAC") or None
    if mac is not None and (not isinstance(mac, str) or not MAC.fullmatch(mac) or int(mac[:2], 16) & 1):
        raise _invalid("mac", mac, "a unicast MAC address such as 02:00:00:00:00:01")
    return mac.lower() if mac else None


def known_args(request: Request) -> None:
    """CNI_ARGS keys nsnet does not know are refused unless IgnoreUnknown=1 (as the spec's plugins do);
    Kubernetes passes K8S_POD_* keys with IgnoreUnknown set."""
    unknown = sorted(set(request.args) - {"IP", "MAC", "IgnoreUnknown"})
    if unknown and request.args.get("IgnoreUnknown", "").lower() not in ("1", "true"):
        raise CniError(Code.INVALID_ENVIRONMENT, f"unknown CNI_ARGS {', '.join(unknown)}", "set IgnoreUnknown=1 to pass keys nsnet does not use")
