"""The oldest Linux nsnet runs on, and the one refusal of an older one.

REQUIREMENTS lists the kernel features nsnet relies on, each with the release
that introduced it; docs/design.md ("Kernel requirements") has the same table
with where nsnet uses each and the commit or page it comes from. The newest
decides: IFA_PROTO, the label of the addresses nsnet assigns (Linux 5.18).

An older kernel does not refuse that label, it ignores it (RTM_NEWADDR skips an
attribute it does not know): the address is made without it, and nsnet can no
longer tell the addresses it allocated from ones added by hand, so an automatic
address may move and a hand-changed one is not drift. So every command that
reads or changes the kernel calls `require()` first (cli/main.py, before the
command runs) and stops in one line naming the feature and the kernel found.

The version is `uname -r`'s leading numbers ("5.15.0-91-generic" is 5.15.0). A
release string without them (a custom build's) passes: nsnet refuses only a
kernel it knows to be too old. NSNET_KERNEL_CHECK=off skips the check, for a
distribution kernel that backported the features under an older number; on a
kernel that lacks them, nsnet then misbehaves as above.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import KernelError

Version = tuple[int, int, int]

SKIP_VARIABLE = "NSNET_KERNEL_CHECK"  # "off": no check


@dataclass(frozen=True)
class Requirement:
    since: Version
    feature: str  # as the refusal names it: "nsnet needs Linux X or later, for FEATURE"


REQUIREMENTS = (
    Requirement((5, 18, 0), "address ownership labels (IFA_PROTO)"),
    Requirement((5, 3, 0), "nftables NAT in the inet family"),
    Requirement((4, 20, 0), "strict netlink dump checking (NETLINK_GET_STRICT_CHK)"),
    Requirement((4, 18, 0), "nftables NAT next to iptables NAT"),
    Requirement((4, 10, 0), "the nftables fib expression (fib daddr type local)"),
    Requirement((4, 4, 0), "link dumps filtered by kind"),
    Requirement((4, 2, 0), "one socket hearing every namespace (NETLINK_LISTEN_ALL_NSID)"),
    Requirement((4, 1, 0), "namespace id announcements (RTNLGRP_NSID)"),
    Requirement((4, 0, 0), "namespace ids by file descriptor (RTM_GETNSID, NETNSA_FD)"),
    Requirement((3, 18, 0), "nftables masquerade"),
    Requirement((3, 18, 0), "bridge port hairpin through IFLA_INFO_SLAVE_DATA"),
    Requirement((3, 17, 0), "addrgenmode none (IFLA_INET6_ADDR_GEN_MODE)"),
    Requirement((3, 17, 0), "/proc/thread-self"),
    Requirement((3, 15, 0), "nftables rule comments"),
    Requirement((3, 13, 0), "nftables NAT chains, ct status and dnat"),
    Requirement((3, 6, 0), "net.ipv4.conf.*.route_localnet"),
    Requirement((3, 0, 0), "setns(2) and veth peers created in a namespace (IFLA_NET_NS_FD)"),
    Requirement((2, 6, 28), "link aliases (IFLA_IFALIAS)"),
)

MINIMUM = max(r.since for r in REQUIREMENTS)

_LEADING_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class KernelTooOld(KernelError):
    """The running kernel predates a feature nsnet relies on."""


def running_release() -> str:
    """The running kernel's release, as `uname -r` prints it."""
    return os.uname().release


def parse_release(release: str) -> Version | None:
    """(major, minor, patch) of a release string ("6.1.0-13-amd64" -> (6, 1, 0)); None without them."""
    found = _LEADING_VERSION.match(release.strip())
    if found is None:
        return None
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def text(version: Version) -> str:
    """5.18 for (5, 18, 0), 2.6.28 for (2, 6, 28)."""
    return ".".join(map(str, version if version[2] else version[:2]))


def missing(version: Version) -> Requirement | None:
    """The newest requirement `version` does not meet; None when it meets them all."""
    unmet = [r for r in REQUIREMENTS if version < r.since]
    return max(unmet, key=lambda r: r.since) if unmet else None


def require(release: str | None = None) -> None:
    """Raise KernelTooOld, in one line, when the kernel (`release`, else the running one) is too old."""
    if os.environ.get(SKIP_VARIABLE) == "off":
        return
    release = running_release() if release is None else release
    version = parse_release(release)
    if version is None:
        return  # nothing to go by: let it run
    requirement = missing(version)
    if requirement is not None:
        raise KernelTooOld(
            f"Linux {release} is too old: nsnet needs Linux {text(requirement.since)} or later, for {requirement.feature}; "
            f"{SKIP_VARIABLE}=off skips this check on a kernel that has the feature backported"
        )
