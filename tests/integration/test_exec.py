"""nsnet exec against the real kernel: the right namespace, the command's exit code, clear refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns

CLIENT = str(Path(__file__).with_name("tcp_client.py"))  # prints what the server sent, or "failed: ..." (exit 3)


def test_exec_runs_the_command_in_the_namespace(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet("exec", "-f", ex.path, ex.web1, "--", "ip", "-j", "addr", "show", "dev", "eth0")
    assert rc == 0, err
    (eth0,) = json.loads(out)
    assert [f"{a['local']}/{a['prefixlen']}" for a in eth0["addr_info"] if a["family"] == "inet"] == [ex.expected[ex.web1]]
    # without `--`, and the other namespace
    rc, out, err = lab.nsnet("exec", "-f", ex.path, ex.web2, "ip", "-j", "-4", "addr", "show", "dev", "eth0")
    assert rc == 0, err
    assert json.loads(out)[0]["addr_info"][0]["local"] == ex.expected[ex.web2].split("/")[0]


def test_exec_sees_the_namespaces_sys_and_reaches_a_neighbour(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet("exec", "-f", ex.path, ex.web1, "--", "ls", "/sys/class/net")
    assert rc == 0, err
    assert sorted(out.split()) == ["eth0", "lo"]  # /sys remounted for the namespace, as `ip netns exec` does
    assert lab.link(ex.bridge) is not None  # the host's view is untouched
    web1 = ex.expected[ex.web1].split("/")[0]
    lab.serve(ex.web1, web1, 8080, "hello")
    rc, out, err = lab.nsnet("exec", "-f", ex.path, ex.web2, "--", sys.executable, CLIENT, web1, "8080")
    assert rc == 0, err
    assert out.split() == ["hello", ex.expected[ex.web2].split("/")[0]]  # the server saw web2's address


def test_the_exit_code_is_the_commands(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet(
        "exec", "-f", ex.path, ex.web1, "--", sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"
    )
    assert (rc, out, err) == (7, "out\n", "err\n")


def test_the_default_file_is_used(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet("exec", ex.web1, "--", "true")  # cwd is the lab's directory, holding topology.yaml
    assert ex.path.name == "topology.yaml" and rc == 0, err


def test_an_unknown_namespace_is_one_line_listing_the_topologys(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet("exec", "-f", ex.path, f"{lab.prefix}-nope", "--", "true")
    assert (rc, out) == (1, "")
    web1, web2 = sorted((ex.web1, ex.web2))
    assert err == (f"nsnet: namespace '{lab.prefix}-nope' is not in topology '{ex.topology}' ({ex.path}); its namespaces: {web1}, {web2}\n")


def test_a_declared_namespace_not_applied_yet_suggests_apply(lab):
    ex = lab.example()
    lab.write(ex.doc(namespaces=(ex.web1,)), ex.path)
    rc, out, err = lab.nsnet("apply", ex.path)
    assert rc == 0, out + err
    lab.write(ex.doc(), ex.path)  # web2 declared, not applied
    rc, out, err = lab.nsnet("exec", "-f", ex.path, ex.web2, "--", "true")
    assert rc == 1 and len(err.splitlines()) == 1
    assert err == f"nsnet: namespace '{ex.web2}' is declared but does not exist on this host: run `nsnet apply {ex.path}` first\n"


def test_a_namespace_of_the_same_name_that_is_not_the_topologys_is_refused(lab, applied):
    ex = applied
    foreign = f"{lab.prefix}-foreign"
    lab.foreign_namespace(foreign)
    doc = ex.doc()
    doc["namespaces"][foreign] = {}
    lab.write(doc, ex.path)
    rc, _, err = lab.nsnet("exec", "-f", ex.path, foreign, "--", "true")
    assert rc == 1
    assert err == (
        f"nsnet: namespace '{foreign}' exists but is not part of topology '{ex.topology}': nsnet did not make it (its lo has no nsnet label)\n"
    )
    other = lab.example("b")  # another topology's namespace, under the same name in this file
    rc, out, err = lab.nsnet("apply", other.path)
    assert rc == 0, out + err
    doc["namespaces"][other.web1] = {}
    lab.write(doc, ex.path)
    rc, _, err = lab.nsnet("exec", "-f", ex.path, other.web1, "--", "true")
    assert rc == 1 and err.endswith(f": it belongs to topology '{other.topology}'\n")


def test_a_missing_command_is_one_line(lab, applied):
    ex = applied
    rc, out, err = lab.nsnet("exec", "-f", ex.path, ex.web1, "--", f"{lab.prefix}-no-such-command")
    assert (rc, out, err) == (1, "", f"nsnet: command not found: {lab.prefix}-no-such-command\n")
    rc, _, err = lab.nsnet("exec", "-f", ex.path, ex.web1)
    assert rc == 1 and err.startswith("nsnet: no command given")
