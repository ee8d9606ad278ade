"""Small kernel helpers for the benchmark (standard library only).

- entering a named namespace in the calling thread with setns(2);
- creating and removing a named namespace in-process (what `ip netns add/del`
  and container runtimes do: unshare + bind mount onto /run/netns/NAME;
  umount + unlink);
- a TCP connect from one namespace to an address in another (or on the host),
  either family, all in this process: the listening socket is made inside the target
  namespace, the client socket inside the source namespace;
- reads through `ip -j` for the structural checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import subprocess
from typing import Any, Iterator

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def ns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"unsafe namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def ns_exists(name: str) -> bool:
    return os.path.lexists(ns_path(name))


def list_ns() -> list[str]:
    try:
        return os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the body with this thread in namespace NAME (None: stay where we are, the host)."""
    if name is None:
        yield
        return
    fd = os.open(ns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {name}")
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    finally:
        os.close(home)
        os.close(fd)


def create_ns(name: str) -> None:
    """A named namespace, made in-process the way containerd and `ip netns add` make it."""
    path = ns_path(name)
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None), f"mount {path}")
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    except BaseException:
        remove_ns(name)
        raise
    finally:
        os.close(home)


def remove_ns(name: str) -> bool:
    """What `ip netns del NAME` does; True if there was something to remove."""
    path = ns_path(name)
    if not os.path.lexists(path):
        return False
    _libc.umount2(path.encode(), MNT_DETACH)  # fails harmlessly when not mounted
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def host_links() -> set[str]:
    """Names of the links in the host namespace (cheap: one listdir of sysfs)."""
    return set(os.listdir("/sys/class/net"))


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True, timeout=60).stdout
    return json.loads(out) if out.strip() else []


def read_sysctl(ns: str | None, key: str) -> str | None:
    """/proc/sys/KEY as seen from namespace NS (None: the host); None when missing."""
    try:
        with entered(ns), open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def tcp_connect(src: str | None, dst: str | None, address: str, timeout: float = 3.0,
                source: str | None = None, ttl: int | None = None) -> None:
    """Connect from namespace SRC to ADDRESS:port, listened on in namespace DST; raises on failure.

    None is the host. The listener binds ADDRESS only, so nothing else is reachable through it.
    Either family; `source`: the client's address (e.g. a router's loopback, so that the answer
    comes back to it); `ttl`: both sockets' TTL / hop limit (paths longer than the default 64).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with entered(dst):
        listener = socket.socket(family, socket.SOCK_STREAM)
    with listener:
        _set_ttl(listener, family, ttl)
        listener.bind((address, 0))
        listener.listen(1)
        listener.settimeout(timeout)
        port = listener.getsockname()[1]
        with entered(src):
            client = socket.socket(family, socket.SOCK_STREAM)
        with client:
            _set_ttl(client, family, ttl)
            if source is not None:
                client.bind((source, 0))
            client.settimeout(timeout)
            client.connect((address, port))
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(timeout)
                client.sendall(b"nsnet-bench")
                if conn.recv(64) != b"nsnet-bench":
                    raise OSError("payload did not arrive")


def _set_ttl(sock: socket.socket, family: int, ttl: int | None) -> None:
    """A listener's TTL is also its SYN-ACK's, and the accepted socket inherits it."""
    if ttl is not None:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def neighbour_table(family: int) -> tuple[int, int]:
    """(entries, table_fulls) of the host-wide ARP (4) or neighbour discovery (6) table: every namespace
    shares it, and past gc_thresh3 (1024 by default) the kernel refuses new entries and drops the packets."""
    path = "/proc/net/stat/" + ("arp_cache" if family == 4 else "ndisc_cache")
    with open(path) as f:
        header = f.readline().split()
        rows = [[int(x, 16) for x in line.split()] for line in f if line.strip()]
    entries, fulls = header.index("entries"), header.index("table_fulls")
    return (rows[0][entries] if rows else 0), sum(row[fulls] for row in rows)


def neighbour_limit(family: int) -> int:
    """gc_thresh3 of that table (read only: it is a host setting)."""
    value = read_sysctl(None, f"net.ipv{family}.neigh.default.gc_thresh3")
    return int(value) if value and value.isdigit() else 1024
