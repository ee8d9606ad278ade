"""Queueing disciplines (RTM_*QDISC, <linux/pkt_sched.h>): the dump, and netem as the root
qdisc of a link, set and deleted.

A netem's TCA_OPTIONS holds a struct tc_netem_qopt followed, inside the same attribute, by
netem's own attributes (iproute2's q_netem.c writes them so, the kernel's sch_netem.c dumps
them so). The kernel keeps delay and jitter in nanoseconds and dumps them in
TCA_NETEM_LATENCY64/JITTER64 (since 4.15); the qopt's 32-bit fields hold them in scheduler
ticks, the only source on older kernels. Requests are those of iproute2 since 6.9 (nanoseconds
in LATENCY64/JITTER64, the qopt's latency and jitter 0); iproute2 before that sends ticks in
the qopt, which the kernel turns into the same nanoseconds for any multiple of a tick.
"""

from __future__ import annotations

import errno
import functools
import socket
import struct
from dataclasses import dataclass

from ...model.netem import Netem
from .socket import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NetlinkError, RtnlSocket, attr, attr_str, parse_attrs, string_of

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTMGRP_TC = 0x8  # the multicast group announcing qdisc (and class, filter) changes

TCA_KIND, TCA_OPTIONS = 1, 2
TC_H_ROOT = 0xFFFFFFFF
TCA_NETEM_CORR, TCA_NETEM_REORDER, TCA_NETEM_CORRUPT, TCA_NETEM_RATE = 1, 3, 4, 6
TCA_NETEM_RATE64, TCA_NETEM_LATENCY64, TCA_NETEM_JITTER64 = 8, 10, 11
U32_MAX = 0xFFFFFFFF

_TCMSG = struct.Struct("=BxxxiIII")  # family, pad, ifindex, handle, parent, info
_QOPT = struct.Struct("=IIIIII")  # tc_netem_qopt: latency (ticks), limit, loss, gap, duplicate, jitter (ticks)
_CORR = struct.Struct("=III")  # tc_netem_corr: delay, loss, duplicate correlations
_PROBABILITY = struct.Struct("=II")  # tc_netem_reorder, tc_netem_corrupt: probability, correlation
_RATE = struct.Struct("=IiIi")  # tc_netem_rate: rate (bytes/s), packet_overhead, cell_size, cell_overhead
_S64, _U64 = struct.Struct("=q"), struct.Struct("=Q")

# how the request treats a root qdisc already there (iproute2's `tc qdisc add|change|replace`)
HOW = {
    "add": NLM_F_CREATE | NLM_F_EXCL,  # none may be there
    "change": 0,  # the netem there is changed in place: its queue and handle are kept
    "replace": NLM_F_CREATE | NLM_F_REPLACE,  # created, or put in place of another kind; a netem there is changed
}


class NetemUnavailable(NetlinkError):
    """The kernel was built without netem (CONFIG_NET_SCH_NETEM) or cannot load it."""


@dataclass(frozen=True)
class QdiscMsg:
    index: int  # the link
    handle: int  # major:minor as one u32 (0x80010000 is `8001:`); 0 for the kernel's default qdisc
    parent: int  # TC_H_ROOT for a root qdisc
    kind: str  # "netem", "noqueue", "tbf", ...
    netem: Netem | None  # the impairments of a netem, in kernel units


def tcmsg(index: int, parent: int = TC_H_ROOT, handle: int = 0) -> bytes:
    return _TCMSG.pack(socket.AF_UNSPEC, index, handle, parent, 0)


# reads


def decode_qdisc(data: bytes, offset: int, end: int) -> QdiscMsg:
    _, index, handle, parent, _ = _TCMSG.unpack_from(data, offset)
    attrs = parse_attrs(data, offset + _TCMSG.size, end, frozenset({TCA_KIND, TCA_OPTIONS}))
    kind = string_of(attrs.get(TCA_KIND)) or ""
    options = attrs.get(TCA_OPTIONS)
    netem = decode_netem(options) if kind == "netem" and options and len(options) >= _QOPT.size else None
    return QdiscMsg(index, handle, parent, kind, netem)


def decode_netem(options: bytes) -> Netem:
    """A netem's TCA_OPTIONS payload: the qopt, then netem's attributes."""
    latency_ticks, limit, loss, _, duplicate, jitter_ticks = _QOPT.unpack_from(options)
    nested = parse_attrs(options, _QOPT.size, len(options))

    def nanoseconds(kind: int, ticks: int) -> int:
        raw = nested.get(kind)
        return _S64.unpack_from(raw)[0] if raw and len(raw) >= 8 else round(ticks * tick_ns())

    def probability(kind: int) -> int:
        raw = nested.get(kind)
        return _PROBABILITY.unpack_from(raw)[0] if raw and len(raw) >= _PROBABILITY.size else 0

    rate_raw, rate64_raw = nested.get(TCA_NETEM_RATE), nested.get(TCA_NETEM_RATE64)
    rate = _RATE.unpack_from(rate_raw)[0] if rate_raw and len(rate_raw) >= _RATE.size else 0
    if rate64_raw and len(rate64_raw) >= 8:  # the kernel sends it, and U32_MAX in the rate, from 2^32 bytes/s up
        rate = max(rate, _U64.unpack_from(rate64_raw)[0])
    return Netem(
        delay=nanoseconds(TCA_NETEM_LATENCY64, latency_ticks),
        jitter=nanoseconds(TCA_NETEM_JITTER64, jitter_ticks),
        loss=loss,
        duplicate=duplicate,
        reorder=probability(TCA_NETEM_REORDER),
        corrupt=probability(TCA_NETEM_CORRUPT),
        rate=rate,
        limit=limit,
    )


@functools.cache
def tick_ns() -> float:
    """Nanoseconds per scheduler tick on this kernel (64 on any kernel since 2.6.31; only read
    for a kernel too old to dump LATENCY64/JITTER64)."""
    try:
        with open("/proc/net/psched") as f:
            return tick_ns_of(f.read())
    except (OSError, ValueError):
        return 64.0


def tick_ns_of(psched: str) -> float:
    """Nanoseconds per tick from /proc/net/psched's words, as tc reads them (tc_core_init)."""
    t2us, us2t, clock_res = (int(word, 16) for word in psched.split()[:3])
    if clock_res == 1_000_000_000:  # iproute2's compatibility rule: such a kernel advertises 1000 for 1
        t2us = us2t
    ticks_per_us = t2us / us2t * clock_res / 1_000_000
    return 1000 / ticks_per_us


def dump_qdiscs(sock: RtnlSocket) -> list[QdiscMsg]:
    """Every qdisc of every link of `sock`'s namespace (roots, children, ingress, the kernel's defaults)."""
    return [decode_qdisc(d, o, e) for d, o, e in sock.dump(RTM_GETQDISC, tcmsg(0, 0))]


def root_qdiscs(sock: RtnlSocket) -> list[QdiscMsg]:
    """The root qdisc of each link that has one of its own: the kernel's default (noqueue,
    pfifo_fast, mq: handle 0) is left out, as nothing configured."""
    return [q for q in dump_qdiscs(sock) if q.parent == TC_H_ROOT and q.handle]


# writes


def netem_options(netem: Netem, reset: bool = False) -> bytes:
    """TCA_OPTIONS as `tc qdisc add ... netem` sends it: the qopt (gap 1 with a reorder, as tc
    sets it), then only the attributes of what is set. `reset` adds the zeroed attributes a
    change would otherwise leave as they were (the kernel keeps correlations, reorder, corrupt
    and rate when their attribute is absent), so that the kernel holds exactly `netem`."""
    qopt = _QOPT.pack(0, netem.limit, netem.loss, 1 if netem.reorder else 0, netem.duplicate, 0)
    nested = b""
    if netem.delay:
        nested += attr(TCA_NETEM_LATENCY64, _S64.pack(netem.delay))
    if netem.jitter:
        nested += attr(TCA_NETEM_JITTER64, _S64.pack(netem.jitter))
    if reset:
        nested += attr(TCA_NETEM_CORR, _CORR.pack(0, 0, 0))
    if netem.reorder or reset:
        nested += attr(TCA_NETEM_REORDER, _PROBABILITY.pack(netem.reorder, 0))
    if netem.corrupt or reset:
        nested += attr(TCA_NETEM_CORRUPT, _PROBABILITY.pack(netem.corrupt, 0))
    if netem.rate or reset:
        if netem.rate > U32_MAX:
            nested += attr(TCA_NETEM_RATE64, _U64.pack(netem.rate))
        nested += attr(TCA_NETEM_RATE, _RATE.pack(min(netem.rate, U32_MAX), 0, 0, 0))
    return attr(TCA_OPTIONS, qopt + nested)


def netem_body(index: int, netem: Netem, reset: bool = False) -> bytes:
    return tcmsg(index) + attr_str(TCA_KIND, "netem") + netem_options(netem, reset)


def set_netem(sock: RtnlSocket, index: int, netem: Netem, how: str) -> None:
    """Make `netem` the root qdisc of link `index`: `how` is "add", "change" or "replace" (HOW).
    A change or replace of a netem edits it in place, so its request resets what `netem`
    leaves at zero. NetemUnavailable when the kernel has no netem."""
    flags = HOW[how]
    try:
        sock.request(RTM_NEWQDISC, flags, netem_body(index, netem, reset=how != "add"))
    except NetlinkError as err:
        if err.errno == errno.ENOENT and flags & NLM_F_CREATE:  # creating, so "not found" is the kind
            raise NetemUnavailable(errno.ENOENT, "the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)") from None
        raise


def delete_root_qdisc(sock: RtnlSocket, index: int) -> None:
    """Back to the kernel's default qdisc; NetlinkError(ENOENT) when the link has none of its own."""
    sock.request(RTM_DELQDISC, 0, tcmsg(index))
