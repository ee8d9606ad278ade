"""The codec's links (rtnl/link.py), checked against pyroute2's full codec: messages it
encodes must decode to the same fields, and requests ours encodes must parse in pyroute2."""

from __future__ import annotations

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netplan_lite.kernel.rtnl import link
from netplan_lite.kernel.rtnl.socket import attr, attr_str, attr_u32

from builders import NLMSG_HEADER as HEADER, encoded, nl_message


def test_link_fields_decode_like_pyroute2_encodes_them():
    m = ifinfmsg()
    m["index"], m["flags"] = 7, 1
    m["attrs"] = [
        ("IFLA_IFNAME", "eth0"),
        ("IFLA_IFALIAS", "nsnet:x"),
        ("IFLA_MTU", 1400),
        ("IFLA_LINK", 9),
        ("IFLA_MASTER", 3),
        ("IFLA_ADDRESS", "02:00:00:00:00:01"),
        (
            "IFLA_LINKINFO",
            {
                "attrs": [
                    ("IFLA_INFO_KIND", "veth"),
                    ("IFLA_INFO_SLAVE_KIND", "bridge"),
                    ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]}),
                ]
            },
        ),
    ]
    data = encoded(m)
    assert link.decode_link(data, HEADER, len(data)) == link.LinkMsg(
        index=7, name="eth0", kind="veth", alias="nsnet:x", master=3, peer=9, mtu=1400, up=True, mac="02:00:00:00:00:01", hairpin=True
    )


def test_set_link_request_parses_in_pyroute2():
    body = (
        link.ifinfo(5, link.IFF_UP, link.IFF_UP)
        + attr_str(link.IFLA_IFALIAS, "nsnet:x")
        + attr_u32(link.IFLA_MTU, 1400)
        + attr_u32(link.IFLA_MASTER, 3)
    )
    parsed = ifinfmsg(nl_message(link.RTM_NEWLINK, body))
    parsed.decode()
    assert (parsed["index"], parsed["flags"], parsed["change"]) == (5, 1, 1)
    assert (parsed.get("ifalias"), parsed.get("mtu"), parsed.get("master")) == ("nsnet:x", 1400, 3)


def test_veth_request_nests_the_peer_with_its_namespace_fd():
    peer = link.ifinfo() + attr_str(link.IFLA_IFNAME, "eth0") + attr_u32(link.IFLA_NET_NS_FD, 42)
    info = attr(link.IFLA_LINKINFO, attr_str(link.IFLA_INFO_KIND, "veth") + attr(link.IFLA_INFO_DATA, attr(link.VETH_INFO_PEER, peer)))
    parsed = ifinfmsg(nl_message(link.RTM_NEWLINK, link.ifinfo() + attr_str(link.IFLA_IFNAME, "nsvabc") + info))
    parsed.decode()
    assert parsed.get("ifname") == "nsvabc"
    assert parsed.get(("linkinfo", "kind")) == "veth"
    peer_msg = parsed.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer_msg.get_attr("IFLA_IFNAME") == "eth0" and peer_msg.get_attr("IFLA_NET_NS_FD") == 42


def test_a_bridge_only_link_dump_request_parses_in_pyroute2():
    body = link.ifinfo() + attr(link.IFLA_LINKINFO, attr_str(link.IFLA_INFO_KIND, "bridge"))
    parsed = ifinfmsg(nl_message(link.RTM_GETLINK, body))
    parsed.decode()
    assert parsed.get(("linkinfo", "kind")) == "bridge"


def test_the_peers_namespace_id_decodes_and_none_stands_for_absent_or_negative():
    def decoded(*attrs):
        m = ifinfmsg()
        m["index"] = 7
        m["attrs"] = [("IFLA_IFNAME", "e12"), *attrs]
        data = encoded(m)
        return link.decode_link(data, HEADER, len(data)).link_netnsid

    assert decoded(("IFLA_LINK_NETNSID", 3)) == 3
    assert decoded(("IFLA_LINK_NETNSID", 0)) == 0  # 0 is a real id
    assert decoded(("IFLA_LINK_NETNSID", -1)) is None
    assert decoded() is None  # peer in the same namespace
