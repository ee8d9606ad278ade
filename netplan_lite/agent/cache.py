"""Snapshots of the host and of every namespace, kept current by the kernel's
change announcements (the agent's cache, see agent.py).

A namespace is read once, then again only after the kernel announced a change
in it. That is exact, not a guess, because:
- the listener subscribes before the first read, so a change is either in a
  read or announced after it;
- the kernel queues an announcement before the request that made the change
  returns, so draining the listener when a command arrives sees every change
  made before the command was started;
- a namespace is known by its inode, and forgotten when the host takes its id
  back (the kernel does so when it dies, before the inode number is reused):
  one deleted and made again under the same name is read afresh;
- lost announcements (a full buffer) drop the whole cache.

Only namespaces the host has an id for are cached (the kernel gives one to a
namespace as soon as a veth joins it to the host, so every namespace of a
topology has one); the command reads the others itself. The listener is one
socket on the host: unlike a socket inside each namespace, it keeps no
deleted namespace (and its veths) alive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..kernel import netns
from ..kernel.fanout import fan_out
from ..kernel.netlink import Snapshot, read_snapshot
from ..kernel.observe import Prefetched
from ..kernel.rtnl.listener import ChangeListener
from ..kernel.readers import announcing_groups
from ..kernel.rtnl.nsid import nsid_of
from ..kernel.rtnl.socket import RtnlSocket


@dataclass(frozen=True)
class Cached:
    inode: int
    nsid: int
    snapshot: Snapshot


def _read(name: str, inode: int, nsid: int) -> Cached | None:
    """A namespace's snapshot through a socket opened inside it and closed at once
    (the cache keeps no fd or socket of a namespace: they would keep it alive)."""
    try:
        fd = netns.open_fd(name)
    except FileNotFoundError:
        return None
    try:
        if os.fstat(fd).st_ino != inode:  # replaced since it was listed: the next refresh reads it
            return None
        with netns.entered(fd):
            sock = RtnlSocket()
        try:
            return Cached(inode, nsid, read_snapshot(sock))
        finally:
            sock.close()
    finally:
        os.close(fd)


class SnapshotCache:
    def __init__(self) -> None:
        # first: nothing read below can miss a change; exactly the groups the kinds' readers declare
        self.listener = ChangeListener(announcing_groups())
        self.host_sock = RtnlSocket()
        self.host: Snapshot | None = None
        self.namespaces: dict[str, Cached] = {}
        self.stale_ids: set[int | None] = set()
        self.generation = 0  # drains that found announcements (or lost some)
        self.changed_at: dict[int | None, int] = {}  # namespace id (None: the host) -> generation
        self.lost_at = 0  # generation of the last overflow

    def close(self) -> None:
        self.listener.close()
        self.host_sock.close()

    def forget(self) -> None:
        """Read everything again next time."""
        self.host, self.namespaces = None, {}

    def note_changes(self) -> None:
        """Drain the announcements (also while idle, so that the buffer never fills)."""
        changed, lost = self.listener.drain()
        if not (changed or lost):
            return
        self.generation += 1
        if lost:
            self.forget()
            self.lost_at = self.generation
        self.changed_at.update(dict.fromkeys(changed, self.generation))
        self.stale_ids |= changed

    def changed_since(self, generation: int) -> list[int | None] | None:
        """Ids of the namespaces (None: the host) announced changed after `generation`;
        None when announcements were lost since (anything may have changed)."""
        self.note_changes()
        if self.lost_at > generation:
            return None
        return [nsid for nsid, at in self.changed_at.items() if at > generation]

    def refresh(self) -> Prefetched:
        """The current host and namespaces, reading again only what changed."""
        self.note_changes()
        if None in self.stale_ids:
            self.host = None
        stale = {name for name, c in self.namespaces.items() if c.nsid in self.stale_ids}
        self.stale_ids.clear()
        inodes = self._inodes()
        self.namespaces = {name: c for name, c in self.namespaces.items() if name not in stale and inodes.get(name) == c.inode}
        self._read_new(inodes)
        if self.host is None:
            self.host = read_snapshot(self.host_sock)
        return Prefetched(self.host, {name: c.snapshot for name, c in self.namespaces.items()}, {name: c.nsid for name, c in self.namespaces.items()})

    def _inodes(self) -> dict[str, int]:
        found = {}
        for name in netns.list_names():
            try:
                found[name] = os.stat(netns.path_of(name)).st_ino
            except FileNotFoundError:
                continue
        return found

    def _read_new(self, inodes: dict[str, int]) -> None:
        todo = [(name, *found) for name in inodes if name not in self.namespaces and (found := self._identify(name))]
        for (name, _, _), cached in zip(todo, fan_out(lambda item: _read(*item), todo), strict=True):
            if cached is not None:
                self.namespaces[name] = cached

    def _identify(self, name: str) -> tuple[int, int] | None:
        """(inode, id) of a namespace the host has an id for, from one fd."""
        try:
            fd = netns.open_fd(name)
        except FileNotFoundError:
            return None
        try:
            nsid = nsid_of(self.host_sock, fd)
            return None if nsid is None else (os.fstat(fd).st_ino, nsid)
        except OSError:  # not a namespace (a plain file under /run/netns)
            return None
        finally:
            os.close(fd)
