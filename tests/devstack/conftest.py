"""The simulator and the Key Vault dev server, started once per session on free ports in this process
(each in its own thread), and reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devstack.certs import CertPaths, ensure_certs
from devstack.keyvault import KeyVaultServer, Vault
from devstack.m365.server import Simulator
from tests.devstack.world import World, build_world


@pytest.fixture(scope="session")
def certs() -> CertPaths:
    return ensure_certs()


@pytest.fixture(scope="session")
def simulator(certs: CertPaths) -> Iterator[Simulator]:
    sim = Simulator(port=0, certs=certs).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def world(simulator: Simulator, certs: CertPaths) -> Iterator[World]:
    simulator.state.reset()
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify= (platform notes §0)
    session.verify = str(certs.ca_pem)
    with session:
        yield build_world(simulator, session)


@pytest.fixture(scope="session")
def keyvault_server(certs: CertPaths) -> Iterator[KeyVaultServer]:
    server = KeyVaultServer(Vault(tenant_id="5e3f1d2c-0000-4000-8000-00000000de30"), port=0, certs=certs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vault(keyvault_server: KeyVaultServer) -> KeyVaultServer:
    with keyvault_server.vault.lock:
        keyvault_server.vault.secrets.clear()
        keyvault_server.vault.clock.offset = 0.0
    return keyvault_server
