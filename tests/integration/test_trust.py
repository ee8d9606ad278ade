"""Trust guarantees against the real kernel: crash safety at every kill point,
rollback on failure, the per-topology lock, stop signals, concurrent runs of
different topologies, and clear refusals without privileges or nft."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def _run(lab, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netplan_lite", *args], capture_output=True, text=True, cwd=lab.dir, env={**os.environ, **(env or {})}, timeout=timeout
    )


def _table_exists(topology: str) -> bool:
    return subprocess.run(["nft", "list", "table", "inet", f"nsnet-{topology}"], capture_output=True).returncode == 0


@pytest.fixture
def trust(lab):
    """The lab, plus exact-name cleanup of the test's nft table (ip_forward is
    released by the lab's `nsnet destroy`, through nsnet's own registry)."""
    try:
        yield lab
    finally:
        for topology in lab.files:
            if _table_exists(topology):
                subprocess.run(["nft", "delete", "table", "inet", f"nsnet-{topology}"])


def _with_forward(lab, ex, port: int | None = None) -> Path:
    """The example plus one port forward (so nft and sysctls are part of every run)."""
    doc = ex.doc()
    doc["port_forwards"] = [{"host_port": port or 20000 + secrets.randbelow(20000), "namespace": ex.web1, "port": 80}]
    return lab.write(doc, ex.path)


def _nothing_left(lab, ex) -> list[str]:
    left = [n for n in (ex.web1, ex.web2) if n in lab.netns_names()]
    left += lab.links_with_alias(ex.label)
    left += [f"table nsnet-{ex.topology}"] if _table_exists(ex.topology) else []
    return left


def _converges(lab, path: Path) -> None:
    done = _run(lab, "apply", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    again = _run(lab, "plan", "--detailed-exitcode", str(path))
    assert again.returncode == 0, again.stdout + again.stderr


def test_every_kill_point_of_apply_recovers(trust):
    """SIGKILL at each kernel-changing step: plan works, apply converges, destroy removes all."""
    lab = trust
    ex = lab.example()
    path = _with_forward(lab, ex)
    survived = 0
    for point in range(1, 200):
        killed = _run(lab, "apply", str(path), env={"NSNET_KILL_AT": str(point)})
        if killed.returncode == 0:
            break  # past the last checkpoint: every kill point was tried
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        plan = _run(lab, "plan", "--detailed-exitcode", str(path))
        assert plan.returncode in (0, 2), f"kill point {point}: {plan.stderr}"
        if point % 2:  # half of the points: converge first; the other half: destroy straight away
            _converges(lab, path)
        destroyed = _run(lab, "destroy", str(path))
        assert destroyed.returncode == 0, f"kill point {point}: {destroyed.stdout}{destroyed.stderr}"
        assert lab.wait_until(lambda: not _nothing_left(lab, ex)), f"kill point {point} leaked {_nothing_left(lab, ex)}"
        survived += 1
    else:
        pytest.fail("apply never completed")
    assert survived >= 20, survived  # every checkpoint of the run was a kill point
    print(f"apply kill points survived: {survived}")


def test_every_kill_point_of_destroy_recovers(trust):
    lab = trust
    ex = lab.example()
    path = _with_forward(lab, ex)
    survived = 0
    for point in range(1, 100):
        _converges(lab, path)
        killed = _run(lab, "destroy", str(path), env={"NSNET_KILL_AT": str(point)})
        if killed.returncode == 0:
            break
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        destroyed = _run(lab, "destroy", str(path))
        assert destroyed.returncode == 0, f"kill point {point}: {destroyed.stderr}"
        assert lab.wait_until(lambda: not _nothing_left(lab, ex)), f"kill point {point} leaked {_nothing_left(lab, ex)}"
        survived += 1
    assert survived >= 3, survived
    print(f"destroy kill points survived: {survived}")


def test_failed_action_rolls_back_to_the_host_as_found(trust):
    lab = trust
    ex = lab.example()
    path = _with_forward(lab, ex)
    forward_before = Path(IP_FORWARD).read_text()
    failed = _run(lab, "apply", str(path), env={"NSNET_FAIL_AT": "12"})
    assert failed.returncode == 1
    assert "injected fault" in failed.stderr and "rolled back" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert lab.wait_until(lambda: not _nothing_left(lab, ex)), _nothing_left(lab, ex)
    assert Path(IP_FORWARD).read_text() == forward_before
    _converges(lab, path)


def test_no_rollback_keeps_progress_and_plan_shows_the_rest(trust):
    lab = trust
    ex = lab.example()
    path = _with_forward(lab, ex)
    failed = _run(lab, "apply", "--no-rollback", str(path), env={"NSNET_FAIL_AT": "12"})
    assert failed.returncode == 1 and "kept the partial progress" in failed.stderr, failed.stderr
    assert ex.web1 in lab.netns_names()  # created before the fault and kept
    plan = _run(lab, "plan", "--detailed-exitcode", str(path))
    assert plan.returncode == 2 and "Plan:" in plan.stdout
    _converges(lab, path)


def test_second_run_waits_for_the_lock_then_names_the_holder(trust):
    lab = trust
    ex = lab.example()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from netplan_lite.engine.lock import topology_lock\n"
            "with topology_lock(sys.argv[1], 5):\n    print('locked', flush=True); time.sleep(20)",
            ex.topology,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        waited = _run(lab, "apply", "--lock-timeout", "1", str(ex.path))
        assert waited.returncode == 1
        assert f"PID {holder.pid}" in waited.stderr and time.monotonic() - started >= 1
        assert ex.web1 not in lab.netns_names()  # nothing was changed while waiting
    finally:
        holder.kill()
        holder.wait()
    _converges(lab, ex.path)


def test_two_topologies_apply_concurrently(trust):
    lab = trust
    first, second = lab.example(), lab.example("b")
    paths = [_with_forward(lab, first), _with_forward(lab, second)]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "netplan_lite", "apply", str(p)], cwd=lab.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for p in paths
    ]
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, out + err
    for path in paths:
        assert _run(lab, "plan", "--detailed-exitcode", str(path)).returncode == 0
    forward_holders = Path("/run/nsnet/sysctl.json").read_text()
    assert first.topology in forward_holders and second.topology in forward_holders
    for path in paths:
        assert _run(lab, "destroy", str(path)).returncode == 0


def test_sigterm_stops_after_the_current_action_and_rolls_back(trust):
    lab = trust
    ex = lab.example()
    doc = ex.doc()
    for i in range(30):  # enough actions to interrupt in the middle
        name = f"{lab.prefix}-n{i}"
        doc["namespaces"][name] = {"interfaces": {"eth0": {"bridge": ex.bridge}}}
    lab.write(doc, ex.path)
    run = subprocess.Popen(
        [sys.executable, "-m", "netplan_lite", "apply", str(ex.path)], cwd=lab.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in run.stdout:
        if line.lstrip().startswith("+ namespace"):
            run.send_signal(signal.SIGTERM)
            break
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1, out + err
    assert "interrupted by SIGTERM" in err and "rolled back" in err, err
    assert lab.wait_until(lambda: not (set(doc["namespaces"]) & lab.netns_names()))
    assert not lab.links_with_alias(ex.label)


def test_without_privileges_one_line_and_nothing_changed(trust):
    lab = trust
    ex = lab.example()
    dropped = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-net_admin,-sys_admin",
            "--bounding-set=-net_admin,-sys_admin",
            sys.executable,
            "-m",
            "netplan_lite",
            "apply",
            str(ex.path),
        ],
        capture_output=True,
        text=True,
        cwd=lab.dir,
    )
    assert dropped.returncode == 1
    assert dropped.stderr.count("\n") == 1 and "needs root" in dropped.stderr, dropped.stderr
    assert ex.web1 not in lab.netns_names()


def test_without_nft_a_plan_needing_it_changes_nothing(trust, tmp_path):
    lab = trust
    ex = lab.example()
    path = _with_forward(lab, ex)
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {"PATH": str(bare)}  # no nft on the PATH (the interpreter is called by its full path)
    failed = _run(lab, "apply", str(path), env=env)
    assert failed.returncode == 1 and "nft is not installed" in failed.stderr, failed.stderr
    assert failed.stderr.count("\n") == 1
    assert ex.web1 not in lab.netns_names() and not lab.links_with_alias(ex.label)
