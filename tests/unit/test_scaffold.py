"""nsnet init: the starter topology validates, teaches, is canonical, and never overwrites by accident."""

from __future__ import annotations

import os
import re
from ipaddress import IPv4Interface

import pytest

from builders import run_cli as run

from netplan_lite.cli import main as cli
from netplan_lite.model import fmt, loader, init as scaffold
from netplan_lite.engine.desired import allocate
from netplan_lite.errors import ExitCode


def comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)


# the template


def test_the_starter_validates_and_has_the_promised_shape():
    topology = loader.load_bytes(scaffold.render("topology.yaml").encode())
    assert topology.name == "lab"
    (bridge,) = topology.bridges
    assert bridge.subnet is not None and bridge.masquerade
    assert [ns.name for ns in topology.namespaces] == ["client", "web"]
    pinned = [i for ns in topology.namespaces for i in ns.interfaces if i.address is not None]
    assert len(pinned) == 1
    (forward,) = topology.port_forwards
    assert (forward.host_port, forward.namespace, forward.port) == (scaffold.HOST_PORT, "web", 80)
    assert scaffold.HOST_PORT not in (8080, 8081)  # examples/topology.yaml's: the starter and the demo can be up together


def test_the_addresses_its_comments_promise_are_the_ones_apply_gives():
    text = scaffold.render("topology.yaml")
    topology = loader.load_bytes(text.encode())
    addresses = allocate(topology, {})
    assert addresses[("web", "eth0")] == IPv4Interface("172.31.254.10/24")
    assert addresses[("client", "eth0")] == IPv4Interface("172.31.254.2/24")
    assert "allocated from the subnet (172.31.254.2)" in text
    assert "(172.31.254.1/24)" in text  # the gateway


def test_the_starter_is_already_in_canonical_form():
    for path, name in (("topology.yaml", "lab"), ("labs/my lab.yaml", "abcdefghijklmnopqrstuvwxyz-01234")):
        text = scaffold.render(path, name)
        assert fmt.format_text(text.encode()) == text


def test_every_optional_key_it_leaves_out_is_mentioned_in_a_comment():
    schema = loader.topology_schema()
    keys = set(schema["properties"])
    for definition in schema["$defs"].values():
        keys |= set(definition.get("properties", {}))
    text = scaffold.render("topology.yaml")
    used = set(re.findall(r"^\s*-?\s*([a-z_]+):", text, re.M)) | set(re.findall(r"[{,]\s*([a-z_]+):", text))
    explained = comments(text)
    missing = [k for k in sorted(keys - used) if not re.search(rf"`{k}:|`\{{{k}:|{k}:", explained)]
    assert missing == []


def test_every_section_has_a_comment_above_it():
    lines = scaffold.render("topology.yaml").splitlines()
    for key in ("name:", "bridges:", "namespaces:", "port_forwards:", "    subnet:", "    masquerade:", "    interfaces:"):
        index = next(i for i, line in enumerate(lines) if line.startswith(key))
        assert lines[index - 1].lstrip().startswith("#"), key


def test_the_next_commands_are_listed():
    explained = comments(scaffold.render("topology.yaml"))
    commands = ("nsnet validate", "nsnet plan", "nsnet apply", "nsnet exec web --", "ss -Htln", "curl http://127.0.0.1:8088/", "nsnet show")
    for command in (*commands, "nsnet destroy"):
        assert command in explained


def test_commands_name_a_file_that_is_not_the_default_quoted_for_the_shell():
    text = scaffold.render("labs/my lab.yaml")
    assert "nsnet plan 'labs/my lab.yaml'" in text
    assert "nsnet exec 'labs/my lab.yaml' web --" in text
    default = scaffold.render("topology.yaml")
    assert "nsnet plan  " in default and "nsnet plan topology.yaml" not in default


def test_name_sets_the_topology_and_bridge_names():
    topology = loader.load_bytes(scaffold.render("t.yaml", "edge-lab").encode())
    assert topology.name == "edge-lab" and topology.bridges[0].name == "br-edge-lab"
    long = loader.load_bytes(scaffold.render("t.yaml", "a" * 32).encode())
    assert long.bridges[0].name == "br-" + "a" * 12  # 15 characters, a valid interface name


# writing


def test_create_writes_the_file(tmp_path):
    path = tmp_path / "topology.yaml"
    starter = scaffold.create(str(path))
    assert path.read_text() == starter.text
    assert loader.load_file(path).name == "lab"


@pytest.mark.parametrize("name", ["Lab", "1lab", "lab_1", "a" * 33, "lab\n", "$(id)"])
def test_a_bad_name_is_refused_before_writing(tmp_path, name):
    path = tmp_path / "t.yaml"
    with pytest.raises(scaffold.InitError, match="is not allowed"):
        scaffold.create(str(path), name)
    assert not path.exists()


def test_an_existing_file_is_not_overwritten(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("name: mine\n")
    with pytest.raises(scaffold.InitError) as info:
        scaffold.create(str(path))
    assert info.value.lines() == [f"{path}: already exists; use --force to overwrite it"]
    assert path.read_text() == "name: mine\n"


def test_force_overwrites_through_a_symlink(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("name: mine\n")
    link = tmp_path / "topology.yaml"
    link.symlink_to(target)
    scaffold.create(str(link), force=True)
    assert link.is_symlink() and loader.load_file(target).name == "lab"


def test_a_directory_or_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(scaffold.InitError, match="is a directory"):
        scaffold.create(str(tmp_path))
    with pytest.raises(scaffold.InitError, match="no such directory"):
        scaffold.create(str(tmp_path / "nope" / "t.yaml"))


# the command


def test_init_writes_topology_yaml_in_the_current_directory(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "init")
    assert (code, err) == (0, "")
    assert out.startswith("Wrote topology.yaml: topology 'lab'")
    assert run(capsys, "validate")[0] == 0


def test_init_refuses_to_overwrite_with_one_line_and_exit_1(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "topology.yaml").write_text("name: mine\n")
    code, out, err = run(capsys, "init")
    assert (code, out) == (ExitCode.ERROR, "")
    assert err == "nsnet: topology.yaml: already exists; use --force to overwrite it\n"
    assert (tmp_path / "topology.yaml").read_text() == "name: mine\n"
    assert run(capsys, "init", "--force")[0] == 0
    assert loader.load_file(tmp_path / "topology.yaml").name == "lab"


def test_init_uses_nsnet_file_and_a_given_name(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NSNET_FILE", str(tmp_path / "env.yaml"))
    code, _, _ = run(capsys, "init", "--name", "demo2")
    assert code == 0 and loader.load_file(tmp_path / "env.yaml").name == "demo2"
    code, out, _ = run(capsys, "init", str(tmp_path / "other.yaml"))
    assert code == 0 and f"nsnet plan {tmp_path / 'other.yaml'}" in out


def test_init_to_stdout(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "-")
    assert code == 0 and out == scaffold.render("-") and os.listdir(tmp_path) == []


def test_init_help_mentions_force(capsys):
    with pytest.raises(SystemExit):
        cli.main(["init", "--help"])
    out = capsys.readouterr().out
    assert "usage: nsnet init" in out and "--force" in out and "--name" in out


def test_the_web_server_is_the_examples_one_reached_from_the_current_directory(tmp_path):
    inside = scaffold.WEBSERVER.parents[1] / "lab" / "quickstart"
    assert scaffold.webserver_path(str(inside)) == "../../examples/webserver.py"
    assert scaffold.webserver_path(str(tmp_path)) == str(scaffold.WEBSERVER)  # outside the clone: absolute
    assert "http.server" not in scaffold.render("topology.yaml")  # it looks up DNS before it listens
