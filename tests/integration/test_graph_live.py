"""`nsnet graph` where the lab is applied: the addresses the kernel has (allocated addresses are
sticky), not those of an empty host, and a caption in the picture says which it drew."""

from __future__ import annotations

import re


def lab_doc(lab, *namespaces: str) -> dict:
    bridge = f"{lab.prefix}br"
    return {
        "name": lab.prefix,
        "bridges": {bridge: {"subnet": str(lab.subnet)}},
        "namespaces": {ns: {"interfaces": {"eth0": {"bridge": bridge}}} for ns in namespaces},
    }


def drawn_addresses(mermaid: str) -> dict[str, str]:
    """namespace -> the address text of its eth0 box."""
    return dict(re.findall(r'subgraph \S+\["namespace (\S+)"\]\n\s+\S+\["eth0<br/>([^"]+)"\]', mermaid))


def cidr_of(lab, host: int) -> str:
    return f"{lab.subnet[host]}/{lab.subnet.prefixlen}"


def test_graph_draws_what_is_live_and_from_file_what_an_empty_host_gets(lab):
    first, later = f"{lab.prefix}-b", f"{lab.prefix}-a"  # `later` sorts first: on an empty host it gets .2
    path = lab.dir / "lab.yaml"
    lab.write(lab_doc(lab, first), path)
    assert lab.nsnet("apply", path)[0] == 0
    lab.write(lab_doc(lab, later, first), path)

    code, out, err = lab.nsnet("graph", "--format", "mermaid", path)
    assert (code, err) == (0, "")
    assert drawn_addresses(out) == {later: f"{cidr_of(lab, 3)} (next apply)", first: f"{cidr_of(lab, 2)} (live)"}
    assert "  %% allocated addresses: (live) as applied on this host, (next apply) as the next apply would give them\n" in out

    assert lab.nsnet("apply", path)[0] == 0
    out = lab.nsnet("graph", "--format", "mermaid", path)[1]
    assert drawn_addresses(out) == {later: f"{cidr_of(lab, 3)} (live)", first: f"{cidr_of(lab, 2)} (live)"}
    assert {ns: lab.addresses(ns, "eth0") for ns in (later, first)} == {later: [cidr_of(lab, 3)], first: [cidr_of(lab, 2)]}  # as the kernel has them
    assert "%% allocated addresses: (live) as applied on this host\n" in out
    dot = lab.nsnet("graph", path)[1]
    assert f"{cidr_of(lab, 2)} (live)" in dot and "(live) as applied on this host</FONT>" in dot

    out = lab.nsnet("graph", "--from-file", "--format", "mermaid", path)[1]
    assert drawn_addresses(out) == {later: f"{cidr_of(lab, 2)} (auto)", first: f"{cidr_of(lab, 3)} (auto)"}
    assert "%% allocated addresses: (auto) as on an empty host\n" in out

    assert lab.nsnet("destroy", path)[0] == 0
    out = lab.nsnet("graph", "--format", "mermaid", path)[1]
    assert drawn_addresses(out) == {later: f"{cidr_of(lab, 2)} (auto)", first: f"{cidr_of(lab, 3)} (auto)"}  # nothing live: from the file
