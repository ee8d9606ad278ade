"""kernel/reachability.py without root: the packets it builds and parses, and its event loop run
over 127.0.0.1 (TCP and UDP: no raw socket) with entering a namespace made a no-op."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from netplan_lite.engine.probes import Method, Outcome, Probe
from netplan_lite.errors import KernelError
from netplan_lite.kernel import reachability
from netplan_lite.model.topology import Expect

TOKEN = b"\x01\x02\x03\x04\x05\x06\x07\x08"
LOCAL = ip_address("127.0.0.1")


def ipv4_header(src: str, dst: str, proto: int = 1) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, proto, 0, IPv4Address(src).packed, IPv4Address(dst).packed)


def ipv6_header(src: str, dst: str, next_header: int = 58) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, 8, next_header, 64, IPv6Address(src).packed, IPv6Address(dst).packed)


# packets


def test_an_ipv4_echo_request_carries_a_valid_checksum_id_seq_and_the_token():
    packet = reachability.echo_request(4, 0x1234, 0xABCD, TOKEN)
    assert packet[:2] == b"\x08\x00" and packet[4:8] == b"\x12\x34\xab\xcd" and packet[8:16] == TOKEN and len(packet) == 64
    assert reachability.checksum(packet) == 0  # a packet with its checksum in place sums to zero


def test_an_ipv6_echo_request_leaves_the_checksum_to_the_kernel():
    packet = reachability.echo_request(6, 1, 2, TOKEN)
    assert packet[:4] == b"\x80\x00\x00\x00" and packet[4:8] == b"\x00\x01\x00\x02" and packet[8:16] == TOKEN


def test_checksum_of_an_odd_length_and_the_rfc_1071_example():
    assert reachability.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert reachability.checksum(b"\x01") == ~0x0100 & 0xFFFF


def test_an_ipv4_echo_reply_is_matched_by_sender_id_and_seq_and_needs_our_token():
    reply = ipv4_header("10.0.0.3", "10.0.0.1") + struct.pack("!BBHHH", 0, 0, 0, 7, 9) + TOKEN + bytes(48)
    assert reachability.parse_icmp4(reply, TOKEN) == ((IPv4Address("10.0.0.3"), 7, 9), Outcome.REPLY, "echo reply")
    assert reachability.parse_icmp4(reply, b"othertok") is None  # another program's ping
    assert reachability.parse_icmp4(reply[:24], TOKEN) is None


def test_an_ipv4_unreachable_is_matched_by_the_echo_it_quotes():
    quoted = ipv4_header("10.0.0.1", "10.9.0.5") + struct.pack("!BBHHH", 8, 0, 0, 7, 10)
    error = ipv4_header("10.0.0.254", "10.0.0.1") + struct.pack("!BBHI", 3, 1, 0, 0) + quoted
    assert reachability.parse_icmp4(error, TOKEN) == (
        (IPv4Address("10.9.0.5"), 7, 10),
        Outcome.UNREACHABLE,
        "host unreachable (ICMP from 10.0.0.254)",
    )
    ttl = ipv4_header("10.0.0.254", "10.0.0.1") + struct.pack("!BBHI", 11, 0, 0, 0) + quoted
    assert reachability.parse_icmp4(ttl, TOKEN)[2] == "TTL exceeded (ICMP from 10.0.0.254)"
    udp = ipv4_header("10.0.0.254", "10.0.0.1") + struct.pack("!BBHI", 3, 3, 0, 0) + ipv4_header("10.0.0.1", "10.9.0.5", proto=17) + bytes(8)
    assert reachability.parse_icmp4(udp, TOKEN) is None  # not about an echo


def test_ipv6_replies_and_errors():
    sender = IPv6Address("fd00::3")
    reply = struct.pack("!BBHHH", 129, 0, 0, 7, 9) + TOKEN
    assert reachability.parse_icmp6(reply, sender, TOKEN) == ((sender, 7, 9), Outcome.REPLY, "echo reply")
    assert reachability.parse_icmp6(reply, sender, b"othertok") is None
    quoted = ipv6_header("fd00::1", "fd66::5") + struct.pack("!BBHHH", 128, 0, 0, 7, 11)
    error = struct.pack("!BBHI", 1, 0, 0, 0) + quoted
    router = IPv6Address("fd00::fe")
    assert reachability.parse_icmp6(error, router, TOKEN) == ((IPv6Address("fd66::5"), 7, 11), Outcome.UNREACHABLE, "no route (ICMPv6 from fd00::fe)")
    assert reachability.parse_icmp6(struct.pack("!BBHI", 3, 0, 0, 0) + quoted, router, TOKEN)[2] == "hop limit exceeded (ICMPv6 from fd00::fe)"
    assert reachability.parse_icmp6(struct.pack("!BBHI", 1, 4, 0, 0) + ipv6_header("fd00::1", "fd66::5", 17) + bytes(8), router, TOKEN) is None


def test_the_icmpv6_filter_passes_only_the_types_asked_for():
    words = struct.unpack("=8I", reachability.icmp6_filter(1, 3, 129))
    assert words[0] == 0xFFFFFFFF & ~(1 << 1 | 1 << 3) and words[4] == 0xFFFFFFFF & ~(1 << 1)
    assert all(w == 0xFFFFFFFF for i, w in enumerate(words) if i not in (0, 4))


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (errno.EINVAL, "not sent: a blackhole route (EINVAL)"),
        (errno.EHOSTUNREACH, "not sent: host unreachable (EHOSTUNREACH)"),
        (errno.EACCES, "not sent: prohibited (EACCES)"),
        (errno.ENETUNREACH, "not sent: no route (ENETUNREACH)"),
        (errno.EMSGSIZE, "not sent: message too long (EMSGSIZE)"),
    ],
)
def test_why_the_source_would_not_send(code, text):
    assert reachability.not_sent(OSError(code, "x")) == text


def test_kernel_time_from_the_timestamp_or_now():
    stamp = struct.pack("qq", 1700000000, 250_000_000)
    assert reachability.kernel_time([(socket.SOL_SOCKET, reachability.SO_TIMESTAMPNS, stamp)]) == 1700000000.25
    assert reachability.kernel_time([]) > 1700000000


# the loop, over 127.0.0.1


@pytest.fixture
def here(monkeypatch):
    """Sockets "in a namespace" open in this one: entering is a no-op, the fd unused."""
    monkeypatch.setattr(reachability.netns, "entered", lambda fd: contextlib.nullcontext())
    return {"a": -1}


@pytest.fixture
def listening():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        yield srv.getsockname()[1]


def closed_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def udp_echo():
    """A UDP echo server on 127.0.0.1 in a thread; `silent` is a bound socket that never answers."""
    srv, silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    silent.bind(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                data, peer = srv.recvfrom(2048)
                srv.sendto(b"echo " + data, peer)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield srv.getsockname()[1], silent.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        srv.close()
        silent.close()


def probe(method: Method, port: int, expect: Expect = Expect.REACHABLE) -> Probe:
    return Probe(1, "a", "127.0.0.1", LOCAL, 4, method, port, expect)


def test_tcp_connects_and_refusals_in_one_loop(here, listening):
    refused = closed_port()
    answers = reachability.run_probes(
        [probe(Method.TCP, listening), probe(Method.TCP, refused), probe(Method.TCP, refused, Expect.UNREACHABLE)], here, wait=0.5
    )
    connected, retried, expected = answers
    assert (connected.outcome, connected.detail, connected.attempts) == (Outcome.REPLY, "connected", 1) and connected.rtt is not None
    assert (retried.outcome, retried.detail) == (Outcome.REFUSED, "connection refused")
    assert retried.attempts >= 2 and retried.elapsed >= 0.3  # a reachable probe is retried until its window ends
    assert (expected.outcome, expected.attempts) == (Outcome.REFUSED, 1) and expected.elapsed < 0.2  # settled by the refusal


def test_udp_replies_port_unreachables_and_silence(here, udp_echo):
    echo, silent = udp_echo
    replied, refused, quiet = reachability.run_probes(
        [probe(Method.UDP, echo), probe(Method.UDP, closed_port(socket.SOCK_DGRAM), Expect.UNREACHABLE), probe(Method.UDP, silent)], here, wait=0.5
    )
    assert replied.outcome is Outcome.REPLY and replied.detail.endswith("-byte reply") and 0 <= replied.rtt < 0.5 and replied.attempts == 1
    assert (refused.outcome, refused.detail) == (Outcome.REFUSED, "port unreachable")
    assert (quiet.outcome, quiet.detail, quiet.rtt) == (Outcome.TIMEOUT, "no reply in 0.5 s", None) and quiet.attempts >= 2


def test_a_probe_the_kernel_will_not_send_and_one_without_an_address(here):
    multicast = Probe(1, "a", "224.0.0.1", ip_address("224.0.0.1"), 4, Method.TCP, 9, Expect.UNREACHABLE)  # TCP refuses it: nothing is sent
    nowhere = Probe(2, "a", "c", None, 6)
    refused, unsent = reachability.run_probes([multicast, nowhere], here, wait=0.3)
    assert (refused.outcome, refused.detail, refused.attempts) == (Outcome.UNREACHABLE, "not sent: no route (ENETUNREACH)", 1)
    assert unsent.outcome is Outcome.NO_ADDRESS and unsent.attempts == 0


def test_a_socket_that_cannot_be_opened_stops_the_run_with_one_line(monkeypatch):
    def refuse(fd):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(reachability.netns, "entered", refuse)
    with pytest.raises(KernelError, match="^cannot open a probe socket in a namespace: Operation not permitted$"):
        reachability.run_probes([Probe(1, "a", "b", LOCAL, 4)], {"a": -1}, wait=0.3)


def test_the_reported_rtt_is_of_an_attempt_made_after_the_first_reply():
    """The first reply passes the probe; late replies to earlier attempts (queued while a neighbour
    was resolved) are ignored; the answer to the attempt made after it is the one reported."""
    loop = reachability._Loop({})
    running = loop.running[0] = reachability._Running(Probe(1, "a", "b", LOCAL, 4), 1e12, LOCAL, str(LOCAL), first=1.0)
    loop.answers = [None]
    before = 0.0  # a wall-clock send time before any reply
    loop._answered(0, running, reachability.Answer(Outcome.REPLY, 2.0, "echo reply"), 2.0, before)
    assert running.first_reply is not None and 0 in loop.running and loop.timers  # one more attempt, at once
    loop._answered(0, running, reachability.Answer(Outcome.REPLY, 1.8, "echo reply"), 2.0, before)
    assert 0 in loop.running  # the echo sent 0.2 s later, answered in the same burst: not the path's RTT
    loop._answered(0, running, reachability.Answer(Outcome.REPLY, 0.0001, "echo reply"), 2.1, running.confirm_from + 0.001)
    assert 0 not in loop.running and loop.answers[0].rtt == 0.0001
