"""The error contract: one closed set of error codes, the same in errors.py and in the published schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netplan_lite.errors import ErrorCode, ExitCode, NsnetError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "validate.schema.json"


# Imports every module in a child process: importing them here, at collection, would change what
# later tests see (modules that copy a setting at import would miss the tests' monkeypatches).
EVERY_ERROR_CLASS = """
import importlib, json, pkgutil, netplan_lite
from netplan_lite.errors import NsnetError
for module in pkgutil.walk_packages(netplan_lite.__path__, "netplan_lite."):
    if module.name != "netplan_lite.__main__":  # runs the command line
        importlib.import_module(module.name)
found, todo = {}, [NsnetError]
while todo:
    cls = todo.pop()
    found[f"{cls.__module__}.{cls.__qualname__}"] = [type(cls.code).__name__, str(cls.code)]
    todo.extend(cls.__subclasses__())
print(json.dumps(found))
"""


def test_the_error_codes_are_the_schemas():
    """An `error` the schema does not list would fail every consumer that validates; one it lists
    that nsnet cannot print is a promise nobody keeps."""
    listed = json.loads(SCHEMA.read_text())["$defs"]["error"]["properties"]["error"]["enum"]
    assert sorted(listed) == sorted(code.value for code in ErrorCode)


def test_every_error_class_of_the_package_has_a_code_of_the_set():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", EVERY_ERROR_CLASS], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    codes = json.loads(done.stdout)
    assert {kind for kind, _ in codes.values()} == {"ErrorCode"}, codes
    assert codes["netplan_lite.kernel.namespace_exec.ExecError"] == ["ErrorCode", "usage"]  # given as a string
    assert len(codes) > 10, codes


def test_a_code_outside_the_set_fails_when_the_class_is_defined():
    with pytest.raises(ValueError, match="'nonsense' is not a valid ErrorCode"):
        type("Nonsense", (NsnetError,), {"code": "nonsense"})


def test_a_code_given_as_its_string_is_the_member():
    assert type("Usage", (NsnetError,), {"code": "usage"}).code is ErrorCode.USAGE


def test_ctrl_c_exits_130_by_name():
    assert ExitCode.INTERRUPTED == 130
