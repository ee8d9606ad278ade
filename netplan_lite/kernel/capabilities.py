"""Optional kernel features a topology may need, found out before any change.

Link impairments need the netem qdisc. Distribution kernels ship it as a
module (sch_netem), but a custom or minimal build may lack it
(CONFIG_NET_SCH_NETEM unset): an apply would then fail halfway and roll back.
So apply asks first, by adding a netem to lo in a scratch namespace that
nothing names and that disappears with the probe's socket.
"""

from __future__ import annotations

import functools
import os
import threading

from ..errors import KernelError
from ..model.netem import Netem
from . import netns
from .rtnl.qdisc import NetemUnavailable, set_netem
from .rtnl.socket import RtnlSocket

LOOPBACK_INDEX = 1


@functools.cache
def has_netem() -> bool:
    """Whether the running kernel can make a netem qdisc (asked once per process)."""
    found: list[bool] = []

    def probe() -> None:  # in its own thread: the scratch namespace is this thread's alone
        with netns.scratch(), RtnlSocket() as sock:
            try:
                set_netem(sock, LOOPBACK_INDEX, Netem(delay=1_000_000), "add")
            except NetemUnavailable:
                found.append(False)
            else:
                found.append(True)

    thread = threading.Thread(target=probe, name="netem-probe")
    thread.start()
    thread.join()
    return bool(found and found[0])


def require_netem(impaired: list[str]) -> None:
    """Refuse, in one line and before any change, a plan that impairs links on a kernel without netem."""
    if impaired and not has_netem():
        raise KernelError(
            f"link {impaired[0]}{' and others' if len(impaired) > 1 else ''} asks for impairments (netem), "
            f"but this kernel ({os.uname().release}) has no netem qdisc (CONFIG_NET_SCH_NETEM; "
            "on Debian it is the sch_netem module of the linux-image package)"
        )
