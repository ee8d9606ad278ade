"""The CNI spec as nsnet answers it: results shaped per version, error and VERSION documents."""

from __future__ import annotations

import json

import pytest

from netplan_lite.cni.spec import (
    CURRENT,
    SUPPORTED_VERSIONS,
    Code,
    CniError,
    Result,
    ResultInterface,
    ResultIP,
    ResultRoute,
    answer_version,
    version_document,
)

LEGACY = ("0.3.0", "0.3.1", "0.4.0")  # each address names its family
RESULT = Result(
    interfaces=(ResultInterface("br-net", "02:00:00:00:00:01"), ResultInterface("eth0", "02:00:00:00:00:02", "/run/netns/x", 1400)),
    ips=(ResultIP("10.88.0.2/24", "10.88.0.1", 1), ResultIP("fd00:88::2/64", None, None)),
    routes=(ResultRoute("0.0.0.0/0", "10.88.0.1"), ResultRoute("192.168.0.0/16")),
    dns={"nameservers": ["10.88.0.1"]},
)


def test_the_versions():
    assert SUPPORTED_VERSIONS == ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0") and CURRENT == "1.1.0"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_result_document(version):
    legacy = version in LEGACY
    container = {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/run/netns/x"} | ({"mtu": 1400} if version == "1.1.0" else {})
    assert RESULT.document(version) == {
        "cniVersion": version,
        "interfaces": [{"name": "br-net", "mac": "02:00:00:00:00:01"}, container],
        "ips": [
            ({"version": "4"} if legacy else {}) | {"address": "10.88.0.2/24", "gateway": "10.88.0.1", "interface": 1},
            ({"version": "6"} if legacy else {}) | {"address": "fd00:88::2/64"},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}, {"dst": "192.168.0.0/16"}],
        "dns": {"nameservers": ["10.88.0.1"]},
    }
    json.dumps(RESULT.document(version))  # what main() prints


def test_empty_result():
    assert Result().document("1.0.0") == {"cniVersion": "1.0.0", "interfaces": [], "ips": [], "routes": [], "dns": {}}


def test_interface_index_zero_is_kept():
    assert Result(ips=(ResultIP("10.88.0.2/24", None, 0),)).document("1.0.0")["ips"] == [{"address": "10.88.0.2/24", "interface": 0}]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_error_document(version):
    err = CniError(Code.INVALID_CONFIG, "mtu: 1 is not an MTU", "invalid value of `mtu`")
    assert err.document(version) == {"cniVersion": version, "code": 7, "msg": "mtu: 1 is not an MTU", "details": "invalid value of `mtu`"}
    assert str(err) == err.msg


def test_error_without_details():
    assert CniError(Code.TRY_AGAIN_LATER, "busy").document("1.0.0") == {"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": ""}


@pytest.mark.parametrize(
    ("code", "number"),
    [
        (Code.INCOMPATIBLE_VERSION, 1),
        (Code.UNSUPPORTED_FIELD, 2),
        (Code.UNKNOWN_CONTAINER, 3),
        (Code.INVALID_ENVIRONMENT, 4),
        (Code.IO_FAILURE, 5),
        (Code.DECODING_FAILURE, 6),
        (Code.INVALID_CONFIG, 7),
        (Code.TRY_AGAIN_LATER, 11),
        (Code.NOT_READY, 50),
        (Code.LIMITED_CONNECTIVITY, 51),
    ],
)
def test_the_specs_codes(code, number):
    assert int(code) == number


def test_nsnets_own_codes_are_100_and_up():
    assert all(
        int(c) >= 100 for c in Code if c.name in ("KERNEL_REFUSED", "INTERFACE_EXISTS", "ADDRESSES_EXHAUSTED", "DRIFT", "CONFLICT", "INTERNAL")
    )
    assert int(Code.INTERNAL) == 199


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_version_document(version):
    assert version_document(version) == {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_answer_version(version):
    assert answer_version(version) == version


@pytest.mark.parametrize(
    ("asked", "code"),
    [
        (None, Code.INVALID_CONFIG),
        ("", Code.INVALID_CONFIG),
        (1.0, Code.INVALID_CONFIG),
        ("0.2.0", Code.INCOMPATIBLE_VERSION),
        ("1.0", Code.INCOMPATIBLE_VERSION),
        ("2.0.0", Code.INCOMPATIBLE_VERSION),
    ],
)
def test_answer_version_refuses(asked, code):
    with pytest.raises(CniError) as raised:
        answer_version(asked)
    assert raised.value.code == code
