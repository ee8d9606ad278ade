"""The only module that speaks netlink (through pyroute2).

Reads return small records holding only the fields the diff needs; writes
take plain values. One socket per namespace, opened after entering it with
setns (see netns.py), reused for the whole run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from socket import AF_INET
from typing import Any

from . import netns
from .faults import checkpoint

IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_KERNEL = 2


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str | None
    alias: str | None
    master: int | None
    peer: int | None  # IFLA_LINK: the veth peer's index (in the peer's namespace)
    mtu: int
    up: bool
    mac: str | None
    hairpin: bool = False  # bridge port flag: frames may leave by the port they came in


@dataclass(frozen=True)
class Address:
    index: int
    cidr: str  # "172.30.0.10/24"
    proto: int


@dataclass(frozen=True)
class RouteEntry:
    to: str  # "default" or CIDR
    via: str
    proto: int


@dataclass(frozen=True)
class Snapshot:
    """What nsnet reads of one network namespace."""

    links: tuple[Link, ...]
    addresses: tuple[Address, ...]
    routes: tuple[RouteEntry, ...]

    def link(self, name: str) -> Link | None:
        return next((link for link in self.links if link.name == name), None)

    def addresses_of(self, index: int) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.index == index)


def _link(msg: Any) -> Link:
    return Link(
        index=msg["index"],
        name=msg.get("ifname"),
        kind=msg.get(("linkinfo", "kind")),
        alias=msg.get("ifalias"),
        master=msg.get("master"),
        peer=msg.get("link"),
        mtu=msg.get("mtu"),
        up=bool(msg["flags"] & IFF_UP),
        mac=msg.get("address"),
        hairpin=bool(msg.get(("linkinfo", "slave_data", "mode"))),
    )


def _route(msg: Any) -> RouteEntry | None:
    gateway = msg.get("gateway")
    if msg["table"] != RT_TABLE_MAIN or msg["type"] != RTN_UNICAST or gateway is None:
        return None
    to = "default" if msg["dst_len"] == 0 else f"{msg.get('dst')}/{msg['dst_len']}"
    return RouteEntry(to, gateway, msg["proto"])


class Netlink:
    """Netlink sockets of the host and of named namespaces, opened on demand."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute  # lazy: `import pyroute2` costs ~0.2 s

        self._iproute = IPRoute
        self._sockets: dict[str | None, Any] = {None: IPRoute()}
        self._fds: dict[str, int] = {}

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        for fd in self._fds.values():
            os.close(fd)
        self._sockets.clear()
        self._fds.clear()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace_fd(self, name: str) -> int:
        """An fd of a named namespace, kept open for the run (never creates)."""
        if name not in self._fds:
            self._fds[name] = netns.open_fd(name)
        return self._fds[name]

    def is_open(self, name: str) -> bool:
        """Whether this session holds an fd of the namespace (it observed it as ours)."""
        return name in self._fds

    def adopt(self, name: str, fd: int) -> None:
        """Keep `fd` (from netns.create) as the namespace's fd."""
        self._fds[name] = fd

    def forget(self, name: str) -> None:
        """Drop the socket and fd of a namespace about to be deleted."""
        sock = self._sockets.pop(name, None)
        if sock is not None:
            sock.close()
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def sock(self, ns: str | None) -> Any:
        if ns not in self._sockets:
            with netns.entered(self.namespace_fd(ns)):  # type: ignore[arg-type]
                self._sockets[ns] = self._iproute()
        return self._sockets[ns]

    # reads

    def snapshot(self, ns: str | None) -> Snapshot:
        sock = self.sock(ns)
        links = tuple(_link(m) for m in sock.get_links())
        addresses = tuple(
            Address(m["index"], f"{m.get('address')}/{m['prefixlen']}", m.get("proto") or 0)
            for m in sock.get_addr(family=AF_INET)
        )
        routes = tuple(r for r in map(_route, sock.get_routes(family=AF_INET, table=RT_TABLE_MAIN)) if r)
        return Snapshot(links, addresses, routes)

    def link_names(self) -> dict[str, Link]:
        return {link.name: link for link in map(_link, self.sock(None).get_links())}

    def lookup(self, ns: str | None, name: str) -> int | None:
        found = self.sock(ns).link_lookup(ifname=name)
        return found[0] if found else None

    # writes

    def add_bridge(self, name: str) -> int:
        checkpoint()
        self.sock(None).link("add", ifname=name, kind="bridge")
        return self.lookup(None, name)  # type: ignore[return-value]

    def add_veth(self, host_name: str, ns: str, name: str) -> None:
        """Create the pair with its namespace end already inside `ns` (10x cheaper than moving it)."""
        checkpoint()
        peer = {"ifname": name, "net_ns_fd": self.namespace_fd(ns)}
        self.sock(None).link("add", ifname=host_name, kind="veth", peer=peer)

    def set_link(self, ns: str | None, index: int, **attrs: Any) -> None:
        """Set link attributes: ifalias, mtu, master, address (MAC), state ("up"/"down")."""
        checkpoint()
        self.sock(ns).link("set", index=index, **attrs)

    def delete_link(self, ns: str | None, index: int) -> None:
        checkpoint()
        self.sock(ns).link("del", index=index)

    def add_address(self, ns: str | None, index: int, cidr: str, proto: int) -> None:
        checkpoint()
        address, prefix = cidr.split("/")
        self.sock(ns).addr("add", index=index, address=address, prefixlen=int(prefix), proto=proto)

    def delete_address(self, ns: str | None, index: int, cidr: str) -> None:
        checkpoint()
        address, prefix = cidr.split("/")
        self.sock(ns).addr("del", index=index, address=address, prefixlen=int(prefix))

    def replace_route(self, ns: str | None, to: str, via: str, proto: int) -> None:
        checkpoint()
        self.sock(ns).route("replace", dst=_dst(to), gateway=via, proto=proto, table=RT_TABLE_MAIN)

    def delete_route(self, ns: str | None, to: str, via: str) -> None:
        checkpoint()
        self.sock(ns).route("del", dst=_dst(to), gateway=via, table=RT_TABLE_MAIN)

    def set_hairpin(self, host_name: str, on: bool) -> None:
        """Hairpin mode of a bridge port (the sysfs file is the simplest stable interface)."""
        checkpoint()
        _write(f"/sys/class/net/{host_name}/brport/hairpin_mode", "1" if on else "0")

    def write_sysctl(self, ns: str | None, key: str, value: str) -> None:
        """Write /proc/sys/KEY ("net/ipv6/conf/all/disable_ipv6") as seen from `ns`."""
        checkpoint()
        path = "/proc/sys/" + key
        if ns is None:
            _write(path, value)
        else:
            with netns.entered(self.namespace_fd(ns)):
                _write(path, value)


def _dst(to: str) -> str:
    return "0.0.0.0/0" if to == "default" else to


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
