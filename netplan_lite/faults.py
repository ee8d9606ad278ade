"""Fault injection for the crash and rollback tests (off unless the variables are set).

Every kernel-changing step calls `checkpoint()`. NSNET_KILL_AT=N makes the
process SIGKILL itself at the Nth checkpoint (a crash at that exact point,
for example between creating a veth and labelling it); NSNET_FAIL_AT=N makes
the Nth checkpoint raise EIO (a kernel refusal, to exercise rollback);
NSNET_STOP_AT=N makes the process SIGSTOP itself there (so that a test can run
another command in the middle of this one, then SIGCONT it).
"""

from __future__ import annotations

import errno
import os
import signal

_count = 0


def changes_made() -> int:
    """How many kernel-changing steps this process has taken."""
    return _count


def checkpoint() -> None:
    global _count
    _count += 1
    if os.environ.get("NSNET_KILL_AT") == str(_count):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("NSNET_STOP_AT") == str(_count):
        os.kill(os.getpid(), signal.SIGSTOP)
    if os.environ.get("NSNET_FAIL_AT") == str(_count):
        raise OSError(errno.EIO, f"injected fault at checkpoint {_count}")
