"""Applying the two-namespace bridge example against the real kernel."""

from __future__ import annotations

import secrets
import socket

import pytest

pytestmark = pytest.mark.netns


def test_apply_creates_the_example_and_converges(lab):
    ex = lab.example()
    assert lab.nsnet("plan", "--detailed-exitcode", ex.path)[0] == 2

    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    assert "live state verified" in out

    assert {ex.web1, ex.web2} <= lab.netns_names()
    lab.assert_example_live(ex)  # web1 pinned .10, web2 allocated .2, default routes via .1 proto 225

    rc, out, err = lab.nsnet("plan", ex.path)
    assert rc == 0 and lab.no_changes(out), out + err
    assert lab.nsnet("plan", "--detailed-exitcode", ex.path)[0] == 0


def test_tcp_between_namespaces_and_from_host(lab, applied):
    ex = applied
    server = ex.expected[ex.web1].split("/")[0]
    port = 20000 + secrets.randbelow(40000)
    lab.serve(ex.web1, server, port, reply="hello-from-web1")

    # namespace -> namespace across the bridge: the server sees web2's address
    reply = lab.connect_from(ex.web2, server, port)
    assert reply == f"hello-from-web1 {ex.expected[ex.web2].split('/')[0]}"

    # host -> namespace: the host reaches the subnet through the bridge (source: the gateway)
    with socket.create_connection((server, port), timeout=5) as conn:
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    assert data.decode() == f"hello-from-web1 {ex.gateway}"
