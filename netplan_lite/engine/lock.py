"""One apply or destroy per topology at a time: an flock on /run/nsnet/<topology>/lock;
and short host-wide critical sections (host_lock).

The holder writes its PID into the file so a waiter can name it. flock is
released by the kernel when the holder dies, even by SIGKILL. A clean
destroy removes the file (and the topology's directory): a waiter that had
opened the removed file notices that its inode is no longer the path's and
starts over on the new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from typing import Iterator

from ..errors import NsnetError
from .rundir import state_dir, topology_dir

POLL_SECONDS = (0.002, 0.1)  # first and longest wait between tries: CNI calls hold it for milliseconds


class LockTimeout(NsnetError):
    """Another nsnet run holds the topology's lock."""


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """A short host-wide critical section shared by every topology: /run/nsnet/<name>.lock."""
    fd = os.open(os.path.join(state_dir(), f"{name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class Held:
    path: str
    discard: bool = False  # set by a clean destroy: nothing of the topology is left


@contextlib.contextmanager
def topology_lock(topology: str, timeout: float, shared: bool = False) -> Iterator[Held]:
    """The topology's lock; `shared` is held by CNI calls that each change only their own attachment
    (many at once), while a run that changes the whole network holds it alone."""
    deadline = time.monotonic() + timeout
    while True:
        path = os.path.join(topology_dir(topology), "lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:  # a destroy removed the directory between making it and opening the file
            continue
        try:
            _acquire(fd, topology, timeout, deadline, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            if _is_current(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the file was removed by a destroy while we waited
    held = Held(path)
    try:
        if not shared:  # many hold it shared: none of them is "the" holder
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield held
        if held.discard:
            os.unlink(path)
            with contextlib.suppress(OSError):  # not empty: a journal was kept
                os.rmdir(os.path.dirname(path))
    finally:
        os.close(fd)  # releases the flock


def _acquire(fd: int, topology: str, timeout: float, deadline: float, mode: int) -> None:
    wait, longest = POLL_SECONDS
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"topology {topology!r} is locked by another nsnet run (PID {_holder(fd)}); gave up after {timeout:g} s (--lock-timeout)"
                ) from None
            time.sleep(wait)
            wait = min(2 * wait, longest)


def _is_current(fd: int, path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"
