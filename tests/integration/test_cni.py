"""nsnet as a CNI plugin (issue 15), driven as a runtime drives it: the installed executable, the
CNI_* variables and the configuration on stdin, one runtime-made namespace per container.

Every network, bridge, namespace and container ID carries the lab's prefix and every subnet is a
free /24 of the lab. The `cni` fixture DELs every attachment the test ADDed (whatever the test
did to it), then asserts that nothing of each network is left: its bridge, links with its label,
the host veths of the test (exact names, derived as nsnet derives them), the nft table, its
directory under /run/nsnet and its hold on net.ipv4.ip_forward. Traffic goes only to 127.0.0.1
and to addresses of the test's own bridges and namespaces; host ports are the lab's free ports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from cni_plugin import (
    IP_FORWARD,
    STATE_DIR,
    SYSTEM_PLUGINS,
    Answer,
    Container,
    Network,
    host_veth,
    install,
    invoke,
    ip_forward_holders,
    record_dir,
)
from netplan_lite.cni import network as cni_network

pytestmark = pytest.mark.netns

VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
SHORT = 1.5  # seconds a connection that must fail is given
TCP_SERVER = str(Path(__file__).with_name("tcp_server.py"))
CLIENT = str(Path(__file__).with_name("tcp_client.py"))
PARALLEL = 50
TEARDOWN_WORKERS = 8


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(tmp_path_factory.mktemp("cni-bin"))


class Cni:
    """The lab, the installed plugin, and every network and attachment the test made."""

    def __init__(self, lab: Any, plugin: Path):
        self.lab = lab
        self.plugin = plugin
        self.networks: list[Network] = []
        self.attached: dict[tuple[str, str, str], tuple[Network, Container, str]] = {}
        self.procs: list[subprocess.Popen] = []

    # the test's objects

    def network(self, suffix: str = "", **keys: Any) -> Network:
        """A network (bridge plugin keys as podman writes them) on a free /24; KEYS override or add."""
        name, bridge, subnet = f"{self.lab.prefix}{suffix}", f"{self.lab.prefix}b{suffix}", self.lab.new_subnet()
        assert len(bridge) <= 15
        conf = {
            "cniVersion": "1.0.0",
            "name": name,
            "type": "nsnet",
            "bridge": bridge,
            "isGateway": True,
            "isDefaultGateway": True,
            "ipMasq": True,
            "hairpinMode": True,
            "ipam": {"ranges": [[{"subnet": str(subnet)}]]},
            "dns": {"nameservers": [str(subnet[1])]},
            "capabilities": {"portMappings": True},
            **keys,
        }
        net = Network(name, bridge, subnet, conf)
        self.networks.append(net)
        self.lab.links.add(bridge)  # the lab deletes it too if it is still there
        return net

    def container(self, suffix: str) -> Container:
        c = Container(f"{self.lab.prefix}-{suffix}", f"{self.lab.prefix}-{suffix}")
        self.lab.namespaces.add(c.ns)
        self.lab.ip("netns", "add", c.ns)
        return c

    def containers(self, *suffixes: str) -> list[Container]:
        return [self.container(s) for s in suffixes]

    # calls

    def call(self, command: str, net: Network, container: Container | None = None, ifname: str = "eth0", conf: Any = None, **env: str) -> Answer:
        """COMMAND on NET for CONTAINER/IFNAME; ENV overrides (or, as "", empties) a variable; CONF (dict or bytes) replaces the configuration."""
        base = {"CNI_COMMAND": command, "CNI_PATH": f"{self.plugin.parent}:{SYSTEM_PLUGINS}", "CNI_IFNAME": ifname}
        if container is not None:
            base.update(CNI_CONTAINERID=container.id, CNI_NETNS=container.netns)
        stdin = conf if isinstance(conf, bytes) else json.dumps(conf if conf is not None else net.conf).encode()
        return invoke(self.plugin, {**base, **env}, stdin)

    def add(self, net: Network, container: Container, ifname: str = "eth0", mappings: list[dict[str, Any]] | None = None, **conf: Any) -> Answer:
        """ADD (remembered for the teardown's DEL, even when it fails); MAPPINGS as runtimeConfig.portMappings."""
        if mappings:
            conf["runtimeConfig"] = {"portMappings": mappings}
        self.attached[(net.name, container.id, ifname)] = (net, container, ifname)
        self.lab.links.add(host_veth(net, container, ifname))
        return self.call("ADD", net, container, ifname, net.config(**conf))

    def added(self, net: Network, container: Container, **kwargs: Any) -> dict[str, Any]:
        """ADD that must succeed: its result."""
        answer = self.add(net, container, **kwargs)
        assert answer.rc == 0, str(answer)
        return answer.doc

    def delete(self, net: Network, container: Container, ifname: str = "eth0", **env: str) -> Answer:
        return self.call("DEL", net, container, ifname, **env)

    def check(self, net: Network, container: Container, ifname: str = "eth0") -> Answer:
        return self.call("CHECK", net, container, ifname)

    def all_at_once(self, fn: Callable[[Container], Answer], containers: list[Container]) -> list[Answer]:
        with ThreadPoolExecutor(len(containers)) as pool:
            return list(pool.map(fn, containers))

    # traffic

    def reach(self, ns: str, address: str, port: int, timeout: float = SHORT) -> str | None:
        """What a server at ADDRESS:PORT sends to a connection from inside NS, or None if none is made."""
        rc, out, err = self.lab.run("ip", "netns", "exec", ns, sys.executable, CLIENT, address, str(port), str(timeout), timeout=timeout + 20)
        assert rc in (0, 3), err
        return out.strip() if rc == 0 else None

    def host_server(self, address: str, port: int, reply: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, TCP_SERVER, address, str(port), reply, "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""

    # what is left

    def leftovers(self, net: Network) -> list[str]:
        """Everything of NET still on the host."""
        veths = sorted(host_veth(n, c, i) for n, c, i in self.attached.values() if n == net)
        left = [f"link {name}" for name in [net.bridge, *veths] if self.lab.link(name) is not None]
        left += [f"link {name} (alias nsnet:{net.name})" for name in self.lab.links_with_alias(f"nsnet:{net.name}")]
        left += [f"nft table inet {net.table}"] if net.table in self.lab.nft_table_names() else []
        left += [f"{STATE_DIR / net.name}"] if (STATE_DIR / net.name).exists() else []
        left += [f"ip_forward held by {net.name}"] if net.name in ip_forward_holders() else []
        return sorted(set(left))

    def assert_gone(self, net: Network) -> None:
        assert self.lab.wait_until(lambda: not self.leftovers(net), timeout=3), f"left of {net.name}: {self.leftovers(net)}"

    def teardown(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.communicate(timeout=10)
        with ThreadPoolExecutor(TEARDOWN_WORKERS) as pool:
            answers = list(pool.map(self._final_del, self.attached.values()))
        failed = [f"DEL {c.id}/{i} on {n.name}: {a}" for (n, c, i), a in zip(self.attached.values(), answers, strict=True) if a.rc != 0]
        left = {net.name: found for net in self.networks if (found := self.leftovers(net))}
        for net in (n for n in self.networks if n.name in left):
            self._force_remove(net)
        assert not failed, failed
        assert not left, f"left behind after every attachment's DEL: {left}"

    def _final_del(self, attachment: tuple[Network, Container, str]) -> Answer:
        net, container, ifname = attachment
        netns = container.netns if Path(container.netns).exists() else ""
        return self.delete(net, container, ifname, CNI_NETNS=netns)

    def _force_remove(self, net: Network) -> None:
        """A failed test's network, by its exact names: `nsnet destroy` of a file naming it, then its /run directory."""
        path = self.lab.dir / f"{net.name}-leftover.yaml"
        path.write_text(yaml.safe_dump({"name": net.name, "bridges": {net.bridge: {"subnet": str(net.subnet)}}}))
        self.lab.run(sys.executable, "-m", "netplan_lite", "destroy", str(path))
        shutil.rmtree(STATE_DIR / net.name, ignore_errors=True)


@pytest.fixture
def cni(lab: Any, plugin: Path) -> Iterator[Cni]:
    c = Cni(lab, plugin)
    try:
        yield c
    finally:
        c.teardown()


def container_interface(result: dict[str, Any], container: Container) -> dict[str, Any]:
    (found,) = [i for i in result["interfaces"] if i.get("sandbox") == container.netns]
    return found


def address_of(result: dict[str, Any]) -> str:
    """The container's IPv4 address (without its prefix) in an ADD result."""
    return result["ips"][0]["address"].split("/")[0]


def mapping(host_port: int, container_port: int = 80, **extra: Any) -> dict[str, Any]:
    return {"hostPort": host_port, "containerPort": container_port, "protocol": "tcp", **extra}


# 1. the ADD result, per version, and what the container really has


@pytest.mark.parametrize("version", VERSIONS)
def test_add_result_per_version_matches_the_container(cni, lab, version):
    net, c = cni.network(), cni.container("c")
    result = cni.added(net, c, cniVersion=version)

    assert result["cniVersion"] == version
    inner = container_interface(result, c)
    assert inner["name"] == "eth0"
    assert inner["mac"] == lab.link("eth0", c.ns)["address"]
    assert {i["name"] for i in result["interfaces"]} == {net.bridge, host_veth(net, c), "eth0"}
    (ip,) = result["ips"]
    assert ("version" in ip) == (version < "1.0.0") and ip.get("version", "4") == "4"
    assert result["interfaces"][ip["interface"]] == inner
    assert ip["gateway"] == net.gateway and ip["address"].endswith("/24") and ip["address"].split("/")[0] in map(str, net.subnet)
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": net.gateway}]
    assert result["dns"] == {"nameservers": [net.gateway]}

    assert lab.addresses(c.ns, "eth0") == [ip["address"]]
    assert [(gw, dev) for gw, dev, _ in lab.default_routes(c.ns)] == [(net.gateway, "eth0")]
    assert lab.link(host_veth(net, c))["master"] == net.bridge
    answer = cni.call("CHECK", net, c, conf=net.config(cniVersion=version))
    if version < "0.4.0":  # CHECK came with 0.4.0: the spec's code 1 before it
        assert answer.rc != 0 and answer.code == 1 and "CHECK needs CNI spec 0.4.0" in answer.doc["msg"], str(answer)
    else:
        assert answer.rc == 0 and answer.doc is None, str(answer)


# 2. attachments reach each other and the gateway


def test_two_attachments_reach_each_other_and_the_gateway(cni, lab):
    net = cni.network()
    a, b = cni.containers("a", "b")
    addr_a, addr_b = address_of(cni.added(net, a)), address_of(cni.added(net, b))
    (port,) = lab.free_ports(1)
    lab.serve(a.ns, "0.0.0.0", 80, "a")
    cni.host_server(net.gateway, port, "gateway")

    assert lab.connect_from(b.ns, addr_a, 80) == f"a {addr_b}"  # bridged, not masqueraded
    for c, addr in ((a, addr_a), (b, addr_b)):
        assert lab.connect_from(c.ns, net.gateway, port) == f"gateway {addr}"


# 3. port mappings


def test_port_mapping_is_reached_from_the_host_a_neighbour_and_the_target_itself(cni, lab):
    net = cni.network()
    web, client = cni.containers("web", "client")
    (p,) = lab.free_ports(1)
    cni.added(net, web, mappings=[mapping(p)])
    cni.added(net, client)
    lab.serve(web.ns, "0.0.0.0", 80, "web")

    for address in ("127.0.0.1", net.gateway):
        assert (lab.tcp_from_host(address, p) or "").startswith("web "), address
    assert (cni.reach(client.ns, net.gateway, p) or "").startswith("web ")
    assert cni.reach(web.ns, net.gateway, p) == f"web {net.gateway}"  # hairpin: masqueraded to the gateway


def test_host_ip_publishes_on_that_address_only(cni, lab):
    net = cni.network()
    web, client = cni.containers("web", "client")
    (p,) = lab.free_ports(1)
    cni.added(net, web, mappings=[mapping(p, hostIP="127.0.0.1")])
    cni.added(net, client)
    lab.serve(web.ns, "0.0.0.0", 80, "web")

    assert (lab.tcp_from_host("127.0.0.1", p) or "").startswith("web ")
    assert lab.tcp_from_host(net.gateway, p, timeout=SHORT) is None
    assert cni.reach(client.ns, net.gateway, p) is None


def test_a_host_port_another_container_maps_is_refused_and_leaves_nothing(cni, lab):
    net = cni.network()
    web1, web2 = cni.containers("web1", "web2")
    (p,) = lab.free_ports(1)
    cni.added(net, web1, mappings=[mapping(p)])

    answer = cni.add(net, web2, mappings=[mapping(p)])
    assert answer.rc != 0 and answer.code == 104, str(answer)
    assert lab.link(host_veth(net, web2)) is None and lab.link("eth0", web2.ns) is None
    lab.serve(web1.ns, "0.0.0.0", 80, "web1")
    assert (lab.tcp_from_host("127.0.0.1", p) or "").startswith("web1 ")
    name = cni_network.attachment_name(web2.id, "eth0")
    assert not record_dir(net, "attachments", name).exists(), "the refused ADD's record is left"
    assert name not in {f.read_text() for f in record_dir(net, "leases").iterdir()}, "the refused ADD's lease is left"
    assert name not in lab.run("nft", "list", "table", "inet", net.table)[1], "the refused ADD's map elements are left"


def _route_loopback_to_the_host(lab, ns: str, gateway: str) -> None:
    """Make NS send 127.0.0.1 out of eth0 to the host, as a hostile neighbour on the bridge would (as test_forwards does,
    once the runtime's `loopback` plugin has set lo up: nsnet never touches it)."""
    lab.ip("-n", ns, "link", "set", "lo", "up")
    lab.ip("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.route_localnet=1")
    lab.ip("-n", ns, "addr", "del", "127.0.0.1/8", "dev", "lo")
    lab.ip("-n", ns, "route", "add", "127.0.0.1/32", "via", gateway, "dev", "eth0")


def test_guard_drops_a_container_packet_for_the_hosts_127_0_0_1(cni, lab):
    net = cni.network()
    web, attacker = cni.containers("web", "atk")
    p, q = lab.free_ports(2)
    cni.added(net, web, mappings=[mapping(p)])
    cni.added(net, attacker)
    assert Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip() == "1"
    cni.host_server("127.0.0.1", q, "host-loopback")
    _route_loopback_to_the_host(lab, attacker.ns, net.gateway)

    assert cni.reach(attacker.ns, "127.0.0.1", q) is None  # dropped by the guard

    # control: without the guard rule the same packets reach the host's 127.0.0.1 service
    rc, out, err = lab.run("nft", "-j", "list", "chain", "inet", net.table, "guard")
    assert rc == 0, err
    (handle,) = [i["rule"]["handle"] for i in json.loads(out)["nftables"] if "rule" in i]
    assert lab.run("nft", "delete", "rule", "inet", net.table, "guard", "handle", str(handle))[0] == 0
    assert (cni.reach(attacker.ns, "127.0.0.1", q) or "").startswith("host-loopback ")


# 4. CHECK


# each injects one drift and returns what CHECK's details must name


def veth_deleted(lab, net, c, port):
    lab.ip("link", "del", "dev", host_veth(net, c))
    return "create interface"


def address_changed(lab, net, c, port):
    lab.ip("-n", c.ns, "addr", "flush", "dev", "eth0")
    lab.ip("-n", c.ns, "addr", "add", f"{net.subnet[200]}/24", "dev", "eth0")
    return "(addresses)"


def default_route_deleted(lab, net, c, port):
    lab.ip("-n", c.ns, "route", "del", "default")
    return "/default"


def mapping_element_deleted(lab, net, c, port):
    rc, _, err = lab.run("nft", "delete", "element", "inet", net.table, "fwd4", f"{{ tcp . {port} }}")
    assert rc == 0, err
    return f"port mapping {cni_network.attachment_name(c.id, 'eth0')}/tcp *:{port}"


def bridge_down(lab, net, c, port):
    lab.ip("link", "set", "dev", net.bridge, "down")
    return f"bridge {net.bridge} (up)"


@pytest.mark.parametrize(
    "drift", [veth_deleted, address_changed, default_route_deleted, mapping_element_deleted, bridge_down], ids=lambda f: f.__name__
)
def test_check_fails_on_drift(cni, lab, drift):
    net, c = cni.network(), cni.container("c")
    (p,) = lab.free_ports(1)
    cni.added(net, c, mappings=[mapping(p)])
    assert cni.check(net, c).rc == 0

    named = drift(lab, net, c, p)
    answer = cni.check(net, c)
    assert answer.rc != 0 and answer.code == 103 and answer.doc["cniVersion"] == net.conf["cniVersion"], str(answer)
    assert named in answer.doc["details"], str(answer)


def test_check_tolerates_a_route_a_later_plugin_added(cni, lab):
    net, c = cni.network(), cni.container("c")
    cni.added(net, c)
    lab.ip("-n", c.ns, "route", "add", "192.0.2.0/24", "dev", "eth0")
    answer = cni.check(net, c)
    assert answer.rc == 0, str(answer)


# 5. DEL is total


def del_twice(cni, net, c, result):
    first = cni.delete(net, c)
    assert first.rc == 0, str(first)
    return cni.delete(net, c)


def del_without_prev_result(cni, net, c, result):
    return cni.delete(net, c)


def del_with_prev_result(cni, net, c, result):
    return cni.call("DEL", net, c, conf=net.config(prevResult=result))


def del_with_empty_netns(cni, net, c, result):
    return cni.delete(net, c, CNI_NETNS="")


def del_after_the_namespace_went(cni, net, c, result):
    cni.lab.ip("netns", "del", c.ns)
    return cni.delete(net, c)


@pytest.mark.parametrize(
    "deletion",
    [del_twice, del_without_prev_result, del_with_prev_result, del_with_empty_netns, del_after_the_namespace_went],
    ids=lambda f: f.__name__,
)
def test_del_is_total(cni, lab, deletion):
    net, c = cni.network(), cni.container("c")
    (p,) = lab.free_ports(1)
    result = cni.added(net, c, mappings=[mapping(p)])

    answer = deletion(cni, net, c, result)
    assert answer.rc == 0 and answer.doc is None, str(answer)
    cni.assert_gone(net)


def test_del_of_an_id_never_added_succeeds_and_changes_nothing(cni, lab):
    net, other = cni.network(), cni.network("-x")
    a, ghost = cni.containers("a", "ghost")
    cni.added(net, a)

    for n in (net, other):
        answer = cni.delete(n, ghost)
        assert answer.rc == 0, str(answer)
    assert cni.check(net, a).rc == 0
    cni.assert_gone(other)  # DEL made nothing of a network that did not exist


def test_the_last_del_removes_bridge_table_and_ip_forward_hold(cni, lab):
    before = IP_FORWARD.read_text()
    net = cni.network()
    a, b = cni.containers("a", "b")
    cni.added(net, a)
    cni.added(net, b)
    assert net.name in ip_forward_holders()

    assert cni.delete(net, a).rc == 0
    assert lab.link(net.bridge) is not None and net.table in lab.nft_table_names() and net.name in ip_forward_holders()
    assert cni.check(net, b).rc == 0
    assert cni.delete(net, b).rc == 0
    cni.assert_gone(net)
    assert IP_FORWARD.read_text() == before


# 6. errors through the executable


def error_of(answer: Answer, code: int) -> dict[str, Any]:
    assert answer.rc != 0 and set(answer.doc) == {"cniVersion", "code", "msg", "details"} and answer.code == code, str(answer)
    return answer.doc


def test_missing_environment_is_named(cni):
    net, c = cni.network(), cni.container("c")
    doc = error_of(cni.call("ADD", net, c, CNI_CONTAINERID="", CNI_NETNS=""), 4)
    assert "CNI_CONTAINERID" in doc["msg"] and "CNI_NETNS" in doc["msg"]
    doc = error_of(cni.call("DEL", net, c, CNI_IFNAME=""), 4)
    assert "CNI_IFNAME" in doc["msg"]
    cni.assert_gone(net)


@pytest.mark.parametrize(
    "stdin, code, named",
    [
        (b'{"cniVersion": "1.0.0", "name": ', 6, None),
        (b"[1, 2]", 6, None),
        ({"frobnicate": True}, 2, "frobnicate"),
        ({"ipam": {"ranges": [[{"subnet": "10.0.0.0/24"}]], "frob": 1}}, 2, "ipam.frob"),
        ({"cniVersion": "0.2.0"}, 1, "0.2.0"),
        ({"cniVersion": "9.9.9"}, 1, "9.9.9"),
    ],
    ids=["truncated-json", "not-an-object", "unknown-key", "unknown-ipam-key", "version-0.2.0", "version-9.9.9"],
)
def test_bad_configuration_is_refused_with_the_specs_code(cni, stdin, code, named):
    net, c = cni.network(), cni.container("c")
    conf = stdin if isinstance(stdin, bytes) else net.config(**stdin)
    doc = error_of(cni.call("ADD", net, c, conf=conf), code)
    assert named is None or named in doc["msg"], doc
    cni.assert_gone(net)


def test_add_of_an_interface_the_container_has_is_refused_and_leaves_nothing(cni, lab):
    net, c = cni.network(), cni.container("c")
    lab.ip("-n", c.ns, "link", "add", "eth0", "type", "bridge")  # any link will do (this kernel has no dummy module)

    error_of(cni.add(net, c), 101)
    assert lab.link("eth0", c.ns)["link_type"] == "ether" and lab.link(host_veth(net, c)) is None
    cni.assert_gone(net)


# 7. GC and STATUS


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_removes_the_attachments_not_listed(cni, lab, key):
    net = cni.network(cniVersion="1.1.0")
    keep, drop = cni.containers("keep", "drop")
    cni.added(net, keep)
    cni.added(net, drop)

    answer = cni.call("GC", net, conf=net.config(**{key: [{"containerID": keep.id, "ifname": "eth0"}]}))
    assert answer.rc == 0, str(answer)
    assert lab.link(host_veth(net, drop)) is None and lab.link("eth0", drop.ns) is None
    assert cni.check(net, keep).rc == 0
    assert cni.check(net, drop).code == 3


def test_status_is_ready(cni):
    net = cni.network(cniVersion="1.1.0")
    answer = cni.call("STATUS", net)
    assert answer.rc == 0 and answer.doc is None, str(answer)
    cni.assert_gone(net)


# 8. many at once


def test_parallel_adds_get_distinct_addresses_and_parallel_dels_leave_nothing(cni, lab):
    net = cni.network()
    containers = cni.containers(*(f"p{i}" for i in range(PARALLEL)))

    answers = cni.all_at_once(lambda c: cni.add(net, c), containers)
    assert all(a.rc == 0 for a in answers), [str(a) for a in answers if a.rc != 0][:3]
    assert len({address_of(a.doc) for a in answers}) == PARALLEL
    checks = cni.all_at_once(lambda c: cni.check(net, c), containers)
    assert all(a.rc == 0 for a in checks), [str(a) for a in checks if a.rc != 0][:3]

    dels = cni.all_at_once(lambda c: cni.delete(net, c), containers)
    assert all(a.rc == 0 for a in dels), [str(a) for a in dels if a.rc != 0][:3]
    cni.assert_gone(net)


# 9. delegated IPAM


def test_delegated_host_local_ipam_gives_and_releases_the_address(cni, lab):
    if not Path(SYSTEM_PLUGINS, "host-local").exists():
        pytest.skip(f"no {SYSTEM_PLUGINS}/host-local (apt-get install containernetworking-plugins)")
    data_dir = lab.dir / "host-local"
    net = cni.network()
    subnet = net.subnet
    net.conf["ipam"] = {"type": "host-local", "ranges": [[{"subnet": str(subnet)}]], "dataDir": str(data_dir)}  # on the network's own /24
    c = cni.container("c")

    result = cni.added(net, c)
    address = address_of(result)
    assert (data_dir / net.name / address).read_text().startswith(c.id)
    assert lab.addresses(c.ns, "eth0") == [f"{address}/24"] and address in map(str, subnet)
    assert lab.addresses(None, net.bridge) == [f"{subnet[1]}/24"]
    assert cni.check(net, c).rc == 0

    assert cni.delete(net, c).rc == 0
    assert not (data_dir / net.name / address).exists()
    cni.assert_gone(net)
