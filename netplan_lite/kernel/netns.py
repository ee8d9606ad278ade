"""Named network namespaces, entered in-process with setns(2).

pyroute2's `IPRoute(netns=...)` forks a helper per namespace (about 8 ms)
and silently creates a missing one; entering with setns in the calling
thread costs about 20 us and never creates anything. Namespaces are created
the way `ip netns add` does: unshare(CLONE_NEWNET) in this thread, then a
bind mount of the thread's namespace onto /run/netns/NAME.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator

from ..faults import checkpoint
from ..engine.lock import host_lock

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def path_of(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"unsafe namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def list_names() -> list[str]:
    """Names under /run/netns (what `ip netns list` shows)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def open_fd(name: str) -> int:
    """An fd of the namespace; raises FileNotFoundError, never creates."""
    return os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC)


_home: int | None = None  # an fd of the namespace nsnet started in, opened once


def _home_fd() -> int:
    global _home
    if _home is None:
        _home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return _home


@contextlib.contextmanager
def entered(fd: int) -> Iterator[None]:
    """Run the body with this thread inside the namespace `fd`, then return home."""
    home = _home_fd()  # before leaving home
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")
    try:
        yield
    finally:
        _check(_libc.setns(home, CLONE_NEWNET), "setns back")


_dir_ready = False  # /run/netns checked in this process


def _ensure_netns_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so mounts propagate.

    (os.path.ismount cannot tell: a bind mount of the same file system has the
    same st_dev as its parent; making an existing mount shared again is harmless.)"""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"none", NETNS_DIR.encode(), None, MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None), "bind /run/netns")
    _check(_libc.mount(b"none", NETNS_DIR.encode(), None, MS_SHARED | MS_REC, None), "share /run/netns")


def create(name: str) -> int:
    """Create the named namespace and return an open fd of it."""
    global _dir_ready
    path = path_of(name)
    if not _dir_ready:
        with host_lock("netns"):  # two runs must not both bind-mount /run/netns
            _ensure_netns_dir()
        _dir_ready = True
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    try:
        checkpoint()  # a crash here leaves a file that is not yet a namespace
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            try:
                _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None), "mount")
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back")
        finally:
            os.close(home)
    except BaseException:
        remove(name)
        raise
    return open_fd(name)


@contextlib.contextmanager
def scratch() -> Iterator[None]:
    """Run the body with this thread in a new, unnamed namespace: nothing names it, so it goes
    once the body's sockets close (a probe of what the kernel can do, changing nothing of anyone's)."""
    home = _home_fd()
    _check(_libc.unshare(CLONE_NEWNET), "unshare")
    try:
        yield
    finally:
        _check(_libc.setns(home, CLONE_NEWNET), "setns back")


def remove(name: str) -> None:
    """Unmount and unlink the namespace file; the kernel frees it when unused."""
    path = path_of(name)
    checkpoint()
    _libc.umount2(path.encode(), MNT_DETACH)  # fails harmlessly if never mounted
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def holders(fds: dict[str, int]) -> dict[str, list[int]]:
    """PIDs of processes inside each of these namespaces (one scan of /proc).

    Such a process keeps a namespace, and the veths in it, alive after its
    /run/netns file is removed.
    """
    wanted = {os.fstat(fd).st_ino: name for name, fd in fds.items()}
    found: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inode = os.stat(f"/proc/{entry.name}/ns/net").st_ino
        except OSError:
            continue  # exited, or a kernel thread we may not inspect
        if inode in wanted:
            found.setdefault(wanted[inode], []).append(int(entry.name))
    return found
