"""nsnet exec: run a command inside one of the topology's namespaces.

The everyday `ip netns exec NAME CMD` step, made safe for a topology: the
namespace must be declared in the file and exist on the host labelled as the
topology's (`nsnet:<topology>` on its `lo`, read with one netlink request),
so a typo or another topology's namespace of the same name is refused
instead of entered.

What it does, in the order `ip netns exec` does it (iproute2's
netns_switch), then execvp of the command (an argv list, never a shell), so
the exit status, signals and stdio are the command's own:

1. setns(2) into the network namespace;
2. unshare(CLONE_NEWNS) and mark every mount a slave, so nothing below
   leaks into the host's mount namespace;
3. remount /sys, so /sys/class/net lists the namespace's interfaces, not
   the host's (tools like `ethtool`, `lldpd`, udev helpers read it);
4. bind-mount each file of /etc/netns/NAME/ over the same name in /etc
   (a per-namespace resolv.conf, hosts...), when that directory exists;
   nsnet never creates it.

What it does not do: no new PID, user, UTS or IPC namespace, no cgroup or
VRF change, no privilege drop (the command runs as the caller, usually
root), no environment change. A command started this way keeps the
namespace alive while it runs, as with `ip netns exec`; `nsnet destroy`
names such processes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys
from dataclasses import dataclass
from typing import Callable, NoReturn, Sequence

from . import netns
from ..errors import ConflictError, ErrorCode, NsnetError, PermissionDenied
from ..labels import label, owner_of

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_BIND, MS_REC, MS_SLAVE = 0x1, 0x1000, 0x4000, 1 << 19
MNT_DETACH = 2
ETC_NETNS = "/etc/netns"

_libc = ctypes.CDLL(None, use_errno=True)


class ExecError(NsnetError):
    """The command cannot be run in that namespace (not declared, not applied yet, not found)."""

    code = ErrorCode.USAGE


@dataclass(frozen=True)
class Target:
    namespace: str
    fd: int  # an open fd of the namespace, checked to be the topology's


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


def check_declared(topology: object, namespace: str, source: str) -> None:
    names = [ns.name for ns in topology.namespaces]  # type: ignore[attr-defined]
    if namespace not in names:
        raise ExecError(
            f"namespace {namespace!r} is not in topology {topology.name!r} ({source}); "  # type: ignore[attr-defined]
            f"its namespaces: {_listing(names)}"
        )


def _read_lo_alias(fd: int) -> str | None:
    """The alias of lo (ifindex 1) inside the namespace `fd`, in one netlink request."""
    from .rtnl.link import link_by_index
    from .rtnl.socket import RtnlSocket

    with netns.entered(fd):
        sock = RtnlSocket()  # stays bound to the namespace it was opened in
    try:
        return link_by_index(sock, 1).alias
    finally:
        sock.close()


def open_target(topology_name: str, namespace: str, source: str, read_alias: Callable[[int], str | None] = _read_lo_alias) -> Target:
    """Open the namespace and check it is this topology's; raise a one-line error if not."""
    apply_hint = f"run `nsnet apply {source}` first"
    try:
        fd = netns.open_fd(namespace)
    except FileNotFoundError:
        raise ExecError(f"namespace {namespace!r} is declared but does not exist on this host: {apply_hint}") from None
    except PermissionError:
        raise PermissionDenied(f"cannot open {netns.path_of(namespace)}: permission denied (run as root)") from None
    try:
        alias = read_alias(fd)
    except PermissionError:
        os.close(fd)
        raise PermissionDenied(f"cannot enter namespace {namespace!r}: nsnet exec needs root (CAP_SYS_ADMIN)") from None
    except OSError as err:
        os.close(fd)
        if err.errno == errno.EINVAL:  # a file left by an interrupted run, not a mounted namespace
            raise ExecError(f"{netns.path_of(namespace)} is not a namespace (left by an interrupted run?): {apply_hint}") from None
        raise ExecError(f"cannot read namespace {namespace!r}: {err.strerror or err}") from None
    if alias != label(topology_name):
        os.close(fd)
        owner = owner_of(alias)
        if owner is None and namespace in _intents(topology_name):
            raise ExecError(f"namespace {namespace!r} was created by an interrupted nsnet run and is not labelled yet: {apply_hint}")
        whose = f"it belongs to topology {owner!r}" if owner else "nsnet did not make it (its lo has no nsnet label)"
        raise ConflictError(f"namespace {namespace!r} exists but is not part of topology {topology_name!r}: {whose}")
    return Target(namespace, fd)


def _intents(topology: str) -> frozenset[str]:
    from ..engine.journal import read_intents

    try:
        return frozenset(read_intents(topology).namespaces)
    except Exception:  # noqa: BLE001 - a journal we cannot read only costs the hint
        return frozenset()


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter(target: Target) -> list[str]:
    """Switch this (single-threaded) process into the namespace, as `ip netns exec` does.

    Returns warnings about /etc/netns files that could not be bound."""
    try:
        _check(_libc.setns(target.fd, netns.CLONE_NEWNET), "setns")
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(_libc.mount(b"", b"/", b"none", MS_SLAVE | MS_REC, None), "make / a slave mount")
        flags = MS_RDONLY if os.statvfs("/sys").f_flag & os.ST_RDONLY else 0
        _libc.umount2(b"/sys", MNT_DETACH)  # fails when no sysfs is mounted there: fine, as for iproute2
        _check(_libc.mount(target.namespace.encode(), b"/sys", b"sysfs", flags, None), "mount /sys")
    except OSError as err:
        if err.errno == errno.EPERM:
            raise PermissionDenied(f"cannot enter namespace {target.namespace!r}: {err.strerror} (run as root)") from None
        raise ExecError(f"cannot enter namespace {target.namespace!r}: {err.strerror}") from None
    finally:
        os.close(target.fd)
    return _bind_etc(target.namespace)


def _bind_etc(namespace: str) -> list[str]:
    """Bind /etc/netns/NAME/* over /etc/*, like `ip netns exec` (warnings for what failed)."""
    directory = os.path.join(ETC_NETNS, namespace)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    warnings = []
    for name in names:
        source, dest = os.path.join(directory, name), os.path.join("/etc", name)
        if _libc.mount(source.encode(), dest.encode(), b"none", MS_BIND, None) != 0:
            warnings.append(f"cannot bind {source} over {dest}: {os.strerror(ctypes.get_errno())}")
    return warnings


def run(topology: object, namespace: str, argv: Sequence[str], source: str) -> NoReturn:
    """Check, enter and exec; returns only by raising (the process becomes the command)."""
    if not argv:
        raise ExecError(f"no command given: nsnet exec {namespace} -- COMMAND [ARG...] (e.g. -- ip addr)")
    check_declared(topology, namespace, source)
    target = open_target(topology.name, namespace, source)  # type: ignore[attr-defined]
    for warning in enter(target):
        print(f"nsnet: warning: {warning}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the command must not inherit that
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(argv[0], list(argv))
    except FileNotFoundError:
        raise ExecError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise ExecError(f"cannot run {argv[0]}: permission denied") from None
    except OSError as err:
        raise ExecError(f"cannot run {argv[0]}: {err.strerror or err}") from None
