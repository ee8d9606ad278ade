"""The codec's namespace ids (rtnl/nsid.py), checked against pyroute2's full codec."""

from __future__ import annotations

from pyroute2.netlink.rtnl.nsidmsg import nsidmsg

from netplan_lite.kernel.rtnl import nsid

from builders import NLMSG_HEADER as HEADER, encoded


def test_an_announced_namespace_id_decodes_like_pyroute2_encodes_it():
    msg = nsidmsg()
    msg["header"]["type"] = nsid.RTM_DELNSID
    msg["attrs"] = [("NETNSA_NSID", 7)]
    data = encoded(msg)
    assert nsid.decode_nsid(data, HEADER, len(data)) == 7
