"""The CNI specification as nsnet speaks it: versions, error codes, and results shaped per version.

nsnet answers in the version a configuration asks for. Debian 12's runtimes
(podman 4.3, containerd 1.6: libcni 1.1) send at most 1.0.0, and podman
writes 0.4.0 configurations; STATUS and GC are 1.1.0's.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = SUPPORTED_VERSIONS[-1]
ABOUT = "CNI nsnet plugin: a bridge network reconciled by nsnet's engine (CNI spec " + ", ".join(SUPPORTED_VERSIONS) + ")"


class Code(enum.IntEnum):
    """The spec's error codes (and nsnet's own, from 100)."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    NOT_READY = 50
    LIMITED_CONNECTIVITY = 51
    KERNEL_REFUSED = 100  # nsnet: the kernel refused a change (rolled back)
    INTERFACE_EXISTS = 101  # nsnet: ADD of an interface the container already has
    ADDRESSES_EXHAUSTED = 102  # nsnet: no free address in the range
    DRIFT = 103  # nsnet: CHECK found the attachment differs from what ADD made
    CONFLICT = 104  # nsnet: a name or address nsnet would take is someone else's
    INTERNAL = 199  # nsnet: a bug


class CniError(Exception):
    """An error answered as the spec's error document on stdout."""

    def __init__(self, code: Code, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def document(self, version: str) -> dict[str, Any]:
        return {"cniVersion": version, "code": int(self.code), "msg": self.msg, "details": self.details}


def answer_version(requested: Any) -> str:
    """The version to answer in: the one asked for, if nsnet speaks it."""
    if not isinstance(requested, str) or not requested:
        raise CniError(Code.INVALID_CONFIG, "cniVersion must be a version string", f"got {json.dumps(requested)}")
    if requested not in SUPPORTED_VERSIONS:
        raise CniError(Code.INCOMPATIBLE_VERSION, f"incompatible CNI version {requested}", f"nsnet supports {', '.join(SUPPORTED_VERSIONS)}")
    return requested


FIRST_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}  # the verbs later versions of the spec added


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def require_verb(verb: str, version: str) -> None:
    """A verb the configuration's version of the spec does not have is refused, as the spec says."""
    first = FIRST_VERSION.get(verb)
    if first and _parts(version) < _parts(first):
        raise CniError(Code.INCOMPATIBLE_VERSION, f"{verb} needs CNI spec {first} or later; the configuration is {version}", f"cniVersion {version}")


def version_document(version: str) -> dict[str, Any]:
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


@dataclass(frozen=True)
class ResultInterface:
    name: str
    mac: str
    sandbox: str | None = None
    mtu: int | None = None


@dataclass(frozen=True)
class ResultIP:
    address: str  # with its prefix: 10.88.0.5/16
    gateway: str | None
    interface: int | None  # index into interfaces

    @property
    def family(self) -> str:
        return "6" if ":" in self.address else "4"


@dataclass(frozen=True)
class ResultRoute:
    dst: str
    gw: str | None = None


@dataclass(frozen=True)
class Result:
    """An ADD's result, independent of version; `document` shapes it for one."""

    interfaces: tuple[ResultInterface, ...] = ()
    ips: tuple[ResultIP, ...] = ()
    routes: tuple[ResultRoute, ...] = ()
    dns: dict[str, Any] = field(default_factory=dict)

    def document(self, version: str) -> dict[str, Any]:
        legacy = version < "1.0.0"  # 0.3.x and 0.4.0 name each address's family
        doc: dict[str, Any] = {"cniVersion": version, "interfaces": [_interface(i, version) for i in self.interfaces]}
        doc["ips"] = [_ip(ip, legacy) for ip in self.ips]
        doc["routes"] = [{k: v for k, v in (("dst", r.dst), ("gw", r.gw)) if v is not None} for r in self.routes]
        doc["dns"] = dict(self.dns)
        return doc


def _interface(iface: ResultInterface, version: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": iface.name, "mac": iface.mac}
    if iface.sandbox is not None:
        doc["sandbox"] = iface.sandbox
    if iface.mtu is not None and version >= "1.1.0":
        doc["mtu"] = iface.mtu
    return doc


def _ip(ip: ResultIP, legacy: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": ip.family} if legacy else {}
    doc["address"] = ip.address
    if ip.gateway is not None:
        doc["gateway"] = ip.gateway
    if ip.interface is not None:
        doc["interface"] = ip.interface
    return doc
