"""The codec's addresses of both families (rtnl/address.py), checked against pyroute2's full codec."""

from __future__ import annotations

import socket

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from netplan_lite.kernel.rtnl import address

from builders import NLMSG_HEADER as HEADER, encoded, nl_message


def pyroute2_address(family=socket.AF_INET, prefixlen=24, flags=0, attrs=()) -> bytes:
    m = ifaddrmsg()
    m["family"], m["prefixlen"], m["index"], m["flags"] = family, prefixlen, 7, flags
    m["attrs"] = list(attrs)
    return encoded(m)


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            pyroute2_address(attrs=(("IFA_ADDRESS", "10.0.0.5"), ("IFA_LOCAL", "10.0.0.5"), ("IFA_PROTO", 225))),
            address.AddrMsg(7, "10.0.0.5/24", 225),
        ),
        (
            pyroute2_address(prefixlen=32, attrs=(("IFA_ADDRESS", "10.9.9.9"), ("IFA_LOCAL", "10.0.0.5"))),
            address.AddrMsg(7, "10.0.0.5/32", 0),
        ),  # point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours
        (
            pyroute2_address(socket.AF_INET6, 64, attrs=(("IFA_ADDRESS", "fd00:0:0:0::1"), ("IFA_PROTO", 225))),
            address.AddrMsg(7, "fd00::1/64", 225, family=6),
        ),
        (pyroute2_address(socket.AF_INET6, 64, flags=0x40, attrs=(("IFA_ADDRESS", "fe80::1"),)), address.AddrMsg(7, "fe80::1/64", 0, 6, True)),
        (
            pyroute2_address(socket.AF_INET6, 64, attrs=(("IFA_ADDRESS", "fd00::1"), ("IFA_FLAGS", address.IFA_F_DADFAILED | 0x100))),
            address.AddrMsg(7, "fd00::1/64", 0, 6, True),
        ),
        (
            pyroute2_address(socket.AF_INET6, 64, flags=0x40, attrs=(("IFA_ADDRESS", "fd00::1"), ("IFA_FLAGS", address.IFA_F_NODAD))),
            address.AddrMsg(7, "fd00::1/64", 0, 6, False),
        ),  # IFA_FLAGS, when present, is the whole of the flags
    ],
    ids=["ipv4", "ipv4-peer", "ipv6-compressed", "tentative", "dad-failed-in-IFA_FLAGS", "IFA_FLAGS-wins"],
)
def test_addresses_of_both_families_decode_like_pyroute2_encodes_them(data, expected):
    assert address.decode_addr(data, HEADER, len(data)) == expected


def parsed(body: bytes) -> ifaddrmsg:
    msg = ifaddrmsg(nl_message(address.RTM_NEWADDR, body))
    msg.decode()
    return msg


def test_an_ipv4_address_request_carries_the_nsnet_protocol_and_no_flags():
    msg = parsed(address.address_body(7, "10.0.0.5/24", 225))
    assert (msg["family"], msg["prefixlen"], msg["index"], msg["flags"], msg["scope"]) == (socket.AF_INET, 24, 7, 0, 0)
    assert (msg.get("local"), msg.get("address"), msg.get("proto"), msg.get("IFA_FLAGS")) == ("10.0.0.5", "10.0.0.5", 225, None)


def test_an_ipv6_address_request_skips_duplicate_address_detection_in_both_flag_fields():
    msg = parsed(address.address_body(7, "fd00:10::1/64", 225))
    assert (msg["family"], msg["prefixlen"], msg["index"], msg["scope"]) == (socket.AF_INET6, 64, 7, 0)
    assert msg["flags"] == msg.get("IFA_FLAGS") == address.IFA_F_NODAD
    assert (msg.get("local"), msg.get("address"), msg.get("proto")) == ("fd00:10::1", "fd00:10::1", 225)


def test_a_request_decodes_back_to_the_address_it_asks_for():
    data = nl_message(address.RTM_NEWADDR, address.address_body(7, "fd00:0010:0::0001/64", 225))
    assert address.decode_addr(data, HEADER, len(data)) == address.AddrMsg(7, "fd00:10::1/64", 225, 6)


def test_a_delete_names_the_address_without_a_protocol():
    msg = parsed(address.address_body(7, "10.0.0.5/24"))
    assert (msg.get("local"), msg.get("proto")) == ("10.0.0.5", None)
