"""Fixtures for CNI tests (the machinery is in hoststate.py): a random per-test `prefix`, `namespaces` made
for the test (a runtime's job) and deleted afterwards even when it fails, `netns` (one of them), `cni_network`
(names, free subnets and an IPAM state dir in the test's temporary directory), and `host`, which puts back
what the test's plugins changed on the host (wrap calls of plugins that change host switches in
`host.watch()`) and fails the test if anything of it is left."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import NsnetNetwork, install_nsnet, nsnet_network
from hoststate import CniNetwork, HostState, Namespaces, free_subnet, random_ula


@pytest.fixture
def prefix() -> str:
    return "c" + secrets.token_hex(3)[:5]


@pytest.fixture
def host(prefix: str) -> Iterator[HostState]:
    state = HostState(prefix)
    try:
        yield state
    finally:
        state.restore()
        left = state.leftovers()
        if left:
            pytest.fail("not restored: " + "; ".join(left))


@pytest.fixture
def namespaces(host: HostState, prefix: str) -> Iterator[Namespaces]:
    """Depends on `host` so that the namespaces go first and `host` checks the links after them."""
    made = Namespaces(prefix)
    try:
        yield made
    finally:
        left = made.remove()
        if left:
            pytest.fail(f"left behind: {', '.join(left)}")


@pytest.fixture
def netns(namespaces: Namespaces) -> str:
    return namespaces.make()


@pytest.fixture
def cni_network(prefix: str, tmp_path: Path) -> CniNetwork:
    state = tmp_path / "cni-state"
    state.mkdir()
    return CniNetwork(f"{prefix}net", f"{prefix}br", free_subnet(), random_ula(), state)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nsnet's plugin, installed as `nsnet cni install` does."""
    return install_nsnet(tmp_path_factory.mktemp("cni-bin"))


@pytest.fixture
def nsnet(plugin: Path, cni_network: CniNetwork, host: HostState, namespaces: Namespaces) -> Iterator[NsnetNetwork]:
    """A network of nsnet's plugin; at its end every attachment is DELed and nothing of it may be left."""
    with nsnet_network(plugin, cni_network, host) as network:
        yield network
