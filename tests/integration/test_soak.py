"""Soak: a seeded random walk of 40 edits and hand-made drift against the real
kernel, applying after each; the live state must match the topology every
time, and destroy must leak nothing."""

from __future__ import annotations

import os
import random
import secrets
import subprocess

import pytest

pytestmark = pytest.mark.netns

STEPS = int(os.environ.get("NSNET_SOAK_STEPS", "40"))
SEED = int(os.environ.get("NSNET_SOAK_SEED", "2026"))


class Walk:
    """The topology document and the random edits made to it."""

    def __init__(self, lab, rng: random.Random):
        self.lab, self.rng = lab, rng
        self.bridge = f"{lab.prefix}br"
        self.subnet = lab.subnet
        self.port_base = 20000 + secrets.randbelow(20000)
        self.counter = 0
        self.doc = {"name": lab.prefix, "bridges": {self.bridge: {"subnet": str(self.subnet)}}, "namespaces": {}, "port_forwards": []}
        self.path = lab.dir / "soak.yaml"
        for _ in range(3):
            self.add_namespace()

    @property
    def namespaces(self) -> list[str]:
        return sorted(self.doc["namespaces"])

    def write(self) -> None:
        self.lab.write(self.doc, self.path)

    # edits to the file

    def add_namespace(self) -> str:
        self.counter += 1
        name = f"{self.lab.prefix}-n{self.counter}"
        spec = {"bridge": self.bridge}
        if self.rng.random() < 0.3:
            spec["address"] = str(self.subnet[100 + self.counter])
        self.doc["namespaces"][name] = {"interfaces": {"eth0": spec}}
        return f"add {name}"

    def remove_namespace(self) -> str:
        if len(self.namespaces) <= 1:
            return self.add_namespace()
        name = self.rng.choice(self.namespaces)
        del self.doc["namespaces"][name]
        self.doc["port_forwards"] = [f for f in self.doc["port_forwards"] if f["namespace"] != name]
        return f"remove {name}"

    def pin_address(self) -> str:
        name = self.rng.choice(self.namespaces)
        address = str(self.subnet[200 + self.rng.randrange(50)])
        if any(ns["interfaces"]["eth0"].get("address") == address for ns in self.doc["namespaces"].values()):
            return "pin skipped (taken)"
        self.doc["namespaces"][name]["interfaces"]["eth0"]["address"] = address
        return f"pin {name} to {address}"

    def add_forward(self) -> str:
        port = self.port_base + self.rng.randrange(500)
        if any(f["host_port"] == port for f in self.doc["port_forwards"]):
            return "forward skipped (taken)"
        forward = {"host_port": port, "namespace": self.rng.choice(self.namespaces), "port": 80, "protocol": self.rng.choice(["tcp", "udp"])}
        self.doc["port_forwards"].append(forward)
        return f"forward {forward}"

    def remove_forward(self) -> str:
        if not self.doc["port_forwards"]:
            return self.add_forward()
        self.doc["port_forwards"].pop(self.rng.randrange(len(self.doc["port_forwards"])))
        return "remove a forward"

    def toggle_masquerade(self) -> str:
        spec = self.doc["bridges"][self.bridge]
        spec["masquerade"] = not spec.get("masquerade", False)
        return f"masquerade {spec['masquerade']}"

    # drift made by hand

    def drift(self) -> str:
        ns = self.rng.choice(self.namespaces)
        from netplan_lite.model.loader import host_veth_name

        veth = host_veth_name(self.lab.prefix, ns, "eth0")
        choices = {
            "veth deleted": ["ip", "link", "del", veth],
            "interface down": ["ip", "-n", ns, "link", "set", "eth0", "down"],
            "host end down": ["ip", "link", "set", veth, "down"],
            "foreign address": ["ip", "-n", ns, "addr", "add", str(self.subnet[250]) + "/24", "dev", "eth0"],
            "routes flushed": ["ip", "-n", ns, "route", "flush", "proto", "225"],
            "nft table deleted": ["nft", "delete", "table", "inet", f"nsnet-{self.lab.prefix}"],
        }
        what = self.rng.choice(sorted(choices))
        subprocess.run(choices[what], capture_output=True)  # may find nothing to break: fine
        return f"drift: {what} ({ns})"


def test_random_walk_always_converges_and_destroy_leaks_nothing(lab):
    rng = random.Random(SEED)
    walk = Walk(lab, rng)
    edits = [
        walk.add_namespace,
        walk.remove_namespace,
        walk.pin_address,
        walk.add_forward,
        walk.remove_forward,
        walk.toggle_masquerade,
        walk.drift,
        walk.drift,
    ]
    history = []
    for step in range(STEPS):
        history.append(rng.choice(edits)())
        walk.write()
        rc, out, err = lab.nsnet("apply", walk.path)
        assert rc == 0, f"step {step} ({history[-1]}), seed {SEED}: {out}{err}"
        rc, out, err = lab.nsnet("plan", "--detailed-exitcode", walk.path)
        assert rc == 0, f"step {step} ({history[-1]}), seed {SEED}: not converged:\n{out}{err}"
        mine = {n for n in lab.netns_names() if n.startswith(lab.prefix)}
        assert mine == set(walk.namespaces), f"step {step}: {mine} != {walk.namespaces}"
    rc, out, err = lab.nsnet("destroy", walk.path)
    assert rc == 0, out + err
    assert lab.wait_until(lambda: not {n for n in lab.netns_names() if n.startswith(lab.prefix)})
    assert not lab.links_with_alias(f"nsnet:{lab.prefix}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"nsnet-{lab.prefix}" not in tables
    print(f"soak: {STEPS} steps, seed {SEED}, 0 leaked; edits: {history}")
