"""The codec's transport (rtnl/socket.py): the one loop splitting datagrams into messages."""

from __future__ import annotations

import errno
import struct

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from netplan_lite.kernel.rtnl.address import RTM_NEWADDR
from netplan_lite.kernel.rtnl.socket import NLMSG_DONE, NetlinkError, messages

from builders import NLMSG_HEADER, encoded, nl_message


def test_a_datagram_splits_into_its_messages_at_their_aligned_lengths():
    m = ifaddrmsg()
    m["header"]["type"], m["header"]["sequence_number"] = RTM_NEWADDR, 9
    m["family"], m["prefixlen"], m["index"] = 2, 24, 7
    m["attrs"] = [("IFA_LABEL", "eth0")]  # 5 bytes of label: the message length is not a multiple of 4
    first = encoded(m)
    padded = first + b"\0" * (-len(first) % 4)
    done = nl_message(NLMSG_DONE, b"\0" * 4)
    assert list(messages(padded + done)) == [
        (RTM_NEWADDR, 9, NLMSG_HEADER, len(first)),
        (NLMSG_DONE, 1, len(padded) + NLMSG_HEADER, len(padded) + len(done)),
    ]


@pytest.mark.parametrize("length", [0, 15, 64], ids=["zero", "shorter-than-its-header", "past-the-datagram"])
def test_a_length_that_does_not_fit_raises_instead_of_looping(length):
    data = bytearray(nl_message(NLMSG_DONE, b"\0" * 4))
    data[0:4] = struct.pack("=I", length)  # nlmsg_len, in host byte order
    with pytest.raises(NetlinkError) as caught:
        list(messages(bytes(data)))
    assert caught.value.errno == errno.EBADMSG
