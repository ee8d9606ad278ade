"""plugin.main(): the about line, VERSION, verb dispatch, and every failure as one error document on stdout."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from test_cni_config import ENV, doc

from netplan_lite.cni import verbs
from netplan_lite.cni.plugin import main
from netplan_lite.cni.spec import ABOUT, CURRENT, SUPPORTED_VERSIONS, Result, ResultInterface, ResultIP


def call(env: dict[str, str], stdin: bytes | dict[str, Any] = b"") -> tuple[int, str]:
    out = io.StringIO()
    data = json.dumps(stdin).encode() if isinstance(stdin, dict) else stdin
    return main(env=env, stdin=io.BytesIO(data), stdout=out), out.getvalue()


def answered(env: dict[str, str], stdin: bytes | dict[str, Any] = b"", code: int = 0) -> Any:
    """The one JSON document main() printed (None if nothing), its exit code being `code`."""
    status, out = call(env, stdin)
    assert status == code, out
    assert out.count("\n") == (1 if out else 0)
    return json.loads(out) if out else None


@pytest.fixture
def verbs_called(monkeypatch) -> list[tuple[str, Any]]:
    """The verbs, recorded instead of run (no kernel); ADD answers a small result."""
    called: list[tuple[str, Any]] = []
    result = Result((ResultInterface("eth0", "02:00:00:00:00:01", "/run/netns/x"),), (ResultIP("10.88.0.2/24", "10.88.0.1", 0),))
    monkeypatch.setattr(verbs, "add", lambda conf, request, stdin: called.append(("ADD", request.container_id)) or result)
    monkeypatch.setattr(verbs, "delete", lambda conf, request, stdin: called.append(("DEL", request.container_id)))
    monkeypatch.setattr(verbs, "check", lambda conf, request: called.append(("CHECK", request.container_id)))
    monkeypatch.setattr(verbs, "status", lambda conf: called.append(("STATUS", conf.name)))
    monkeypatch.setattr(verbs, "gc", lambda conf, valid: called.append(("GC", valid)))
    return called


@pytest.mark.parametrize("env", [{}, {"CNI_COMMAND": ""}, {"CNI_CONTAINERID": "x"}])
def test_no_command_prints_the_about_line_on_stderr(env, capsys):
    out = io.StringIO()
    assert main(env=env, stdin=None, stdout=out) == 0  # stdin is not read (pytest's would refuse)
    assert out.getvalue() == "" and capsys.readouterr().err == ABOUT + "\n" and "1.1.0" in ABOUT


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_version_answers_in_the_version_asked(version):
    assert answered({"CNI_COMMAND": "VERSION"}, {"cniVersion": version}) == {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


@pytest.mark.parametrize("stdin", [b"", b"  \n", b"{", b"\xff", b"[]", b'{"cniVersion": "0.2.0"}', b'{"cniVersion": ["1.0.0"]}', b"{}"])
def test_version_answers_the_newest_otherwise(stdin):
    assert answered({"CNI_COMMAND": "VERSION"}, stdin) == {"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED_VERSIONS)}


@pytest.mark.parametrize(
    ("env", "stdin", "code", "version", "msg"),
    [
        ({"CNI_NETNS": ""}, doc(cniVersion="0.4.0"), 4, "0.4.0", "ADD needs CNI_NETNS"),
        ({"CNI_COMMAND": "FOO"}, doc(), 4, "1.0.0", "unknown CNI_COMMAND 'FOO'"),
        ({"CNI_ARGS": "K8S_POD_NAME=p"}, doc(), 4, "1.0.0", "unknown CNI_ARGS K8S_POD_NAME"),
        ({}, b"{not json", 6, CURRENT, "the network configuration on stdin is not JSON"),
        ({"CNI_COMMAND": "DEL"}, b"[1]", 6, CURRENT, "the network configuration on stdin is not a JSON object"),
        ({}, doc(cniVersion="0.3.1", vlan=5), 2, "0.3.1", "vlan: VLAN filtering is not supported by nsnet"),
        ({"CNI_COMMAND": "CHECK"}, doc(cniVersion="0.2.0"), 1, CURRENT, "incompatible CNI version 0.2.0"),
        ({"CNI_COMMAND": "STATUS"}, doc(mtu=1), 7, "1.0.0", "mtu: 1 is not an MTU between 68 and 65535"),
    ],
)
def test_errors_are_one_document_on_stdout(capsys, verbs_called, env, stdin, code, version, msg):
    error = answered({**ENV, **env}, stdin, code=1)
    assert (error["cniVersion"], error["code"], error["msg"]) == (version, code, msg) and set(error) == {"cniVersion", "code", "msg", "details"}
    assert msg in capsys.readouterr().err
    assert verbs_called == []


def test_an_exception_in_a_verb_is_an_internal_error(capsys, verbs_called, monkeypatch):
    def boom(*_):
        raise RuntimeError("boom")

    monkeypatch.setattr(verbs, "check", boom)
    error = answered({**ENV, "CNI_COMMAND": "CHECK"}, doc(cniVersion="0.4.0"), code=1)
    assert error == {"cniVersion": "0.4.0", "code": 199, "msg": "internal error: RuntimeError: boom", "details": "a bug in nsnet"}
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_prints_its_result_in_the_configurations_version(verbs_called, version):
    result = answered({**ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p"}, doc(cniVersion=version))
    assert result["cniVersion"] == version and result["ips"][0]["address"] == "10.88.0.2/24"
    assert ("version" in result["ips"][0]) == (version < "1.0.0")
    assert verbs_called == [("ADD", "abc123")]


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS"])
def test_other_verbs_print_nothing_on_success(verbs_called, command):
    assert answered({**ENV, "CNI_COMMAND": command}, doc(cniVersion="1.1.0")) is None
    assert verbs_called == [(command, "net" if command == "STATUS" else "abc123")]


def test_del_without_a_namespace(verbs_called):
    assert answered({**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}, doc()) is None
    assert verbs_called == [("DEL", "abc123")]


def test_gc_without_attachments(verbs_called):
    assert answered({"CNI_COMMAND": "GC"}, doc(cniVersion="1.1.0")) is None
    assert verbs_called == [("GC", [])]


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_passes_the_valid_attachments(verbs_called, key):
    valid = [{"containerID": "abc123", "ifname": "eth0"}]
    assert answered({"CNI_COMMAND": "GC"}, doc(cniVersion="1.1.0", **{key: valid})) is None
    assert verbs_called == [("GC", valid)]


@pytest.mark.parametrize(("command", "version"), [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "1.0.0")])
def test_a_verb_the_configuration_s_version_lacks_is_refused(verbs_called, command, version):
    out = io.StringIO()
    assert main(env={**ENV, "CNI_COMMAND": command}, stdin=io.BytesIO(json.dumps(doc(cniVersion=version)).encode()), stdout=out) == 1
    answer = json.loads(out.getvalue())
    assert answer["code"] == 1 and answer["cniVersion"] == version and f"{command} needs CNI spec" in answer["msg"]
    assert verbs_called == []
