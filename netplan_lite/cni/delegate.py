"""IPAM by another plugin (`ipam.type` other than nsnet's, `host-local` included), as the spec says:
nsnet runs it from CNI_PATH with the same environment and configuration, and builds the network
from the addresses it answers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any, Mapping

from .config import NetConf, Range, Request, RouteConf
from .spec import Code, CniError

TIMEOUT_SECONDS = 60


def call(conf: NetConf, request: Request, command: str, stdin: bytes) -> dict[str, Any]:
    """Run the IPAM plugin for `command`; its error document becomes ours."""
    plugin = _find(conf.ipam_type or "", request.path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=request.container_id,
        CNI_NETNS=request.netns,
        CNI_IFNAME=request.ifname,
        CNI_ARGS=";".join(f"{k}={v}" for k, v in request.args.items()),
        CNI_PATH=":".join(request.path),
    )
    try:
        done = subprocess.run([plugin], input=stdin, env=env, capture_output=True, timeout=TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CniError(Code.IO_FAILURE, f"IPAM plugin {conf.ipam_type} could not run: {err}") from None
    answer = _json(done.stdout)
    if done.returncode != 0:
        if isinstance(answer, dict) and "code" in answer:
            raise CniError(
                Code(answer["code"]) if answer["code"] in Code._value2member_map_ else Code.INTERNAL,
                str(answer.get("msg", "")),
                str(answer.get("details", "")),
            )
        raise CniError(Code.IO_FAILURE, f"IPAM plugin {conf.ipam_type} failed (exit {done.returncode})", done.stderr.decode(errors="replace").strip())
    return answer if isinstance(answer, dict) else {}


def _find(name: str, path: tuple[str, ...]) -> str:
    if "/" in name or not name:
        raise CniError(Code.INVALID_CONFIG, f"ipam.type: {name!r} is not a plugin name")
    for directory in path:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INVALID_CONFIG, f"ipam.type: no plugin {name!r} in CNI_PATH", "CNI_PATH: " + (":".join(path) or "(empty)"))


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data.strip() else None
    except ValueError:
        return None


def addresses(answer: Mapping[str, Any]) -> tuple[str, ...]:
    """The addresses an IPAM result gives, one per family, IPv4 first."""
    found: dict[int, str] = {}
    for ip in answer.get("ips", []):
        iface = ip_interface(ip["address"])
        found.setdefault(iface.version, str(iface))
    return tuple(found[v] for v in sorted(found))


def with_ranges(conf: NetConf, extra: Mapping[str, Any]) -> NetConf:
    """The configuration with the ranges the delegated IPAM answered from (the bridge's subnets and
    gateways come from them), and its routes."""
    answer = extra.get("ipam") or {}
    ranges: list[Range] = []
    for ip in answer.get("ips", []):
        iface = ip_interface(ip["address"])
        gateway = ip_address(ip["gateway"]) if ip.get("gateway") else iface.network.network_address + 1
        if all(r.subnet.version != iface.version for r in ranges):
            ranges.append(Range(iface.network, gateway))
    routes = tuple(RouteConf(ip_network(r["dst"]), ip_address(r["gw"]) if r.get("gw") else None) for r in answer.get("routes", []))
    return dataclasses.replace(conf, ranges=tuple(ranges), routes=routes, dns=conf.dns or answer.get("dns") or {})
