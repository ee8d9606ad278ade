"""What each nsnet command does: load, call the library, render, return an exit code.

The parser and the one error boundary are in main.py, which imports this
module (never the reverse: what a command needs of main.py is handed to it);
the commands raise NsnetError for anything the user should read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..errors import ExitCode, NsnetError
from ..words import counted

if TYPE_CHECKING:
    from ..engine.desired import Assignment
    from ..render.progress import Progress

DEFAULT_FILE = "topology.yaml"


def default_file() -> str:
    return os.environ.get("NSNET_FILE", DEFAULT_FILE)


def print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False))


def _style(args: argparse.Namespace) -> Any:
    from ..render.style import Style

    return Style.for_stream(sys.stdout, getattr(args, "no_color", False))


def _load(path: str) -> tuple[Any, bytes]:
    """(Topology, its bytes)."""
    from ..model.loader import load_bytes, read_source

    raw = read_source(path)
    return load_bytes(raw, path), raw


def cmd_validate(args: argparse.Namespace) -> int:
    topology, _ = _load(args.file)
    counts = {"bridges": len(topology.bridges), "namespaces": len(topology.namespaces), "port_forwards": len(topology.port_forwards)}
    counts |= {key: len(getattr(topology, key)) for key in ("links", "checks") if getattr(topology, key)}  # only a routed lab's
    if args.json:
        print_json({"format_version": 1, "file": args.file, "valid": True, "topology": topology.name, "counts": counts})
    else:
        what = ", ".join(counted(number, key.rstrip("s").replace("_", " ")) for key, number in counts.items())
        print(f"{args.file}: valid topology {topology.name!r} ({what})")
    return ExitCode.OK


def _preflight(topology: Any, planned: Any) -> list[Any]:
    """Warnings about the host (firewall, ip_forward, ports, routes); reading it never fails.
    Whether Docker's chain exists comes from the plan's observation, not a second read."""
    from ..kernel import preflight
    from ..resources.ids import Kind

    chains = planned.observation.docker_chains
    return preflight.check(topology, preflight.gather(topology, Kind.IPTABLES_RULE in chains, Kind.IP6TABLES_RULE in chains))


def cmd_plan(args: argparse.Namespace) -> int:
    from ..engine import planfile, reconcile
    from ..render import plans as render
    from ..kernel.live import open_kernel

    topology, raw = _load(args.file)
    with open_kernel(topology.name) as kernel, _positions(raw):
        planned = reconcile.plan(topology, kernel, _targets(args.target, topology))
    warnings = _preflight(topology, planned)
    doc = render.plan_json(planned, warnings)
    if args.out:
        planfile.save(args.out, planned, doc, args.file, raw)
    if args.json:
        print_json(doc)
    else:
        sys.stdout.write(render.plan_text(planned, _style(args), warnings))
        if args.out:
            print(f"Saved the plan to {args.out}; run `nsnet apply {args.out}` to apply exactly this plan.")
    if args.detailed_exitcode and not planned.plan.empty:
        return ExitCode.CHANGES
    return ExitCode.OK


@contextlib.contextmanager
def _positions(raw: bytes) -> Iterator[None]:
    """A plan's problems with the file (found against the live host) get their line and column."""
    from ..errors import TopologyError
    from ..model.loader import located

    try:
        yield
    except TopologyError as err:
        raise located(err, raw) from None


def _targets(names: Sequence[str] | None, topology: Any) -> tuple[str, ...]:
    """`--target` names, each a namespace of the file (a typo must not plan nothing quietly)."""
    from ..errors import Problem, TopologyError

    unknown = [n for n in names or () if topology.namespace(n) is None]
    if unknown:
        known = ", ".join(ns.name for ns in topology.namespaces[:5]) + (", ..." if len(topology.namespaces) > 5 else "")
        message = f"--target {unknown[0]}: no namespace {unknown[0]} in the topology (namespaces: {known or 'none'})"
        raise TopologyError([Problem(topology.source, None, None, "", message)])  # an option, not a key
    return tuple(dict.fromkeys(names or ()))


def _progress(args: argparse.Namespace) -> Progress | None:
    """Action lines as they run (and a progress bar on a terminal); nothing with --json."""
    from ..render.progress import Progress
    from ..render.style import interactive

    if args.json:
        return None
    return Progress(sys.stdout, _style(args), terminal=interactive(sys.stdout))


def _finish(args: argparse.Namespace, applied: Any, verb: str, started: float, warnings: Sequence[Any] = ()) -> int:
    from ..render import plans as render

    seconds = time.monotonic() - started
    if args.json:
        print_json(render.applied_json(applied, seconds, warnings))
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
    from ..engine import reconcile
    from ..engine.journal import Journal
    from ..kernel.live import open_kernel
    from ..engine.lock import topology_lock

    with open_kernel(topology) as kernel, topology_lock(topology, args.lock_timeout) as held, _stop_signals() as stop:
        progress = _progress(args)
        options = reconcile.RunOptions(progress, Journal(topology), not args.no_rollback, stop)
        try:
            yield kernel, options, held
        finally:
            if progress is not None:
                progress.finish()


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
    from ..engine import reconcile

    if options.listener is not None:
        options.listener.start(len(planned.plan.actions))
    return reconcile.run(planned, kernel, options)


def impaired_links(planned: Any) -> list[str]:
    """The links whose impairments the plan creates or changes (they need netem in the kernel)."""
    from ..resources.link import LinkState

    changed = [a.after for a in planned.plan.actions if isinstance(a.after, LinkState)]
    return [f"{link.namespace}:{link.name}" for link in changed if link.netem or link.peer_netem]


def cmd_apply(args: argparse.Namespace) -> int:
    from ..kernel import capabilities, topologies as inventory, nftables
    from ..engine import planfile, reconcile
    from ..render import plans as render
    from ..model.loader import load_bytes, read_source
    from ..resources.ids import Kind

    started = time.monotonic()
    raw = read_source(args.file)
    saved = planfile.load(args.file, raw) if planfile.is_plan_file(raw) else None
    topology = load_bytes(saved.topology_text, saved.source) if saved else load_bytes(raw, args.file)
    targets = saved.targets if saved else _targets(args.target, topology)
    with _transaction(args, topology.name) as (kernel, options, _):
        with _positions(saved.topology_text if saved else raw):
            planned = reconcile.plan(topology, kernel, targets)
        if saved:
            planfile.check_fresh(saved, planned)
        if any(rid.kind is Kind.NFT_TABLE for rid in planned.desired):
            nftables.require()
        capabilities.require_netem(impaired_links(planned))
        warnings = _preflight(topology, planned) if planned.plan.actions else []
        for line in [] if args.json else render.warning_lines(warnings, _style(args)):
            print(line)
        applied = _run(planned, kernel, options)
        if applied.converged:
            inventory.remember_source(topology.name, saved.source if saved else args.file)  # for `nsnet ls`
    return _finish(args, applied, "Apply", started, warnings)


def cmd_destroy(args: argparse.Namespace) -> int:
    from ..kernel import topologies as inventory
    from ..engine import reconcile

    started = time.monotonic()
    topology, _ = _load(args.file)
    with _transaction(args, topology.name) as (kernel, options, held):
        applied = _run(reconcile.plan_destroy(topology.name, kernel), kernel, options)
        if applied.converged:  # nothing of the topology is left: drop its record, lock and directory
            inventory.forget_source(topology.name)
            held.discard = True
    return _finish(args, applied, "Destroy", started)


def cmd_agent(args: argparse.Namespace, run: Callable[[Sequence[str]], int]) -> int:
    """Serve `run` (main.main: each command's argv -> its exit code) to `nsnet` clients."""
    from ..agent import server as agent
    from ..kernel.live import require_privileges

    require_privileges()
    return agent.serve(run)


def cmd_ls(args: argparse.Namespace) -> int:
    from ..kernel import topologies as inventory
    from ..render import show as tables
    from ..kernel.live import require_privileges
    from ..kernel.netlink import Netlink

    require_privileges()
    with Netlink() as nl:
        found = inventory.find_topologies(nl)
    rows = tables.ls_rows(found, [_cni_drift(f.name) or inventory.drift_of(f) for f in found])
    for row in rows:
        row["cni_attachments"] = _cni_attachments(row["name"])
    if args.json:
        print_json({"format_version": 1, "topologies": rows})
    else:
        sys.stdout.write(tables.ls_text(rows))
    return ExitCode.OK


def _cni_drift(name: str) -> Any:
    """A CNI network's drift: every attachment planned against the configuration its last ADD recorded."""
    from ..cni import inventory as cni
    from ..kernel.topologies import Drift

    net = cni.network(name)
    if net is None:
        return None
    note = None if net.drifted is not None else "an attachment cannot be planned (nsnet show NETWORK says why)"
    return Drift(net.drifted, net.changes if net.drifted is not None else None, note)


def _cni_attachments(name: str) -> int | None:
    from ..cni import records

    return len(records.names(name)) if records.load_network(name) is not None else None


def _show_cni(args: argparse.Namespace) -> int | None:
    """`nsnet show NETWORK` of a CNI network (no file of that name here): its attachments and their drift."""
    from ..cni import inventory as cni

    if os.path.exists(args.file) or not cni.is_network(args.file):
        return None
    net = cni.network(args.file)
    if net is None:
        raise NsnetError(f"CNI network {args.file}: its recorded configuration cannot be read")
    if args.json:
        print_json(cni.show_json(net))
    else:
        sys.stdout.write(cni.show_text(net))
    return ExitCode.DRIFT if args.check and net.drifted is not False else ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    from ..engine import reconcile
    from ..render import plans as render, show as tables
    from ..kernel.live import open_kernel

    shown = _show_cni(args)
    if shown is not None:
        return shown
    topology, _ = _load(args.file)
    with open_kernel(topology.name) as kernel:
        planned = reconcile.plan(topology, kernel)
    state = planned.observation.state
    if args.json:
        print_json(render.state_json(topology.name, state, planned.plan))
    else:
        sys.stdout.write(tables.show_text(topology.name, state, planned.plan, topology.port_forwards, _style(args)))
    if args.check and not planned.plan.empty:
        return ExitCode.DRIFT
    return ExitCode.OK


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw the lab: with its live addresses where it is applied and readable, else from the file
    alone (no kernel, no root; always with --from-file); bad options are one line, like bad files."""
    from ..render import graph

    if args.format not in graph.FORMATS:
        raise NsnetError(f"graph: unknown format {args.format!r} (known: {', '.join(graph.FORMATS)})")
    topology, _ = _load(args.file)
    text = graph.render(topology, args.format, None if args.from_file else _live_assignment(topology))
    if not args.out:
        sys.stdout.write(text)
        return ExitCode.OK
    _write(args.out, text)
    return ExitCode.OK


def _live_assignment(topology: Any) -> Assignment | None:
    """The live lab's addresses (Assignment: those plan and show use), or None to draw from the file:
    no converged run of the topology on this host (its address record, /run/nsnet, readable by root
    only; checked before anything of the kernel is imported), a kernel nsnet refuses, no root, or a
    kernel that cannot be read. Reads only, and never fails: the file alone still makes a picture."""
    from ..engine import assignments

    if not assignments.load(topology.name):
        return None
    from ..engine import reconcile
    from ..kernel import minimum
    from ..kernel.live import open_kernel

    try:
        minimum.require()
        with open_kernel(topology.name) as kernel:
            return reconcile.live_assignment(topology, kernel)
    except (NsnetError, OSError):
        return None


def cmd_test(args: argparse.Namespace) -> int:
    """Probe the lab: every check of the file (and with --ping-all every namespace address from every
    other namespace), from inside the source namespaces, all at once."""
    from ..engine import probes
    from ..kernel import reachability
    from ..kernel.live import require_privileges
    from ..render import testreport

    topology, _ = _load(args.file)
    if not topology.checks and not args.ping_all:
        raise NsnetError(f"{args.file}: nothing to test: the file has no `checks:` (add some, or use --ping-all)")
    wait = probes.DEFAULT_WAIT if args.wait is None else args.wait
    require_privileges()
    started = time.monotonic()
    with reachability.open_lab(topology, args.file) as lab:
        planned = probes.expand(topology, lab.addresses, args.ping_all)
        if not planned:
            raise NsnetError(f"{args.file}: nothing to test: no namespace has an address to ping")
        answers = reachability.run_probes(planned, lab.fds, wait)
    results = tuple(map(probes.verdict, planned, answers))
    report = probes.Report(topology.name, args.file, results, wait, time.monotonic() - started)
    if args.junit:
        _write(args.junit, testreport.junit_xml(report))
    if args.json:
        print_json(testreport.report_json(report))
    else:
        sys.stdout.write(testreport.table(report, _style(args)))
    return ExitCode.OK if report.passed else ExitCode.CHECKS_FAILED


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as err:
        raise NsnetError(f"{path}: cannot write: {err.strerror}") from None


# workflow commands: init, fmt, exec, completion (netplan_lite/scaffold.py, fmt.py, nsexec.py, completion.py)


def cmd_init(args: argparse.Namespace) -> int:
    from ..model import init as scaffold

    starter = scaffold.create(args.file, args.name, args.force, default_path=default_file())
    if args.file == "-":
        sys.stdout.write(starter.text)
        return ExitCode.OK
    shown = "" if args.file == default_file() else f" {args.file}"
    print(f"Wrote {args.file}: topology {starter.name!r} (1 bridge, 2 namespaces, 1 port forward), every key explained.")
    print(f"Next: edit it, then `nsnet plan{shown}` and `nsnet apply{shown}` as root.")
    return ExitCode.OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from ..model import fmt

    results = [fmt.format_file(path) for path in args.files or [default_file()]]  # every file checked before any write
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
    from ..kernel import namespace_exec as nsexec

    file, namespace, argv = exec_operands(args.file, [args.namespace, *args.argv])
    topology, _ = _load(file)
    nsexec.run(topology, namespace, argv, file)  # replaces this process with the command
    return ExitCode.ERROR  # not reached: run() execs or raises


def exec_operands(option: str | None, words: list[str]) -> tuple[str, str, list[str]]:
    """The file, namespace and command of `nsnet exec [-f FILE] [FILE] NAMESPACE [--] COMMAND...`.

    The file is positional as for every other command, but only in the form `FILE NAMESPACE --`
    where FILE looks like one (an existing file, a path, a .yaml/.yml/.json name): namespace
    names may contain dots, and `nsnet exec web env -- ls` must keep meaning what it always did."""
    file = option
    if len(words) >= 3 and words[2] == "--" and words[1] != "--" and _names_a_file(words[0]):
        if option is not None:
            raise NsnetError(f"exec: two topology files ({option} and {words[0]}): give it with -f or as the first operand, not both")
        file, words = words[0], words[1:]
    namespace, argv = words[0], words[1:]
    return file or default_file(), namespace, argv[1:] if argv[:1] == ["--"] else argv


def _names_a_file(word: str) -> bool:
    return "/" in word or word.endswith((".yaml", ".yml", ".json")) or os.path.isfile(word)


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The script for `parser`, nsnet's own (handed in by main.py, which this module must not import)."""
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
    sys.stdout.write(completion.script(args.shell, parser))
    return ExitCode.OK


def cmd_cni(args: argparse.Namespace) -> int:
    from ..cni.install import install

    if args.cni_action == "plugin":
        from ..cni.plugin import main as plugin

        return plugin()
    path = install(args.bin_dir)
    print(f'installed nsnet\'s CNI plugin: {path} (type "nsnet")')
    return ExitCode.OK
