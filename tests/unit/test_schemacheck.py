"""The fast schema check agrees with jsonschema (the authority) on every document we have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from builders import topology_keys
from hypothesis import strategies as st

from netplan_lite.model import schemacheck, yamlsource
from netplan_lite.model.loader import _validator_class, topology_schema

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / "tests/corpus").rglob("*.yaml")) + sorted((REPO / "examples").glob("*.yaml"))


def _parsed(path: Path) -> object:
    try:
        return yamlsource.parse(path.read_bytes()).data
    except yamlsource.SourceError:
        return None  # refused before any schema check: nothing to compare


DOCUMENTS = {path.name: data for path in FILES if isinstance(data := _parsed(path), dict)}


def _agree(data: object) -> None:
    expected = _validator_class()(topology_schema()).is_valid(data)
    assert schemacheck.is_valid(data, topology_schema()) == expected, json.dumps(data, default=str)[:300]


def _keywords(node: object, inside_properties: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if not inside_properties:
                found.add(key)
            found |= _keywords(value, inside_properties=key in ("properties", "$defs") and not inside_properties)
    return found


def test_the_schema_uses_only_keywords_the_fast_check_knows():
    assert _keywords(topology_schema()) <= schemacheck.KEYWORDS


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_corpus_documents(name: str):
    _agree(DOCUMENTS[name])


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(
        ["", "br0", "web1", "eth0", "tcp", "udp", "sctp", "10.0.0.1", "10.0.0.0/24", "02:00:00:00:00:01", "a" * 20, "demo", "demo\n", "Web 1"]
    ),
)
keys = st.sampled_from([*topology_keys(), "br0", "web1", "eth0", "x"])
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=25)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.dictionaries(keys, documents, max_size=5))
def test_generated_documents(data):
    _agree(data)
