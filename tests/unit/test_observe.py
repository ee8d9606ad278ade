"""observe.build_observation on hand-built netlink records: ownership, foreign objects, orphans."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from builders import address, iface, link, route, route_entry, snapshot

from netplan_lite.kernel import netlink
from netplan_lite.kernel.rtnl.route import ConnectedMsg
from netplan_lite.engine.journal import Intents
from netplan_lite.kernel.observe import NOT_A_NAMESPACE, build_observation, describe_owner
from netplan_lite.resources.ids import ORPHAN_NAMESPACE
from netplan_lite.resources.bridge import BridgeState
from netplan_lite.resources.interface import InterfaceState
from netplan_lite.resources.namespace import NamespaceState
from netplan_lite.resources.nft_table import NftRule, NftTableState
from netplan_lite.resources.sysctl import SysctlState

OURS, OTHER = "nsnet:demo", "nsnet:other"

HOST = snapshot(
    link(1, "lo", up=True),
    link(2, "eth0", "device"),
    link(10, "br-demo", "bridge", OURS, mtu=9000),
    link(11, "nsvweb1", "veth", OURS, master=10, peer=2, hairpin=True),
    link(12, "br-other", "bridge", OTHER),
    link(13, "nsvlost", "veth", OURS, master=10, peer=7, up=False),
    link(14, "nsvx", "veth", OTHER, master=12, peer=2),
    addresses=(address(10, "172.30.0.1/24"), address(2, "192.168.1.5/24")),
)


def web1(*extra_links, **kw) -> netlink.Snapshot:
    return snapshot(
        link(1, "lo", alias=OURS),
        link(2, "eth0", "veth", OURS, peer=11, mtu=1500, mac="02:00:00:00:00:0a"),
        *extra_links,
        addresses=kw.get("addresses", (address(2, "172.30.0.10/24", 225), address(2, "10.9.9.9/8"))),
        routes=kw.get("routes", (route_entry("default", "172.30.0.1"),)),
    )


def observe(namespaces: dict, host: netlink.Snapshot = HOST, **kw):
    return build_observation("demo", host, namespaces, **kw)


# ownership


def test_namespace_is_ours_by_its_lo_alias():
    assert observe({"web1": web1()}).state[NamespaceState("web1").id] == NamespaceState("web1", lo_up=True)


def test_lo_down_is_observed():
    snap = snapshot(link(1, "lo", alias=OURS, up=False))
    assert observe({"a": snap}).state[NamespaceState("a").id].lo_up is False


def test_interface_of_our_namespace_with_its_host_end():
    (eth0,) = [r for r in observe({"web1": web1()}).state.values() if isinstance(r, InterfaceState) and r.namespace == "web1"]
    assert eth0 == InterfaceState(
        "web1",
        "eth0",
        "nsvweb1",
        "br-demo",
        ("10.9.9.9/8", "172.30.0.10/24"),
        1500,
        "02:00:00:00:00:0a",
        up=True,
        host_up=True,
        hairpin=True,
        owned=True,
    )


def test_addresses_are_sorted_numerically():
    addresses = (address(2, "172.30.0.10/24"), address(2, "9.0.0.1/8"), address(2, "100.64.0.1/10"))
    eth0 = observe({"web1": web1(addresses=addresses)}).state[iface("web1").id]
    assert eth0.addresses == ("9.0.0.1/8", "100.64.0.1/10", "172.30.0.10/24")


def test_our_bridge_with_its_addresses():
    assert observe({}).state[BridgeState("br-demo").id] == BridgeState("br-demo", ("172.30.0.1/24",), 9000, True)


def test_non_veth_links_in_our_namespace_are_not_interfaces():
    state = observe({"web1": web1(link(3, "dummy0", "dummy", OURS))}).state
    assert [r.name for r in state.values() if isinstance(r, InterfaceState) and r.namespace == "web1"] == ["eth0"]


def test_veth_whose_peer_is_not_ours_has_no_host_end():
    snap = snapshot(link(1, "lo", alias=OURS), link(2, "eth0", "veth", OURS, peer=14))
    eth0 = observe({"a": snap}).state[iface("a").id]
    assert (eth0.host_name, eth0.bridge, eth0.host_up) == (None, None, False)


def test_veth_whose_peer_points_back_elsewhere_has_no_host_end():
    """Index 11 is our host veth, but its own peer is index 2: index 5 here is another link."""
    snap = snapshot(link(1, "lo", alias=OURS), link(5, "eth1", "veth", OURS, peer=11))
    assert observe({"a": snap}).state[iface("a", "eth1").id].host_name is None


def test_routes_of_our_namespace():
    routes = (route_entry("default", "172.30.0.1"), route_entry("10.0.0.0/8", "172.30.0.254"))
    state = observe({"web1": web1(routes=routes)}).state
    assert [r for r in state.values() if r.kind.value == "route"] == [route("web1"), route("web1", "10.0.0.0/8", "172.30.0.254")]


def test_route_keeps_its_protocol():
    state = observe({"web1": web1(routes=(route_entry("default", "172.30.0.1", proto=4),))}).state
    assert state[route("web1").id] == route("web1", proto=4)


def test_duplicate_route_destination_keeps_the_first():
    routes = (route_entry("default", "172.30.0.1"), route_entry("default", "172.30.0.9"))
    state = observe({"web1": web1(routes=routes)}).state
    assert state[route("web1").id] == route("web1", "default", "172.30.0.1")


def test_assigned_addresses_are_those_with_nsnets_protocol():
    assert observe({"web1": web1()}).assigned == {("web1", "eth0"): IPv4Interface("172.30.0.10/24")}


def test_address_on_an_unknown_link_is_not_assigned():
    addresses = (address(2, "172.30.0.10/24", 225), address(42, "172.30.0.11/24", 225))
    assert list(observe({"web1": web1(addresses=addresses)}).assigned) == [("web1", "eth0")]


# foreign and broken objects


def test_namespace_of_another_topology_is_foreign_with_its_owner():
    other = snapshot(link(1, "lo", alias=OTHER), link(2, "eth0", "veth", OTHER, peer=14))
    observation = observe({"x": other})
    assert observation.foreign_namespaces == {"x": "topology 'other'"}
    assert not [rid for rid in observation.state if rid.home == "x"]


def test_unlabelled_namespace_is_foreign():
    assert observe({"plain": snapshot(link(1, "lo"))}).foreign_namespaces == {"plain": "not made by nsnet"}


def test_namespace_without_lo_is_foreign():
    assert observe({"empty": snapshot()}).foreign_namespaces == {"empty": "not made by nsnet"}


def test_file_that_is_not_a_namespace_is_reported():
    observation = observe({"stale": None})
    assert observation.foreign_namespaces == {"stale": NOT_A_NAMESPACE}
    assert observation.state.keys() == observe({}).state.keys()


def test_every_host_link_not_ours_is_foreign_with_its_owner():
    assert observe({}).foreign_links == {
        "lo": "not made by nsnet",
        "eth0": "not made by nsnet",
        "br-other": "topology 'other'",
        "nsvx": "topology 'other'",
    }


def test_the_hosts_addresses_and_networks_on_links_not_ours():
    connected = (ConnectedMsg("192.168.1.0/24", 2), ConnectedMsg("172.30.0.0/24", 10), ConnectedMsg("10.7.0.0/24", 12))
    host = netlink.Snapshot(HOST.links, (*HOST.addresses, address(12, "10.7.0.1/24")), HOST.routes, connected)
    seen = observe({}, host)
    assert seen.host_addresses == {IPv4Address("192.168.1.5"): "eth0", IPv4Address("10.7.0.1"): "br-other"}
    # another topology's bridge is nsnet's: its subnet is a lab's, not a network the host is on
    assert seen.host_networks == ((IPv4Network("192.168.1.0/24"), "eth0"),)


def test_a_host_read_in_part_leaves_its_addresses_and_networks_unknown():
    seen = observe({}, whole_host=False)
    assert (seen.host_addresses, seen.host_networks) == (None, None)  # not checked, rather than "none"


def test_other_topologys_bridge_is_not_in_our_state():
    assert BridgeState("br-other").id not in observe({}).state


def test_describe_owner():
    assert (describe_owner("lab"), describe_owner(None)) == ("topology 'lab'", "not made by nsnet")


def test_orphan_host_veth_is_reported_for_deletion():
    orphan = observe({"web1": web1()}).state[iface(ORPHAN_NAMESPACE, "nsvlost").id]
    assert orphan == InterfaceState(ORPHAN_NAMESPACE, "nsvlost", "nsvlost", up=False, host_up=False)


def test_host_veth_claimed_by_its_namespace_is_not_an_orphan():
    state = observe({"web1": web1()}).state
    assert iface(ORPHAN_NAMESPACE, "nsvweb1").id not in state


def test_without_its_namespace_the_host_veth_is_an_orphan():
    assert iface(ORPHAN_NAMESPACE, "nsvweb1").id in observe({}).state


def test_same_records_give_the_same_observation():
    namespaces = {"web1": web1(), "x": None, "plain": snapshot(link(1, "lo"))}
    assert observe(namespaces) == observe(dict(reversed(namespaces.items())))


# adoption after an interrupted run (journal intents)


def test_unlabelled_namespace_named_by_the_journal_is_adopted():
    observation = observe({"web1": snapshot(link(1, "lo"))}, intents=Intents(namespaces=frozenset({"web1"})))
    assert observation.state[NamespaceState("web1").id] == NamespaceState("web1", True, owned=False)
    assert observation.foreign_namespaces == {}


def test_half_made_namespace_named_by_the_journal_is_unusable():
    observation = observe({"web1": None}, intents=Intents(namespaces=frozenset({"web1"})))
    assert observation.state[NamespaceState("web1").id].usable is False


def test_journal_never_adopts_another_topologys_namespace():
    observation = observe({"x": snapshot(link(1, "lo", alias=OTHER))}, intents=Intents(namespaces=frozenset({"x"})))
    assert observation.foreign_namespaces == {"x": "topology 'other'"}


def test_unlabelled_bridge_named_by_the_journal_is_adopted():
    host = snapshot(link(20, "br-new", "bridge"))
    observation = observe({}, host=host, intents=Intents(links=frozenset({"br-new"})))
    assert observation.state[BridgeState("br-new").id].owned is False
    assert "br-new" not in observation.foreign_links


# sysctls and nft tables


def test_held_sysctls_are_part_of_the_state():
    sysctl = SysctlState("net.ipv4.ip_forward", "1")
    assert observe({}, sysctls=(sysctl,)).state[sysctl.id] == sysctl


def test_own_nft_table_is_ours_and_other_tables_are_foreign_claims():
    ours = NftTableState("nsnet-demo")
    theirs = NftTableState(
        "nsnet-other",
        rules=(NftRule("output", "forward tcp *:8080 -> web:80", "[]"), NftRule("postrouting", "masquerade 10.0.0.0/24 leaving br0", "[]")),
    )
    observation = observe({}, tables={"nsnet-demo": ours, "nsnet-other": theirs})
    assert observation.state[ours.id] == ours
    assert observation.foreign_claims == {("tcp", "*", 8080): "other"}


# reading many namespaces (forked readers)


class FakeNetlink:
    """Namespaces n000..n399: every third one is ours; n007 and n307 vanish while being read
    (one in the parent's share, one in the child's)."""

    def links(self, ns):
        if ns is None:
            return HOST.links
        if ns in ("n007", "n307"):
            raise FileNotFoundError(ns)
        alias = OURS if int(ns[1:]) % 3 == 0 else OTHER
        return (link(1, "lo", alias=alias),)

    def snapshot(self, ns, links=None):
        return HOST if ns is None else snapshot(*(links or self.links(ns)))

    def is_open(self, ns):
        return True

    def nsid(self, ns, other):
        return None

    def forget(self, ns):
        pass


def test_observe_shares_namespaces_between_processes_and_skips_vanished_ones(monkeypatch):
    from netplan_lite.kernel import fanout, nftables
    from netplan_lite.kernel import observe as observe_module

    names = [f"n{i:03d}" for i in range(400)]
    monkeypatch.setattr(fanout, "workers_for", lambda count: 2)
    monkeypatch.setattr(observe_module.netns, "list_names", lambda: names)
    monkeypatch.setattr(nftables, "list_tables", lambda: [])
    monkeypatch.setattr(observe_module, "read_intents", lambda topology: Intents())
    monkeypatch.setattr(observe_module, "_held_sysctls", lambda topology, host: ())
    observation = observe_module.observe("demo", FakeNetlink())
    ours = {r.name for r in observation.state.values() if isinstance(r, NamespaceState)}
    assert ours == {n for n in names if int(n[1:]) % 3 == 0}
    assert not {"n007", "n307"} & observation.foreign_namespaces.keys()
    assert len(observation.foreign_namespaces) == 400 - len(ours) - 2


def test_link_ends_are_told_by_namespace_id_not_by_index_alone():
    """r1's e12 (index 2) and r2's e21 (index 2) point at each other; r3's e31 has index 2 too and
    points at r1's index 2, but r1 gives r3 another id than the one e12 names: not its peer."""
    from netplan_lite.kernel.observe import link_peers

    ids = {("r1", "r2"): 5, ("r1", "r3"): 6, ("r2", "r1"): 7, ("r3", "r1"): 8}
    snaps = {
        "r1": snapshot(link(1, "lo"), link(2, "e12", "veth", OURS, peer=2, link_netnsid=5)),
        "r2": snapshot(link(1, "lo"), link(2, "e21", "veth", OURS, peer=2, link_netnsid=7)),
        "r3": snapshot(link(1, "lo"), link(2, "e31", "veth", OURS, peer=2, link_netnsid=8)),
        "h": snapshot(link(1, "lo"), link(2, "eth0", "veth", OURS, peer=11)),  # a bridged interface: no namespace id here
    }
    peers = link_peers(snaps, lambda a, b: ids.get((a, b)))
    assert peers == {("r1", 2): ("r2", 2), ("r2", 2): ("r1", 2)}
