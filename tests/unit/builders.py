"""Small builders shared by the unit tests: topologies, states, snapshots, plans.

Nothing here touches the kernel.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path
from typing import Any, Iterator

import yaml

from netplan_lite.model import loader
from netplan_lite.engine import reconcile
from netplan_lite.errors import TopologyError
from netplan_lite.engine.fake import FakeKernel
from netplan_lite.model.topology import Topology
from netplan_lite.kernel.netlink import Snapshot
from netplan_lite.kernel.rtnl.address import AddrMsg
from netplan_lite.kernel.rtnl.link import LinkMsg
from netplan_lite.kernel.rtnl.route import RouteMsg
from netplan_lite.engine.observation import Observation
from netplan_lite.engine.plan import Plan
from netplan_lite.resources.ids import Kind, ResourceId
from netplan_lite.resources.route import destination_cidr
from netplan_lite.resources.bridge import BridgeState
from netplan_lite.resources.interface import InterfaceState
from netplan_lite.resources.namespace import NamespaceState
from netplan_lite.resources.route import RouteState
from netplan_lite.resources.state import Resource, state_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "topology.yaml"
SOURCE = "t.yaml"


def topology_keys() -> list[str]:
    """Every key the topology format knows, from its schema (so fuzzers meet new keys too)."""
    schema = loader.topology_schema()
    parts = [schema, *schema["$defs"].values()]
    return sorted({key for part in parts for key in part.get("properties", {})})


def rid(text: str) -> ResourceId:
    """An id from its display form: "interface a/eth0", "route a/default", "bridge br0"."""
    kind, key = text.split(" ")
    namespace, _, name = key.partition("/") if Kind(kind) in (Kind.INTERFACE, Kind.ROUTE) else (None, "", key)
    return ResourceId(Kind(kind), destination_cidr(name) if Kind(kind) is Kind.ROUTE else name, namespace)


# topology documents


def doc(
    bridges: dict[str, Any] | None = None,
    namespaces: dict[str, Any] | None = None,
    port_forwards: list[dict[str, Any]] | None = None,
    name: str = "demo",
) -> dict[str, Any]:
    """A topology document (plain data), leaving out the sections not given."""
    data: dict[str, Any] = {"name": name}
    if bridges is not None:
        data["bridges"] = bridges
    if namespaces is not None:
        data["namespaces"] = namespaces
    if port_forwards is not None:
        data["port_forwards"] = port_forwards
    return data


def to_yaml(data: dict[str, Any]) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


def topology(data: dict[str, Any] | str | bytes) -> Topology:
    """Load a document or YAML text through the real loader."""
    if isinstance(data, dict):
        data = to_yaml(data)
    if isinstance(data, str):
        data = data.encode()
    return loader.load_bytes(data, SOURCE)


def problems(text: str | bytes | dict[str, Any]) -> list[str]:
    """`str(problem)` of every problem the loader finds (fails if it finds none)."""
    try:
        topology(text)
    except TopologyError as err:
        return [str(p) for p in err.problems]
    raise AssertionError("the loader accepted the topology")


def messages(text: str | bytes | dict[str, Any]) -> list[tuple[str, str]]:
    """(key path, message) of every problem, without positions."""
    try:
        topology(text)
    except TopologyError as err:
        return [(p.path, p.message) for p in err.problems]
    raise AssertionError("the loader accepted the topology")


def one_bridge(*namespaces: str, subnet: str = "172.30.0.0/24", **iface: Any) -> dict[str, Any]:
    """Namespaces each with eth0 on bridge br0 (auto address unless given in `iface`)."""
    return doc(
        bridges={"br0": {"subnet": subnet}},
        namespaces={ns: {"interfaces": {"eth0": {"bridge": "br0", **iface}}} for ns in namespaces},
    )


# states


def host_name(ns: str, ifname: str, topo: str = "demo") -> str:
    return loader.host_veth_name(topo, ns, ifname)


def bridge(name: str = "br0", *addresses: str, mtu: int | None = None, up: bool = True) -> BridgeState:
    return BridgeState(name, tuple(addresses), mtu, up)


def namespace(name: str, lo_up: bool = True) -> NamespaceState:
    return NamespaceState(name, lo_up)


def iface(
    ns: str, name: str = "eth0", bridge: str | None = "br0", *addresses: str, topo: str = "demo", host: str | None = "", **fields: Any
) -> InterfaceState:
    """An interface; its host end name is the loader's unless `host` is given."""
    host_end = host_name(ns, name, topo) if host == "" else host
    return InterfaceState(ns, name, host_end, bridge, tuple(addresses), **fields)


def route(ns: str, to: str = "default", via: str = "172.30.0.1", **extra: Any) -> RouteState:
    return RouteState(ns, to, (via,) if via else (), **extra)


def state(*resources: Resource) -> dict:
    return state_of(list(resources))


def built(*namespaces: tuple[str, str], gateway: str = "172.30.0.1/24") -> list[Resource]:
    """What nsnet builds for `one_bridge`: br0, then each (namespace, address) with eth0 and a default route."""
    resources: list[Resource] = [bridge("br0", gateway)]
    for ns, address in namespaces:
        resources += [namespace(ns), iface(ns, "eth0", "br0", address), route(ns)]
    return resources


# plans


def compute(data: dict[str, Any] | str | bytes, observed: list[Resource] = (), **observation: Any) -> reconcile.Planned:
    return reconcile.compute(topology(data), Observation(state(*observed), **observation))


def ops(plan: Plan) -> list[tuple[str, str]]:
    """A plan as (op, id) pairs, in order."""
    return [(a.op.value, str(a.id)) for a in plan.actions]


# netlink records


def link(
    index: int,
    name: str,
    kind: str | None = None,
    alias: str | None = None,
    master: int | None = None,
    peer: int | None = None,
    mtu: int = 1500,
    up: bool = True,
    mac: str | None = None,
    **extra: Any,
) -> LinkMsg:
    return LinkMsg(index, name, kind, alias, master, peer, mtu, up, mac, **extra)


def address(index: int, cidr: str, proto: int = 0) -> AddrMsg:
    return AddrMsg(index, cidr, proto)


def route_entry(to: str, via: str, proto: int = 225) -> RouteMsg:
    """A gateway route as a snapshot holds it; `to` may be "default"."""
    return RouteMsg(destination_cidr(to), (via,), proto)


def snapshot(*links: LinkMsg, addresses: tuple[AddrMsg, ...] = (), routes: tuple[RouteMsg, ...] = ()) -> Snapshot:
    return Snapshot(tuple(links), tuple(addresses), tuple(routes))


# netlink messages (the codec tests cross-check them against pyroute2)

NLMSG_HEADER = 16  # struct nlmsghdr: a message body starts here


def encoded(msg: Any) -> bytes:
    """The bytes of a pyroute2 message object."""
    msg.encode()
    return bytes(msg.data)


def nl_message(kind: int, body: bytes) -> bytes:
    """One netlink message of type `kind` around `body`, as pyroute2's parsers take it."""
    return struct.pack("=IHHII", NLMSG_HEADER + len(body), kind, 5, 1, 0) + body


# kernel


@contextlib.contextmanager
def opened(kernel: FakeKernel) -> Iterator[FakeKernel]:
    """Stands in for kernel.open_kernel(topology) in CLI tests."""
    yield kernel


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`nsnet ARGV` in-process: (exit code, stdout, stderr)."""
    from netplan_lite.cli import main as cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
