"""Namespace ids (RTM_*NSID): the id this namespace gives another, as asked and as announced."""

from __future__ import annotations

import socket
import struct

from .socket import RtnlSocket, attr_u32, netnsid_of, parse_attrs

RTM_NEWNSID, RTM_DELNSID, RTM_GETNSID = 88, 89, 90
RTMGRP_NSID = 1 << 27  # RTNLGRP_NSID (28): ids given to and taken from other namespaces

NETNSA_NSID, NETNSA_FD = 1, 3


def nsid_of(sock: RtnlSocket, netns_fd: int) -> int | None:
    """The id `sock`'s namespace gives the namespace `netns_fd` (None: it has none yet).
    The kernel assigns one when a veth spans the two, so every namespace of ours has one."""
    return decode_nsid(*sock.get(RTM_GETNSID, struct.pack("=Bxxx", socket.AF_UNSPEC) + attr_u32(NETNSA_FD, netns_fd)))


def decode_nsid(data: bytes, offset: int, end: int) -> int | None:
    """The namespace id an RTM_NEWNSID/RTM_DELNSID body (rtgenmsg, then attributes) is about;
    None for none (-1)."""
    return netnsid_of(parse_attrs(data, offset + 4, end).get(NETNSA_NSID))
