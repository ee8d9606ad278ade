"""ADD, DEL, CHECK, STATUS and GC of one network, through nsnet's engine.

ADD is a scoped plan: the network's topology with this one attachment,
observed, diffed, planned, applied (journalled, rolled back on failure) and
verified like `nsnet apply --target`. The network's lock is held alone only
to allocate addresses and to make or remove the network itself; attachment
work holds it shared, so ADDs of different containers run side by side.

DEL needs nothing but the names derived from (network, container ID,
ifname): it removes the host end of the veth (the kernel takes the
container end, its addresses and routes with it), the leases and the
record, whatever is left of them; it succeeds again and again, with or
without the namespace or a prevResult. The last DEL removes the bridge, the
network's nft table and its hold on the forwarding switch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
from typing import Any, Iterator, Mapping

from ..engine import reconcile
from ..engine.apply import VerificationFailed
from ..engine.assignments import Recorded
from ..engine.journal import Journal, journal_path, read_intents
from ..engine.lock import LockTimeout, topology_lock
from ..engine.reconcile import Planned, RunOptions
from ..engine.scope import Scope
from ..errors import ConflictError, KernelError, NsnetError
from ..kernel import nftables
from ..kernel.live import LiveKernel, open_kernel
from ..labels import label
from ..model.topology import Topology
from ..resources.nat import table_name
from ..resources.port_mapping import PortMappingState
from ..resources.macs import stable_mac
from . import delegate, ipam, network, records
from .config import MAC, NetConf, Request
from .records import Attachment
from .spec import Code, CniError, Result, ResultInterface, ResultIP, ResultRoute

LOCK_SECONDS = 60.0  # a runtime retries a call that answers "try again later"


@contextlib.contextmanager
def _locked(conf: NetConf, shared: bool) -> Iterator[None]:
    try:
        with topology_lock(conf.name, LOCK_SECONDS, shared=shared):
            yield
    except LockTimeout as err:
        raise CniError(Code.TRY_AGAIN_LATER, str(err)) from None


@contextlib.contextmanager
def _engine(conf: NetConf) -> Iterator[LiveKernel]:
    """A kernel session; what the engine refuses becomes the spec's error document."""
    try:
        with open_kernel(conf.name) as kernel:
            yield kernel
    except KernelError as err:  # an ActionFailed too
        raise CniError(Code.KERNEL_REFUSED, str(err)) from None
    except ConflictError as err:
        raise CniError(Code.CONFLICT, str(err)) from None
    except NsnetError as err:
        raise CniError(Code.INVALID_CONFIG, str(err)) from None


def _new_attachment(conf: NetConf, request: Request) -> Attachment:
    name = network.attachment_name(request.container_id, request.ifname)
    mac = conf.mac or network.container_mac(conf.name, request.container_id, request.ifname)
    veth = network.host_veth(conf.name, request.container_id, request.ifname)
    mappings = tuple(
        {"hostPort": m.host_port, "containerPort": m.container_port, "protocol": m.protocol, "hostIP": str(m.host_ip) if m.host_ip else ""}
        for m in conf.port_mappings
    )
    return Attachment(name, request.container_id, request.ifname, request.netns, veth, mac, port_mappings=mappings)


def _plan(kernel: LiveKernel, topology: Topology, attachment: Attachment | None) -> Planned:
    """The plan of the network's host objects, or of one attachment (and the host objects it needs)."""
    if attachment is None:
        scope = Scope(frozenset(), whole_host=False)
        return reconcile.compute(topology, kernel.observe(scope), None, Recorded(), scope)
    scope = Scope(frozenset({attachment.name}), whole_host=False, sources={attachment.name: attachment.netns}, docker=False)
    return reconcile.compute(topology, kernel.observe(scope), frozenset({attachment.name}), Recorded(), scope)


def _apply(kernel: LiveKernel, planned: Planned, journal: str | None) -> None:
    """Run the plan, journalled: at `journal` (an attachment's own; many run at once), or the
    network's (made and removed under its lock held alone, so a crash there is adopted by the next run)."""
    if not planned.plan.actions:
        return
    applied = reconcile.run(planned, kernel, RunOptions(journal=Journal(planned.topology, journal), records=False))
    failure = applied.outcome.failure
    if isinstance(failure, VerificationFailed):
        raise CniError(Code.KERNEL_REFUSED, str(failure))
    if failure is not None:
        raise CniError(Code.KERNEL_REFUSED, str(failure), "the changes of this call were rolled back")


# ADD


def add(conf: NetConf, request: Request, stdin: bytes) -> Result:
    attachment = _new_attachment(conf, request)
    if records.load(conf.name, attachment.name) is None:
        with _engine(conf) as kernel:
            _refuse_existing_interface(kernel, attachment)  # before anything is taken for it
    with _locked(conf, shared=False):  # allocation, the record, the network itself: milliseconds once it exists
        earlier = records.load(conf.name, attachment.name)
        if earlier is not None and earlier.netns != request.netns:
            raise CniError(
                Code.INTERFACE_EXISTS, f"container {request.container_id} already has {request.ifname} on network {conf.name}", f"in {earlier.netns}"
            )
        attachment, conf = _addresses(conf, request, attachment, earlier, stdin)
        records.save(conf.name, attachment)  # before any kernel change: a DEL after a crash finds it
        records.save_network(conf.name, dict(conf.raw))
    try:
        _attach(conf, attachment)
    except BaseException:  # the engine rolled its changes back: nothing of the attachment may stay
        with _locked(conf, shared=True):
            _remove(conf, attachment, request, stdin)
        _remove_network_if_unused(conf)
        raise
    return result_of(conf, attachment)


def _attach(conf: NetConf, attachment: Attachment) -> None:
    """The network (the first ADD makes it, holding the lock alone), then the attachment's scoped plan."""
    with _engine(conf) as kernel:
        if not _network_exists(kernel, conf):
            with _locked(conf, shared=False):
                if not _network_exists(kernel, conf):
                    _apply(kernel, _plan(kernel, network.topology_of(conf, None), None), None)
        with _locked(conf, shared=True):
            planned = _plan(kernel, network.topology_of(conf, attachment), attachment)
            _refuse_taken_ports(planned)
            _apply(kernel, planned, _journal_of(conf.name, attachment.name))


def _network_exists(kernel: LiveKernel, conf: NetConf) -> bool:
    """The network's bridge is there, and ours: its other host objects are compared (and repaired)
    by every attachment's plan, so only the first ADD plans the network alone."""
    index = kernel.nl.lookup(None, conf.bridge)
    return index is not None and _is_ours(kernel, index)


def _addresses(conf: NetConf, request: Request, attachment: Attachment, earlier: Attachment | None, stdin: bytes) -> tuple[Attachment, NetConf]:
    """The attachment's addresses: those it has (a retried ADD), nsnet's allocator's, or the delegated IPAM plugin's."""
    if earlier is not None:
        return earlier, delegate.with_ranges(conf, earlier.extra) if conf.delegated else conf
    if conf.delegated:
        answer = delegate.call(conf, request, "ADD", stdin)
        return dataclasses.replace(attachment, addresses=delegate.addresses(answer), extra={"ipam": answer}), delegate.with_ranges(
            conf, {"ipam": answer}
        )
    return dataclasses.replace(attachment, addresses=ipam.allocate(conf, attachment.name)), conf


def _refuse_existing_interface(kernel: LiveKernel, attachment: Attachment) -> None:
    """ADD of an interface name the container already has is an error, not a takeover: the caller
    checked that this attachment has no record, so the interface is someone else's (another
    container's of this very network too)."""
    try:
        fd = os.open(attachment.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_NETNS {attachment.netns} cannot be opened: {os.strerror(err.errno or errno.EIO)}") from None
    kernel.nl.forget(attachment.name)
    kernel.nl.adopt(attachment.name, fd)
    try:
        existing = [link for link in kernel.nl.links(attachment.name) if link.name == attachment.ifname]
    except OSError:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_NETNS {attachment.netns} is not a network namespace") from None
    if existing:
        raise CniError(Code.INTERFACE_EXISTS, f"the container already has an interface {attachment.ifname}", f"in {attachment.netns}")


def _refuse_taken_ports(planned: Planned) -> None:
    """A host port another container of the network publishes: said plainly, before any change."""
    taken = {(r.map, r.key): r.namespace for r in planned.observation.state.values() if isinstance(r, PortMappingState)}
    for mapping in (r for r in planned.desired.values() if isinstance(r, PortMappingState)):
        owner = taken.get((mapping.map, mapping.key))
        if owner is not None and owner != mapping.namespace:
            raise CniError(
                Code.CONFLICT, f"host port {mapping.name} is already mapped to another container of network {planned.topology}", f"attachment {owner}"
            )


def result_of(conf: NetConf, attachment: Attachment) -> Result:
    """The ADD result: the bridge, the host end and the container end (with its sandbox), the
    addresses on the container end, its routes, and the configuration's DNS."""
    interfaces = (
        ResultInterface(conf.bridge, stable_mac(conf.name, conf.bridge)),
        ResultInterface(attachment.host_veth, network.host_mac(conf.name, attachment.container_id, attachment.ifname)),
        ResultInterface(attachment.ifname, attachment.mac, attachment.netns, conf.mtu),
    )
    ips = tuple(ResultIP(a, _gateway(conf, a), 2) for a in attachment.addresses)
    routes = tuple(ResultRoute(str(r.to), str(r.via[0]) if r.via else None) for r in network.routes_of(conf))
    return Result(interfaces, ips, routes, dict(conf.dns))


def _gateway(conf: NetConf, address: str) -> str | None:
    gateway = network.gateway_of(conf, 6 if ":" in address else 4)
    return str(gateway) if gateway else None


# DEL


def delete(conf: NetConf, request: Request, stdin: bytes) -> None:
    attachment = records.load(conf.name, network.attachment_name(request.container_id, request.ifname)) or _new_attachment(conf, request)
    with _locked(conf, shared=True):
        _remove(conf, attachment, request, stdin)
    _remove_network_if_unused(conf)


def _remove(conf: NetConf, attachment: Attachment, request: Request | None, stdin: bytes) -> None:
    """Everything of one attachment, whatever is left of it: its map elements first (no DNAT to an
    address about to be free), the veth (its container end, addresses and routes go with it), the
    delegated IPAM's lease, nsnet's leases, the record."""
    _remove_port_mappings(conf.name, attachment.name)
    journal = _journal_of(conf.name, attachment.name)
    with _engine(conf) as kernel:
        index = kernel.nl.lookup(None, attachment.host_veth)
        # an ADD killed between making the veth and labelling it left it unlabelled: its journal names it
        if index is not None and (_is_ours(kernel, index) or attachment.host_veth in read_intents(conf.name, journal).links):
            with contextlib.suppress(OSError):  # gone meanwhile: its namespace went
                kernel.nl.delete_link(None, index)
    if conf.delegated and request is not None:
        delegate.call(conf, request, "DEL", stdin)
    for address in attachment.addresses:
        records.release(conf.name, address.split("/")[0], attachment.name)
    records.forget(conf.name, attachment.name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal)


def _journal_of(network_name: str, attachment: str) -> str:
    return records.cni_dir(network_name, f"journal-{attachment}.jsonl")


def _remove_port_mappings(network_name: str, owner: str) -> None:
    """Every element of the network's maps that names the attachment (found in the table, so one a
    record does not know of goes too)."""
    name = table_name(network_name)
    table = nftables.read_table(name)  # None without nft: then there are no elements either
    mine = [(m.name, e.key) for m in (table.maps if table else ()) for e in m.elements if e.comment == owner]
    if mine:
        nftables.delete_elements(name, mine)


def _is_ours(kernel: LiveKernel, index: int) -> bool:
    found = kernel.nl.link_by_index(None, index)
    return found is not None and found.alias == label(kernel.topology)


def _remove_network_if_unused(conf: NetConf) -> None:
    """The last attachment gone, the network goes: bridge, nft table, forwarding hold, records."""
    if records.any_left(conf.name):
        return
    with contextlib.suppress(LockTimeout):  # busy: another call holds it, and the last of them finishes
        with topology_lock(conf.name, 0.0) as held:
            if records.any_left(conf.name):
                return
            with _engine(conf) as kernel:
                scope = Scope(frozenset(), whole_host=False)
                planned = reconcile.compute_destroy(conf.name, kernel.observe(scope), scope)
                _apply(kernel, planned, None)
            _forget_network(conf.name)
            held.discard = True


def _forget_network(name: str) -> None:
    """The network's records (its directory under /run/nsnet is nsnet's alone), and the journal a
    killed run left: the destroy that just ran read it and removed what it named."""
    shutil.rmtree(records.cni_dir(name), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(name))


# CHECK


def check(conf: NetConf, request: Request) -> None:
    attachment = records.load(conf.name, network.attachment_name(request.container_id, request.ifname))
    if attachment is None:
        raise CniError(Code.UNKNOWN_CONTAINER, f"container {request.container_id} has no {request.ifname} on network {conf.name}")
    changes = drift(conf, _as_the_chain_left_it(dataclasses.replace(attachment, netns=request.netns), conf.prev_result))
    if changes:
        raise CniError(Code.DRIFT, f"attachment {request.container_id}/{request.ifname} differs from what ADD made", "; ".join(changes))


def _as_the_chain_left_it(attachment: Attachment, prev_result: Mapping[str, Any] | None) -> Attachment:
    """The spec's CHECK takes the expected interface from the prevResult: a later plugin of the
    chain (tuning) may have given the container's interface another MAC."""
    for iface in (prev_result or {}).get("interfaces", []):
        if isinstance(iface, dict) and iface.get("name") == attachment.ifname and iface.get("sandbox") in (None, attachment.netns):
            mac = iface.get("mac")
            if isinstance(mac, str) and MAC.fullmatch(mac):
                return dataclasses.replace(attachment, mac=mac.lower())
    return attachment


def drift(conf: NetConf, attachment: Attachment) -> list[str]:
    """What the attachment's plan would change, one line per action (CHECK, `nsnet ls`, `nsnet show`)."""
    if conf.delegated:
        conf = delegate.with_ranges(conf, attachment.extra)
    with _locked(conf, shared=True), _engine(conf) as kernel:
        planned = _plan(kernel, network.topology_of(conf, attachment), attachment)
    return [f"{a.op.value} {a.id}" + (f" ({', '.join(f.field for f in a.fields)})" if a.fields else "") for a in planned.plan.actions]


# STATUS and GC


def status(conf: NetConf) -> None:
    """Ready (0), or 50: nft cannot serve the network, or its range has no address left."""
    why = nftables.unusable()
    if why:
        raise CniError(Code.NOT_READY, f"nft is unusable: {why}")
    if not conf.delegated and ipam.exhausted(conf):
        raise CniError(Code.NOT_READY, f"network {conf.name} has no free address left")


def gc(conf: NetConf, valid: list[Any]) -> None:
    """Remove every attachment the runtime does not list as valid."""
    keep = {(v.get("containerID"), v.get("ifname")) for v in valid if isinstance(v, dict)}
    for attachment in list(records.attachments(conf.name)):
        if (attachment.container_id, attachment.ifname) not in keep:
            with _locked(conf, shared=True):
                _remove(conf, attachment, None, b"")
    _remove_network_if_unused(conf)
