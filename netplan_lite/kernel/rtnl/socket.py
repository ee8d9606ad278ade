"""The transport: a netlink socket, its request/acknowledgement, dump and get exchanges,
the one loop that splits what it receives into messages, and the attribute packing helpers
every family uses."""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Iterator, Self

# message types and flags
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400

SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
RT_SCOPE_UNIVERSE = 0  # rtm_scope / ifa_scope: the scope of nsnet's addresses and routes

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """The kernel refused a request (errno set)."""


def _align(n: int) -> int:
    return (n + 3) & ~3


# attributes


def attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def parse_attrs(data: bytes, offset: int, end: int, wanted: frozenset[int] | None = None) -> dict[int, bytes]:
    """Top-level attributes of a message body (only `wanted` kinds are copied out)."""
    found = {}
    unpack = _RTATTR.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= 0x3FFF
        if wanted is None or kind in wanted:
            found[kind] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def string_of(raw: bytes | None) -> str | None:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else None


def u32_of(raw: bytes | None) -> int | None:
    return struct.unpack("=I", raw[:4])[0] if raw else None


def netnsid_of(raw: bytes | None) -> int | None:
    """A namespace id (s32): None when absent or negative (-1: the namespace has none)."""
    value = struct.unpack("=i", raw[:4])[0] if raw else -1
    return value if value >= 0 else None


def mac_of(raw: bytes | None) -> str | None:
    return ":".join(f"{b:02x}" for b in raw) if raw else None


def ipv4_of(raw: bytes | None) -> str | None:
    return socket.inet_ntoa(raw[:4]) if raw else None


def messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, seq, body offset, end) of each message of one received datagram. Everything
    nsnet receives from netlink (answers, dumps, announcements, sock_diag) is split here; a
    length that does not fit raises instead of looping forever or reading past the datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise NetlinkError(errno.EBADMSG, "malformed netlink message")
        yield kind, seq, offset + _NLMSGHDR.size, offset + length
        offset += _align(length)


class NetlinkSocket:
    """One netlink socket of `protocol`, bound to the network namespace it was opened in."""

    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST, self.seq, 0) + body)
        return self.seq

    def _messages(self) -> Iterator[tuple[int, int, bytes, int, int]]:
        """(type, seq, buffer, body offset, end) of each message received, until the caller stops."""
        while True:
            data = self.sock.recv(1 << 20)
            for kind, seq, offset, end in messages(data):
                yield kind, seq, data, offset, end

    def request(self, kind: int, flags: int, body: bytes) -> None:
        """Send one request and wait for its acknowledgement; raise NetlinkError on refusal."""
        seq = self._send(kind, flags | NLM_F_ACK, body)
        for msg_kind, msg_seq, data, offset, _ in self._messages():
            if msg_seq == seq and msg_kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset)[0]
                if code:
                    raise NetlinkError(code, os.strerror(code))
                return

    def dump(self, kind: int, body: bytes) -> Iterator[tuple[bytes, int, int]]:
        """(buffer, body offset, end) of each message of a dump."""
        seq = self._send(kind, NLM_F_DUMP, body)
        for msg_kind, msg_seq, data, offset, end in self._messages():
            if msg_seq != seq:
                continue
            if msg_kind == NLMSG_DONE:
                return
            if msg_kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset)[0]
                if code == errno.EINTR:  # the dump was interrupted by a change: ask again
                    yield from self.dump(kind, body)
                    return
                raise NetlinkError(code, os.strerror(code))
            yield data, offset, end

    def get(self, kind: int, body: bytes) -> tuple[bytes, int, int]:
        """(buffer, body offset, end) of the one answer to a get request; NetlinkError on refusal."""
        seq = self._send(kind, 0, body)
        for msg_kind, msg_seq, data, offset, end in self._messages():
            if msg_seq != seq:
                continue
            if msg_kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset)[0]
                raise NetlinkError(code, os.strerror(code))
            return data, offset, end
        raise NetlinkError(errno.EIO, "no answer")  # unreachable: _messages only ends by raising


class RtnlSocket(NetlinkSocket):
    """A NETLINK_ROUTE socket with strict checking, which lets the kernel filter dumps
    (route dumps by table, link dumps by kind)."""

    def __init__(self) -> None:
        super().__init__(socket.NETLINK_ROUTE)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
