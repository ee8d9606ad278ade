"""nsnet init: a commented starter topology to edit, that validates as written.

One bridge with a subnet and masquerade, two namespaces (one with a pinned
address, one with an allocated one) and one port forward: the smallest file
that shows every idea of a topology, each key explained where it is used,
and the commands to run next. The text is already in `nsnet fmt`'s canonical
form (a unit test keeps it so).
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from dataclasses import dataclass
from ipaddress import IPv4Network

from . import loader
from ..errors import NsnetError

DEFAULT_NAME = "lab"
SUBNET = IPv4Network("172.31.254.0/24")  # rarely used by LANs, VPNs or Docker (172.17-172.29 by default)


class InitError(NsnetError):
    """The starter file cannot be written (it exists, or its directory does not)."""


TEMPLATE = """\
# An nsnet topology: the bridges, network namespaces and port forwards that
# `nsnet apply` builds on this host. Edit this file, then plan and apply again:
# nsnet changes the kernel to match it and removes what you take out.
#
# Next steps (as root):
{steps}
#
# Every key is described in nsnet's schema (schemas/topology.schema.json in
# its repository); `nsnet validate` names the file, line and key of a mistake.

# The topology's name labels everything nsnet creates (link alias
# `nsnet:{name}`), so topologies with different names share a host safely.
# Lower-case letters, digits and `-`, at most 32 characters.
name: {name}

# Linux bridges on the host, by interface name (at most 15 characters).
bridges:
  {bridge}:
    # The bridge's IPv4 network. The bridge gets its first address
    # ({gateway}/{prefix}) and is the gateway of the namespaces on it (`gateway:`
    # picks another address); namespaces without an address get the lowest
    # free ones. Pick a network no interface or route of this host uses yet:
    # one the host reaches directly on another interface is refused unless
    # `allow_overlap: true` says the overlap is intended.
    subnet: {subnet}
    # Source-NAT traffic from the subnet that leaves the host, so the
    # namespaces reach the outside world through it, like Docker's default
    # bridge. Optional, like `mtu:` (the bridge's MTU).
    masquerade: true

# Network namespaces (a container's network, without the container), by the
# name `ip netns list` shows.
namespaces:
  web:
    # Each interface is a veth pair: one end inside the namespace under this
    # name, the other attached to `bridge`. Optional keys: `mtu:`, `mac:`.
    # Without `routes:` (a list of `{{to: CIDR or default, via: ADDRESS}}`),
    # a namespace gets a default route via its first bridge's gateway.
    # `forwarding: true` makes a namespace a router; `sysctls:` sets others
    # inside it (net.ipv4.* and net.ipv6.* keys, e.g. `net.ipv4.conf.all.rp_filter: 2`).
    # `path: /proc/PID/ns/net` uses an existing namespace (a container's)
    # instead of creating one; nsnet never deletes it.
    interfaces:
      eth0: {{bridge: {bridge}, address: {pinned}}}  # a pinned address
  client:
    interfaces:
      eth0: {{bridge: {bridge}}}  # no address: allocated from the subnet ({allocated})

# Host ports forwarded to a port inside a namespace, like
# `docker run -p 8080:80`: port 80 of web is published as port 8080 on every
# host address. Optional keys: `protocol: udp` (default tcp),
# `host_address: 127.0.0.1` (publish on that host address only),
# `interface:` (target another interface than the namespace's first).
port_forwards:
  - {{host_port: 8080, namespace: web, port: 80}}

# On a Docker host, nsnet accepts the bridges' traffic in Docker's DOCKER-USER
# chain (Docker's FORWARD policy drops it otherwise) and removes those rules
# with the lab; `firewall: {{docker_user: false}}` leaves the firewall to you.
"""


@dataclass(frozen=True)
class Starter:
    path: str
    name: str
    text: str


def render(path: str, name: str = DEFAULT_NAME, default_path: str = "topology.yaml") -> str:
    """The starter text for a file at `path` (named in its next-step commands unless it is the default)."""
    file_arg = "" if path in (default_path, "-") else " " + shlex.quote(path)
    exec_arg = "" if path in (default_path, "-") else f" -f {shlex.quote(path)}"
    pinned, allocated = SUBNET[10], SUBNET[2]
    steps = [
        (f"nsnet validate{file_arg}", "check it; touches nothing"),
        (f"nsnet plan{file_arg}", "what apply would change"),
        (f"nsnet apply{file_arg}", "build it, then verify the kernel matches"),
        (f"nsnet exec{exec_arg} web -- python3 -m http.server 80 &", "a web server in web"),
        ("curl http://127.0.0.1:8080/", "through the port forward"),
        (f"nsnet exec{exec_arg} client -- curl http://{pinned}/", "from one namespace to another"),
        (f"nsnet show{file_arg}", "what is live, and any drift"),
        (f"nsnet destroy{file_arg}", "remove everything it made"),
    ]
    width = max(len(command) for command, _ in steps)
    lines = "\n".join(f"#   {command.ljust(width)}  # {why}" for command, why in steps)
    return TEMPLATE.format(
        steps=lines,
        name=name,
        bridge=f"br-{name}"[:15],
        subnet=SUBNET,
        gateway=SUBNET[1],
        prefix=SUBNET.prefixlen,
        pinned=pinned,
        allocated=allocated,
    )


def create(path: str, name: str = DEFAULT_NAME, force: bool = False, default_path: str = "topology.yaml") -> Starter:
    """Write the starter topology to `path` ("-": return it only); refuse to overwrite unless `force`."""
    pattern = loader.topology_schema()["properties"]["name"]["pattern"]
    if not re.search(pattern, name):
        raise InitError(f"--name {name!r} is not allowed: lower-case letters, digits and `-`, starting with a letter, at most 32 characters")
    text = render(path, name, default_path)
    loader.load_bytes(text.encode(), path)  # the starter always validates (a unit test checks it too)
    if path == "-":
        return Starter(path, name, text)
    if os.path.isdir(path):
        raise InitError(f"{path}: is a directory; give a file name, e.g. {os.path.join(path, default_path)}")
    if os.path.lexists(path) and not force:
        raise InitError(f"{path}: already exists; use --force to overwrite it")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise InitError(f"{path}: no such directory: {directory}")
    try:
        if force and os.path.lexists(path):
            _replace(path, text)
        else:
            with open(path, "x", encoding="utf-8") as f:
                f.write(text)
    except FileExistsError:
        raise InitError(f"{path}: already exists; use --force to overwrite it") from None
    except OSError as err:
        raise InitError(f"{path}: cannot write: {err.strerror}") from None
    return Starter(path, name, text)


def _replace(path: str, text: str) -> None:
    """Replace an existing file atomically (through a symlink, to its target)."""
    target = os.path.realpath(path)
    fd, temp = tempfile.mkstemp(prefix=".nsnet-init-", suffix=".yaml", dir=os.path.dirname(target) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
