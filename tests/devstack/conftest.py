"""The simulator reset and seeded with a test tenant before every test (servers: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devstack.certs import CertPaths
from devstack.m365.server import Simulator
from tests.devstack.world import World, build_world


@pytest.fixture
def world(simulator: Simulator, certs: CertPaths) -> Iterator[World]:
    simulator.state.reset()
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify= (platform notes §0)
    session.verify = str(certs.ca_pem)
    with session:
        yield build_world(simulator, session)
