"""The codec's announcement listener (rtnl/listener.py): which namespace a datagram is about."""

from __future__ import annotations

import pytest
from pyroute2.netlink.rtnl.nsidmsg import nsidmsg

from netplan_lite.kernel.rtnl import listener
from netplan_lite.kernel.rtnl.link import RTM_NEWLINK
from netplan_lite.kernel.rtnl.nsid import RTM_DELNSID
from netplan_lite.kernel.rtnl.socket import NetlinkError

from builders import encoded, nl_message


def _nsid_message(nsid: int) -> bytes:
    msg = nsidmsg()
    msg["header"]["type"] = RTM_DELNSID
    msg["attrs"] = [("NETNSA_NSID", nsid)]
    return encoded(msg)


def test_an_announcement_is_about_the_namespace_that_sent_it():
    assert listener._announced(nl_message(RTM_NEWLINK, b"\0" * 16), 5) == {5}
    assert listener._announced(nl_message(RTM_NEWLINK, b"\0" * 16), None) == {None}  # our own namespace


def test_our_own_id_announcements_are_about_the_namespace_given_or_taken_the_id():
    assert listener._announced(_nsid_message(7) + _nsid_message(8), None) == {7, 8}
    assert listener._announced(_nsid_message(7), 3) == {3}  # another namespace's id space: its own change


def test_a_malformed_datagram_raises_so_that_drain_reports_announcements_lost():
    with pytest.raises(NetlinkError):
        listener._announced(b"\0" * 16, None)
