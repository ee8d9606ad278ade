"""A bridge subnet overlapping a network the live host reaches directly (issue 12, item 4c):
refused before anything is made, applied when the file says the overlap is intended.

The host's network is made by the test: a portless bridge named with the lab prefix (this
kernel has no dummy driver) holding an address of the lab's random /24, so the kernel adds its
connected route; cleanup deletes it by name, and its route with it, even when the test fails.
The host's real interfaces are only read."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.netns


def _foreign_network(lab, ex) -> str:
    """An up link nsnet does not own, on ex's subnet (.254: not an address the lab gives out)."""
    name = f"{lab.prefix}on"
    lab.foreign_bridge(name)
    lab.ip("addr", "add", ex.cidr(254), "dev", name)
    lab.ip("link", "set", name, "up")  # the kernel adds the prefix route only on an up link
    routes = lab.ip_json("-4", "route", "show", "dev", name)
    assert [(r["dst"], r["protocol"]) for r in routes] == [(str(ex.subnet), "kernel")], routes
    return name


def _nothing_made(lab, ex) -> bool:
    return not {ex.web1, ex.web2} & lab.netns_names() and all(lab.link(n) is None for n in (ex.bridge, ex.host_veth(ex.web1), ex.host_veth(ex.web2)))


def test_an_overlapping_subnet_is_refused_at_its_line_and_applies_once_allowed(lab):
    ex = lab.example()
    foreign = _foreign_network(lab, ex)
    for command in ("plan", "apply"):
        rc, out, err = lab.nsnet(command, ex.path)
        assert rc == 1 and out == "", out + err
        assert err == (
            f"nsnet: {ex.path}:4:5: bridges.{ex.bridge}.subnet: {ex.subnet} is already the host's network on {foreign} "
            f"(route {ex.subnet} dev {foreign} proto kernel): a second route to it, on bridge {ex.bridge}, could take the host's "
            f"traffic for it away from {foreign}; pick a subnet this host does not reach directly, or set `allow_overlap: true` "
            f"on bridge {ex.bridge} if the overlap is intended\n"
        ), err
    assert _nothing_made(lab, ex)

    doc = ex.doc()
    doc["bridges"][ex.bridge]["allow_overlap"] = True
    lab.write(doc, ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert f"warning: bridge {ex.bridge}'s subnet {ex.subnet} already has a host route, {ex.subnet} dev {foreign}" in out, out
    assert f"bridge {ex.bridge} has `allow_overlap: true`, so nsnet applies it anyway" in out, out
    lab.assert_example_live(ex)
    assert lab.no_changes(lab.nsnet("plan", ex.path)[1])
    rc, out, err = lab.nsnet("destroy", ex.path)
    assert rc == 0, out + err
    assert _nothing_made(lab, ex)
    assert lab.addresses(None, foreign) == [ex.cidr(254)]  # the host's network is as it was
