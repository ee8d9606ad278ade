"""The only module that speaks netlink (through the minimal codec in rtnl/).

Reads return small records holding only the fields the diff needs; writes
take plain values. One socket per namespace, opened after entering it with
setns (see netns.py), reused for the whole run.
"""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass
from typing import Any

from . import netns
from ..faults import checkpoint
from ..model.netem import Netem
from .rtnl import address, link, nsid, qdisc, route
from .rtnl.address import AddrMsg
from .rtnl.link import LinkMsg
from .rtnl.qdisc import QdiscMsg
from .rtnl.route import ConnectedMsg, RouteMsg
from .rtnl.socket import RtnlSocket


@dataclass(frozen=True)
class Snapshot:
    """What nsnet reads of one network namespace."""

    links: tuple[LinkMsg, ...]
    addresses: tuple[AddrMsg, ...]  # both families (AddrMsg.family)
    routes: tuple[RouteMsg, ...]  # both families: every main-table route that is not the kernel's (rtnl.route.configured_route)
    connected: tuple[ConnectedMsg, ...] = ()  # the kernel's routes for its IPv4 addresses' prefixes
    qdiscs: tuple[QdiscMsg, ...] = ()  # root qdiscs of links that have one of their own (rtnl.qdisc.root_qdiscs)

    def link(self, name: str) -> LinkMsg | None:
        return next((each for each in self.links if each.name == name), None)

    def addresses_of(self, index: int) -> tuple[AddrMsg, ...]:
        return tuple(a for a in self.addresses if a.index == index)


def raise_open_file_limit() -> None:
    """A session holds an fd and a socket per namespace of ours: 2000 for a 1000-namespace lab,
    past the soft limit of 1024 a Debian login gets. Raise it to the hard limit, as Go programs do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_snapshot(sock: RtnlSocket, links: tuple[LinkMsg, ...] | None = None) -> Snapshot:
    """What `sock`'s namespace holds: links (unless already read), addresses and main-table
    routes of both families, IPv4 connected routes, root qdiscs."""
    routes = route.dump_routes(sock, None)
    return Snapshot(
        tuple(link.dump_links(sock)) if links is None else links,
        tuple(address.dump_addresses(sock)),
        tuple(r for r in map(route.configured_route, routes) if r),
        tuple(r for r in map(route.connected_route, routes) if r),
        tuple(qdisc.root_qdiscs(sock)),
    )


class Netlink:
    """Netlink sockets of the host and of named namespaces, opened on demand."""

    def __init__(self) -> None:
        raise_open_file_limit()
        self._sockets: dict[str | None, RtnlSocket] = {None: RtnlSocket()}
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

    def sock(self, ns: str | None) -> RtnlSocket:
        if ns not in self._sockets:
            with netns.entered(self.namespace_fd(ns)):  # type: ignore[arg-type]
                self._sockets[ns] = RtnlSocket()
        return self._sockets[ns]

    # reads

    def links(self, ns: str | None, kind: str | None = None) -> tuple[LinkMsg, ...]:
        """All links, or those of one kind (filtered in the kernel). Raises FileNotFoundError
        if the namespace vanished, OSError(EINVAL) for a file that is not a mounted namespace."""
        return tuple(link.dump_links(self.sock(ns), kind))

    def link_by_index(self, ns: str | None, index: int) -> LinkMsg | None:
        try:
            return link.link_by_index(self.sock(ns), index)
        except OSError as err:
            if err.errno == errno.ENODEV:
                return None
            raise

    def snapshot(self, ns: str | None, links: tuple[LinkMsg, ...] | None = None) -> Snapshot:
        """Links (unless already read), addresses, routes and root qdiscs (see read_snapshot)."""
        return read_snapshot(self.sock(ns), links)

    def qdiscs(self, ns: str | None) -> tuple[QdiscMsg, ...]:
        """The root qdiscs of links that have one of their own (netem, or one set by hand)."""
        return tuple(qdisc.root_qdiscs(self.sock(ns)))

    def lookup(self, ns: str | None, name: str) -> int | None:
        return link.index_of(self.sock(ns), name)

    def nsid(self, ns: str | None, other: str) -> int | None:
        """The id namespace `ns` (None: the host) gives namespace `other`: what its links'
        link_netnsid name `other` by (None: it gives it none yet)."""
        return nsid.nsid_of(self.sock(ns), self.namespace_fd(other))

    # writes (each passes a fault-injection checkpoint first)

    def add_bridge(self, name: str) -> int:
        checkpoint()
        link.add_bridge(self.sock(None), name)
        return self.lookup(None, name)  # type: ignore[return-value]

    def add_veth(self, host_name: str, ns: str, name: str) -> None:
        """Create the pair with its namespace end already inside `ns` (10x cheaper than moving it)."""
        checkpoint()
        link.add_veth(self.sock(None), host_name, name, self.namespace_fd(ns))

    def add_veth_pair(self, ns_a: str | None, name_a: str, ns_b: str, name_b: str) -> None:
        """A point-to-point pair in one request: `name_a` in `ns_a`, its peer `name_b` created
        directly in `ns_b` (no host end, nothing moved)."""
        checkpoint()
        link.add_veth(self.sock(ns_a), name_a, name_b, self.namespace_fd(ns_b))

    def set_link(self, ns: str | None, index: int, **attrs: Any) -> None:
        """Link attributes in one request (see rtnl.link.set_link)."""
        checkpoint()
        link.set_link(self.sock(ns), index, **attrs)

    def delete_link(self, ns: str | None, index: int) -> None:
        checkpoint()
        link.delete_link(self.sock(ns), index)

    def add_address(self, ns: str | None, index: int, cidr: str, proto: int) -> None:
        checkpoint()
        address.add_address(self.sock(ns), index, cidr, proto)

    def delete_address(self, ns: str | None, index: int, cidr: str) -> None:
        checkpoint()
        address.delete_address(self.sock(ns), index, cidr)

    def replace_route(self, ns: str | None, msg: RouteMsg) -> None:
        """Create the route, or replace the one with its destination and metric (see rtnl.route)."""
        checkpoint()
        route.replace_route(self.sock(ns), msg)

    def delete_route(self, ns: str | None, msg: RouteMsg) -> None:
        """Delete the route with msg's destination, type and metric (all its next hops)."""
        checkpoint()
        route.delete_route(self.sock(ns), msg)

    def set_netem(self, ns: str | None, index: int, netem: Netem, how: str) -> None:
        """Make `netem` the root qdisc of link `index`: `how` is "add", "change" (in place, the
        queue kept) or "replace" (see rtnl.qdisc.set_netem; NetemUnavailable without netem)."""
        checkpoint()
        qdisc.set_netem(self.sock(ns), index, netem, how)

    def delete_qdisc(self, ns: str | None, index: int) -> None:
        """Delete the link's root qdisc: back to the kernel's default."""
        checkpoint()
        qdisc.delete_root_qdisc(self.sock(ns), index)
