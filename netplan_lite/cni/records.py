"""What must survive between CNI calls, under /run (tmpfs: a reboot, which takes the namespaces,
takes the records too, so no lease outlives its container).

    /run/nsnet/<network>/lock                      the network's lock (engine/lock.py): shared by
                                                   attachment work, held alone to make or remove the network
    /run/nsnet/<network>/cni/attachments/<name>    one JSON record per attachment (container, ifname, ...)
    /run/nsnet/<network>/cni/leases/<address>      one file per address in use, naming its attachment:
                                                   made with O_EXCL, so two ADDs cannot take one address
    /run/nsnet/<network>/cni/cursor-<family>       the last address given out (allocation goes on from it)
    /run/nsnet/<network>/cni/network.json          the network's configuration, as the last ADD had it
                                                   (`nsnet ls` and `nsnet show NETWORK` plan against it)

Every call reads and writes only its own files: the cost does not grow with
the number of containers on the network.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from ..engine.rundir import topology_dir, topology_file

ATTACHMENTS, LEASES = "attachments", "leases"


@dataclass(frozen=True)
class Attachment:
    """One container interface on the network, as ADD made it."""

    name: str  # the nsnet namespace name of the attachment (a data source)
    container_id: str
    ifname: str
    netns: str
    host_veth: str
    mac: str
    addresses: tuple[str, ...] = ()  # with prefixes, IPv4 first
    port_mappings: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # a delegated IPAM's result, to hand back on DEL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Attachment:
        doc = dict(doc)
        doc["addresses"] = tuple(doc.get("addresses", ()))
        doc["port_mappings"] = tuple(doc.get("port_mappings", ()))
        return cls(**doc)


def cni_dir(network: str, *parts: str) -> str:
    return os.path.join(topology_file(network, "cni"), *parts)


def _ensure(network: str, part: str) -> str:
    topology_dir(network)
    path = cni_dir(network, part)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _write_atomically(path: str, text: str) -> None:
    temp = f"{path}.{os.getpid()}.new"
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    os.replace(temp, path)


def save(network: str, attachment: Attachment) -> None:
    _write_atomically(os.path.join(_ensure(network, ATTACHMENTS), attachment.name), json.dumps(attachment.to_json(), sort_keys=True))


def load(network: str, name: str) -> Attachment | None:
    try:
        with open(cni_dir(network, ATTACHMENTS, name)) as f:
            return Attachment.from_json(json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def forget(network: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(cni_dir(network, ATTACHMENTS, name))


def names(network: str) -> list[str]:
    """Every attachment's name (GC, STATUS and `nsnet show` read them all; ADD and DEL never do)."""
    try:
        return sorted(n for n in os.listdir(cni_dir(network, ATTACHMENTS)) if not n.endswith(".new"))
    except FileNotFoundError:
        return []


def attachments(network: str) -> Iterator[Attachment]:
    for name in names(network):
        found = load(network, name)
        if found is not None:
            yield found


def any_left(network: str) -> bool:
    try:
        with os.scandir(cni_dir(network, ATTACHMENTS)) as entries:
            return any(not e.name.endswith(".new") for e in entries)
    except FileNotFoundError:
        return False


NETWORK = "network.json"
PER_CALL_KEYS = ("runtimeConfig", "prevResult", "args")  # what one call adds to the network's configuration


def save_network(network: str, doc: dict[str, Any]) -> None:
    """The configuration (without what belongs to one call), written only when it changes."""
    kept = {k: v for k, v in doc.items() if k not in PER_CALL_KEYS}
    text = json.dumps(kept, sort_keys=True)
    if load_network(network) != kept:
        _ensure(network, ATTACHMENTS)
        _write_atomically(cni_dir(network, NETWORK), text)


def load_network(network: str) -> dict[str, Any] | None:
    try:
        with open(cni_dir(network, NETWORK)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# leases


def claim(network: str, address: str, owner: str) -> bool:
    """Take `address` for attachment `owner`; False if another has it."""
    path = os.path.join(_ensure(network, LEASES), address)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return lease_owner(network, address) == owner
    with os.fdopen(fd, "w") as f:
        f.write(owner)
    return True


def lease_owner(network: str, address: str) -> str | None:
    try:
        with open(cni_dir(network, LEASES, address)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def release(network: str, address: str, owner: str) -> None:
    if lease_owner(network, address) == owner:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cni_dir(network, LEASES, address))


def leases(network: str) -> dict[str, str]:
    """address -> owner, every lease (GC)."""
    try:
        found = os.listdir(cni_dir(network, LEASES))
    except FileNotFoundError:
        return {}
    return {address: owner for address in found if (owner := lease_owner(network, address))}


def cursor(network: str, family: int) -> str | None:
    try:
        with open(cni_dir(network, f"cursor-{family}")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def set_cursor(network: str, family: int, address: str) -> None:
    _ensure(network, LEASES)
    _write_atomically(cni_dir(network, f"cursor-{family}"), address)
