"""Session-wide fixtures. Azurite is started once per test session on free ports; a machine
without it fails the tests that need it (never skips them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.azurite import Azurite


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
