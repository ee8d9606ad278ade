"""The codec's IPv4 addresses (rtnl/address.py), checked against pyroute2's full codec."""

from __future__ import annotations

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from netplan_lite.kernel.rtnl import address
from netplan_lite.kernel.rtnl.socket import attr, attr_u8

from builders import NLMSG_HEADER as HEADER, encoded, nl_message


def test_address_and_its_protocol_decode():
    m = ifaddrmsg()
    m["family"], m["prefixlen"], m["index"] = 2, 24, 7
    m["attrs"] = [("IFA_ADDRESS", "10.0.0.5"), ("IFA_LOCAL", "10.0.0.5"), ("IFA_PROTO", 225)]
    data = encoded(m)
    assert address.decode_addr(data, HEADER, len(data)) == address.AddrMsg(7, "10.0.0.5/24", 225)


def test_address_request_carries_the_nsnet_protocol():
    body = address.ifaddr(24, 7) + attr(address.IFA_LOCAL, bytes([10, 0, 0, 5])) + attr_u8(address.IFA_PROTO, 225)
    parsed = ifaddrmsg(nl_message(address.RTM_NEWADDR, body))
    parsed.decode()
    assert (parsed["prefixlen"], parsed["index"], parsed.get("local"), parsed.get("proto")) == (24, 7, "10.0.0.5", 225)
