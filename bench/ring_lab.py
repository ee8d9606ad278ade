"""The routed ring for R routers, the state it must produce, and the files each peer builds it from.

Router i (namespace `<tag><i>`, i = 0..R-1) has `lo` with its loopback in both
families, and two point-to-point links: `east` to router i+1 and `west` to
router i-1 (mod R). Link k joins k:east and (k+1):west; it is the k-th link of
the file, so it takes the k-th /31 and /127 block of the p2p pool, east the
lower address. Loopbacks come from the loopback pool in name order (names are
zero-padded, so name order is index order): router i gets the pool's address
1 + i (the pool's own network address is not given out).

Every router forwards, and routes along the shortest way round the ring (ties
go east):
- to every other router's loopback, one /32 and one /128 each: R x (R-1)
  routes per family;
- to the links it is not on, summarised: the links ahead of it on each side
  are a contiguous run of pool blocks, so each side needs only the few
  prefixes that cover that run exactly (at most ~2 log2 R per side). Without
  them a router could not answer a packet from another router's link address,
  which every ping takes as its source (and `nsnet test --ping-all` pings
  link addresses too).

Both peers build exactly this; `expected()` is what the checks compare every
router against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_interface, summarize_address_range
from typing import Iterator, Union

Network = Union[IPv4Network, IPv6Network]

# peer -> the letter its names carry; the `ip -batch` variants each build the same lab in their own way
LETTER = {"nsnet": "n", "seq": "s", "xargs": "p", "exec": "x"}
BATCH_VARIANTS = ("seq", "xargs", "exec")
FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
MAX_ROUTERS = 2000  # a /20 of /31 blocks holds 2048 links


@dataclass(frozen=True)
class Ring:
    prefix: str  # per run: "r" + 4 hex
    peer: str  # a key of LETTER
    r: int  # routers
    base4: IPv4Network  # the run's /16 in 10.0.0.0/8
    base6: IPv6Network  # the run's /48 in fd00::/8

    # names

    @property
    def tag(self) -> str:
        return self.prefix + LETTER[self.peer]

    @property
    def width(self) -> int:
        return max(4, len(str(self.r - 1)))

    def ns(self, i: int) -> str:
        return f"{self.tag}{i % self.r:0{self.width}d}"

    @property
    def names(self) -> list[str]:
        return [self.ns(i) for i in range(self.r)]

    @property
    def topology(self) -> str:
        return f"{self.prefix}-{self.peer}"

    # pools: IPv4 p2p 10.X.0.0/20, loopbacks 10.X.16.0/20; IPv6 <base6>:1::/64 and <base6>:2::/64

    @cached_property
    def pools(self) -> dict[str, dict[int, Network]]:
        v4 = list(self.base4.subnets(new_prefix=20))
        v6 = list(self.base6.subnets(new_prefix=64))
        return {"p2p": {4: v4[0], 6: v6[1]}, "loopback": {4: v4[1], 6: v6[2]}}

    def block(self, k: int, family: int) -> Network:
        """Link k's block of the p2p pool: the k-th /31 or /127."""
        pool = self.pools["p2p"][family]
        return ip_interface(f"{pool.network_address + 2 * (k % self.r)}/{pool.max_prefixlen - 1}").network

    def east(self, i: int, family: int) -> str:
        """Router i's east address (the lower one of link i), with its prefix."""
        b = self.block(i, family)
        return f"{b.network_address}/{b.prefixlen}"

    def west(self, i: int, family: int) -> str:
        """Router i's west address (the higher one of link i-1)."""
        b = self.block(i - 1, family)
        return f"{b.network_address + 1}/{b.prefixlen}"

    def loopback(self, i: int, family: int) -> str:
        pool = self.pools["loopback"][family]
        return f"{pool.network_address + 1 + i % self.r}/{pool.max_prefixlen}"

    def addresses(self, i: int) -> dict[str, set[str]]:
        return {dev: {f(i, fam) for fam in (4, 6)} for dev, f in (("lo", self.loopback), ("east", self.east), ("west", self.west))}

    # routes

    def gateway(self, i: int, side: str, family: int) -> str:
        """The next hop from router i towards `side`: the neighbour's end of the link between them."""
        return (self.west(i + 1, family) if side == "east" else self.east(i - 1, family)).split("/")[0]

    def routes(self, i: int, links: bool = True) -> Iterator[tuple[str, str, int]]:
        """(destination, side, family) of every route of router i, per family loopbacks first, in ring order."""
        r = self.r
        for family in (4, 6):
            for d in range(1, r):  # loopback of router i+d: east when it is at most half way round
                yield self.loopback(i + d, family), ("east" if d <= r // 2 else "west"), family
            if not links:
                continue
            ahead = (r - 1) // 2  # links i+1 .. i+ahead are nearer east (reached at their first router)
            for side, first, last in (("east", i + 1, i + ahead), ("west", i + ahead + 1, i + r - 2)):
                for lo, hi in _runs(first, last, r):
                    start, end = self.block(lo, family), self.block(hi, family)
                    for net in summarize_address_range(start.network_address, end.broadcast_address):
                        yield str(net), side, family

    @cached_property
    def route_counts(self) -> dict[str, int]:
        """Per family: loopback routes (R x (R-1)) and the summarised link routes, over all routers."""
        every = sum(1 for i in range(self.r) for _, _, fam in self.routes(i) if fam == 4)
        return {"loopback": self.r * (self.r - 1), "links": every - self.r * (self.r - 1)}

    def expected(self, i: int) -> dict[str, set]:
        """What the checks compare router i against."""
        routes = {(dst, self.gateway(i, side, fam), side) for dst, side, fam in self.routes(i)}
        return {"addresses": {(dev, a) for dev, addrs in self.addresses(i).items() for a in addrs}, "routes": routes}

    # nsnet

    def nsnet_yaml(self) -> str:
        """The topology file: pools, forwarding routers with pool loopbacks, the ring's links, routes via link ends."""
        lines = [
            f"name: {self.topology}",
            "addressing:",
            f"  p2p: {{ipv4: {self.pools['p2p'][4]}, prefix: 31, ipv6: \"{self.pools['p2p'][6]}\", prefix6: 127}}",
            f"  loopback: {{ipv4: {self.pools['loopback'][4]}, ipv6: \"{self.pools['loopback'][6]}\"}}",
            "namespaces:",
        ]
        for i in range(self.r):
            lines += [f"  {self.ns(i)}:", "    forwarding: true", "    loopback: auto", "    routes:"]
            via = {"east": f"{self.ns(i + 1)}:west", "west": f"{self.ns(i - 1)}:east"}
            lines += [f'      - {{to: "{dst}", via: "{via[side]}"}}' for dst, side, _ in self.routes(i)]
        lines.append("links:")
        lines += [f'  - endpoints: ["{self.ns(k)}:east", "{self.ns(k + 1)}:west"]' for k in range(self.r)]
        return "\n".join(lines) + "\n"

    # ip -batch

    def batch_host(self) -> list[str]:
        """Namespaces, then each link's veth pair with both ends made in their namespaces."""
        lines = [f"netns add {ns}" for ns in self.names]
        lines += [f"link add east netns {self.ns(k)} type veth peer name west netns {self.ns(k + 1)}" for k in range(self.r)]
        return lines

    def batch_namespace(self, i: int) -> list[str]:
        """Inside router i: links up (first: a gateway must be on an up link), addresses, routes."""
        # as nsnet: no autoconfiguration, and a link-local address set without DAD (a tentative one
        # keeps a router from forwarding IPv6 over the link for 1-2 s; docs/design.md, "IPv6")
        lines = ["link set lo up"] + [f"link set {dev} addrgenmode none" for dev in ("east", "west")]
        lines += [f"addr add fe80::{i + 1:x}:{side}/64 dev {dev} nodad" for side, dev in ((1, "east"), (2, "west"))]
        lines += ["link set east up", "link set west up"]
        for dev, addrs in self.addresses(i).items():
            for a in sorted(addrs):
                lines.append(f"addr add {a} dev {dev}" + (" nodad" if ":" in a else ""))
        lines += [f"route add {dst} via {self.gateway(i, side, fam)}" for dst, side, fam in self.routes(i)]
        return lines

    def sysctl_argv(self, i: int) -> str:
        return f"netns exec {self.ns(i)} sysctl -qw " + " ".join(f"{k}=1" for k in FORWARDING)

    def write_batch(self, directory: str) -> dict[str, str]:
        """One script per variant (run with bash), and the teardown; returns {name: script path}.

        - seq: one `ip -batch` for the host's part, then per router `ip -n NS -batch` and `ip netns exec NS sysctl`;
        - xargs: the same per-router commands, run by `xargs -P <CPUs>`;
        - exec: one `ip -batch` for everything, the per-router parts as `netns exec` lines (each forks).
        """
        def path(name: str) -> str:
            return os.path.join(directory, name)

        _write(path("host.batch"), self.batch_host())
        per_router = []
        for i in range(self.r):
            _write(path(f"{self.ns(i)}.batch"), self.batch_namespace(i))
            per_router.append((f"-n {self.ns(i)} -batch {path(f'{self.ns(i)}.batch')}", self.sysctl_argv(i)))
        scripts = {
            "seq": [f"ip -batch {path('host.batch')}"] + [f"ip {line}" for pair in per_router for line in pair],
            "xargs": [f"ip -batch {path('host.batch')}", f"xargs -P \"$(nproc)\" -L 1 ip < {path('per-router.args')}"],
            "exec": [f"ip -batch {path('everything.batch')}"],
        }
        _write(path("per-router.args"), [line for pair in per_router for line in pair])
        inside = [f"netns exec {self.ns(i)} ip -batch {path(f'{self.ns(i)}.batch')}\n{self.sysctl_argv(i)}" for i in range(self.r)]
        _write(path("everything.batch"), self.batch_host() + inside)
        _write(path("teardown.batch"), [f"netns del {ns}" for ns in self.names])
        scripts["teardown"] = [f"ip -batch {path('teardown.batch')}"]
        out = {}
        for name, cmds in scripts.items():
            out[name] = path(f"{name}.sh")
            _write(out[name], ["#!/bin/bash", "set -e", *cmds])
        return out


def _runs(first: int, last: int, r: int) -> list[tuple[int, int]]:
    """Indices first..last (mod r) as at most two ascending runs of 0..r-1; none when last < first."""
    if last < first:
        return []
    lo, hi = first % r, last % r
    return [(lo, hi)] if lo <= hi else [(lo, r - 1), (0, hi)]


def _write(path: str, lines: list[str]) -> None:
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
