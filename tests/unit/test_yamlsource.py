"""yamlsource.parse: refuse unsafe or ambiguous YAML, with positions."""

from __future__ import annotations

import time

import pytest

from netplan_lite.model import yamlsource
from netplan_lite.model.yamlsource import MAX_BYTES, MAX_DEPTH, SourceError, parse


def refusal(raw: bytes) -> SourceError:
    with pytest.raises(SourceError) as info:
        parse(raw)
    return info.value


def billion_laughs(levels: int = 9) -> bytes:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines).encode() + b"\n"


def test_parses_a_mapping_into_plain_data():
    assert parse(b"name: demo\nbridges: {br0: {mtu: 1500}}\n").data == {"name": "demo", "bridges": {"br0": {"mtu": 1500}}}


def test_duplicate_top_level_key_names_both_lines():
    err = refusal(b"name: a\nbridges: {}\nname: b\n")
    assert (err.message, err.line, err.column, err.path) == ("duplicate key (first defined on line 1)", 3, 1, "name")


def test_duplicate_nested_key_has_its_key_path():
    err = refusal(b"name: a\nbridges:\n  br0: {}\n  br1: {}\n  br0: {mtu: 1500}\n")
    assert (err.message, err.line, err.column, err.path) == ("duplicate key (first defined on line 3)", 5, 3, "bridges.br0")


def test_duplicate_key_inside_a_flow_mapping_has_its_column():
    err = refusal(b"name: a\nb: {c: 1, c: 2}\n")
    assert (err.line, err.column, err.path) == (2, 11, "b.c")


def test_duplicate_key_inside_a_sequence_item_has_the_index_in_its_path():
    err = refusal(b"port_forwards:\n  - {port: 1, port: 2}\n")
    assert err.path == "port_forwards.0.port"


def test_billion_laughs_is_refused_fast():
    started = time.monotonic()
    err = refusal(billion_laughs())
    assert "alias bomb" in err.message
    assert time.monotonic() - started < 2.0


def test_a_few_aliases_are_fine():
    assert parse(b"a: &x [1, 2]\nb: *x\n").data == {"a": [1, 2], "b": [1, 2]}


def test_recursive_alias_is_refused():
    err = refusal(b"a: &a [*a]\n")
    assert err.message == f"nesting deeper than {MAX_DEPTH} levels"


def test_nesting_just_under_the_limit_is_accepted():
    depth = MAX_DEPTH - 1  # the root mapping is level 1
    assert parse(b"a: " + b"[" * depth + b"]" * depth).data is not None


def test_deep_nesting_is_refused_with_its_position():
    err = refusal(b"a: " + b"[" * 40 + b"]" * 40)
    assert err.message == f"nesting deeper than {MAX_DEPTH} levels"
    assert (err.line, err.column) == (1, MAX_DEPTH + 3)
    assert err.path == "a" + ".0" * (MAX_DEPTH - 1)


def test_deep_block_nesting_is_refused():
    raw = "".join(f"{'  ' * i}k{i}:\n" for i in range(60)).encode()
    assert refusal(raw).line == MAX_DEPTH + 1


def test_nesting_beyond_the_recursion_limit_is_refused_not_crashed():
    started = time.monotonic()
    err = refusal(b"[" * 5000 + b"]" * 5000)
    assert err.message == f"nesting deeper than {MAX_DEPTH} levels"
    assert time.monotonic() - started < 10.0


def test_file_over_the_size_cap_is_refused_before_parsing():
    err = refusal(b"#" * (MAX_BYTES + 1))
    assert err.message == f"file is {MAX_BYTES + 1} bytes, over the {MAX_BYTES}-byte limit"


def test_file_at_the_size_cap_is_accepted():
    raw = b"name: a\n"
    assert parse(raw + b"#" * (MAX_BYTES - len(raw))).data == {"name": "a"}


def test_non_utf8_bytes_are_refused_with_their_offset():
    err = refusal(b"name: \xff\xfe\n")
    assert err.message == "not UTF-8 text (byte 6)"


def test_nul_byte_is_refused():
    assert refusal(b"name: a\x00\n").message == "binary data (NUL byte) in a topology file"


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"# just a comment\n"])
def test_empty_file_is_refused(raw):
    assert refusal(raw).message == "file is empty: a topology needs at least `name:`"


def test_explicit_empty_document_parses_to_null():
    """The loader then says the top level must be a mapping."""
    assert parse(b"---\n").data is None


def test_multiple_documents_are_refused_at_the_second():
    err = refusal(b"name: a\n---\nname: b\n")
    assert err.message.startswith("invalid YAML:")
    assert (err.line, err.column) == (2, 1)


@pytest.mark.parametrize(
    "raw, line, column",
    [
        (b"name: a\n  bad: indent\n", 2, 6),
        (b"name: a\nbridges: [\n", 3, 1),
        (b"name: 'unterminated\n", 2, 1),
        (b"name: a\n\tbridges: {}\n", 2, 1),
    ],
)
def test_invalid_yaml_reports_its_position(raw, line, column):
    err = refusal(raw)
    assert err.message.startswith("invalid YAML: ")
    assert (err.line, err.column) == (line, column)


def test_locate_finds_a_nested_value():
    doc = parse(b"name: a\nbridges:\n  br0:\n    mtu: 9000\n")
    assert doc.locate(("bridges", "br0", "mtu")) == (4, 10)


def test_locate_key_finds_the_key_not_the_value():
    doc = parse(b"name: a\nbridges:\n  br0:\n    mtu: 9000\n")
    assert doc.locate_key(("bridges", "br0", "mtu")) == (4, 5)


def test_locate_stops_at_the_deepest_existing_node():
    doc = parse(b"name: a\nport_forwards:\n  - {port: 1}\n")
    assert doc.locate(("port_forwards", 0, "missing")) == (3, 5)


def test_source_error_is_not_a_yaml_error():
    """Callers catch SourceError alone: PyYAML's own errors never leak."""
    assert not issubclass(SourceError, yamlsource.yaml.YAMLError)
