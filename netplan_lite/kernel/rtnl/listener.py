"""The kernel's change announcements, for the agent's cache."""

from __future__ import annotations

import errno
import socket
import struct

from .nsid import RTM_DELNSID, RTM_NEWNSID, RTMGRP_NSID, decode_nsid
from .socket import SOL_NETLINK, NetlinkError, messages

NETLINK_LISTEN_ALL_NSID = 8
SO_RCVBUFFORCE = 33


class ChangeListener:
    """Announcements of the changes of `groups` (links, addresses, routes, qdiscs) in this namespace and in every
    namespace it has an id for (NETLINK_LISTEN_ALL_NSID), and of ids given and taken back (a
    namespace's id is taken back when it dies, before its inode number can be reused): one
    socket, which, unlike a socket opened inside each namespace, keeps none of them alive."""

    def __init__(self, groups: int, buffer_bytes: int = 32 << 20) -> None:
        """`groups`: the RTMGRP_* bits of what the caller caches (the id announcements come too)."""
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        self.sock.bind((0, groups | RTMGRP_NSID))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> tuple[set[int | None], bool]:
        """(ids of the namespaces that announced a change, None for this one; whether some
        announcements were lost: the buffer overflowed, or a datagram could not be read), without waiting."""
        changed: set[int | None] = set()
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(4))
            except BlockingIOError:
                return changed, False
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    return changed, True
                raise
            source = next(
                (struct.unpack("=i", raw[:4])[0] for level, kind, raw in ancillary if level == SOL_NETLINK and kind == NETLINK_LISTEN_ALL_NSID), None
            )
            try:
                changed |= _announced(data, source)
            except NetlinkError:
                return changed, True


def _announced(data: bytes, source: int | None) -> set[int | None]:
    """The namespaces one datagram of announcements is about: its sender (`source`, None for
    this namespace), or for our own RTM_NEWNSID/RTM_DELNSID the id given or taken back."""
    found: set[int | None] = set()
    for kind, _, offset, end in messages(data):
        ours = source is None and kind in (RTM_NEWNSID, RTM_DELNSID)  # ids in our own id space
        found.add(decode_nsid(data, offset, end) if ours else source)
    return found
