"""Fixtures for the local stack's own tests: the local runner on a test app (a free port, the session's
Azurite, timings shortened through RunnerConfig), and the simulator reset and seeded with a test tenant
before every test (servers: tests/conftest.py)."""


from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import requests

from devstack.azurite import Azurite, free_port
from devstack.certs import CertPaths
from devstack.m365.server import Simulator
from devstack.runner.config import RunnerConfig
from devstack.runner.host import Runner
from tests.devstack.webhook import Webhook
from tests.devstack.world import World, build_world

APPS = Path(__file__).parent / "apps"


def app_module(name: str) -> ModuleType:
    """The test app module as the runner imports it (top-level name, from APPS)."""
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))
    return importlib.import_module(name)


async def until(condition: Callable[[], object], seconds: float, what: str) -> object:
    """Poll ``condition`` (sync or async) every 50 ms until it is truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def start_runner(azurite: Azurite):
    started: list[Runner] = []

    async def start(app: str, **overrides) -> Runner:
        config = RunnerConfig(**{"port": free_port(), "host_id": f"test-{uuid.uuid4().hex[:8]}",
                                 "shutdown_grace": 10.0, **overrides})
        runner = Runner(app, app_dir=APPS, config=config, storage=azurite.connection_string)
        started.append(runner)
        return await runner.start()

    yield start
    for runner in started:
        await runner.stop()


@pytest.fixture
def world(simulator: Simulator, certs: CertPaths) -> Iterator[World]:
    simulator.state.reset()
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify= (set machine-wide on the CI machines)
    session.verify = str(certs.ca_pem)
    with session:
        yield build_world(simulator, session)


@pytest.fixture
def hook(certs: CertPaths) -> Iterator[Webhook]:
    """A test webhook over https (the local CA), answering the validation handshake."""
    server = Webhook(certs).start()
    try:
        yield server
    finally:
        server.stop()
