"""nsnet's minimal rtnetlink codec, checked against pyroute2's full one.

pyroute2 is the reference: messages it encodes must decode to the same
fields in rtnl.py, and requests rtnl.py encodes must parse in pyroute2.
"""

from __future__ import annotations

import struct

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netplan_lite.kernel import rtnl

HEADER = 16


def encoded(msg) -> bytes:
    msg.encode()
    return bytes(msg.data)


def route(dst_len=0, table=254, kind=1, proto=225, attrs=(("RTA_GATEWAY", "10.0.0.1"),)) -> bytes:
    m = rtmsg()
    m["family"], m["dst_len"], m["table"], m["proto"], m["type"] = 2, dst_len, table, proto, kind
    m["attrs"] = list(attrs)
    return encoded(m)


@pytest.mark.parametrize(
    "data, expected",
    [
        (route(), rtnl.RouteMsg("default", "10.0.0.1", 225)),
        (route(16, proto=4, attrs=(("RTA_DST", "10.9.0.0"), ("RTA_GATEWAY", "10.0.0.1"))),
         rtnl.RouteMsg("10.9.0.0/16", "10.0.0.1", 4)),
        (route(24, proto=2, attrs=(("RTA_DST", "10.0.0.0"),)), None),  # connected: no gateway
        (route(table=255), None),
        (route(kind=2), None),
    ],
    ids=["default", "static", "connected", "local-table", "not-unicast"],
)
def test_only_main_table_unicast_routes_with_a_gateway_are_read(data, expected):
    assert rtnl.decode_route(data, HEADER, len(data)) == expected


def test_link_fields_decode_like_pyroute2_encodes_them():
    m = ifinfmsg()
    m["index"], m["flags"] = 7, 1
    m["attrs"] = [
        ("IFLA_IFNAME", "eth0"), ("IFLA_IFALIAS", "nsnet:x"), ("IFLA_MTU", 1400), ("IFLA_LINK", 9),
        ("IFLA_MASTER", 3), ("IFLA_ADDRESS", "02:00:00:00:00:01"),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_SLAVE_KIND", "bridge"),
                                     ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]})]}),
    ]
    data = encoded(m)
    assert rtnl.decode_link(data, HEADER, len(data)) == rtnl.LinkMsg(
        index=7, name="eth0", kind="veth", alias="nsnet:x", master=3, peer=9, mtu=1400, up=True,
        mac="02:00:00:00:00:01", hairpin=True)


def test_address_and_its_protocol_decode():
    m = ifaddrmsg()
    m["family"], m["prefixlen"], m["index"] = 2, 24, 7
    m["attrs"] = [("IFA_ADDRESS", "10.0.0.5"), ("IFA_LOCAL", "10.0.0.5"), ("IFA_PROTO", 225)]
    data = encoded(m)
    assert rtnl.decode_addr(data, HEADER, len(data)) == rtnl.AddrMsg(7, "10.0.0.5/24", 225)


def _message(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", HEADER + len(body), kind, 5, 1, 0) + body


def test_set_link_request_parses_in_pyroute2():
    body = (rtnl.ifinfo(5, rtnl.IFF_UP, rtnl.IFF_UP) + rtnl.attr_str(rtnl.IFLA_IFALIAS, "nsnet:x")
            + rtnl.attr_u32(rtnl.IFLA_MTU, 1400) + rtnl.attr_u32(rtnl.IFLA_MASTER, 3))
    parsed = ifinfmsg(_message(rtnl.RTM_NEWLINK, body))
    parsed.decode()
    assert (parsed["index"], parsed["flags"], parsed["change"]) == (5, 1, 1)
    assert (parsed.get("ifalias"), parsed.get("mtu"), parsed.get("master")) == ("nsnet:x", 1400, 3)


def test_address_request_carries_the_nsnet_protocol():
    body = rtnl.ifaddr(24, 7) + rtnl.attr(rtnl.IFA_LOCAL, bytes([10, 0, 0, 5])) + rtnl.attr_u8(rtnl.IFA_PROTO, 225)
    parsed = ifaddrmsg(_message(rtnl.RTM_NEWADDR, body))
    parsed.decode()
    assert (parsed["prefixlen"], parsed["index"], parsed.get("local"), parsed.get("proto")) == (24, 7, "10.0.0.5", 225)


def test_veth_request_nests_the_peer_with_its_namespace_fd():
    peer = rtnl.ifinfo() + rtnl.attr_str(rtnl.IFLA_IFNAME, "eth0") + rtnl.attr_u32(rtnl.IFLA_NET_NS_FD, 42)
    info = rtnl.attr(rtnl.IFLA_LINKINFO, rtnl.attr_str(rtnl.IFLA_INFO_KIND, "veth")
                     + rtnl.attr(rtnl.IFLA_INFO_DATA, rtnl.attr(rtnl.VETH_INFO_PEER, peer)))
    parsed = ifinfmsg(_message(rtnl.RTM_NEWLINK, rtnl.ifinfo() + rtnl.attr_str(rtnl.IFLA_IFNAME, "nsvabc") + info))
    parsed.decode()
    assert parsed.get("ifname") == "nsvabc"
    assert parsed.get(("linkinfo", "kind")) == "veth"
    peer_msg = parsed.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer_msg.get_attr("IFLA_IFNAME") == "eth0" and peer_msg.get_attr("IFLA_NET_NS_FD") == 42


def test_route_request_round_trips():
    body = rtnl.route_body("10.9.0.0/16", "10.0.0.1", 225)
    data = _message(rtnl.RTM_NEWROUTE, body)
    assert rtnl.decode_route(data, HEADER, len(data)) == rtnl.RouteMsg("10.9.0.0/16", "10.0.0.1", 225)


def test_an_announced_namespace_id_decodes_like_pyroute2_encodes_it():
    from pyroute2.netlink.rtnl.nsidmsg import nsidmsg

    msg = nsidmsg()
    msg["header"]["type"] = rtnl.RTM_DELNSID
    msg["attrs"] = [("NETNSA_NSID", 7)]
    data = encoded(msg)
    assert rtnl.decode_nsid(data, HEADER, len(data)) == 7


def test_a_bridge_only_link_dump_request_parses_in_pyroute2():
    body = rtnl.ifinfo() + rtnl.attr(rtnl.IFLA_LINKINFO, rtnl.attr_str(rtnl.IFLA_INFO_KIND, "bridge"))
    parsed = ifinfmsg(_message(rtnl.RTM_GETLINK, body))
    parsed.decode()
    assert parsed.get(("linkinfo", "kind")) == "bridge"
