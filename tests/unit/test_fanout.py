"""fan_out: the same answers as a plain map, whichever process computes them."""

from __future__ import annotations

import os

import pytest

from netplan_lite.kernel import fanout


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(fanout, "workers_for", lambda count: 2)


def test_small_inputs_stay_in_process():
    assert fanout.workers_for(10) == 1
    assert fanout.fan_out(lambda x: (x, os.getpid()), [1, 2]) == [(1, os.getpid()), (2, os.getpid())]


def test_shares_come_back_in_order_from_a_child(two_workers):
    results = fanout.fan_out(lambda x: (x * x, os.getpid()), list(range(9)))
    assert [square for square, _ in results] == [x * x for x in range(9)]
    assert {pid for _, pid in results[5:]} != {os.getpid()}  # the second share was a child's


def test_a_failing_child_share_is_redone_by_the_parent(two_workers):
    parent = os.getpid()

    def only_in_parent(x: int) -> int:
        if os.getpid() != parent:
            raise RuntimeError("a child's failure")
        return x + 1

    assert fanout.fan_out(only_in_parent, list(range(6))) == [1, 2, 3, 4, 5, 6]


def test_an_error_is_raised_with_its_own_type(two_workers):
    def fails_on_five(x: int) -> int:
        if x == 5:
            raise FileNotFoundError(x)
        return x

    with pytest.raises(FileNotFoundError):
        fanout.fan_out(fails_on_five, list(range(8)))
