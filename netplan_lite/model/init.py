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
from pathlib import Path

from . import loader
from ..errors import NsnetError

DEFAULT_NAME = "lab"
SUBNET = IPv4Network("172.31.254.0/24")  # rarely used by LANs, VPNs or Docker (172.17-172.29 by default)
HOST_PORT = 8088  # not the 8080 and 8081 of examples/topology.yaml: the starter and the demo can be up together
# The examples' web server, in a clone of nsnet's repository; `python3 -m http.server` looks up its
# host name in DNS before it listens, which hangs in a namespace that reaches no DNS server.
WEBSERVER = Path(__file__).resolve().parents[2] / "examples" / "webserver.py"


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
# Every key is described in docs/format.md of nsnet's repository, and
# docs/tutorial.md builds this lab step by step; `nsnet validate` names the
# file, line and key of a mistake.

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
# `docker run -p {host_port}:80`: port 80 of web is published as port {host_port} on every
# host address. Optional keys: `protocol: udp` (default tcp),
# `host_address: 127.0.0.1` (publish on that host address only),
# `interface:` (target another interface than the namespace's first).
port_forwards:
  - {{host_port: {host_port}, namespace: web, port: 80}}

# On a Docker host, nsnet accepts the bridges' traffic in Docker's DOCKER-USER
# chain (Docker's FORWARD policy drops it otherwise) and removes those rules
# with the lab; `firewall: {{docker_user: false}}` leaves the firewall to you.

# Routed labs (docs/format.md has every key): `subnet:` and `address:` also take
# IPv6, or a list of one address per family; `gateway: none` makes a bridge a
# plain switch. `links:` joins two namespaces point to point,
# `{{endpoints: [r1:e12, r2:e21]}}`, with `addresses:` pinned per end (else from
# the `p2p:` pool under `addressing:`, which also has a `loopback:` pool: each
# pool takes `ipv4:`, `prefix:`, `ipv6:` and `prefix6:`), `mtu:`, `up: false`
# and `netem:` impairments (`delay:`, `jitter:`, `loss:`, `duplicate:`,
# `reorder:`, `corrupt:`, `rate:`, `limit:`). A namespace takes `loopback: auto`;
# a route takes `via:` a link end or a list (ECMP), `type: blackhole`, `dev:`
# and `metric:`. `checks:` lists what `nsnet test` probes: `{{from: web, to:
# client, ping: true}}`, or `port:` with `protocol:`, `expect: unreachable`,
# `family: 6`.
"""


@dataclass(frozen=True)
class Starter:
    path: str
    name: str
    text: str


def render(path: str, name: str = DEFAULT_NAME, default_path: str = "topology.yaml", cwd: str | None = None) -> str:
    """The starter text for a file at `path` (named in its next-step commands unless it is the default)."""
    file_arg = "" if path in (default_path, "-") else " " + shlex.quote(path)
    pinned, allocated = SUBNET[10], SUBNET[2]
    steps = [
        (f"nsnet validate{file_arg}", "check it; touches nothing"),
        (f"nsnet plan{file_arg}", "what apply would change"),
        (f"nsnet apply{file_arg}", "build it, then verify the kernel matches"),
        (f'nsnet exec{file_arg} web -- python3 {webserver_path(cwd)} 80 "hello from web" &', "a web server in web"),
        (f"until nsnet exec{file_arg} web -- ss -Htln 'sport = :80' | grep -q .; do sleep 0.1; done", "until it listens"),
        (f"curl http://127.0.0.1:{HOST_PORT}/", "through the port forward: hello from web"),
        (f"nsnet exec{file_arg} client -- curl http://{pinned}/", "from one namespace to another"),
        (f"nsnet show{file_arg}", "what is live, and any drift"),
        (f"kill %1; wait; nsnet destroy{file_arg}", "stop the server, then remove everything nsnet made"),
    ]
    lines = "\n".join(f"#   {command}  # {why}" for command, why in steps)
    return TEMPLATE.format(
        steps=lines,
        name=name,
        bridge=f"br-{name}"[:15],
        subnet=SUBNET,
        gateway=SUBNET[1],
        prefix=SUBNET.prefixlen,
        pinned=pinned,
        allocated=allocated,
        host_port=HOST_PORT,
    )


def webserver_path(cwd: str | None = None) -> str:
    """examples/webserver.py as the next steps reach it from CWD: relative inside the clone, else absolute."""
    if not WEBSERVER.is_file():  # installed from a wheel: the reader has a clone, or another server
        return "examples/webserver.py"
    here = Path(cwd or os.getcwd()).resolve()
    inside = here.is_relative_to(WEBSERVER.parents[1])
    return shlex.quote(os.path.relpath(WEBSERVER, here) if inside else str(WEBSERVER))


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
