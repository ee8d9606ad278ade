"""The nsnet command line: parse, call one library function, render, exit.

Every NsnetError is caught here, in one place, and printed as one line per
problem on stderr; tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any, Callable, Iterator, NoReturn, Sequence

from . import __version__
from .errors import ExitCode, NsnetError

DEFAULT_FILE = "topology.yaml"

EXIT_CODES = """exit codes:
  0  success; for plan --detailed-exitcode: no changes
  1  error (bad input, kernel refusal, failed verification, stale plan)
  2  plan --detailed-exitcode: changes present
  3  show --check: the live state has drifted from the topology"""


def _default_file() -> str:
    return os.environ.get("NSNET_FILE", DEFAULT_FILE)


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False))


def _load(path: str) -> tuple[Any, bytes]:
    """(Topology, its bytes)."""
    from .loader import load_bytes, read_source

    raw = read_source(path)
    return load_bytes(raw, path), raw


# commands


def cmd_validate(args: argparse.Namespace) -> int:
    topology, _ = _load(args.file)
    if args.json:
        _print_json({"format_version": 1, "file": args.file, "valid": True, "topology": topology.name})
    else:
        print(f"{args.file}: valid topology {topology.name!r} "
              f"({len(topology.bridges)} bridges, {len(topology.namespaces)} namespaces, {len(topology.port_forwards)} port forwards)")
    return ExitCode.OK


def cmd_plan(args: argparse.Namespace) -> int:
    from . import planfile, reconcile, render
    from .kernel import open_kernel

    topology, raw = _load(args.file)
    with open_kernel(topology.name) as kernel:
        planned = reconcile.plan(topology, kernel)
    doc = render.plan_json(planned)
    if args.out:
        planfile.save(args.out, planned, doc, args.file, raw)
    if args.json:
        _print_json(doc)
    else:
        sys.stdout.write(render.plan_text(planned))
        if args.out:
            print(f"Saved the plan to {args.out}; run `nsnet apply {args.out}` to apply exactly this plan.")
    if args.detailed_exitcode and not planned.plan.empty:
        return ExitCode.CHANGES
    return ExitCode.OK


def _listener(args: argparse.Namespace) -> Callable | None:
    from . import render

    if args.json:
        return None
    return lambda result: print(render.applied_line(result), flush=True)


def _finish(args: argparse.Namespace, applied: Any, verb: str, started: float) -> int:
    from . import render

    seconds = time.monotonic() - started
    if args.json:
        _print_json(render.applied_json(applied, seconds))
    else:
        print(render.applied_summary(applied, verb, seconds))
    if applied.converged:
        return ExitCode.OK
    for line in render.failure_lines(applied.outcome, rollback=not args.no_rollback):
        print(f"nsnet: {line}", file=sys.stderr)
    return ExitCode.ERROR


@contextlib.contextmanager
def _transaction(args: argparse.Namespace, topology: str) -> Iterator[tuple[Any, Any, Any]]:
    """Lock, kernel session, journal and stop signals around one apply or destroy."""
    from . import reconcile
    from .journal import Journal
    from .kernel import open_kernel
    from .lock import topology_lock

    with open_kernel(topology) as kernel, topology_lock(topology, args.lock_timeout) as held, _stop_signals() as stop:
        options = reconcile.RunOptions(_listener(args), Journal(topology), not args.no_rollback, stop)
        yield kernel, options, held


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], str | None]]:
    """SIGINT/SIGTERM end the run after the current action (then roll back)."""
    received: list[str] = []

    def note(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def cmd_apply(args: argparse.Namespace) -> int:
    from . import nftables, planfile, reconcile
    from .loader import load_bytes, read_source
    from .state import Kind

    started = time.monotonic()
    raw = read_source(args.file)
    saved = planfile.load(args.file, raw) if planfile.is_plan_file(raw) else None
    topology = load_bytes(saved.topology_text, saved.source) if saved else load_bytes(raw, args.file)
    with _transaction(args, topology.name) as (kernel, options, _):
        planned = reconcile.plan(topology, kernel)
        if saved:
            planfile.check_fresh(saved, planned)
        if any(kind is Kind.NFT_TABLE for kind, _ in planned.desired):
            nftables.require()
        applied = reconcile.run(planned, kernel, options)
    return _finish(args, applied, "Apply", started)


def cmd_destroy(args: argparse.Namespace) -> int:
    from . import reconcile

    started = time.monotonic()
    topology, _ = _load(args.file)
    with _transaction(args, topology.name) as (kernel, options, held):
        applied = reconcile.destroy(topology.name, kernel, options)
        held.discard = applied.converged  # nothing of the topology is left: drop its lock and directory
    return _finish(args, applied, "Destroy", started)


def cmd_show(args: argparse.Namespace) -> int:
    from . import reconcile, render
    from .kernel import open_kernel

    topology, _ = _load(args.file)
    with open_kernel(topology.name) as kernel:
        planned = reconcile.plan(topology, kernel)
    state = planned.observation.state
    if args.json:
        _print_json(render.state_json(topology.name, state, planned.plan))
    else:
        sys.stdout.write(render.show_text(topology.name, state, planned.plan))
    if args.check and not planned.plan.empty:
        return ExitCode.DRIFT
    return ExitCode.OK


# parser


def _add_file(parser: argparse.ArgumentParser, what: str = "topology file") -> None:
    parser.add_argument("file", nargs="?", default=_default_file(),
                        help=f"{what} (default: $NSNET_FILE or ./{DEFAULT_FILE})")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-rollback", action="store_true",
                        help="on failure keep the partial progress instead of undoing this run's actions")
    parser.add_argument("--lock-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="wait this long for another run on the same topology (default 30)")


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 means "changes present" for plan --detailed-exitcode."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nsnet",
        description="Declarative network-namespace topologies: plan, apply and destroy them against the live kernel.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nsnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    p = command("validate", cmd_validate, "Check a topology file (schema and semantics); touches nothing.")
    _add_file(p)
    p = command("plan", cmd_plan, "Show what apply would change, read from the live kernel.")
    _add_file(p)
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0 when there are no changes, 2 when there are, 1 on error")
    p.add_argument("-o", "--out", metavar="PLAN", help="save the plan to PLAN for `nsnet apply PLAN`")
    p = command("apply", cmd_apply, "Make the kernel match the topology, then verify it.")
    _add_file(p, "topology file, or a plan saved by `nsnet plan -o`")
    _add_run_options(p)
    p = command("destroy", cmd_destroy, "Delete everything this topology created, and nothing else.")
    _add_file(p)
    _add_run_options(p)
    p = command("show", cmd_show, "List the live objects this topology owns, and any drift.")
    _add_file(p)
    p.add_argument("--check", action="store_true", help="exit 3 when the live state has drifted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)
    try:
        return int(args.func(args))
    except NsnetError as err:
        if args.debug:
            traceback.print_exc()
        for line in err.lines():
            print(f"nsnet: {line}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("nsnet: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: say so in one line unless debugging
        if args.debug:
            raise
        print(f"nsnet: internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", file=sys.stderr)
        return ExitCode.ERROR


if __name__ == "__main__":
    sys.exit(main())
