"""A fast yes/no check of a document against nsnet's own schema.

`import jsonschema` alone costs ~45 ms, a third of `nsnet validate`. This
checker implements only the keywords topology.schema.json uses (listed in
KEYWORDS; a test fails if the schema starts using another) and only answers
"valid or not": when it says no, the loader asks jsonschema for the exact
errors. It must never accept what jsonschema rejects (tested over the corpus
and fuzzed documents).
"""

from __future__ import annotations

import functools
import re
from typing import Any

KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$ref",
        "title",
        "description",
        "default",
        "examples",
        "type",
        "properties",
        "additionalProperties",
        "required",
        "propertyNames",
        "pattern",
        "minimum",
        "maximum",
        "enum",
        "items",
        "maxItems",
        "minItems",
    }
)

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


@functools.lru_cache(maxsize=None)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def is_valid(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> bool:
    root = root if root is not None else schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    kind = schema.get("type")
    if kind is not None and not (_TYPES[kind](value) if isinstance(kind, str) else any(_TYPES[k](value) for k in kind)):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, str) and "pattern" in schema and not _regex(schema["pattern"]).search(value):
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            return False
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        items = schema.get("items")
        return items is None or all(is_valid(item, items, root) for item in value)
    if isinstance(value, dict):
        return _object_is_valid(value, schema, root)
    return True


def _object_is_valid(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if any(key not in value for key in schema.get("required", ())):
        return False
    names = schema.get("propertyNames")
    if names is not None and not all(is_valid(key, names, root) for key in value):
        return False
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            if not is_valid(item, properties[key], root):
                return False
        elif extra is False:
            return False
        elif isinstance(extra, dict) and not is_valid(item, extra, root):
            return False
    return True
