"""nsnet completion: scripts generated from the parser, valid for their shell, and in sync with the CLI."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netplan_lite.cli import main as cli, completion

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "topology.yaml"


def script(shell: str) -> str:
    return completion.script(shell, cli.build_parser())


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.fixture
def bash_script(tmp_path) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    path = tmp_path / "nsnet.bash"
    path.write_text(script("bash"))
    return path


@pytest.fixture
def fake_nsnet(tmp_path) -> Path:
    """An `nsnet` on PATH that runs this checkout (the scripts call it to list namespaces)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nsnet"
    exe.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m netplan_lite "$@"\n')
    exe.chmod(0o755)
    return bin_dir


def complete_bash(script_path: Path, *words: str, path_dir: Path | None = None, cwd: Path | None = None) -> list[str]:
    """What TAB offers after `words` (the last one is the word being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = f"""
source {script_path}
COMP_WORDS=({quoted})
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMPREPLY=()
_nsnet
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = dict(os.environ)
    env.pop("NSNET_FILE", None)
    if path_dir is not None:
        env["PATH"] = f"{path_dir}:{env['PATH']}"
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


# bash


def test_bash_script_is_valid_bash(bash_script):
    done = subprocess.run(["bash", "-n", str(bash_script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_bash_script_registers_the_completion(bash_script):
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f"source {bash_script} && complete -p nsnet"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "complete -F _nsnet nsnet"


def test_bash_completes_a_subcommand(bash_script):
    assert complete_bash(bash_script, "nsnet", "pl") == ["plan"]
    assert sorted(complete_bash(bash_script, "nsnet", "")) == sorted(subcommands())
    assert complete_bash(bash_script, "nsnet", "--debug", "sh") == ["show"]


def test_bash_completes_options_of_the_subcommand(bash_script):
    offered = complete_bash(bash_script, "nsnet", "plan", "--")
    assert "--detailed-exitcode" in offered and "--out" in offered and "--lock-timeout" not in offered
    assert complete_bash(bash_script, "nsnet", "fmt", "--ch") == ["--check"]


def test_bash_completes_files_and_choices(bash_script, tmp_path):
    (tmp_path / "lab.yaml").write_text("name: a\n")
    assert complete_bash(bash_script, "nsnet", "validate", "la", cwd=tmp_path) == ["lab.yaml"]
    assert complete_bash(bash_script, "nsnet", "plan", "-o", "la", cwd=tmp_path) == ["lab.yaml"]
    assert complete_bash(bash_script, "nsnet", "completion", "") == ["bash", "zsh", "fish"]
    assert complete_bash(bash_script, "nsnet", "apply", "--lock-timeout", "", cwd=tmp_path) == []


def test_bash_completes_the_test_command_and_its_options(bash_script, tmp_path):
    (tmp_path / "lab.yaml").write_text("name: a\n")
    assert complete_bash(bash_script, "nsnet", "te") == ["test"]
    assert sorted(complete_bash(bash_script, "nsnet", "test", "--")) == ["--help", "--json", "--junit", "--no-color", "--ping-all", "--wait"]
    assert complete_bash(bash_script, "nsnet", "test", "--junit", "la", cwd=tmp_path) == ["lab.yaml"]
    assert complete_bash(bash_script, "nsnet", "test", "--wait", "", cwd=tmp_path) == []
    assert complete_bash(bash_script, "nsnet", "test", "la", cwd=tmp_path) == ["lab.yaml"]


def test_bash_completes_namespaces_then_a_command_for_exec(bash_script, fake_nsnet, tmp_path):
    words = ("nsnet", "exec", "-f", str(EXAMPLE))
    assert complete_bash(bash_script, *words, "", path_dir=fake_nsnet) == ["web1", "web2"]
    assert complete_bash(bash_script, *words, "web2", path_dir=fake_nsnet) == ["web2"]
    assert "bash" in complete_bash(bash_script, *words, "web1", "--", "bas", path_dir=fake_nsnet)
    assert "bash" in complete_bash(bash_script, *words, "web1", "bas", path_dir=fake_nsnet)
    (tmp_path / "notes.txt").write_text("")
    # after the command, its arguments are files, even when they look like nsnet's options
    assert complete_bash(bash_script, *words, "web1", "cat", "-f", "no", path_dir=fake_nsnet, cwd=tmp_path) == ["notes.txt"]


# zsh and fish: syntax only, when the shell is installed (they are not installed for the tests)


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse(shell, tmp_path):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"nsnet.{shell}"
    path.write_text(script(shell))
    done = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


# in sync with the parser


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_every_command_and_option_is_in_every_script(shell):
    text = script(shell)
    for name, parser in subcommands().items():
        assert name in text
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                needle = option if shell != "fish" else (f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}")
                assert needle in text, (shell, name, option)


def test_a_new_command_appears_without_touching_the_generator():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    extra = sub.add_parser("frobnicate", help="a command added later")
    extra.add_argument("--widget", metavar="FILE")
    for shell in completion.SHELLS:
        text = completion.script(shell, parser)
        assert "frobnicate" in text and "widget" in text


def test_the_model_read_from_the_parser():
    _, cmds = completion.commands(cli.build_parser())
    by_name = {c.name: c for c in cmds}
    assert [a.kind for a in by_name["validate"].positionals] == ["file"]
    assert by_name["fmt"].repeat_last and by_name["fmt"].positionals[0].kind == "file"
    assert [a.kind for a in by_name["exec"].positionals] == ["namespace"] and by_name["exec"].rest_at == 1
    assert by_name["completion"].positionals[0].choices == completion.SHELLS
    out = next(o for o in by_name["plan"].options if "--out" in o.strings)
    assert out.takes_value and out.value.kind == "file"
    options = {o.strings[0]: o for o in by_name["test"].options}
    assert [a.kind for a in by_name["test"].positionals] == ["file"] and options["--junit"].value.kind == "file"
    assert options["--wait"].takes_value and options["--wait"].value.kind == "none" and not options["--ping-all"].takes_value


def test_zsh_script_shape():
    text = script("zsh")
    assert text.startswith("#compdef nsnet\n") and text.rstrip().endswith('_nsnet "$@"')
    assert "'1:namespace:_nsnet_namespaces'" in text and "'*::command:_normal'" in text
    assert text.count("(") - text.count(")") == 0


def test_fish_script_shape():
    text = script("fish")
    assert "complete -c nsnet -f\n" in text
    assert "complete -c nsnet -n __nsnet_no_command -a plan -d " in text
    assert "complete -c nsnet -n '__nsnet_is exec -eq 0' -a '(__nsnet_namespaces)'" in text
    blocks = sum(text.count(f"\n{' ' * n}{word}") for n in range(0, 20, 4) for word in ("function ", "for ", "if ", "switch ", "while "))
    ends = sum(text.count(f"\n{' ' * n}end\n") for n in range(0, 20, 4))
    assert blocks == ends


# the command


def test_completion_prints_the_script(capsys):
    assert cli.main(["completion", "bash"]) == 0
    assert capsys.readouterr().out == script("bash")


def test_completion_without_a_shell_is_one_line(capsys):
    assert cli.main(["completion"]) == 1
    assert capsys.readouterr().err == "nsnet: completion: name a shell: bash, zsh, fish\n"


def test_completion_help_shows_how_to_install_for_each_shell(capsys):
    with pytest.raises(SystemExit):
        cli.main(["completion", "--help"])
    out = capsys.readouterr().out
    assert "nsnet completion bash > /etc/bash_completion.d/nsnet" in out
    assert "source <(nsnet completion bash)" in out
    assert 'nsnet completion zsh > "${fpath[1]}/_nsnet"' in out
    assert "nsnet completion fish > ~/.config/fish/completions/nsnet.fish" in out
    assert "--list-namespaces" not in out


def test_list_namespaces_prints_names_and_is_silent_on_errors(capsys, tmp_path):
    assert cli.main(["completion", "--list-namespaces", str(EXAMPLE)]) == 0
    assert capsys.readouterr() == ("web1\nweb2\n", "")
    assert cli.main(["completion", "--list-namespaces", str(tmp_path / "missing.yaml")]) == 0
    assert capsys.readouterr() == ("", "")
