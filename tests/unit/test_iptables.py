"""nsnet's rules in Docker's DOCKER-USER chain, without root: what is read as nsnet's, the exact
argv it runs (never a shell), and the engine around them on the fake kernel."""

from __future__ import annotations

import subprocess

import pytest
from builders import doc, topology

from netplan_lite.engine import reconcile
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.errors import KernelError
from netplan_lite.kernel import iptables
from netplan_lite.resources.docker_user import DOCKER_USER, Ip6tablesRulesState, IptablesRulesState
from netplan_lite.resources.ids import Kind, ResourceId

OURS = "nsnet:lab"
DOCKER_ONLY = ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"]
CHAIN = [
    "-N DOCKER-USER",
    '-A DOCKER-USER -i br0 -m comment --comment "nsnet:lab" -j ACCEPT',
    '-A DOCKER-USER -o br0 -m comment --comment "nsnet:lab" -j ACCEPT',
    '-A DOCKER-USER -i br9 -m comment --comment "nsnet:other" -j ACCEPT',  # another topology's
    '-A DOCKER-USER -i br1 -p tcp -m comment --comment "nsnet:lab" -j ACCEPT',  # edited by someone: not ours
    "-A DOCKER-USER -i br2 -j ACCEPT",  # the admin's own
    "-A DOCKER-USER -j RETURN",
]


def lab(**extra) -> dict:
    return {**doc({"br0": {"subnet": "172.30.0.0/24"}}, {"a": {"interfaces": {"eth0": {"bridge": "br0"}}}}), **extra}


def test_only_rules_of_nsnet_s_exact_shape_and_label_are_read_as_nsnet_s():
    assert iptables.labelled_accepts(CHAIN, DOCKER_USER, OURS) == ("br0 in", "br0 out")
    assert iptables.labelled_accepts(DOCKER_ONLY, DOCKER_USER, OURS) == ()


class Recorder:
    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = ""):
        self.calls: list[list[str]] = []
        self.answer = (returncode, stdout, stderr)

    def __call__(self, argv, **kwargs):
        assert "shell" not in kwargs and isinstance(argv, list)
        self.calls.append(argv)
        return subprocess.CompletedProcess(argv, *self.answer)


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(iptables.shutil, "which", lambda tool: f"/usr/sbin/{tool}")
    monkeypatch.setattr(iptables.subprocess, "run", recorder)
    return recorder


def test_rules_are_inserted_at_the_top_in_order_and_deleted_by_their_exact_spec(recorder: Recorder):
    rules = IptablesRulesState(DOCKER_USER, ("br0 in", "br0 out"))
    iptables.add(rules, rules.accepts, OURS)
    iptables.remove(Ip6tablesRulesState(DOCKER_USER, ("br0 out",)), ("br0 out",), OURS)
    spec = ["-m", "comment", "--comment", OURS, "-j", "ACCEPT"]
    assert recorder.calls == [
        ["/usr/sbin/iptables", "-w", "-t", "filter", "-I", DOCKER_USER, "1", "-o", "br0", *spec],
        ["/usr/sbin/iptables", "-w", "-t", "filter", "-I", DOCKER_USER, "1", "-i", "br0", *spec],  # ends up first
        ["/usr/sbin/ip6tables", "-w", "-t", "filter", "-D", DOCKER_USER, "-o", "br0", *spec],
    ]


def test_a_refused_change_is_a_kernel_error_with_iptables_own_words(recorder: Recorder):
    recorder.answer = (1, "", "iptables: Bad rule (does a matching rule exist in that chain?).\n")
    with pytest.raises(KernelError, match="Bad rule"):
        iptables.remove(IptablesRulesState(DOCKER_USER, ("br0 in",)), ("br0 in",), OURS)


def test_a_missing_chain_or_tool_means_no_docker_chain(recorder: Recorder, monkeypatch):
    recorder.answer = (1, "", "iptables v1.8.9 (nf_tables): chain `DOCKER-USER' in table `filter' is incompatible, use 'nft' tool.\n")
    assert iptables.docker_chains(OURS) == {}
    recorder.answer = (0, "\n".join(CHAIN) + "\n", "")
    assert iptables.docker_chains(OURS) == {Kind.IPTABLES_RULE: ("br0 in", "br0 out"), Kind.IP6TABLES_RULE: ("br0 in", "br0 out")}
    monkeypatch.setattr(iptables.shutil, "which", lambda tool: None)
    assert iptables.docker_chains(OURS) == {}


# the engine around them (fake kernel)

BOTH = frozenset({Kind.IPTABLES_RULE, Kind.IP6TABLES_RULE})
V4 = ResourceId(Kind.IPTABLES_RULE, DOCKER_USER)
V6 = ResourceId(Kind.IP6TABLES_RULE, DOCKER_USER)


def test_on_a_docker_host_apply_accepts_every_bridge_in_both_families_and_destroy_removes_them():
    kernel = FakeKernel(docker_chains=BOTH)
    t = topology(lab())
    assert reconcile.apply(t, kernel).converged
    assert kernel.resources[V4] == IptablesRulesState(DOCKER_USER, ("br0 in", "br0 out"))
    assert kernel.resources[V6] == Ip6tablesRulesState(DOCKER_USER, ("br0 in", "br0 out"))
    assert reconcile.plan(t, kernel).plan.empty
    assert reconcile.destroy(t.name, kernel).converged
    assert V4 not in kernel.resources and V6 not in kernel.resources


def test_without_docker_s_chain_or_with_the_key_off_nothing_is_planned_for_it():
    assert not any(a.id.kind in BOTH for a in reconcile.plan(topology(lab()), FakeKernel()).plan.actions)
    off = topology(lab(firewall={"docker_user": False}))
    assert not any(a.id.kind in BOTH for a in reconcile.plan(off, FakeKernel(docker_chains=BOTH)).plan.actions)


def test_a_rule_lost_by_hand_is_drift_that_apply_repairs():
    kernel = FakeKernel(docker_chains=frozenset({Kind.IPTABLES_RULE}))
    t = topology(lab())
    reconcile.apply(t, kernel)
    kernel.resources[V4] = IptablesRulesState(DOCKER_USER, ("br0 out",))
    (action,) = reconcile.plan(t, kernel).plan.actions
    assert (action.id, action.op.value) == (V4, "update")
    assert reconcile.apply(t, kernel).converged and kernel.resources[V4].accepts == ("br0 in", "br0 out")


def test_a_failed_rule_rolls_back_what_the_run_made():
    kernel = FakeKernel(docker_chains=frozenset({Kind.IPTABLES_RULE}))
    kernel.fail_on = V4
    applied = reconcile.apply(topology(lab()), kernel)
    assert not applied.converged
    assert kernel.resources == {}


def test_removing_tries_every_rule_so_a_half_made_create_is_undone(recorder: Recorder, monkeypatch):
    answers = iter([(1, "", "iptables: Bad rule (does a matching rule exist in that chain?).\n"), (0, "", "")])

    def run(argv, **kwargs):
        recorder.calls.append(argv)
        return subprocess.CompletedProcess(argv, *next(answers))

    monkeypatch.setattr(iptables.subprocess, "run", run)
    with pytest.raises(KernelError, match="Bad rule"):
        iptables.remove(IptablesRulesState(DOCKER_USER, ("br0 in", "br0 out")), ("br0 in", "br0 out"), OURS)
    assert [call[6] for call in recorder.calls] == ["-i", "-o"]


def test_the_observation_carries_docker_s_chains_and_nsnet_s_rules_in_them():
    from netplan_lite.kernel.netlink import Snapshot
    from netplan_lite.kernel.observe import build_observation

    chains = {Kind.IPTABLES_RULE: ("br0 in", "br0 out"), Kind.IP6TABLES_RULE: ()}
    observation = build_observation("lab", Snapshot((), (), ()), {}, docker_chains=chains)
    assert observation.docker_chains == BOTH
    assert dict(observation.state) == {V4: IptablesRulesState(DOCKER_USER, ("br0 in", "br0 out"))}  # none of ours in IPv6
