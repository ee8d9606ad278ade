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


def _style(args: argparse.Namespace) -> Any:
    from .style import Style

    return Style.for_stream(sys.stdout, getattr(args, "no_color", False))


def _load(path: str) -> tuple[Any, bytes]:
    """(Topology, its bytes)."""
    from .loader import load_bytes, read_source

    raw = read_source(path)
    return load_bytes(raw, path), raw


# commands


def cmd_validate(args: argparse.Namespace) -> int:
    topology, _ = _load(args.file)
    counts = {"bridges": len(topology.bridges), "namespaces": len(topology.namespaces),
              "port_forwards": len(topology.port_forwards)}
    if args.json:
        _print_json({"format_version": 1, "file": args.file, "valid": True, "topology": topology.name, "counts": counts})
    else:
        print(f"{args.file}: valid topology {topology.name!r} "
              f"({len(topology.bridges)} bridges, {len(topology.namespaces)} namespaces, {len(topology.port_forwards)} port forwards)")
    return ExitCode.OK


def _preflight(topology: Any) -> list[Any]:
    """Warnings about the host (firewall, ip_forward, ports, routes); reading it never fails."""
    from . import preflight

    return preflight.check(topology, preflight.gather(topology))


def cmd_plan(args: argparse.Namespace) -> int:
    from . import planfile, reconcile, render
    from .kernel import open_kernel

    topology, raw = _load(args.file)
    with open_kernel(topology.name) as kernel:
        planned = reconcile.plan(topology, kernel)
    warnings = _preflight(topology)
    doc = render.plan_json(planned, warnings)
    if args.out:
        planfile.save(args.out, planned, doc, args.file, raw)
    if args.json:
        _print_json(doc)
    else:
        sys.stdout.write(render.plan_text(planned, _style(args), warnings))
        if args.out:
            print(f"Saved the plan to {args.out}; run `nsnet apply {args.out}` to apply exactly this plan.")
    if args.detailed_exitcode and not planned.plan.empty:
        return ExitCode.CHANGES
    return ExitCode.OK


def _progress(args: argparse.Namespace) -> Any:
    """Action lines as they run (and a progress bar on a terminal); nothing with --json."""
    from .progress import Progress

    if args.json:
        return None
    return Progress(sys.stdout, _style(args), _style(args).enabled)


def _finish(args: argparse.Namespace, applied: Any, verb: str, started: float, warnings: Sequence[Any] = ()) -> int:
    from . import render

    seconds = time.monotonic() - started
    if args.json:
        _print_json(render.applied_json(applied, seconds, warnings))
    else:
        print(_style(args).paint("bold", render.applied_summary(applied, verb, seconds)))
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
        options = reconcile.RunOptions(_progress(args), Journal(topology), not args.no_rollback, stop)
        try:
            yield kernel, options, held
        finally:
            if options.listener is not None:
                options.listener.finish()


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


def _run(planned: Any, kernel: Any, options: Any) -> Any:
    from . import reconcile

    if options.listener is not None:
        options.listener.start(len(planned.plan.actions))
    return reconcile.run(planned, kernel, options)


def cmd_apply(args: argparse.Namespace) -> int:
    from . import inventory, nftables, planfile, reconcile, render
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
        warnings = _preflight(topology) if planned.plan.actions else []
        if not args.json:
            print("\n".join(render.warning_lines(warnings, _style(args))), end="\n" if warnings else "")
        applied = _run(planned, kernel, options)
        if applied.converged:
            inventory.remember_source(topology.name, saved.source if saved else args.file)  # for `nsnet ls`
    return _finish(args, applied, "Apply", started, warnings)


def cmd_destroy(args: argparse.Namespace) -> int:
    from . import inventory, reconcile

    started = time.monotonic()
    topology, _ = _load(args.file)
    with _transaction(args, topology.name) as (kernel, options, held):
        applied = _run(reconcile.compute_destroy(topology.name, kernel.observe()), kernel, options)
        if applied.converged:  # nothing of the topology is left: drop its record, lock and directory
            inventory.forget_source(topology.name)
            held.discard = True
    return _finish(args, applied, "Destroy", started)


def cmd_ls(args: argparse.Namespace) -> int:
    from . import inventory, render
    from .kernel import require_privileges
    from .netlink import Netlink

    require_privileges()
    with Netlink() as nl:
        found = inventory.find_topologies(nl)
    rows = render.ls_rows(found, [inventory.drift_of(f) for f in found])
    if args.json:
        _print_json({"format_version": 1, "topologies": rows})
    else:
        sys.stdout.write(render.ls_text(rows))
    return ExitCode.OK


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
        sys.stdout.write(render.show_text(topology.name, state, planned.plan, topology.port_forwards, _style(args)))
    if args.check and not planned.plan.empty:
        return ExitCode.DRIFT
    return ExitCode.OK


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw the lab from the file alone (no kernel, no root); bad options are one line, like bad files."""
    from . import graph

    if args.format not in graph.FORMATS:
        raise NsnetError(f"graph: unknown format {args.format!r} (known: {', '.join(graph.FORMATS)})")
    topology, _ = _load(args.file)
    text = graph.render(topology, args.format)
    if not args.out:
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as err:
        raise NsnetError(f"{args.out}: cannot write: {err.strerror}") from None
    return ExitCode.OK


# workflow commands: init, fmt, exec, completion (netplan_lite/scaffold.py, fmt.py, nsexec.py, completion.py)


def cmd_init(args: argparse.Namespace) -> int:
    from . import scaffold

    starter = scaffold.create(args.file, args.name, args.force, default_path=_default_file())
    if args.file == "-":
        sys.stdout.write(starter.text)
        return ExitCode.OK
    shown = "" if args.file == _default_file() else f" {args.file}"
    print(f"Wrote {args.file}: topology {starter.name!r} (1 bridge, 2 namespaces, 1 port forward), every key explained.")
    print(f"Next: edit it, then `nsnet plan{shown}` and `nsnet apply{shown}` as root.")
    return ExitCode.OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from . import fmt

    results = [fmt.format_file(path) for path in args.files or [_default_file()]]  # every file checked before any write
    report = args.check or args.diff
    for result in results:
        if result.path == "-" and not report:
            sys.stdout.write(result.new)
        elif report and result.changed:
            if args.check:
                print(f"{result.path}: not in canonical form; `nsnet fmt {result.path}` would change it:")
            sys.stdout.write(result.diff())
        elif result.changed and not report:
            fmt.write(result)
        if result.path != "-" and not (report and result.changed):
            print(f"{result.path}: {'formatted' if result.changed and not report else 'already formatted'}")
    if args.check and any(r.changed for r in results):
        return ExitCode.ERROR
    return ExitCode.OK


def cmd_exec(args: argparse.Namespace) -> int:
    from . import nsexec

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    topology, _ = _load(args.file)
    nsexec.run(topology, args.namespace, argv, args.file)  # replaces this process with the command
    return ExitCode.ERROR  # not reached: run() execs or raises


def cmd_completion(args: argparse.Namespace) -> int:
    from . import completion

    if args.list_namespaces is not None:  # what the scripts call to complete `nsnet exec NAMESPACE`
        try:
            topology, _ = _load(args.list_namespaces)
        except NsnetError:
            return ExitCode.OK
        for namespace in topology.namespaces:
            print(namespace.name)
        return ExitCode.OK
    if args.shell is None:
        raise NsnetError(f"completion: name a shell: {', '.join(completion.SHELLS)}")
    sys.stdout.write(completion.script(args.shell, build_parser()))
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


def _add_workflow_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """init, fmt, exec and completion (their epilogs say what each does)."""
    from .completion import INSTALL, SHELLS

    p = command("init", cmd_init, "Write a commented starter topology to edit (refuses to overwrite).", reports=False)
    _add_file(p, "file to create, - for stdout")
    p.add_argument("--name", default="lab", help="topology name (default: lab); labels everything it creates")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p = command("fmt", cmd_fmt, "Rewrite topology files in canonical form, keeping comments and meaning.", reports=False)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help=f"topology files, - for stdin to stdout (default: $NSNET_FILE or ./{DEFAULT_FILE})")
    p.add_argument("--check", action="store_true", help="write nothing; print a diff and exit 1 if a file is not canonical")
    p.add_argument("--diff", action="store_true", help="write nothing; print the diff fmt would apply")
    p.epilog = ("canonical form: name, bridges, namespaces, port_forwards, schema key order inside objects, your\n"
                "order of bridges, namespaces and interfaces; two-space block style, one flow line per bridge,\n"
                "interface, route or port forward ({bridge: br0, address: 10.0.0.2}); comments kept.\n\n" + EXIT_CODES)
    p = command("exec", cmd_exec, "Run a command inside one of the topology's namespaces (like `ip netns exec`).", reports=False)
    p.add_argument("-f", "--file", default=_default_file(), metavar="FILE",
                   help=f"topology file (default: $NSNET_FILE or ./{DEFAULT_FILE})")
    p.add_argument("namespace", help="a namespace declared in the topology and applied on this host")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG ...]",
                   help="the command and its arguments, run directly (no shell); its exit code is nsnet's")
    p.usage = "nsnet exec [-h] [-f FILE] NAMESPACE -- COMMAND [ARG ...]"
    p.epilog = ("Like `ip netns exec`: enters the network namespace, remounts /sys for it and binds\n"
                "/etc/netns/NAMESPACE/* over /etc, then executes the command (no new PID/user namespace,\n"
                "same user and environment). Refuses namespaces not declared, not applied yet, or\n"
                "labelled for another topology. Options go before NAMESPACE.\n\n" + EXIT_CODES)
    p = command("completion", cmd_completion, "Print a shell completion script (bash, zsh or fish).", reports=False)
    p.add_argument("shell", nargs="?", choices=SHELLS, help="the shell to complete for")
    p.add_argument("--list-namespaces", metavar="FILE", help=argparse.SUPPRESS)
    p.epilog = INSTALL + "\n\n" + EXIT_CODES


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

    def command(name: str, func: Callable, help: str, reports: bool = True) -> argparse.ArgumentParser:
        """A subcommand; one that `reports` on a topology also takes --json and --no-color."""
        p = sub.add_parser(name, help=help, description=help, epilog=EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        if reports:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON (schemas/ describes it)")
            p.add_argument("--no-color", action="store_true", help="no colour even on a terminal (so does NO_COLOR=1)")
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
    command("ls", cmd_ls, "List every nsnet topology on this host, with object counts and whether it has drifted.")
    p = command("show", cmd_show, "List the live objects this topology owns, and any drift.")
    _add_file(p)
    p.add_argument("--check", action="store_true", help="exit 3 when the live state has drifted")
    p = command("graph", cmd_graph, "Draw the topology (DOT or Mermaid) from the file alone; needs no root.", reports=False)
    _add_file(p)
    p.add_argument("--format", default="dot", metavar="{dot,mermaid}", help="dot (default: Graphviz) or mermaid")
    p.add_argument("-o", "--out", metavar="FILE", help="write the drawing to FILE instead of stdout")
    _add_workflow_commands(command)
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
        if getattr(args, "json", False):  # schemas/validate.schema.json#/$defs/error
            _print_json({"format_version": 1, "valid": False, "error": err.code, "problems": err.problem_docs()})
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
