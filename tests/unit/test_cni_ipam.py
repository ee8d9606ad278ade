"""nsnet's own CNI allocator and its lease records, in a temporary state directory (never /run)."""

from __future__ import annotations

import threading

import pytest
from test_cni_config import V4, V6, conf, refused

from netplan_lite.cni import ipam, records, verbs
from netplan_lite.cni.spec import Code, CniError
from netplan_lite.kernel import nftables
from netplan_lite.engine import rundir

SMALL = {"subnet": "10.88.0.0/29"}  # gateway .1, hosts .2-.6, broadcast .7


@pytest.fixture(autouse=True)
def state(monkeypatch, tmp_path):
    """rundir.STATE_DIR is read at each call (records builds every path through rundir), so this is enough."""
    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path / "run"))
    assert records.cni_dir("net", "leases").startswith(str(tmp_path))
    return tmp_path


def allocated(c, *owners: str) -> list[str]:
    return [ipam.allocate(c, owner)[0] for owner in owners]


def test_sequential_and_sticky_per_lease_file(state):
    c = conf(SMALL)
    assert allocated(c, "a", "b") == ["10.88.0.2/29", "10.88.0.3/29"]
    assert records.leases("net") == {"10.88.0.2": "a", "10.88.0.3": "b"}
    assert (state / "run" / "net" / "cni" / "leases" / "10.88.0.2").read_text() == "a"
    assert records.cursor("net", 4) == "10.88.0.3"


def test_a_released_address_is_not_reused_at_once():
    c = conf(SMALL)
    allocated(c, "a", "b")
    records.release("net", "10.88.0.2", "a")
    assert allocated(c, "c") == ["10.88.0.4/29"]


def test_wraps_around_and_skips_the_gateway_and_leased_addresses():
    c = conf(SMALL)
    assert allocated(c, *"abcde") == [f"10.88.0.{i}/29" for i in range(2, 7)]
    for address, owner in (("10.88.0.3", "b"), ("10.88.0.5", "d")):
        records.release("net", address, owner)
    assert allocated(c, "f", "g") == ["10.88.0.3/29", "10.88.0.5/29"]


def test_exhausted():
    c = conf(SMALL)
    allocated(c, *"abcd")
    assert not ipam.exhausted(c)
    allocated(c, "e")
    assert ipam.exhausted(c)
    err = refused(Code.ADDRESSES_EXHAUSTED, ipam.allocate, c, "f")
    assert "10.88.0.0/29" in err.msg
    assert len(records.leases("net")) == 5  # the failed call took nothing
    records.release("net", "10.88.0.4", "c")
    assert not ipam.exhausted(c) and allocated(c, "f") == ["10.88.0.4/29"]


@pytest.mark.parametrize(("subnet", "hosts"), [("10.88.0.0/30", ["10.88.0.2/30"]), ("fd00::/126", ["fd00::2/126", "fd00::3/126"])])
def test_smallest_ranges(subnet, hosts):
    """IPv4 leaves out the broadcast address, IPv6 has none."""
    c = conf({"subnet": subnet})
    assert allocated(c, *"ab"[: len(hosts)]) == hosts
    assert ipam.exhausted(c)
    refused(Code.ADDRESSES_EXHAUSTED, ipam.allocate, c, "z")


def test_range_start_end_and_a_gateway_inside():
    c = conf({"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.12", "gateway": "10.88.0.11"})
    assert allocated(c, "a", "b") == ["10.88.0.10/24", "10.88.0.12/24"]
    assert ipam.exhausted(c)
    refused(Code.ADDRESSES_EXHAUSTED, ipam.allocate, c, "c")


def test_a_gateway_outside_the_range_does_not_count():
    c = conf({"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.11"})
    allocated(c, "a")
    assert not ipam.exhausted(c)
    allocated(c, "b")
    assert ipam.exhausted(c)


def test_never_one_address_twice():
    c = conf({"subnet": "10.88.0.0/27"})  # 29 hosts
    given = allocated(c, *(f"o{i}" for i in range(29)))
    assert len(set(given)) == 29 and "10.88.0.1/27" not in given
    released = given[::3]
    for address in released:
        records.release("net", address.split("/")[0], f"o{given.index(address)}")
    assert sorted(allocated(c, *(f"p{i}" for i in range(len(released))))) == sorted(released)
    assert ipam.exhausted(c)


@pytest.mark.parametrize(
    ("cursor", "first"), [("10.88.0.4", "10.88.0.5"), ("10.88.0.6", "10.88.0.2"), ("10.99.0.1", "10.88.0.2"), ("10.88.0.0", "10.88.0.2")]
)
def test_allocation_goes_on_from_the_recorded_cursor(cursor, first):
    """The cursor is a file: the next call (another process) goes on from it; one outside the range starts it again."""
    records.set_cursor("net", 4, cursor)
    assert allocated(conf(SMALL), "a") == [f"{first}/29"]


def test_dual_stack_takes_one_address_per_family():
    c = conf(V4, V6)
    assert ipam.allocate(c, "a") == ("10.88.0.2/24", "fd00:88::2/64")
    assert ipam.allocate(c, "b") == ("10.88.0.3/24", "fd00:88::3/64")
    assert (records.cursor("net", 4), records.cursor("net", 6)) == ("10.88.0.3", "fd00:88::3")


@pytest.mark.parametrize("ips", [["10.88.0.77"], ["10.88.0.77/16"]])  # the range's prefix, whatever the request's
def test_requested_address_inside_the_range(ips):
    assert ipam.allocate(conf(runtimeConfig={"ips": ips}), "a") == ("10.88.0.77/24",)
    assert records.lease_owner("net", "10.88.0.77") == "a"


def test_requested_addresses_of_both_families():
    c = conf(V4, V6, env={"CNI_ARGS": "IP=fd00:88::77,10.88.0.77"})
    assert ipam.allocate(c, "a") == ("10.88.0.77/24", "fd00:88::77/64")


def test_requested_address_of_one_family_and_a_free_one_of_the_other():
    assert ipam.allocate(conf(V4, V6, runtimeConfig={"ips": ["fd00:88::77"]}), "a") == ("10.88.0.2/24", "fd00:88::77/64")


@pytest.mark.parametrize(
    "address", ["10.88.1.5", "10.88.0.0", "10.88.0.255", "10.88.0.1", "10.88.0.9"]
)  # outside, network, broadcast, gateway, before start
def test_requested_address_outside_the_range(address):
    c = conf({"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10"}, runtimeConfig={"ips": [address]})
    assert address in refused(Code.INVALID_CONFIG, ipam.allocate, c, "a").msg
    assert records.leases("net") == {}


def test_requested_address_of_another_owner_is_a_conflict():
    ipam.allocate(conf(), "a")
    err = refused(Code.CONFLICT, ipam.allocate, conf(runtimeConfig={"ips": ["10.88.0.2"]}), "b")
    assert "in use by a" in err.msg


def test_requested_address_the_owner_holds_is_its_own():
    ipam.allocate(conf(), "a")
    assert ipam.allocate(conf(runtimeConfig={"ips": ["10.88.0.2"]}), "a") == ("10.88.0.2/24",)


@pytest.mark.parametrize("ips", [["fd00:88::5"], ["10.88.0.5", "10.88.0.6"]])  # no range of its family; two of one family
def test_every_requested_address_is_used_or_refused(ips):
    refused(Code.INVALID_CONFIG, ipam.allocate, conf(V4, runtimeConfig={"ips": ips}), "a")


@pytest.mark.parametrize(
    ("runtime", "code"),
    [({"ips": ["fd00:88::2"]}, Code.CONFLICT), ({"ips": ["fd00:88::1"]}, Code.INVALID_CONFIG), ({}, Code.ADDRESSES_EXHAUSTED)],
)
def test_a_failed_second_family_releases_the_first(runtime, code):
    v6 = {"subnet": "fd00:88::/126"}  # hosts ::2 and ::3
    ipam.allocate(conf(v6), "x")
    ipam.allocate(conf(v6), "y")
    refused(code, ipam.allocate, conf(V4, v6, runtimeConfig=runtime), "a")
    assert records.leases("net") == {"fd00:88::2": "x", "fd00:88::3": "y"}


# records: the leases themselves


def test_claim_is_exclusive_and_idempotent_for_its_owner():
    assert records.claim("net", "10.88.0.5", "a")
    assert records.claim("net", "10.88.0.5", "a")
    assert not records.claim("net", "10.88.0.5", "b")
    assert records.lease_owner("net", "10.88.0.5") == "a"


def test_release_only_by_the_owner():
    records.claim("net", "10.88.0.5", "a")
    records.release("net", "10.88.0.5", "b")
    assert records.lease_owner("net", "10.88.0.5") == "a"
    records.release("net", "10.88.0.5", "a")
    records.release("net", "10.88.0.5", "a")  # twice: nothing to do
    assert records.lease_owner("net", "10.88.0.5") is None and records.leases("net") == {}


def test_networks_are_apart():
    records.claim("net", "10.88.0.5", "a")
    assert records.claim("other", "10.88.0.5", "b")
    assert records.leases("net") == {"10.88.0.5": "a"} and records.leases("other") == {"10.88.0.5": "b"}


def test_concurrent_claims_of_one_address():
    owners = [f"owner{i}" for i in range(24)]
    barrier = threading.Barrier(len(owners))
    won: dict[str, bool] = {}

    def claim(owner: str) -> None:
        barrier.wait()
        won[owner] = records.claim("net", "10.88.0.9", owner)

    threads = [threading.Thread(target=claim, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [owner for owner, ok in won.items() if ok]
    assert len(won) == len(owners) and len(winners) == 1
    assert records.leases("net") == {"10.88.0.9": winners[0]}


def test_status_is_not_ready_when_the_range_is_exhausted_or_nft_unusable(monkeypatch):
    monkeypatch.setattr(nftables, "unusable", lambda: None)
    small = conf(ipam={"ranges": [[{"subnet": "10.88.0.0/30"}]]})
    verbs.status(small)  # ready
    allocated(small, "a")  # the /30's one address besides the gateway
    with pytest.raises(CniError) as full:
        verbs.status(small)
    assert full.value.code == Code.NOT_READY and "no free address" in full.value.msg
    monkeypatch.setattr(nftables, "unusable", lambda: "nft is not installed")
    with pytest.raises(CniError) as broken:
        verbs.status(conf())
    assert broken.value.code == Code.NOT_READY and "nft is unusable" in broken.value.msg
