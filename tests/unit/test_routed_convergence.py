"""Convergence of generated routed, dual-stack labs on the FakeKernel: links between routers with
pool addresses and impairments, loopbacks, hosts on a dual-stack switch, routes via link endpoints."""

from __future__ import annotations

import dataclasses

import pytest
from builders import topology
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netplan_lite.engine import apply as apply_module
from netplan_lite.engine import reconcile
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.resources.ids import Kind
from netplan_lite.resources.link import LinkState

NETEMS = st.sampled_from([None, {"delay": "20ms"}, {"delay": "5ms", "jitter": "1ms", "loss": "0.5%"}, {"rate": "100mbit"}])


@pytest.fixture(autouse=True)
def quick_verify(monkeypatch):
    monkeypatch.setattr(apply_module, "VERIFY_DELAYS", (0.0,))


@st.composite
def routed_labs(draw):
    routers = draw(st.integers(2, 5))
    ring = routers > 2 and draw(st.booleans())
    pairs = [(i, i + 1) for i in range(1, routers)] + ([(routers, 1)] if ring else [])
    links = []
    for a, b in pairs:
        link = {"endpoints": [f"r{a}:e{a}{b}", f"r{b}:e{b}{a}"]}
        netem = draw(NETEMS)
        if netem:
            link["netem"] = netem
        if draw(st.booleans()):
            link["up"] = draw(st.booleans())
        links.append(link)
    namespaces = {}
    for i in range(1, routers + 1):
        neighbours = [b for a, b in pairs if a == i] + [a for a, b in pairs if b == i]
        routes = [{"to": f"10.0.0.{j}/32", "via": f"r{n}:e{n}{i}"} for n in neighbours for j in [n] if j != i]
        routes += [{"to": f"fd00::{j}/128", "via": f"r{n}:e{n}{i}"} for n in neighbours for j in [n] if j != i]
        namespaces[f"r{i}"] = {"forwarding": True, "loopback": "auto", "routes": routes}
    hosts = draw(st.integers(0, 2))
    doc = {
        "name": "routed",
        "addressing": {"p2p": {"ipv4": "10.1.0.0/24", "ipv6": "fd00:1::/64"}, "loopback": {"ipv4": "10.0.0.0/24", "ipv6": "fd00::/64"}},
        "namespaces": namespaces,
        "links": links,
    }
    if hosts:
        doc["bridges"] = {"lan": {"subnet": ["172.30.0.0/24", "fd00:30::/64"]}}
        for h in range(hosts):
            namespaces[f"h{h}"] = {"interfaces": {"eth0": {"bridge": "lan"}}}
    return doc


def converged(doc, kernel: FakeKernel) -> None:
    result = reconcile.apply(topology(doc), kernel)
    assert result.converged, result.remaining
    assert reconcile.plan(topology(doc), kernel).plan.empty


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_labs())
def test_a_routed_lab_converges_is_repaired_and_destroyed(doc):
    kernel = FakeKernel()
    converged(doc, kernel)
    links = [r for r in kernel.resources.values() if isinstance(r, LinkState)]
    assert len(links) == len(doc["links"])
    assert all(link.addresses and link.peer_addresses for link in links)  # both families from the pool
    first = links[0]
    kernel.resources[first.id] = dataclasses.replace(first, peer_up=not first.peer_up, netem="delay 99ms", addresses=first.addresses[:1])
    converged(doc, kernel)  # drift repaired in place
    assert kernel.calls[-1][0] in ("update", "create")
    reconcile.destroy(doc["name"], kernel)
    assert not kernel.resources


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_labs())
def test_link_addresses_are_sticky_when_a_link_leaves_the_file(doc):
    kernel = FakeKernel()
    converged(doc, kernel)
    before = {r.id: (r.addresses, r.peer_addresses) for r in kernel.resources.values() if isinstance(r, LinkState)}
    smaller = dict(doc, links=doc["links"][1:])
    gone = doc["links"][0]["endpoints"]
    for ns in smaller["namespaces"].values():  # routes via the removed link's ends go with it
        ns["routes"] = [r for r in ns.get("routes", []) if r["via"] not in gone]
    converged(smaller, kernel)
    after = {r.id: (r.addresses, r.peer_addresses) for r in kernel.resources.values() if isinstance(r, LinkState)}
    assert all(before[rid] == kept for rid, kept in after.items())
    assert not any(rid.kind is Kind.LINK and rid not in after for rid in kernel.resources)
