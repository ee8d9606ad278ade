"""The journal's intents: what an interrupted run may have created."""

from __future__ import annotations

import json
import os

import pytest

from netplan_lite.engine import journal, rundir
from netplan_lite.resources.bridge import BridgeState
from netplan_lite.resources.interface import InterfaceState
from netplan_lite.resources.namespace import NamespaceState
from netplan_lite.resources.route import RouteState


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "STATE_DIR", str(tmp_path))


def test_names_of_each_kind():
    assert journal.names_of(BridgeState("br0")) == {"links": ["br0"]}
    assert journal.names_of(NamespaceState("web")) == {"namespaces": ["web"]}
    assert journal.names_of(InterfaceState("web", "eth0", "nsvabc")) == {"links": ["nsvabc"]}
    assert journal.names_of(RouteState("web", "default", ("10.0.0.1",))) == {}


def test_begin_records_name_intents_and_a_clean_close_forgets_them():
    log = journal.Journal("lab")
    log.record("begin", op="create", id="namespace web", names={"namespaces": ["web"]})
    log.record("begin", op="create", id="bridge br0", names={"links": ["br0"]})
    assert journal.read_intents("lab") == journal.Intents(frozenset({"br0"}), frozenset({"web"}))
    log.close(clean=True)
    assert journal.read_intents("lab") == journal.Intents()


def test_a_create_refused_because_the_name_exists_adopts_nothing():
    log = journal.Journal("lab")
    log.record("begin", op="create", id="bridge br0", names={"links": ["br0"]})
    log.record("failed", op="create", id="bridge br0", created_nothing=True)
    log.close(clean=False)
    assert journal.read_intents("lab") == journal.Intents()


def test_a_line_cut_short_by_a_kill_is_skipped(tmp_path):
    journal.topology_dir("lab")
    with open(journal.journal_path("lab"), "a") as f:
        f.write(json.dumps({"event": "begin", "id": "namespace a", "names": {"namespaces": ["a"]}}) + "\n")
        f.write('{"event": "begin", "id": "namespace b", "na')
    assert journal.read_intents("lab").namespaces == frozenset({"a"})


def test_a_run_that_records_nothing_leaves_no_journal(tmp_path):
    run = journal.Journal("lab")
    run.close(clean=False)  # e.g. the kernel could not be read: no action was attempted
    assert not os.path.exists(journal.journal_path("lab"))
