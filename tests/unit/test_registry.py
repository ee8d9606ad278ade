"""Every resource kind is complete: a forgotten piece fails here, not in a user's apply."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from test_golden_plans import kinds_planned

from netplan_lite.engine.fake import HANDLERS as FAKE_HANDLERS
from netplan_lite.kernel.live import LiveKernel
from netplan_lite.kernel.readers import NOT_ANNOUNCED, READERS
from netplan_lite.resources.ids import Kind
from netplan_lite.resources.registry import KINDS, RANKS, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
STATE_SCHEMA = json.loads((SCHEMAS / "state.schema.json").read_text())
# kinds no netlink group announces: read by every command (never cached), and why
UNANNOUNCED = {
    Kind.NFT_TABLE: "nft",
    Kind.PORT_MAPPING: "nft",
    Kind.SYSCTL: "/proc/sys",
    Kind.NAMESPACE_SYSCTL: "/proc/sys",
    Kind.IPTABLES_RULE: "iptables",
    Kind.IP6TABLES_RULE: "ip6tables",
}


def schema_kinds() -> set[str]:
    defs = STATE_SCHEMA["$defs"]
    return {defs[ref["$ref"].rsplit("/", 1)[1]]["properties"]["kind"]["const"] for ref in defs["resource"]["oneOf"]}


@pytest.mark.parametrize("kind", list(Kind), ids=[k.value for k in Kind])
class TestEveryKind:
    def test_has_a_spec_for_its_state_type(self, kind: Kind):
        spec = KINDS[kind]
        assert spec.kind is kind and spec.state.kind is kind
        assert spec.state in typing.get_args(Resource)

    def test_edges_name_known_kinds_with_reasons(self, kind: Kind):
        for edge in KINDS[kind].after:
            assert edge.kind in KINDS and edge.reason and RANKS[edge.kind] < RANKS[kind]

    def test_replace_rules_name_its_fields(self, kind: Kind):
        names = {f for f in typing.get_type_hints(KINDS[kind].state) if f != "kind"}
        assert set(KINDS[kind].replaced_by) <= names

    def test_has_a_live_handler(self, kind: Kind):
        assert kind in LiveKernel("t", None).handlers()  # type: ignore[arg-type]

    def test_has_a_fake_handler(self, kind: Kind):
        assert kind in FAKE_HANDLERS

    def test_is_in_the_state_schema(self, kind: Kind):
        assert kind.value in schema_kinds()

    def test_has_a_reader_with_its_netlink_groups(self, kind: Kind):
        reader = READERS[kind]
        assert (reader.groups == NOT_ANNOUNCED) == (kind in UNANNOUNCED)

    def test_has_a_golden_plan_case(self, kind: Kind):
        assert kind.value in kinds_planned()


def test_the_schema_has_no_kind_the_registry_lacks():
    assert schema_kinds() == {k.value for k in Kind}


def test_plan_documents_name_every_kind():
    plan = json.loads((SCHEMAS / "plan.schema.json").read_text())
    assert plan["$defs"]["action"]["properties"]["kind"]["enum"] == [k.value for k in KINDS]


def test_creation_order_follows_the_edges_then_the_declaration():
    assert [k.value for k in KINDS] == [
        "bridge",
        "namespace",
        "interface",
        "link",
        "route",
        "namespace_sysctl",
        "nft_table",
        "port_mapping",
        "sysctl",
        "iptables_rule",
        "ip6tables_rule",
    ]


def test_the_agent_listens_to_exactly_the_groups_the_readers_declare(monkeypatch):
    from netplan_lite.agent import cache
    from netplan_lite.kernel.readers import announcing_groups
    from netplan_lite.kernel.rtnl.address import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR
    from netplan_lite.kernel.rtnl.link import RTMGRP_LINK
    from netplan_lite.kernel.rtnl.qdisc import RTMGRP_TC
    from netplan_lite.kernel.rtnl.route import RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE

    addresses, routes = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
    assert announcing_groups() == RTMGRP_LINK | addresses | routes | RTMGRP_TC  # what a Snapshot holds
    subscribed = []

    class Recorder:
        def __init__(self, groups: int):
            subscribed.append(groups)
            raise RuntimeError("recorded")

    monkeypatch.setattr(cache, "ChangeListener", Recorder)
    with pytest.raises(RuntimeError, match="recorded"):
        cache.SnapshotCache()
    assert subscribed == [announcing_groups()]
