"""nsnet fmt: one canonical form, the same meaning, every comment kept, idempotent."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import run_cli as run

from netplan_lite.cli import main as cli
from netplan_lite.model import fmt, loader, yamlsource
from netplan_lite.errors import ExitCode, TopologyError

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(ROOT.glob("examples/*.yaml")) + sorted((ROOT / "tests" / "corpus" / "good").glob("*.yaml"))
IDS = [f"{p.parent.name}/{p.name}" for p in FILES]


def data(raw: bytes):
    return loader._empty_maps_as_mappings(yamlsource.parse(raw).data)


def comment_texts(text: str) -> list[str]:
    return sorted(c.text for c in fmt._Source(text, tree=False).comments)


# meaning, comments, idempotence on every bundled file


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_fmt_never_changes_meaning(path):
    raw = path.read_bytes()
    out = fmt.format_text(raw, str(path))
    assert loader.load_bytes(out.encode()) == loader.load_bytes(raw)
    assert data(out.encode()) == data(raw)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_fmt_is_idempotent(path):
    once = fmt.format_text(path.read_bytes())
    assert fmt.format_text(once.encode()) == once


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_fmt_keeps_every_comment(path):
    raw = path.read_bytes()
    assert comment_texts(fmt.format_text(raw)) == comment_texts(raw.decode("utf-8"))


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_the_examples_are_canonical(name):
    path = ROOT / "examples" / name
    if not path.exists():
        pytest.skip(f"{name} is not in this checkout")
    text = path.read_text()
    assert fmt.format_text(text.encode()) == text


# the canonical form


def test_key_order_layout_scalars():
    messy = b"""\
port_forwards:
- port: 80
  namespace: web
  host_port: 8080
namespaces:
  web:
    routes:
    - via: 10.0.0.1
      to: default
    interfaces:
      eth1: {mac: '02:00:00:00:00:01', bridge: br0}
      eth0:
        address: 10.0.0.5
        bridge: br0
bridges:
  br0: {masquerade: yes, mtu: 0x5dc, subnet: 10.0.0.0/24}
name: "order"
"""
    assert (
        fmt.format_text(messy)
        == """\
name: order
bridges:
  br0: {subnet: 10.0.0.0/24, mtu: 1500, masquerade: true}
namespaces:
  web:
    interfaces:
      eth1: {bridge: br0, mac: "02:00:00:00:00:01"}
      eth0: {bridge: br0, address: 10.0.0.5}
    routes:
      - {to: default, via: 10.0.0.1}
port_forwards:
  - {host_port: 8080, namespace: web, port: 80}
"""
    )


def test_routed_lab_sections_key_order_and_layout():
    messy = b"""\
checks:
- {expect: unreachable, ping: true, to: 10.66.0.5, from: h1}
links:
- up: false
  mtu: 9000
  addresses: {r2:e23: "10.1.99.0/31", r1:e12: ["10.1.99.1/31"]}
  endpoints: ["r1:e12", "r2:e23"]
- netem: {r2:e24: {rate: 1gbit, delay: 1ms}, r1:e13: {loss: "0.5%"}}
  endpoints: [r1:e13, r2:e24]
namespaces:
  r1:
    loopback: auto
    forwarding: true
    routes:
    - {metric: 10, dev: e12, to: "fd00::/64"}
    - {via: ["r2:e23", "10.1.99.0"], to: 10.9.0.0/16}
  r2: {}
  h1:
    interfaces: {eth0: {address: ["fd00:10::5"], bridge: br0}}
    routes: [{to: "::/0", via: "fd00:10::1"}]
bridges:
  br0: {gateway: ["fd00:10::1"], subnet: ["fd00:10::/64"]}
addressing:
  loopback: {prefix6: 128, ipv6: "fd00::/120"}
  p2p: {prefix: 31, ipv4: 10.1.0.0/16}
name: routed
"""
    assert (
        fmt.format_text(messy)
        == """\
name: routed
addressing:
  p2p: {ipv4: 10.1.0.0/16, prefix: 31}
  loopback: {ipv6: fd00::/120, prefix6: 128}
bridges:
  br0: {subnet: [fd00:10::/64], gateway: [fd00:10::1]}
namespaces:
  r1:
    routes:
      - {to: fd00::/64, dev: e12, metric: 10}
      - {to: 10.9.0.0/16, via: [r2:e23, 10.1.99.0]}
    forwarding: true
    loopback: auto
  r2: {}
  h1:
    interfaces:
      eth0: {bridge: br0, address: [fd00:10::5]}
    routes:
      - {to: "::/0", via: fd00:10::1}
links:
  - endpoints: [r1:e12, r2:e23]
    addresses: {r2:e23: 10.1.99.0/31, r1:e12: [10.1.99.1/31]}
    mtu: 9000
    up: false
  - endpoints: [r1:e13, r2:e24]
    netem: {r2:e24: {delay: 1ms, rate: 1gbit}, r1:e13: {loss: 0.5%}}
checks:
  - {from: h1, to: 10.66.0.5, ping: true, expect: unreachable}
"""
    )


@pytest.mark.parametrize(
    "value, written",
    [
        ("fd00::1", "fd00::1"),
        ("fd00:10::/64", "fd00:10::/64"),
        ("r1:e12", "r1:e12"),
        ("1%", "1%"),
        ("::1", '"::1"'),  # a plain `::1` opens a mapping key in flow style
        ("fd00::", '"fd00::"'),
        ("02:aa:bb:cc:dd:ee", '"02:aa:bb:cc:dd:ee"'),  # a MAC, as before
        ("1:2:3:4:5:6:7:8", '"1:2:3:4:5:6:7:8"'),  # YAML 1.1 reads it as a base-60 integer
    ],
)
def test_addresses_endpoints_and_percentages_are_plain_where_yaml_reads_them_back(value, written):
    assert fmt.scalar_text(value) == written
    block, flow, key = f"k: {written}\n", f"k: [{written}, {written}]\n", f"k: {{{written}: [{written}]}}\n"
    for loader_class in (yaml.SafeLoader, yamlsource._Loader):
        assert yaml.load(block, Loader=loader_class) == {"k": value}
        assert yaml.load(flow, Loader=loader_class) == {"k": [value, value]}
        assert yaml.load(key, Loader=loader_class) == {"k": {value: [value]}}


def test_user_order_of_bridges_namespaces_and_interfaces_is_kept():
    raw = b"name: o\nbridges: {zb: {}, ab: {}}\nnamespaces:\n  z: {interfaces: {eth9: {bridge: zb}, eth0: {bridge: ab}}}\n  a: {}\n"
    out = fmt.format_text(raw)
    assert re.findall(r"^  (\w+):", out, re.M) == ["zb", "ab", "z", "a"]
    assert out.index("eth9") < out.index("eth0")


def test_comments_move_with_their_keys_header_stays_on_top_footers_stay_in_their_block():
    raw = b"""\
# header
bridges:   # the bridges
    # about br0
    br0:
        subnet: 10.0.0.0/24
        # closing br0's block
name: hf



namespaces:
  a:
    interfaces:
      eth0: {bridge: br0}
    # end of a
  b:
# the end
"""
    assert (
        fmt.format_text(raw)
        == """\
# header
name: hf
bridges:   # the bridges
  # about br0
  br0:
    subnet: 10.0.0.0/24
    # closing br0's block

namespaces:
  a:
    interfaces:
      eth0: {bridge: br0}
    # end of a
  b: {}
# the end
"""
    )


def test_an_indented_comment_before_more_of_its_block_goes_with_what_follows():
    raw = (
        b"name: r\nbridges:\n  br0: {subnet: 10.0.0.0/24}\n    # deeper\n  br1: {}\nnamespaces:\n  a:\n"
        b"    interfaces: {eth0: {bridge: br0}}\n    routes:\n        # before the first route\n"
        b"      - {to: default, via: 10.0.0.1}\n"
    )
    assert (
        fmt.format_text(raw)
        == """\
name: r
bridges:
  br0: {subnet: 10.0.0.0/24}
  # deeper
  br1: {}
namespaces:
  a:
    interfaces:
      eth0: {bridge: br0}
    routes:
      # before the first route
      - {to: default, via: 10.0.0.1}
"""
    )


def test_a_comment_inside_a_leaf_object_keeps_it_in_block_style():
    raw = b"name: c\nbridges:\n  br0:\n    subnet: 10.0.0.0/24  # lab\n    mtu: 1400\n"
    assert fmt.format_text(raw) == "name: c\nbridges:\n  br0:\n    subnet: 10.0.0.0/24  # lab\n    mtu: 1400\n"
    no_comment = b"name: c\nbridges:\n  br0:\n    subnet: 10.0.0.0/24\n    mtu: 1400\n"
    assert fmt.format_text(no_comment) == "name: c\nbridges:\n  br0: {subnet: 10.0.0.0/24, mtu: 1400}\n"


def test_an_end_of_line_comment_keeps_its_column_when_it_can():
    raw = b"name: c\nbridges:\n  br0: {subnet: 10.0.0.0/24}          # aligned\n  br1: {subnet: 10.1.0.0/24, masquerade: on} # pushed\n"
    assert fmt.format_text(raw) == (
        "name: c\nbridges:\n  br0: {subnet: 10.0.0.0/24}          # aligned\n  br1: {subnet: 10.1.0.0/24, masquerade: true}  # pushed\n"
    )


def test_a_long_leaf_object_is_block_style():
    bridge, iface = "b" * 15, "e" * 15
    raw = (
        f"name: w\nbridges: {{{bridge}: {{subnet: 10.0.0.0/24}}}}\nnamespaces:\n  web:\n    interfaces:\n"
        f"      {iface}: {{bridge: {bridge}, address: 10.0.0.200/24, mtu: 65535, mac: '02:00:00:00:00:01'}}\n".encode()
    )
    out = fmt.format_text(raw)
    assert max(len(line) for line in out.splitlines()) <= fmt.WIDTH
    assert f"      {iface}:\n        bridge: {bridge}\n        address: 10.0.0.200/24\n" in out


def test_strings_yaml_would_read_as_something_else_are_quoted():
    raw = b'name: q\nnamespaces:\n  "10.5": {}\n  "123": {}\n  "yes": {}\n  yes-ns: {}\n  1.web_a-b: {}\n'
    out = fmt.format_text(raw)
    assert '  "10.5": {}\n  "123": {}\n  "yes": {}\n  yes-ns: {}\n  1.web_a-b: {}\n' in out


def test_anchors_aliases_and_merge_keys_are_kept():
    raw = (ROOT / "tests" / "corpus" / "good" / "anchors_and_aliases.yaml").read_bytes()
    out = fmt.format_text(raw)
    assert "&bridge_defaults" in out and "<<: *bridge_defaults" in out and "eth0: *on_a" in out
    assert "- {<<: *fwd, host_port: 8081, namespace: two}" in out


def test_merge_key_comes_first_where_pyyaml_applies_it_anyway():
    raw = b"name: m\nbridges:\n  br0: &d {mtu: 1400}\n  br1: {mtu: 9000, <<: *d}\n"
    out = fmt.format_text(raw)
    assert "  br1: {<<: *d, mtu: 9000}\n" in out
    assert loader.load_bytes(out.encode()).bridge("br1").mtu == 9000


def test_empty_sections_documents_markers_bom_and_crlf():
    raw = (
        b"\xef\xbb\xbf%YAML 1.1\r\n---\r\nname: e\r\nbridges:\r\n  br0:\r\nnamespaces:\r\n  idle:\r\n  island:\r\n"
        b"    interfaces:\r\n    routes: []\r\n...\r\n"
    )
    assert fmt.format_text(raw) == ("name: e\nbridges:\n  br0: {}\nnamespaces:\n  idle: {}\n  island: {interfaces: {}, routes: []}\n")


def test_blank_lines_are_collapsed_and_dropped_at_the_start_of_a_block():
    raw = b"name: b\n\n\n\nbridges:\n\n  br0: {}\n\n\n  br1: {}\n"
    assert fmt.format_text(raw) == "name: b\n\nbridges:\n  br0: {}\n\n  br1: {}\n"


def test_a_block_scalar_becomes_a_plain_scalar_and_keeps_its_header_comment():
    raw = b"name: s\nbridges:\n  br0:\n    subnet: |-   # why\n      10.0.0.0/24\n"
    assert fmt.format_text(raw) == "name: s\nbridges:\n  br0:\n    subnet: 10.0.0.0/24  # why\n"


# refusals and the safety net


def test_invalid_files_are_refused_with_the_validate_lines(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nbridges: {br0: {colour: red}}\n")
    code, out, err = run(capsys, "fmt", str(path))
    assert (code, out) == (ExitCode.ERROR, "")
    assert err == f"nsnet: {path}:2:17: bridges.br0.colour: unknown key 'colour' (known keys: allow_overlap, gateway, masquerade, mtu, subnet)\n"
    assert err == run(capsys, "validate", str(path))[2]
    assert path.read_text() == "name: x\nbridges: {br0: {colour: red}}\n"


def test_format_text_raises_topology_error_on_bad_yaml():
    with pytest.raises(TopologyError):
        fmt.format_text(b"name: [unclosed\n")


def test_the_safety_net_refuses_a_result_that_loses_a_comment(monkeypatch, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: a  # keep me\nbridges: {br0: {}}\n")
    monkeypatch.setattr(fmt._Writer, "_render", staticmethod(lambda text, comment: text))
    with pytest.raises(fmt.FmtError, match="a comment would be lost"):
        fmt.format_file(str(path))
    assert cli.main(["fmt", str(path)]) == ExitCode.ERROR
    assert path.read_text() == "name: a  # keep me\nbridges: {br0: {}}\n"


def test_the_safety_net_refuses_a_result_that_means_something_else(monkeypatch):
    monkeypatch.setattr(fmt, "scalar_text", lambda value: "1500" if value == 1400 else str(value).lower())
    with pytest.raises(fmt.FmtError, match="different topology"):
        fmt.format_text(b"name: a\nbridges:\n  br0:\n    mtu: 1400\n")


# the command


@pytest.fixture
def messy(tmp_path) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text("name: a\nbridges:\n  br0:\n    subnet: 10.0.0.0/24\n")
    return path


def test_fmt_rewrites_the_default_file(capsys, monkeypatch, messy):
    monkeypatch.chdir(messy.parent)
    os.chmod(messy, 0o640)
    code, out, err = run(capsys, "fmt")
    assert (code, out, err) == (0, "topology.yaml: formatted\n", "")
    assert messy.read_text() == "name: a\nbridges:\n  br0: {subnet: 10.0.0.0/24}\n"
    assert stat.S_IMODE(messy.stat().st_mode) == 0o640
    assert run(capsys, "fmt") == (0, "topology.yaml: already formatted\n", "")
    assert sorted(os.listdir(messy.parent)) == ["topology.yaml"]  # no temporary file left


def test_fmt_check_prints_the_file_and_a_diff_and_exits_1_without_writing(capsys, messy):
    before = messy.read_text()
    code, out, err = run(capsys, "fmt", "--check", str(messy))
    assert (code, err) == (ExitCode.ERROR, "")
    assert out.splitlines()[0] == f"{messy}: not in canonical form; `nsnet fmt {messy}` would change it:"
    assert f"--- {messy}\n+++ {messy} (formatted)\n" in out
    assert "-  br0:\n-    subnet: 10.0.0.0/24\n+  br0: {subnet: 10.0.0.0/24}\n" in out
    assert messy.read_text() == before


def test_fmt_check_exits_0_on_a_canonical_file(capsys):
    code, out, _ = run(capsys, "fmt", "--check", str(ROOT / "examples" / "topology.yaml"))
    assert (code, out) == (0, f"{ROOT / 'examples' / 'topology.yaml'}: already formatted\n")


def test_fmt_diff_writes_nothing_and_exits_0(capsys, messy):
    before = messy.read_text()
    code, out, _ = run(capsys, "fmt", "--diff", str(messy))
    assert code == 0 and out.startswith(f"--- {messy}\n") and messy.read_text() == before


def test_fmt_checks_every_file_before_writing_any(capsys, messy, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n")
    before = messy.read_text()
    assert run(capsys, "fmt", str(messy), str(bad))[0] == ExitCode.ERROR
    assert messy.read_text() == before


def test_fmt_follows_a_symlink(capsys, messy, tmp_path):
    link = tmp_path / "link.yaml"
    link.symlink_to(messy)
    assert run(capsys, "fmt", str(link))[0] == 0
    assert link.is_symlink() and messy.read_text() == "name: a\nbridges:\n  br0: {subnet: 10.0.0.0/24}\n"


def test_fmt_stdin_to_stdout(capsys, monkeypatch, messy):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(messy.read_bytes())))
    code, out, _ = run(capsys, "fmt", "-")
    assert (code, out) == (0, "name: a\nbridges:\n  br0: {subnet: 10.0.0.0/24}\n")


# properties: comments and blank lines anywhere, any layout PyYAML can dump

FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
SEEDS = {p.name: p.read_text(encoding="utf-8-sig") for p in FILES}


@st.composite
def commented(draw) -> str:
    """A bundled file, maybe re-dumped in another layout, with comments and blank lines sprinkled in."""
    text = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    style = draw(st.sampled_from(["as is", "block", "flow", "indent4"]))
    if style != "as is":
        text = yaml.safe_dump(
            yaml.safe_load(text),
            sort_keys=False,
            default_flow_style=style == "flow",
            indent=4 if style == "indent4" else 2,
            width=draw(st.sampled_from([20, 80, 1000])),
        )
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["trailing", "own line", "blank"]))
        if kind == "trailing":
            lines[i] += " " * draw(st.integers(1, 30)) + f"# t{i}"
        elif kind == "own line":
            lines.insert(i, " " * draw(st.integers(0, 10)) + f"# s{i}")
        else:
            lines.insert(i, "")
    return "\n".join(lines)


@FUZZ
@given(commented())
def test_property_fmt_keeps_meaning_and_comments_and_is_idempotent(text):
    raw = text.encode()
    try:
        before = loader.load_bytes(raw)
    except TopologyError:
        return  # the comment landed inside a value and broke it: not fmt's concern
    out = fmt.format_text(raw)  # its own safety net checks meaning and comments
    assert loader.load_bytes(out.encode()) == before
    assert comment_texts(out) == comment_texts(text)
    assert fmt.format_text(out.encode()) == out
