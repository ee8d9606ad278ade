"""One apply or destroy per topology at a time: an flock on /run/nsnet/<topology>/lock.

The holder writes its PID into the file so a waiter can name it. flock is
released by the kernel when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Iterator

from .errors import NsnetError
from .journal import topology_dir

POLL_SECONDS = 0.1


class LockTimeout(NsnetError):
    """Another nsnet run holds the topology's lock."""


@contextlib.contextmanager
def topology_lock(topology: str, timeout: float) -> Iterator[None]:
    path = os.path.join(topology_dir(topology), "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"topology {topology!r} is locked by another nsnet run (PID {_holder(fd)}); "
                        f"gave up after {timeout:g} s (--lock-timeout)"
                    ) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"
