"""Run a CNI plugin executable the way a container runtime does (CNI spec, section 2).

argv is the plugin's path alone, the parameters are CNI_* environment variables,
the network configuration is JSON on stdin, and the answer is JSON on stdout
(a result, a VERSION answer or an error) with logs on stderr. The environment
holds nothing but the CNI variables the caller gives and PATH: a plugin that
works here depends on nothing else a test process happens to have (libcni
also passes the runtime's own environment; nothing in the spec lets a plugin
rely on it). A variable given as "" is passed empty, one given as None is
absent: the spec's "missing" and "empty" cases differ (DEL with CNI_NETNS="").
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, NamedTuple

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 60.0


class NotJSON(ValueError):
    """The plugin printed something on stdout that is not one JSON document: the spec allows only JSON there."""


class Outcome(NamedTuple):
    code: int  # exit status
    doc: Any  # stdout parsed as JSON; None when stdout is empty (DEL, CHECK)
    stderr: str


def cni_env(
    command: str | None,
    *,
    container_id: str | None = None,
    netns: str | None = None,
    ifname: str | None = None,
    args: str | None = None,
    cni_path: str | None = None,
    path: str = DEFAULT_PATH,
) -> dict[str, str]:
    """The whole environment of one call: the CNI variables that are not None, and PATH."""
    given = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": cni_path,
    }
    return {"PATH": path} | {key: value for key, value in given.items() if value is not None}


def stdin_bytes(config: Any) -> bytes:
    """A dict or list is sent as JSON; str and bytes are sent as they are (to test bad input)."""
    if isinstance(config, bytes):
        return config
    if isinstance(config, str):
        return config.encode()
    return json.dumps(config).encode()


def parse_stdout(stdout: bytes) -> Any:
    text = stdout.decode()
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise NotJSON(f"stdout is not JSON ({e}): {text[:500]!r}") from None


def invoke(plugin: str | os.PathLike[str], config: Any, env: dict[str, str], *, timeout: float = TIMEOUT) -> Outcome:
    """Execute `plugin` with exactly `env` (see cni_env) and `config` on stdin, from /."""
    done = subprocess.run([os.fspath(plugin)], input=stdin_bytes(config), capture_output=True, env=env, cwd="/", timeout=timeout, check=False)
    return Outcome(done.returncode, parse_stdout(done.stdout), done.stderr.decode(errors="replace"))
