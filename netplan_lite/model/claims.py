"""Host-port claims: which (protocol, address, port) a port forward publishes on the host.

A value of the file format, so the loader checks that two forwards of one file
do not clash, and resources/nat.py that a topology's forwards do not clash with
another topology's, with the same rule.
"""

from __future__ import annotations

Claim = tuple[str, str, int]  # (protocol, host address or "*", host port)


def claims_clash(a: Claim, b: Claim) -> bool:
    """Same protocol and port on the same address, or on every address (*)."""
    return a[0] == b[0] and a[2] == b[2] and (a[1] == b[1] or "*" in (a[1], b[1]))
