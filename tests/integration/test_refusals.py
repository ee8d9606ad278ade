"""Refusals against the live host: nothing reaches the kernel (issue 12, item 4)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.netns


def test_a_forward_on_another_machines_address_is_refused_before_anything_is_made(lab):
    ex = lab.example()
    doc = ex.doc()
    doc["port_forwards"] = [{"host_port": lab.free_ports(1)[0], "namespace": ex.web1, "port": 80, "host_address": "8.8.8.8"}]
    lab.write(doc, ex.path)
    for command in ("plan", "apply"):
        rc, out, err = lab.nsnet(command, ex.path)
        assert rc == 1 and out == "", out + err
        assert f"nsnet: {ex.path}:" in err and ": port_forwards.0.host_address: 8.8.8.8 is not an address of this host" in err, err
    assert not {ex.web1, ex.web2} & lab.netns_names()
    assert lab.link(ex.bridge) is None and f"nsnet-{ex.topology}" not in lab.nft_table_names()
