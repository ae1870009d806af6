"""Session-wide fixtures. Azurite is started once per test session on free ports; a machine
without it fails the tests that need it (never skips them). The Microsoft 365 simulator and the Key
Vault dev server run in this process (each in its own thread) on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.azurite import Azurite
from devstack.certs import CertPaths, ensure_certs
from devstack.keyvault import KeyVaultServer, Vault
from devstack.m365.server import Simulator


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


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


@pytest.fixture(scope="session")
def keyvault_server(certs: CertPaths) -> Iterator[KeyVaultServer]:
    server = KeyVaultServer(Vault(tenant_id="5e3f1d2c-0000-4000-8000-00000000de30"), port=0, certs=certs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vault(keyvault_server: KeyVaultServer) -> KeyVaultServer:
    """The Key Vault dev server, emptied and with its clock and switches back to defaults."""
    keyvault_server.vault.reset()
    return keyvault_server
