"""`nsnet cni install`: the plugin executable, written atomically, runs this installation's Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netplan_lite
from netplan_lite.cni import install


def test_the_plugin_runs_this_python_isolated_and_without_site(tmp_path: Path):
    path = Path(install.install(str(tmp_path / "bin")))
    text = path.read_text()
    assert path.name == "nsnet" and os.access(path, os.X_OK) and path.stat().st_mode & 0o777 == 0o755
    assert text.splitlines()[0] == f"#!{os.path.abspath(sys.executable)} -IS"  # one option word: Linux passes the rest as one argument
    assert repr(os.path.dirname(os.path.dirname(os.path.abspath(netplan_lite.__file__)))) in text and repr(sys.prefix) in text
    assert [p.name for p in path.parent.iterdir()] == ["nsnet"]  # no temporary file left


def test_the_installed_plugin_answers_version_and_the_about_line(tmp_path: Path):
    path = install.install(str(tmp_path))
    env = {"PATH": os.environ["PATH"], "NSNET_AGENT": "off"}
    done = subprocess.run([path], input=b'{"cniVersion": "0.4.0"}', env={**env, "CNI_COMMAND": "VERSION"}, capture_output=True, timeout=30)
    assert done.returncode == 0 and b'"cniVersion": "0.4.0"' in done.stdout, done.stderr
    about = subprocess.run([path], input=b"", env=env, capture_output=True, timeout=30)
    assert about.returncode == 0 and about.stdout == b"" and about.stderr.startswith(b"CNI nsnet plugin")


def test_installing_again_replaces_the_file(tmp_path: Path):
    first = install.install(str(tmp_path))
    Path(first).write_text("stale")
    assert Path(install.install(str(tmp_path))).read_text() == install.script()
