"""The benchmark topology for N namespaces, and the files each peer builds it from.

One Lab is one peer's copy of the topology in one run: every name starts
with the run's prefix (`b` + 4 hex digits) followed by the peer's letter, so
the peers never share a name and nothing on the host can be mistaken for
ours. All peers of a run use the same subnets (they never exist at the same
time: each peer tears its lab down, and the benchmark waits until the kernel
has finished, before the next one starts).

Layout for N namespaces (indices 0..N-1, plus index N for the "add one
namespace" case):
- ceil(N / 1000) bridges (a Linux bridge takes at most 1024 ports);
  namespace i is on bridge min(i // 1000, bridges - 1);
- bridge k has subnet k of equal size carved from the run's 10.X.0.0/16,
  just large enough for its ports + the extra namespace + the gateway;
  the gateway is the first host, set on the bridge;
- namespace i: eth0 (veth, host end on the bridge) with the (j+2)-th address
  of its bridge subnet (j = its position on the bridge), lo up, a default
  route via the gateway. That is exactly what nsnet's automatic allocation
  gives (lowest free hosts in name order), what host-local IPAM hands out
  when called in name order, and what the scripts set explicitly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Iterator

PER_BRIDGE = 1000
CNI_DIR = "/usr/lib/cni"

PEERS = ("nsnet", "shell", "batch", "cni")
LETTER = {"nsnet": "n", "shell": "s", "batch": "b", "cni": "c"}


@dataclass(frozen=True)
class Lab:
    prefix: str  # per run: "b" + 4 hex
    peer: str  # one of PEERS
    n: int  # namespaces in the base topology
    base: IPv4Network  # the run's /16 in 10.0.0.0/8

    # names

    @property
    def tag(self) -> str:
        return self.prefix + LETTER[self.peer]

    @property
    def width(self) -> int:
        return max(4, len(str(self.n)))

    def ns(self, i: int) -> str:
        return f"{self.tag}{i:0{self.width}d}"

    def host_veth(self, i: int) -> str:
        """Host end of namespace i's veth in the scripts (nsnet and CNI name their own)."""
        return f"{self.tag}h{i:0{self.width}d}"

    def bridge(self, k: int) -> str:
        return f"{self.tag}br{k}"

    @property
    def topology(self) -> str:
        """nsnet's topology name (labels: `nsnet:<topology>`)."""
        return f"{self.prefix}-{self.peer}"

    @property
    def label(self) -> str:
        return "nsnet:" + self.topology

    # layout

    @property
    def bridges(self) -> int:
        return max(1, math.ceil(self.n / PER_BRIDGE))

    def bridge_of(self, i: int) -> int:
        return min(i // PER_BRIDGE, self.bridges - 1)

    def position(self, i: int) -> int:
        return i - self.bridge_of(i) * PER_BRIDGE

    @property
    def prefixlen(self) -> int:
        ports = min(self.n, PER_BRIDGE) + 1  # + the extra namespace
        needed = ports + 1 + 2  # + gateway, network and broadcast addresses
        return 32 - max(2, math.ceil(math.log2(needed)))

    def subnet(self, k: int) -> IPv4Network:
        size = 2 ** (32 - self.prefixlen)
        net = IPv4Network(f"{IPv4Address(int(self.base.network_address) + k * size)}/{self.prefixlen}")
        assert net.subnet_of(self.base), f"{net} outside {self.base}"
        return net

    def bridge_mac(self, k: int) -> str:
        """A fixed, locally administered MAC for the scripts' bridge k (see _shell_bridge)."""
        digest = hashlib.sha256(self.bridge(k).encode()).digest()
        return "02:" + ":".join(f"{b:02x}" for b in digest[:5])

    def gateway(self, k: int) -> IPv4Address:
        return self.subnet(k).network_address + 1

    def address(self, i: int) -> IPv4Address:
        k = self.bridge_of(i)
        return self.subnet(k).network_address + 2 + self.position(i)

    def cidr(self, i: int) -> str:
        return f"{self.address(i)}/{self.prefixlen}"

    def indices(self, extra: bool = False) -> range:
        return range(self.n + 1 if extra else self.n)

    def members(self, k: int, extra: bool = False) -> list[int]:
        return [i for i in self.indices(extra) if self.bridge_of(i) == k]


def nsnet_host_veth(topology: str, namespace: str, interface: str = "eth0") -> str:
    """nsnet's host-side veth name (netplan_lite.model.loader.host_veth_name), for cleanup by exact name."""
    return "nsv" + hashlib.sha256(f"{topology}\0{namespace}\0{interface}".encode()).hexdigest()[:12]


# nsnet


def nsnet_yaml(lab: Lab, extra: bool = False) -> str:
    """The topology file; addresses are left to nsnet's allocator (they come out as lab.address(i))."""
    lines = [f"name: {lab.topology}", "bridges:"]
    for k in range(lab.bridges):
        lines.append(f"  {lab.bridge(k)}: {{subnet: {lab.subnet(k)}}}")
    lines.append("namespaces:")
    for i in lab.indices(extra):
        lines.append(f"  {lab.ns(i)}:")
        lines.append("    interfaces:")
        lines.append(f"      eth0: {{bridge: {lab.bridge(lab.bridge_of(i))}}}")
    return "\n".join(lines) + "\n"


# one command per step (bash, `ip` for every step)


def _shell_bridge(lab: Lab, k: int) -> Iterator[str]:
    # A fixed MAC, in the same command (as Docker and the CNI bridge plugin do): a bridge without one
    # takes the lowest MAC of its ports, so adding or removing a namespace could change the gateway's
    # MAC and cut the other namespaces off until their ARP entries expire.
    br = lab.bridge(k)
    yield f"ip link add {br} address {lab.bridge_mac(k)} type bridge"
    yield f"ip addr add {lab.gateway(k)}/{lab.prefixlen} dev {br}"
    yield f"ip link set {br} up"


def _shell_namespace(lab: Lab, i: int) -> Iterator[str]:
    ns, host, k = lab.ns(i), lab.host_veth(i), lab.bridge_of(i)
    yield f"ip netns add {ns}"
    yield f"ip link add {host} type veth peer name eth0 netns {ns}"
    yield f"ip link set {host} master {lab.bridge(k)}"
    yield f"ip link set {host} up"
    yield f"ip -n {ns} addr add {lab.cidr(i)} dev eth0"
    yield f"ip -n {ns} link set eth0 up"
    yield f"ip -n {ns} link set lo up"
    yield f"ip -n {ns} route add default via {lab.gateway(k)}"


def _script(lines: list[str]) -> str:
    return "#!/bin/bash\nset -e\n" + "\n".join(lines) + "\n"


def shell_create(lab: Lab) -> str:
    lines: list[str] = []
    for k in range(lab.bridges):
        lines += _shell_bridge(lab, k)
    for i in lab.indices():
        lines += _shell_namespace(lab, i)
    return _script(lines)


def shell_add(lab: Lab, i: int) -> str:
    return _script(list(_shell_namespace(lab, i)))


def shell_remove(lab: Lab, i: int) -> str:
    return _script([f"ip netns del {lab.ns(i)}"])


def shell_destroy(lab: Lab) -> str:
    lines = [f"ip netns del {lab.ns(i)}" for i in lab.indices()]
    lines += [f"ip link del {lab.bridge(k)}" for k in range(lab.bridges)]
    return _script(lines)


# ip -batch: one `ip -batch` for everything on the host, one `ip -n NS -batch` per namespace
# (a batch line cannot name a namespace: `-n` is a global option of the command line)


def _batch_host_namespace(lab: Lab, i: int) -> Iterator[str]:
    ns, host = lab.ns(i), lab.host_veth(i)
    yield f"netns add {ns}"
    yield f"link add {host} type veth peer name eth0 netns {ns}"
    yield f"link set {host} master {lab.bridge(lab.bridge_of(i))} up"


def _batch_inner(lab: Lab, i: int) -> str:
    return "\n".join([
        f"addr add {lab.cidr(i)} dev eth0",
        "link set eth0 up",
        "link set lo up",
        f"route add default via {lab.gateway(lab.bridge_of(i))}",
    ]) + "\n"


def write_batch(lab: Lab, directory: str, name: str, indices: list[int], bridges: bool) -> str:
    """Write NAME.host.batch, NAME.NS.batch files and NAME.sh that runs them; returns the script path."""
    host_lines: list[str] = []
    if bridges:
        for k in range(lab.bridges):
            br = lab.bridge(k)
            host_lines += [f"link add {br} address {lab.bridge_mac(k)} type bridge", f"addr add {lab.gateway(k)}/{lab.prefixlen} dev {br}", f"link set {br} up"]
    for i in indices:
        host_lines += _batch_host_namespace(lab, i)
    host = os.path.join(directory, f"{name}.host.batch")
    _write(host, "\n".join(host_lines) + "\n")
    cmds = [f"ip -batch {host}"]
    for i in indices:
        inner = os.path.join(directory, f"{name}.{lab.ns(i)}.batch")
        _write(inner, _batch_inner(lab, i))
        cmds.append(f"ip -n {lab.ns(i)} -batch {inner}")
    script = os.path.join(directory, f"{name}.sh")
    _write(script, _script(cmds))
    return script


def write_batch_delete(lab: Lab, directory: str, name: str, indices: list[int], bridges: bool) -> str:
    lines = [f"netns del {lab.ns(i)}" for i in indices]
    if bridges:
        lines += [f"link del {lab.bridge(k)}" for k in range(lab.bridges)]
    path = os.path.join(directory, f"{name}.batch")
    _write(path, "\n".join(lines) + "\n")
    script = os.path.join(directory, f"{name}.sh")
    _write(script, _script([f"ip -batch {path}"]))
    return script


# CNI: one network per bridge, bridge plugin + host-local IPAM; loopback for lo


def cni_network(lab: Lab, k: int, data_dir: str) -> dict:
    """The network configuration list a runtime would read from /etc/cni/net.d (kept in our temp dir)."""
    subnet = lab.subnet(k)
    return {
        "cniVersion": "1.0.0",
        "name": f"{lab.tag}net{k}",
        "plugins": [{
            "type": "bridge",
            "bridge": lab.bridge(k),
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(subnet), "gateway": str(lab.gateway(k)), "rangeStart": str(subnet.network_address + 2)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data_dir,
            },
        }],
    }


LOOPBACK_NETWORK = {"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}


def plugin_config(network: dict, index: int, prev_result: dict | None = None) -> bytes:
    """What libcni writes on a plugin's stdin: the plugin entry plus the list's name and cniVersion."""
    conf = dict(network["plugins"][index])
    conf["name"] = network["name"]
    conf["cniVersion"] = network["cniVersion"]
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return json.dumps(conf).encode()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
