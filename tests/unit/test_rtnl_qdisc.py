"""The codec's qdiscs (rtnl/qdisc.py): netem requests against the bytes `tc` sends, dumps in
the kernel's layout (sch_netem.c's netem_dump), and pyroute2's codec where it reaches.

pyroute2 0.9.7 knows netem's qopt and its attributes up to TCA_NETEM_RATE, not
TCA_NETEM_RATE64, LATENCY64 or JITTER64 (8, 10, 11): those are checked against the kernel's
layout and iproute2's q_netem.c instead."""

from __future__ import annotations

import errno
import struct

import pytest
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from netplan_lite.kernel.rtnl import qdisc
from netplan_lite.kernel.rtnl.qdisc import QdiscMsg
from netplan_lite.kernel.rtnl.socket import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NetlinkError, attr, parse_attrs
from netplan_lite.model import netem as units
from netplan_lite.model.netem import Netem

from builders import NLMSG_HEADER as HEADER, encoded, nl_message

MS = 1_000_000

# What iproute2 6.1's `tc qdisc add dev d0 root netem ARGS` sends for link 3 (recorded with
# strace): the request body after the netlink header. That tc still writes delay and jitter
# as ticks in the qopt; since 6.9 (commit 9a6b231e) it writes nanoseconds in LATENCY64/JITTER64
# and leaves those qopt fields 0, as the codec does.
TC_6_1 = {
    "delay 20ms 5ms loss 1% rate 100mbit": (
        "000000000300000000000000ffffffff000000000a0001006e6574656d00000030000200b4c40400e8030000295c8f02"
        "00000000000000002d3101001400060020bcbe00000000000000000000000000",
        {"delay": "20ms", "jitter": "5ms", "loss": "1%", "rate": "100mbit"},
    ),
    "delay 1s duplicate 2% reorder 25% corrupt 0.5% limit 500": (
        "000000000300000000000000ffffffff000000000a0001006e6574656d00000034000200286bee00f401000000000000"
        "0100000052b81e05000000000c00030000000040000000000c00040014ae470100000000",
        {"delay": "1s", "duplicate": "2%", "reorder": "25%", "corrupt": "0.5%", "limit": 500},
    ),
    "delay 4s 1s reorder 50% duplicate 0.01% limit 10": (
        "000000000300000000000000ffffffff000000000a0001006e6574656d00000028000200a0acb9030a00000000000000"
        "01000000b98d0600286bee000c0003000000008000000000",
        {"delay": "4s", "jitter": "1s", "reorder": "50%", "duplicate": "0.01%", "limit": 10},
    ),
    "rate 40gbit": (
        "000000000300000000000000ffffffff000000000a0001006e6574656d0000003c00020000000000e803000000000000"
        "0000000000000000000000000c00080000f2052a0100000014000600ffffffff000000000000000000000000",
        {"rate": "40gbit"},
    ),
    "loss 100%": (
        "000000000300000000000000ffffffff000000000a0001006e6574656d0000001c00020000000000e8030000ffffffff000000000000000000000000",
        {"loss": "100%"},
    ),
}


def split(body: bytes) -> tuple[bytes, str, tuple[int, ...], dict[int, bytes]]:
    """(tcmsg, kind, qopt fields, netem attributes) of a RTM_NEWQDISC body."""
    attrs = parse_attrs(body, 20, len(body))
    options = attrs[qdisc.TCA_OPTIONS]
    return body[:20], attrs[qdisc.TCA_KIND].rstrip(b"\0").decode(), struct.unpack_from("=6I", options), parse_attrs(options, 24, len(options))


@pytest.mark.parametrize("args", TC_6_1)
def test_a_netem_request_is_what_tc_sends_with_delays_in_nanoseconds(args):
    recorded, spec = TC_6_1[args]
    theirs, ours = bytes.fromhex(recorded), qdisc.netem_body(3, units.parse(spec))
    netem = units.parse(spec)
    tc_head, tc_kind, tc_qopt, tc_nested = split(theirs)
    head, kind, qopt, nested = split(ours)
    assert (head, kind) == (tc_head, tc_kind) == (qdisc.tcmsg(3), "netem")
    assert qopt[1:5] == tc_qopt[1:5]  # limit, loss, gap, duplicate
    assert (qopt[0], qopt[5]) == (0, 0)  # latency and jitter: in LATENCY64/JITTER64 instead of ticks
    assert round(tc_qopt[0] * 64) == netem.delay and round(tc_qopt[5] * 64) == netem.jitter
    assert nested.pop(qdisc.TCA_NETEM_LATENCY64, None) == (struct.pack("=q", netem.delay) if netem.delay else None)
    assert nested.pop(qdisc.TCA_NETEM_JITTER64, None) == (struct.pack("=q", netem.jitter) if netem.jitter else None)
    assert nested == tc_nested  # the same attributes, in the same order
    assert list(nested) == list(tc_nested)
    assert qdisc.decode_netem(parse_attrs(theirs, 20, len(theirs))[qdisc.TCA_OPTIONS]) == netem  # tc's ticks read back exactly


def netem_dump(netem: Netem, latency_ticks: int | None = None, jitter_ticks: int | None = None) -> bytes:
    """TCA_OPTIONS as the kernel's netem_dump writes it: every attribute, set or not."""
    ticks = (netem.delay // 64 if latency_ticks is None else latency_ticks, netem.jitter // 64 if jitter_ticks is None else jitter_ticks)
    body = struct.pack("=6I", ticks[0], netem.limit, netem.loss, 0, netem.duplicate, ticks[1])
    body += attr(qdisc.TCA_NETEM_LATENCY64, struct.pack("=q", netem.delay)) + attr(qdisc.TCA_NETEM_JITTER64, struct.pack("=q", netem.jitter))
    body += attr(qdisc.TCA_NETEM_CORR, bytes(12))
    body += attr(qdisc.TCA_NETEM_REORDER, struct.pack("=II", netem.reorder, 0)) + attr(qdisc.TCA_NETEM_CORRUPT, struct.pack("=II", netem.corrupt, 0))
    if netem.rate >= 1 << 32:
        body += attr(qdisc.TCA_NETEM_RATE64, struct.pack("=Q", netem.rate))
    body += attr(qdisc.TCA_NETEM_RATE, struct.pack("=IiIi", min(netem.rate, 0xFFFFFFFF), 0, 0, 0))
    return body


def dumped(index: int, handle: int, parent: int, kind: str, options: bytes | None = None) -> bytes:
    body = qdisc.tcmsg(index, parent, handle) + attr(qdisc.TCA_KIND, kind.encode() + b"\0")
    if options is not None:
        body += attr(qdisc.TCA_OPTIONS, options)
    return nl_message(qdisc.RTM_NEWQDISC, body)


NETEMS = [
    Netem(),
    Netem(delay=20 * MS, jitter=5 * MS, loss=units.parse_percent("1%"), rate=units.parse_rate("100mbit")),
    Netem(delay=1500, jitter=1, duplicate=1, reorder=0xFFFFFFFF, corrupt=7, limit=1),
    Netem(delay=10_000_000_000, rate=units.parse_rate("40gbit"), limit=0xFFFFFFFF),  # past 32-bit ticks and rates
]


@pytest.mark.parametrize("netem", NETEMS)
def test_a_kernel_dump_decodes_to_its_netem_the_nanosecond_attributes_winning_over_ticks(netem):
    data = dumped(5, 0x80010000, qdisc.TC_H_ROOT, "netem", netem_dump(netem, latency_ticks=1, jitter_ticks=1))
    assert qdisc.decode_qdisc(data, HEADER, len(data)) == QdiscMsg(5, 0x80010000, qdisc.TC_H_ROOT, "netem", netem)


@pytest.mark.parametrize("netem", NETEMS)
@pytest.mark.parametrize("reset", [False, True], ids=["add", "change"])
def test_a_request_decodes_back_to_the_netem_it_asks_for(netem, reset):
    body = qdisc.netem_body(5, netem, reset)
    assert qdisc.decode_qdisc(body, 0, len(body)).netem == netem


def test_a_change_resets_what_the_kernel_would_otherwise_keep_and_an_add_leaves_it_out():
    netem = Netem(delay=20 * MS)
    _, _, _, added = split(qdisc.netem_body(5, netem))
    _, _, _, changed = split(qdisc.netem_body(5, netem, reset=True))
    assert list(added) == [qdisc.TCA_NETEM_LATENCY64]
    assert list(changed) == [qdisc.TCA_NETEM_LATENCY64, qdisc.TCA_NETEM_CORR, qdisc.TCA_NETEM_REORDER, qdisc.TCA_NETEM_CORRUPT, qdisc.TCA_NETEM_RATE]
    assert all(value == bytes(len(value)) for kind, value in changed.items() if kind != qdisc.TCA_NETEM_LATENCY64)


def test_a_netem_pyroute2_encodes_decodes_from_its_ticks():
    m = tcmsg()
    m["index"], m["handle"], m["parent"] = 4, 0x10000, qdisc.TC_H_ROOT
    options = {"delay": 312500, "limit": 900, "loss": 42949673, "gap": 1, "duplicate": 3, "jitter": 78125}
    options["attrs"] = [
        ("TCA_NETEM_REORDER", {"prob_reorder": 11, "corr_reorder": 0}),
        ("TCA_NETEM_CORRUPT", {"prob_corrupt": 12, "corr_corrupt": 0}),
        ("TCA_NETEM_RATE", {"rate": 12_500_000, "packet_overhead": 0, "cell_size": 0, "cell_overhead": 0}),
    ]
    m["attrs"] = [("TCA_KIND", "netem"), ("TCA_OPTIONS", options)]
    data = encoded(m)
    expected = Netem(delay=20 * MS, jitter=5 * MS, loss=42949673, duplicate=3, reorder=11, corrupt=12, rate=12_500_000, limit=900)
    assert qdisc.decode_qdisc(data, HEADER, len(data)) == QdiscMsg(4, 0x10000, qdisc.TC_H_ROOT, "netem", expected)


@pytest.mark.parametrize("reset", [False, True], ids=["add", "change"])
def test_pyroute2_reads_our_request_up_to_the_attributes_it_does_not_know(reset):
    netem = Netem(delay=20 * MS, jitter=5 * MS, loss=42949673, duplicate=3, reorder=11, corrupt=12, rate=12_500_000, limit=900)
    parsed = tcmsg(nl_message(qdisc.RTM_NEWQDISC, qdisc.netem_body(4, netem, reset)))
    parsed.decode()
    assert (parsed["index"], parsed["handle"], parsed["parent"], parsed.get("TCA_KIND")) == (4, 0, qdisc.TC_H_ROOT, "netem")
    options = parsed.get("TCA_OPTIONS")
    assert (options["delay"], options["limit"], options["loss"], options["gap"], options["duplicate"], options["jitter"]) == (
        0,
        900,
        42949673,
        1,
        3,
        0,
    )
    assert options.get("TCA_NETEM_REORDER")["prob_reorder"] == 11
    assert options.get("TCA_NETEM_CORRUPT")["prob_corrupt"] == 12
    assert options.get("TCA_NETEM_RATE")["rate"] == 12_500_000


def test_other_qdiscs_decode_with_their_kind_and_no_netem():
    data = dumped(2, 0, qdisc.TC_H_ROOT, "noqueue", b"")
    assert qdisc.decode_qdisc(data, HEADER, len(data)) == QdiscMsg(2, 0, qdisc.TC_H_ROOT, "noqueue", None)
    data = dumped(2, 0x10000, 0xFFFFFFF1, "ingress")
    assert qdisc.decode_qdisc(data, HEADER, len(data)) == QdiscMsg(2, 0x10000, 0xFFFFFFF1, "ingress", None)


@pytest.mark.parametrize(
    "psched, ns",
    [
        ("000003e8 00000040 000f4240 3b9aca00\n", 64.0),  # any kernel since 2.6.31: 1 tick = 64 ns
        ("000003e8 000003e8 000f4240 3b9aca00\n", 1000.0),  # microsecond ticks
        ("000003e8 00000001 3b9aca00 3b9aca00\n", 1.0),  # nanosecond clock_res: tc takes the 1000 for 1
    ],
)
def test_the_tick_length_is_read_as_tc_reads_it(psched, ns):
    assert qdisc.tick_ns_of(psched) == ns


class Recorder:
    def __init__(self, refusal: int | None = None) -> None:
        self.sent: list[tuple[int, int, bytes]] = []
        self.refusal = refusal

    def request(self, kind: int, flags: int, body: bytes) -> None:
        self.sent.append((kind, flags, body))
        if self.refusal:
            raise NetlinkError(self.refusal, "refused")


@pytest.mark.parametrize(
    "how, flags, reset",
    [("add", NLM_F_CREATE | NLM_F_EXCL, False), ("change", 0, True), ("replace", NLM_F_CREATE | NLM_F_REPLACE, True)],
)
def test_how_picks_tcs_flags_and_a_change_or_replace_resets(how, flags, reset):
    sock = Recorder()
    qdisc.set_netem(sock, 5, Netem(delay=MS), how)
    assert sock.sent == [(qdisc.RTM_NEWQDISC, flags, qdisc.netem_body(5, Netem(delay=MS), reset))]


def test_a_kernel_without_netem_is_named_and_a_change_with_nothing_to_change_is_not():
    with pytest.raises(qdisc.NetemUnavailable, match="CONFIG_NET_SCH_NETEM"):
        qdisc.set_netem(Recorder(errno.ENOENT), 5, Netem(), "add")
    with pytest.raises(NetlinkError) as err:
        qdisc.set_netem(Recorder(errno.ENOENT), 5, Netem(), "change")
    assert type(err.value) is NetlinkError and err.value.errno == errno.ENOENT


def test_the_root_qdisc_is_deleted_by_its_parent():
    sock = Recorder()
    qdisc.delete_root_qdisc(sock, 5)
    assert sock.sent == [(qdisc.RTM_DELQDISC, 0, qdisc.tcmsg(5))]
    parsed = tcmsg(nl_message(qdisc.RTM_DELQDISC, sock.sent[0][2]))
    parsed.decode()
    assert (parsed["index"], parsed["handle"], parsed["parent"]) == (5, 0, qdisc.TC_H_ROOT)
