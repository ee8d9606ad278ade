"""The nsnet command line: parse, dispatch to commands.py, exit.

Every NsnetError is caught here, in one place, and printed as one line per
problem on stderr (and as a JSON error document with --json); so is any other
exception, a bug, as an internal error; tracebacks only with --debug. A
command that reads or changes the kernel first refuses a kernel older than
nsnet needs (kernel/minimum.py), through the same boundary.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from typing import Callable, NoReturn, Sequence

from .. import __version__
from .commands import (
    DEFAULT_FILE,
    cmd_agent,
    cmd_apply,
    cmd_cni,
    cmd_completion,
    cmd_destroy,
    cmd_exec,
    cmd_fmt,
    cmd_graph,
    cmd_init,
    cmd_ls,
    cmd_plan,
    cmd_show,
    cmd_test,
    cmd_validate,
    default_file,
    print_json,
)
from ..errors import ExitCode, InternalError, NsnetError

EXIT_CODES = """exit codes:
  0  success; for plan --detailed-exitcode: no changes
  1  error (bad input, kernel refusal, failed verification, stale plan); fmt --check: not canonical
  2  plan --detailed-exitcode: changes present
  3  show --check: the live state has drifted from the topology
  4  test: a check failed (a probe did not get the answer the file expects)"""

SHELLS = ("bash", "zsh", "fish")  # as completion.SHELLS: importing completion.py would slow every command

COMPLETION_INSTALL = """\
install (as the user who runs nsnet, usually root):
  bash:  nsnet completion bash > /etc/bash_completion.d/nsnet
         (or add `source <(nsnet completion bash)` to ~/.bashrc)
  zsh:   nsnet completion zsh > "${fpath[1]}/_nsnet"
         (or any directory in $fpath; then `autoload -Uz compinit && compinit` in ~/.zshrc)
  fish:  nsnet completion fish > ~/.config/fish/completions/nsnet.fish
open a new shell afterwards."""


# parser


def _add_file(parser: argparse.ArgumentParser, what: str = "topology file") -> None:
    parser.add_argument("file", nargs="?", default=default_file(), help=f"{what} (default: $NSNET_FILE or ./{DEFAULT_FILE})")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-rollback", action="store_true", help="on failure keep the partial progress instead of undoing this run's actions")
    parser.add_argument(
        "--lock-timeout", type=float, default=30.0, metavar="SECONDS", help="wait this long for another run on the same topology (default 30)"
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 means "changes present" for plan --detailed-exitcode."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.ERROR, f"{self.prog}: error: {message}\n")


def _add_workflow_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """init, fmt, exec and completion (their epilogs say what each does)."""
    p = command("init", cmd_init, "Write a commented starter topology to edit (refuses to overwrite).", reports=False, kernel=False)
    _add_file(p, "file to create, - for stdout")
    p.add_argument("--name", default="lab", help="topology name (default: lab); labels everything it creates")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p = command("fmt", cmd_fmt, "Rewrite topology files in canonical form, keeping comments and meaning.", reports=False, kernel=False)
    p.add_argument("files", nargs="*", metavar="FILE", help=f"topology files, - for stdin to stdout (default: $NSNET_FILE or ./{DEFAULT_FILE})")
    p.add_argument("--check", action="store_true", help="write nothing; print a diff and exit 1 if a file is not canonical")
    p.add_argument("--diff", action="store_true", help="write nothing; print the diff fmt would apply")
    p.epilog = (
        "canonical form: name, bridges, namespaces, port_forwards, schema key order inside objects, your\n"
        "order of bridges, namespaces and interfaces; two-space block style, one flow line per bridge,\n"
        "interface, route or port forward ({bridge: br0, address: 10.0.0.2}); comments kept.\n\n" + EXIT_CODES
    )
    p = command("exec", cmd_exec, "Run a command inside one of the topology's namespaces (like `ip netns exec`).", reports=False)
    p.add_argument("-f", "--file", metavar="FILE", help=f"topology file (default: $NSNET_FILE or ./{DEFAULT_FILE}); or give it before NAMESPACE")
    p.add_argument("namespace", help="a namespace declared in the topology and applied on this host")
    p.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND [ARG ...]",
        help="the command and its arguments, run directly (no shell); its exit code is nsnet's",
    )
    p.usage = "nsnet exec [-h] [-f FILE] [FILE] NAMESPACE -- COMMAND [ARG ...]"
    p.epilog = (
        "Like `ip netns exec`: enters the network namespace, remounts /sys for it and binds\n"
        "/etc/netns/NAMESPACE/* over /etc, then executes the command (no new PID/user namespace,\n"
        "same user and environment). Refuses namespaces not declared, not applied yet, or\n"
        "labelled for another topology. Options go before NAMESPACE. The file goes first, as\n"
        "for every command (`nsnet exec lab.yaml web -- ss -tln`: a path or a .yaml/.yml/.json\n"
        "name, followed by NAMESPACE and --), or with -f.\n\n" + EXIT_CODES
    )
    p = command("cni", cmd_cni, "Install nsnet's CNI plugin, for podman, containerd and Kubernetes nodes.", reports=False, kernel=False)
    actions = p.add_subparsers(dest="cni_action", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="write the plugin executable `nsnet` into a CNI bin dir (atomically)")
    install.add_argument("--bin-dir", required=True, metavar="DIR", help="the runtime's CNI_PATH directory, e.g. /opt/cni/bin or /usr/lib/cni")
    actions.add_parser("plugin", help="run the plugin on this call's CNI_* environment and stdin (what the installed executable hands an agent)")
    p.epilog = (
        "The plugin is `type: \"nsnet\"` in a CNI configuration: the reference bridge plugin's keys, with nsnet's\n"
        'engine behind them (README: "Use nsnet as a CNI plugin"). It runs this installation\'s Python by\n'
        "absolute path, isolated (-I).\n\n" + EXIT_CODES
    )
    p = command("completion", _completion, "Print a shell completion script (bash, zsh or fish).", reports=False, kernel=False)
    p.add_argument("shell", nargs="?", choices=SHELLS, help="the shell to complete for")
    p.add_argument("--list-namespaces", metavar="FILE", help=argparse.SUPPRESS)
    p.epilog = COMPLETION_INSTALL + "\n\n" + EXIT_CODES
    p = command(
        "agent",
        _agent,
        "Serve nsnet commands from one resident process that keeps the kernel's state current (optional: faster commands on big labs).",
        reports=False,
    )
    p.epilog = (
        "While it runs, `nsnet` hands every command to it: the agent has nsnet imported and reads again only\n"
        "the namespaces the kernel announced changes in, then runs the command in a child process with your\n"
        "files, directory and environment; output and exit codes are the same. Socket: /run/nsnet/agent.sock\n"
        "(NSNET_AGENT_SOCKET); NSNET_AGENT=off runs a command without it. Stop it with Ctrl-C or SIGTERM:\n"
        "running commands finish first.\n\n" + EXIT_CODES
    )


def _completion(args: argparse.Namespace) -> int:
    return cmd_completion(args, build_parser())


def _agent(args: argparse.Namespace) -> int:
    return cmd_agent(args, main)  # the agent runs commands through the one error boundary, never importing it


TEST_EPILOG = """\
Each probe runs from inside its `from:` namespace (a socket opened there, no `ip netns exec`),
all of them at once. `to:` a namespace probes every address it has (global ones, on lo too;
IPv4 and IPv6 unless `family:`), `to:` an address that address. `ping: true` sends ICMP echoes,
again every 0.2 s until one is answered; `port:` connects over TCP (refused: fail); with
`protocol: udp` it sends a datagram and passes on any reply (ICMP port unreachable: fail).
A probe that has not passed is retried until --wait is over. `expect: unreachable` passes as soon
as the source refuses to send (no route, blackhole) or an ICMP error or a refusal comes back, or
after 1 s without a reply (--wait, if shorter), and fails on any reply. --ping-all pings every
address of every namespace from every other namespace (both families). Every namespace of the file
must exist as this topology's (`nsnet apply` made it, or its `path:` is there), else exit 1."""


def _add_test(command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("test", cmd_test, "Run the file's reachability checks (ping, TCP, UDP) inside the live lab; exit 4 if one fails.")
    _add_file(p)
    p.add_argument("--junit", metavar="FILE", help="also write the results to FILE as JUnit XML (GitHub and GitLab test reports read it)")
    p.add_argument("--ping-all", action="store_true", help="also ping every address of every namespace from every other namespace, IPv4 and IPv6")
    p.add_argument(
        "--wait", type=_seconds, metavar="SECONDS", help="retry a probe that has not passed for this long (default: 5); failures take this long"
    )
    p.epilog = TEST_EPILOG + "\n\n" + EXIT_CODES


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        action="append",
        metavar="NAMESPACE",
        help="read and change only this namespace and the host objects it needs (repeatable); the plan says it is partial",
    )


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

    def command(name: str, func: Callable, help: str, reports: bool = True, kernel: bool = True) -> argparse.ArgumentParser:
        """A subcommand; one that `reports` on a topology also takes --json and --no-color. One that
        needs no `kernel` (reads only files) runs on any kernel; the others refuse one that is too old."""
        p = sub.add_parser(name, help=help, description=help, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func, needs_kernel=kernel)
        if reports:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON (schemas/ describes it)")
            p.add_argument("--no-color", action="store_true", help="no colour even on a terminal (so does NO_COLOR=1)")
        return p

    p = command("validate", cmd_validate, "Check a topology file (schema and semantics); touches nothing.", kernel=False)
    _add_file(p)
    p = command("plan", cmd_plan, "Show what apply would change, read from the live kernel.")
    _add_file(p)
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0 when there are no changes, 2 when there are, 1 on error")
    p.add_argument("-o", "--out", metavar="PLAN", help="save the plan to PLAN for `nsnet apply PLAN`")
    _add_target(p)
    p = command("apply", cmd_apply, "Make the kernel match the topology, then verify it.")
    _add_file(p, "topology file, or a plan saved by `nsnet plan -o`")
    _add_target(p)
    _add_run_options(p)
    p = command("destroy", cmd_destroy, "Delete everything this topology created, and nothing else.")
    _add_file(p)
    _add_run_options(p)
    command("ls", cmd_ls, "List every nsnet topology on this host, with object counts and whether it has drifted.")
    p = command("show", cmd_show, "List the live objects this topology owns, and any drift.")
    _add_file(p)
    p.add_argument("--check", action="store_true", help="exit 3 when the live state has drifted")
    _add_test(command)
    p = command(
        "graph",
        cmd_graph,
        "Draw the topology (DOT or Mermaid), with the live addresses where it is applied; needs no root.",
        reports=False,
        kernel=False,
    )
    _add_file(p)
    p.add_argument("--format", default="dot", metavar="{dot,mermaid}", help="dot (default: Graphviz) or mermaid")
    p.add_argument("-o", "--out", metavar="FILE", help="write the drawing to FILE instead of stdout")
    p.add_argument(
        "--from-file",
        action="store_true",
        help="draw from the file alone, allocated addresses as on an empty host, even where the topology is applied (the same picture anywhere)",
    )
    p.epilog = (
        "Allocated addresses (interfaces without `address:`) are sticky: a live lab keeps those it\n"
        "was given first. Run as root where the topology is applied, graph draws them as the lab has\n"
        "them, marked (live), and those the next apply would give, marked (next apply): the addresses\n"
        "plan and show use, read from the kernel, which nothing changes. Otherwise (not root, not\n"
        "applied here, the kernel unreadable, or --from-file) it draws from the file alone, marked\n"
        "(auto): as on an empty host. A caption says which (in Mermaid, a %% comment).\n\n" + EXIT_CODES
    )
    _add_workflow_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)
    try:
        if args.needs_kernel:  # before the command reads or changes anything
            from ..kernel import minimum

            minimum.require()
        return int(args.func(args))
    except NsnetError as err:
        _report(args, err, err.lines())
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("nsnet: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as err:  # noqa: BLE001 - a bug: said in one line (and a JSON document) like any error
        bug = InternalError(err)
        _report(args, bug, bug.lines() if args.debug else [f"{bug} (rerun with --debug for the traceback)"])
        return ExitCode.INTERNAL


def _report(args: argparse.Namespace, err: NsnetError, lines: list[str]) -> None:
    """The error on stderr, one line per problem (after the traceback with --debug), and with --json
    as a document on stdout (schemas/validate.schema.json#/$defs/error)."""
    if args.debug:
        traceback.print_exc()
    for line in lines:
        print(f"nsnet: {line}", file=sys.stderr)
    if getattr(args, "json", False):
        with contextlib.suppress(OSError):  # stdout itself may be what failed (a closed pipe)
            print_json({"format_version": 1, "valid": False, "error": err.code, "problems": err.problem_docs()})


if __name__ == "__main__":
    sys.exit(main())
