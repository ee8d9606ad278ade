"""`nsnet test`, the kernel part: the lab's namespaces, their addresses, and the probes on the wire.

Every socket is opened inside its source namespace (setns into the
namespace's fd, socket(), setns back: ~20 us) and stays bound to it, so one
process and one event loop (epoll, through `selectors`) run every probe of
every namespace at once: no `ip netns exec` and no process or thread per
probe. A ping uses one raw ICMP socket per source namespace and family; its
echoes carry distinct (id, sequence) pairs and this run's random token, and
a reply or an ICMP error quoting an echo is matched by (the target address,
id, sequence). A TCP probe is a non-blocking connect, a UDP probe a connected
datagram socket. Replies are timestamped by the kernel (SO_TIMESTAMPNS) and
a TCP connection's RTT is the kernel's (TCP_INFO), so a busy loop does not
inflate them. engine/probes.py decides what an answer means.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import re
import secrets
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Iterator, Mapping, Sequence

from . import namespace_exec, netns
from .netlink import Netlink
from ..engine.probes import RESEND, Answer, Method, Outcome, Probe, settled, usable_addresses
from ..errors import KernelError, NsnetError
from ..model.topology import Expect, IPAddress, Namespace, Topology

SO_TIMESTAMPNS, SO_RCVBUFFORCE = 35, 33  # <asm-generic/socket.h>; the socket module names neither
SOL_RAW, ICMP_FILTER, ICMP6_FILTER = 255, 1, 1  # <linux/icmp.h>, <linux/icmpv6.h>
TCP_INFO_RTT = 68  # offset of tcpi_rtt (microseconds) in struct tcp_info
TCP_RETRY = 1.0  # an unanswered connection attempt is replaced by a new one (a fresh SYN) after this long
BATCH = 256  # sends between two looks at the sockets: replies are read while the rest are still being sent
RCVBUF = 4 << 20  # a raw socket may get hundreds of replies in a burst
PAYLOAD = 48  # bytes of zeros after the token: 64-byte echoes, as ping sends

_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_ECHO_REQUEST = {4: 8, 6: 128}
_ID_SEQ = struct.Struct("!HH")
_TIMESPEC = struct.Struct("qq")
_UDP_NUMBER = re.compile(rb"nsnet-test (\d+)")
_NOT_SENT = {
    errno.EINVAL: "a blackhole route",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EACCES: "prohibited",
    errno.EPERM: "a firewall rule dropped it",
    errno.ENETUNREACH: "no route",
}
_ICMP4_UNREACHABLE = {0: "network unreachable", 1: "host unreachable", 3: "port unreachable", 9: "prohibited", 10: "prohibited", 13: "prohibited"}
_ICMP6_UNREACHABLE = {
    0: "no route",
    1: "prohibited",
    3: "address unreachable",
    4: "port unreachable",
    5: "source address failed policy",
    6: "reject route",
}


# the lab


@dataclass(frozen=True)
class Lab:
    fds: Mapping[str, int]  # each namespace of the file: an open fd, checked to be the topology's
    addresses: Mapping[str, tuple[IPAddress, ...]]  # each namespace's usable addresses (engine/probes.usable_addresses)


@contextlib.contextmanager
def open_lab(topology: Topology, source: str) -> Iterator[Lab]:
    """Every namespace of the file, opened and read, or a one-line error: a namespace missing or
    not the topology's (its lo does not carry the label: `nsnet apply` has not made it), a data
    source that is gone. The fds stay open for the probes and close on exit."""
    with Netlink() as nl:
        for ns in topology.namespaces:
            _open(nl, topology.name, ns, source)
        addresses = {ns.name: usable_addresses(a.cidr for a in nl.snapshot(ns.name).addresses) for ns in topology.namespaces}
        yield Lab({ns.name: nl.namespace_fd(ns.name) for ns in topology.namespaces}, addresses)


def _open(nl: Netlink, topology: str, ns: Namespace, source: str) -> None:
    if ns.path is None:  # the label check and its messages are `nsnet exec`'s
        nl.adopt(ns.name, namespace_exec.open_target(topology, ns.name, source).fd)
        return
    try:
        nl.adopt(ns.name, os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC))
        nl.links(ns.name)  # setns refuses a file that is not a network namespace
    except FileNotFoundError:
        raise NsnetError(f"namespace {ns.name!r}: its data source {ns.path} does not exist (has its container stopped?)") from None
    except OSError as err:
        raise NsnetError(f"namespace {ns.name!r}: cannot use its data source {ns.path}: {err.strerror or err}") from None


# the probes


def run_probes(probes: Sequence[Probe], fds: Mapping[str, int], wait: float) -> list[Answer]:
    """Run every probe at once, each from inside its source namespace, until each is settled
    (engine/probes.settled) or its window (Probe.window) is over; one answer per probe, in order."""
    with _Loop(fds) as loop:
        return loop.run(probes, wait)


def socket_in(fd: int, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket of the namespace `fd` (it stays bound to it). Failing to open one
    (no CAP_NET_RAW, out of files) stops the run: it says nothing about the lab."""
    try:
        with netns.entered(fd):
            return socket.socket(_FAMILIES[family], kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
    except OSError as err:
        raise KernelError(f"cannot open a probe socket in a namespace: {err.strerror or err}") from None


@dataclass
class _Running:
    """A probe in flight."""

    probe: Probe
    deadline: float
    address: IPAddress
    target: str  # the address as sockets take it, printed once (printing an IPv6 address is slow)
    first: float = 0.0  # monotonic time of the first send
    attempts: int = 0
    generation: int = 0  # of its one valid timer
    last: Answer | None = None  # the latest answer that did not settle it
    first_reply: Answer | None = None  # a reachable ping's first reply: it passed; one more echo times the path
    confirm_from: float = 0.0  # wall-clock time of that reply: answers to earlier attempts no longer count
    sock: socket.socket | None = None  # the TCP attempt or UDP socket open now
    sent: list[float] = field(default_factory=list)  # wall-clock time of each UDP datagram (kernel timestamps are wall-clock)
    connect_started: float = 0.0


class _Icmp:
    """The raw ICMP socket of one source namespace and family, and the echoes it has sent."""

    def __init__(self, fd: int, family: int, token: bytes):
        self.family, self.token = family, token
        self.sock = socket_in(fd, family, socket.SOCK_RAW, socket.IPPROTO_ICMP if family == 4 else socket.IPPROTO_ICMPV6)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if family == 4:  # only echo replies, unreachables and time exceeded wake us (not the echoes others send here)
            self.sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~(1 << 0 | 1 << 3 | 1 << 11) & 0xFFFFFFFF))
        else:
            self.sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter(1, 3, 129))
        self.counter = secrets.randbits(32)  # (id, seq) = its halves: distinct for 2**32 echoes, unlike another run's
        self.sent: dict[tuple[IPAddress, int, int], tuple[int, float]] = {}  # (target, id, seq) -> (probe index, wall-clock send)

    def echo(self, index: int, address: IPAddress, text: str) -> None:
        """Send one echo request (raises OSError as sendto does)."""
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        ident, seq = self.counter >> 16, self.counter & 0xFFFF
        packet, sent = echo_request(self.family, ident, seq, self.token), time.time()  # before: the reply may come within sendto
        self.sock.sendto(packet, (text, 0))
        self.sent[(address, ident, seq)] = (index, sent)

    def receive(self) -> Iterator[tuple[int, float, float, Outcome, str]]:
        """(probe index, send time, RTT, outcome, detail) of each waiting packet that answers one of our echoes."""
        while True:
            try:
                data, ancillary, _, peer = self.sock.recvmsg(2048, socket.CMSG_SPACE(_TIMESPEC.size))
            except OSError:  # nothing waiting (EAGAIN)
                return
            parsed = parse_icmp4(data, self.token) if self.family == 4 else parse_icmp6(data, IPv6Address(peer[0].split("%")[0]), self.token)
            match = parsed and self.sent.get(parsed[0])
            if parsed and match:
                index, sent = match
                yield index, sent, max(0.0, kernel_time(ancillary) - sent), parsed[1], parsed[2]


class _Loop:
    def __init__(self, fds: Mapping[str, int]):
        self.fds = fds
        self.selector = selectors.DefaultSelector()
        self.token = secrets.token_bytes(8)
        self.icmp: dict[tuple[str, int], _Icmp] = {}
        self.running: dict[int, _Running] = {}
        self.answers: list[Answer | None] = []
        self.timers: list[tuple[float, int, int]] = []  # (when, probe index, generation)

    def __enter__(self) -> _Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        for running in self.running.values():
            self._close(running)
        for icmp in self.icmp.values():
            icmp.sock.close()
        self.selector.close()

    def run(self, probes: Sequence[Probe], wait: float) -> list[Answer]:
        start = time.monotonic()
        self.answers = [None] * len(probes)
        for index, probe in enumerate(probes):
            if probe.address is None:
                self.answers[index] = Answer(Outcome.NO_ADDRESS)
            else:
                self.running[index] = _Running(probe, start + probe.window(wait), probe.address, str(probe.address))
                heapq.heappush(self.timers, (start, index, 0))
        while self.running:
            now = time.monotonic()
            sent = 0
            while self.timers and self.timers[0][0] <= now and sent < BATCH:
                _, index, generation = heapq.heappop(self.timers)
                running = self.running.get(index)
                if running is None or running.generation != generation:
                    continue  # settled, or rescheduled since
                if now >= running.deadline:
                    silence = Answer(Outcome.TIMEOUT, detail=f"no reply in {running.deadline - start:g} s")
                    self._finish(index, running.first_reply or running.last or silence, now)
                else:
                    self._send(index, running, now)
                    sent += 1
            if not self.running:
                break
            # every running probe has a timer (its next send, or its deadline): wait for the first, or for answers
            timeout = 0.0 if sent == BATCH else max(0.0, self.timers[0][0] - now)
            for key, _ in self.selector.select(timeout):
                key.data()
        return [a for a in self.answers if a is not None]

    # sending

    def _schedule(self, index: int, running: _Running, when: float) -> None:
        running.generation += 1
        heapq.heappush(self.timers, (min(when, running.deadline), index, running.generation))

    def _send(self, index: int, running: _Running, now: float) -> None:
        probe = running.probe
        running.first = running.first or now
        interval = TCP_RETRY if probe.method is Method.TCP else RESEND
        try:
            if probe.method is Method.PING:
                self._icmp(probe.source, running.address.version).echo(index, running.address, running.target)
            elif probe.method is Method.TCP:
                self._connect(index, running)
            else:
                self._datagram(index, running)
        except (BlockingIOError, InterruptedError):  # a full send buffer: soon again, not an attempt
            self._schedule(index, running, now + 0.01)
            return
        except OSError as err:
            if err.errno == errno.ENOBUFS:
                self._schedule(index, running, now + 0.01)
                return
            running.attempts += 1
            self._answered(index, running, Answer(Outcome.UNREACHABLE, detail=not_sent(err)), now)
            interval = RESEND
        else:
            running.attempts += 1
        if index in self.running:
            self._schedule(index, running, now + interval)

    def _icmp(self, namespace: str, family: int) -> _Icmp:
        key = (namespace, family)
        if key not in self.icmp:
            icmp = self.icmp[key] = _Icmp(self.fds[namespace], family, self.token)
            self.selector.register(icmp.sock, selectors.EVENT_READ, lambda: self._echoes(icmp))
        return self.icmp[key]

    def _connect(self, index: int, running: _Running) -> None:
        probe = running.probe
        self._close(running)
        sock = running.sock = socket_in(self.fds[probe.source], running.address.version, socket.SOCK_STREAM)
        running.connect_started = time.monotonic()
        result = sock.connect_ex((running.target, probe.port))
        if result not in (0, errno.EINPROGRESS):
            self._close(running)
            raise OSError(result, os.strerror(result))
        self.selector.register(sock, selectors.EVENT_WRITE, lambda: self._connected(index, running, sock))

    def _datagram(self, index: int, running: _Running) -> None:
        probe = running.probe
        if running.sock is None:
            sock = socket_in(self.fds[probe.source], running.address.version, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.connect((running.target, probe.port))  # a connected socket is told of ICMP errors
            except OSError:  # no route: not sent, and a new socket next time
                sock.close()
                raise
            running.sock = sock
            self.selector.register(sock, selectors.EVENT_READ, lambda: self._reply(index, running, sock))
        running.sent.append(time.time())
        try:
            running.sock.send(b"nsnet-test %d\n" % (len(running.sent) - 1))
        except ConnectionRefusedError:  # the ICMP error of an earlier datagram
            self._answered(index, running, Answer(Outcome.REFUSED, detail="port unreachable"), time.monotonic())

    # receiving

    def _echoes(self, icmp: _Icmp) -> None:
        now = time.monotonic()
        for index, sent, rtt, outcome, detail in icmp.receive():
            running = self.running.get(index)
            if running is not None:
                self._answered(index, running, Answer(outcome, rtt, detail), now, sent)

    def _connected(self, index: int, running: _Running, sock: socket.socket) -> None:
        now = time.monotonic()
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error == 0:
            answer = Answer(Outcome.REPLY, tcp_rtt(sock) or now - running.connect_started, "connected")
        elif error == errno.ECONNREFUSED:
            answer = Answer(Outcome.REFUSED, now - running.connect_started, "connection refused")
        else:
            answer = Answer(Outcome.UNREACHABLE, now - running.connect_started, f"connect: {os.strerror(error)}")
        self._close(running)
        self._answered(index, running, answer, now)
        if index in self.running and answer.outcome is not Outcome.REPLY:  # retried: sooner than an unanswered attempt
            self._schedule(index, running, now + RESEND)

    def _reply(self, index: int, running: _Running, sock: socket.socket) -> None:
        now = time.monotonic()
        try:
            data, ancillary, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(_TIMESPEC.size))
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:  # the ICMP port unreachable, which quotes no datagram: timed from the last one
            answer = Answer(Outcome.REFUSED, max(0.0, time.time() - running.sent[-1]), "port unreachable")
        except OSError as err:
            answer = Answer(Outcome.UNREACHABLE, detail=f"{os.strerror(err.errno) if err.errno else err}")
        else:
            number = _UDP_NUMBER.search(data)
            sent = running.sent[int(number.group(1))] if number and int(number.group(1)) < len(running.sent) else running.sent[-1]
            self._answered(index, running, Answer(Outcome.REPLY, max(0.0, kernel_time(ancillary) - sent), f"{len(data)}-byte reply"), now, sent)
            return
        self._answered(index, running, answer, now)

    # settling

    def _answered(self, index: int, running: _Running, answer: Answer, now: float, sent: float | None = None) -> None:
        """Settle the probe or remember the answer. A ping's first reply passes it, but its RTT may
        include neighbour resolution (or a fresh lab's first seconds): one more echo at once, and
        that echo's answer is the one reported (the first's, if it does not come back)."""
        probe = running.probe
        if running.first_reply is not None:
            if sent is None or sent >= running.confirm_from:  # not a late answer to an echo from before the first reply
                self._finish(index, answer if answer.outcome is Outcome.REPLY else running.first_reply, now)
            return
        if answer.outcome is Outcome.REPLY and probe.method is Method.PING and probe.expect is Expect.REACHABLE:
            running.first_reply, running.confirm_from = answer, time.time()
            self._schedule(index, running, now)
        elif settled(probe, answer.outcome):
            self._finish(index, answer, now)
        else:
            running.last = answer

    def _finish(self, index: int, answer: Answer, now: float) -> None:
        running = self.running.pop(index)
        self._close(running)
        self.answers[index] = Answer(answer.outcome, answer.rtt, answer.detail, running.attempts, now - running.first)

    def _close(self, running: _Running) -> None:
        if running.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(running.sock)
            running.sock.close()
            running.sock = None


# packets


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(family: int, ident: int, seq: int, token: bytes) -> bytes:
    """An ICMP or ICMPv6 echo request; the kernel computes an ICMPv6 checksum itself (RFC 3542)."""
    body = token + bytes(PAYLOAD)
    header = struct.pack("!BBHHH", _ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == 6:
        return header + body
    return header[:2] + struct.pack("!H", checksum(header + body)) + header[4:] + body


Parsed = tuple[tuple[IPAddress, int, int], Outcome, str]  # ((target, id, seq), outcome, detail)


def parse_icmp4(data: bytes, token: bytes) -> Parsed | None:
    """An IPv4 packet as a raw ICMP socket receives it (IP header first): an echo reply carrying
    our token, or an unreachable or time exceeded quoting an echo request."""
    ihl = (data[0] & 0x0F) * 4 if data else 0
    if len(data) < ihl + 8:
        return None
    kind, code = data[ihl], data[ihl + 1]
    sender = IPv4Address(data[12:16])
    if kind == 0:
        if data[ihl + 8 : ihl + 8 + len(token)] != token:
            return None
        return (sender, *_ID_SEQ.unpack_from(data, ihl + 4)), Outcome.REPLY, "echo reply"
    inner = ihl + 8
    if kind not in (3, 11) or len(data) < inner + 20:
        return None
    inner_ihl = (data[inner] & 0x0F) * 4
    quoted = inner + inner_ihl
    if data[inner + 9] != socket.IPPROTO_ICMP or len(data) < quoted + 8 or data[quoted] != _ECHO_REQUEST[4]:
        return None
    what = "TTL exceeded" if kind == 11 else _ICMP4_UNREACHABLE.get(code, f"destination unreachable (code {code})")
    return (IPv4Address(data[inner + 16 : inner + 20]), *_ID_SEQ.unpack_from(data, quoted + 4)), Outcome.UNREACHABLE, f"{what} (ICMP from {sender})"


def parse_icmp6(data: bytes, sender: IPv6Address, token: bytes) -> Parsed | None:
    """An ICMPv6 message as a raw ICMPv6 socket receives it (no IPv6 header), from `sender`."""
    if len(data) < 8:
        return None
    kind, code = data[0], data[1]
    if kind == 129:
        if data[8 : 8 + len(token)] != token:
            return None
        return (sender, *_ID_SEQ.unpack_from(data, 4)), Outcome.REPLY, "echo reply"
    quoted = 8 + 40  # the invoking packet's IPv6 header follows 4 unused bytes
    if kind not in (1, 3) or len(data) < quoted + 8 or data[8 + 6] != socket.IPPROTO_ICMPV6 or data[quoted] != _ECHO_REQUEST[6]:
        return None
    what = "hop limit exceeded" if kind == 3 else _ICMP6_UNREACHABLE.get(code, f"destination unreachable (code {code})")
    return (IPv6Address(data[8 + 24 : 8 + 40]), *_ID_SEQ.unpack_from(data, quoted + 4)), Outcome.UNREACHABLE, f"{what} (ICMPv6 from {sender})"


def icmp6_filter(*passed: int) -> bytes:
    """struct icmp6_filter: a bit per ICMPv6 type, set = blocked; every type blocked but `passed`."""
    words = [0xFFFFFFFF] * 8
    for kind in passed:
        words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The wall-clock time the kernel received a packet (SO_TIMESTAMPNS), or now."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds / 1e9
    return time.time()


def tcp_rtt(sock: socket.socket) -> float | None:
    """The kernel's RTT of a connected TCP socket (the handshake's, for a new one), or None."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_RTT + 4)
    except OSError:
        return None
    micros = struct.unpack_from("=I", info, TCP_INFO_RTT)[0] if len(info) >= TCP_INFO_RTT + 4 else 0
    return micros / 1e6 if micros else None


def not_sent(err: OSError) -> str:
    """Why the source's kernel refused to send (its route to the target): blackhole EINVAL,
    unreachable EHOSTUNREACH, prohibit EACCES, none ENETUNREACH (measured, both families)."""
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    return f"not sent: {_NOT_SENT.get(err.errno or 0, os.strerror(err.errno or 0).lower())} ({name})"
