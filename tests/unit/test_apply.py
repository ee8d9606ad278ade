"""Executing plans on the fake kernel: journal records, rollback, stop requests."""

from __future__ import annotations

import pytest

from netplan_lite.engine import apply, journal, reconcile, rundir
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.model.loader import load_bytes
from netplan_lite.engine.diff import Op
from netplan_lite.resources.ids import Kind, ResourceId

LAB = b"""name: lab
bridges: {br0: {subnet: 10.1.0.0/24}}
namespaces:
  a: {interfaces: {eth0: {bridge: br0}}}
  b: {interfaces: {eth0: {bridge: br0}}}
"""


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path))


def test_inverse_of_each_op():
    planned = reconcile.plan(load_bytes(LAB), FakeKernel())
    create = planned.plan.actions[0]
    assert apply.inverse(create).op is Op.DELETE and apply.inverse(create).before == create.after
    back = apply.inverse(apply.inverse(create))
    assert (back.op, back.after) == (Op.CREATE, create.after)


def test_a_failure_rolls_back_to_the_state_before_the_run():
    kernel = FakeKernel()
    kernel.fail_on = ResourceId(Kind.INTERFACE, "eth0", "b")
    applied = reconcile.apply(load_bytes(LAB), kernel, reconcile.RunOptions(journal=journal.Journal("lab")))
    assert isinstance(applied.outcome.failure, apply.ActionFailed)
    assert kernel.resources == {}  # bridge, namespaces and a/eth0 undone, newest first
    assert [str(a.id) for a in applied.outcome.rolled_back][0] == "interface a/eth0"
    assert journal.read_intents("lab") == journal.Intents()  # fully undone: the journal is gone


def test_a_bug_in_a_backend_is_an_internal_error_raised_after_the_rollback():
    kernel = FakeKernel()
    real_create = kernel.create

    def buggy(resource):
        if resource.id == ResourceId(Kind.INTERFACE, "eth0", "b"):
            raise KeyError("a bug, not a refusal")
        return real_create(resource)

    kernel.create = buggy  # type: ignore[method-assign]
    with pytest.raises(apply.ActionBug) as caught:
        reconcile.apply(load_bytes(LAB), kernel, reconcile.RunOptions(journal=journal.Journal("lab")))
    assert caught.value.code == "internal" and "create interface b/eth0: internal error: KeyError" in str(caught.value)
    assert kernel.resources == {}  # rolled back all the same
    assert journal.read_intents("lab") == journal.Intents()


def test_no_rollback_keeps_progress_and_the_journal():
    kernel = FakeKernel()
    kernel.fail_on = ResourceId(Kind.INTERFACE, "eth0", "b")
    options = reconcile.RunOptions(journal=journal.Journal("lab"), rollback=False)
    applied = reconcile.apply(load_bytes(LAB), kernel, options)
    assert not applied.converged and ResourceId(Kind.INTERFACE, "eth0", "a") in kernel.resources
    assert "b" in journal.read_intents("lab").namespaces


def test_a_stop_request_ends_the_run_before_the_next_action_and_rolls_back():
    kernel = FakeKernel()
    calls = iter([None, None, "SIGTERM"])
    applied = reconcile.apply(load_bytes(LAB), kernel, reconcile.RunOptions(stop=lambda: next(calls, "SIGTERM")))
    assert isinstance(applied.outcome.failure, apply.Interrupted)
    assert len(applied.outcome.rolled_back) == 2 and kernel.resources == {}
