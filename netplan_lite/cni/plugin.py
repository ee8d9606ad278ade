"""The CNI plugin's one entry point: environment and stdin in, a result or an error document on
stdout, and the exit code (0, or 1 with an error). Logs go to stderr only: a runtime parses
stdout."""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, BinaryIO, Mapping, TextIO

from .config import known_args, network_conf, parse_stdin, read_request
from .spec import ABOUT, CURRENT, SUPPORTED_VERSIONS, Code, CniError, require_verb, version_document


def run(env: Mapping[str, str], stdin: bytes) -> dict[str, Any] | None:
    """What the verb answers on stdout (None: nothing, as DEL and STATUS say success)."""
    from . import verbs  # the engine: not needed for VERSION or an about line

    request = read_request(env)
    if request.command == "VERSION":
        return version_document(_version_asked(stdin))
    conf = network_conf(parse_stdin(stdin), request)
    require_verb(request.command, conf.version)
    if request.command in ("ADD", "DEL", "CHECK"):
        known_args(request)
    if request.command == "ADD":
        return verbs.add(conf, request, stdin).document(conf.version)
    if request.command == "DEL":
        verbs.delete(conf, request, stdin)
    elif request.command == "CHECK":
        verbs.check(conf, request)
    elif request.command == "STATUS":
        verbs.status(conf)
    elif request.command == "GC":
        verbs.gc(conf, _valid_attachments(conf.raw))
    return None


def _version_asked(stdin: bytes) -> str:
    """The configuration's version when nsnet speaks it, else the spec's newest: what VERSION and
    error documents answer in (an error may be that stdin is no configuration at all)."""
    try:
        asked = json.loads(stdin).get("cniVersion") if stdin.strip() else None
    except (ValueError, AttributeError):
        asked = None
    return asked if asked in SUPPORTED_VERSIONS else CURRENT


def _valid_attachments(doc: Mapping[str, Any]) -> list[Any]:
    valid = doc.get("cni.dev/valid-attachments", doc.get("cni.dev/attachments", []))
    if not isinstance(valid, list):
        raise CniError(Code.INVALID_CONFIG, "cni.dev/valid-attachments: not a list")
    return valid


def main(env: Mapping[str, str] | None = None, stdin: BinaryIO | None = None, stdout: TextIO | None = None) -> int:
    env = os.environ if env is None else env
    out = stdout or sys.stdout
    if not env.get("CNI_COMMAND"):
        print(ABOUT, file=sys.stderr)  # as the reference plugins: stdout is the runtime's, for JSON
        return 0
    data = (stdin or sys.stdin.buffer).read()
    try:
        answer = run(env, data)
    except CniError as err:
        answer, code = err.document(_version_asked(data)), 1
        print(f"nsnet cni: {env.get('CNI_COMMAND')}: {err.msg}" + (f" ({err.details})" if err.details else ""), file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - a bug: still answer with the spec's error document
        traceback.print_exc(file=sys.stderr)
        answer, code = CniError(Code.INTERNAL, f"internal error: {type(err).__name__}: {err}", "a bug in nsnet").document(_version_asked(data)), 1
    else:
        code = 0
    if answer is not None:
        print(json.dumps(answer), file=out)
    return code
