"""The whole stack for end-to-end tests: the product's function_app served by the local runner over
HTTP on a free port, against the session's Azurite, Microsoft 365 simulator and Key Vault dev server.
The simulator is reset and seeded with the demo tenant, its app registered for this runner's callback."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests

from devstack.azurite import free_port
from devstack.m365.control import demo_spec, seed
from devstack.runner.config import RunnerConfig
from devstack.runner.host import Runner
from tests.integration.conftest import close_process_state, reset_process_state, wipe_product_storage

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


@dataclass
class Stack:
    runner: Runner
    http: httpx.AsyncClient           # the SaaS backend and the browser, talking to the runner
    sim_session: requests.Session     # the browser and the test, talking to the simulator
    sim_url: str
    function_key: str
    demo_port: int                    # a free port allowed as a return URL, for the demo SaaS page

    @property
    def base(self) -> str:
        return self.runner.base_url

    @property
    def return_url(self) -> str:
        return f"{self.base}/api/demo/connected"

    def control(self, path: str, body: dict | None = None) -> dict:
        response = self.sim_session.post(f"{self.sim_url}/_sim/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else {}

    def keyed(self) -> dict[str, str]:
        return {"x-functions-key": self.function_key}


@pytest.fixture
async def stack(request, monkeypatch, azurite, simulator, keyvault_server, certs):
    port, demo_port = free_port(), free_port()
    # A test that inspects what an HTTP function queued turns the queue's consumer off, as the host's
    # AzureWebJobs.<name>.Disabled setting does; otherwise the consumer may take the message first.
    marker = request.node.get_closest_marker("disabled_functions")
    for name in marker.args if marker else ():
        monkeypatch.setenv(f"AzureWebJobs.{name}.Disabled", "true")
    base = f"http://127.0.0.1:{port}"
    for name, value in SAMPLE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PUBLIC_BASE_URL", base)
    monkeypatch.setenv("ALLOWED_RETURN_URLS", f"{base}/api/demo/connected,http://127.0.0.1:{demo_port}/connected")
    monkeypatch.setenv("AUTHORITY_HOST", simulator.url)
    monkeypatch.setenv("GRAPH_BASE_URL", simulator.graph_url)
    monkeypatch.setenv("KEY_VAULT_URL", keyvault_server.url)
    monkeypatch.setenv("LOCAL_CA_BUNDLE", str(certs.ca_pem))
    reset_process_state()
    await wipe_product_storage(azurite.connection_string)
    simulator.state.reset()
    spec = demo_spec(SAMPLE["CLIENT_ID"], SAMPLE["CLIENT_SECRET"])
    spec["apps"][0]["redirectUris"] = [f"{base}/api/oauth/callback"]
    seed(simulator.state, spec)
    # A test may shorten the host's timings (e.g. the retry delay after a failure) with runner_config(...).
    timings = request.node.get_closest_marker("runner_config")
    config = RunnerConfig(port=port, host_id=f"e2e-{uuid.uuid4().hex[:8]}", shutdown_grace=5.0,
                          **(timings.kwargs if timings else {}))
    runner = await Runner("function_app:app", config=config, storage=azurite.connection_string).start()
    sim_session = requests.Session()
    sim_session.trust_env = False
    sim_session.verify = str(certs.ca_pem)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            yield Stack(runner, http, sim_session, simulator.url, config.function_key, demo_port)
    finally:
        await runner.stop()
        sim_session.close()
        await close_process_state()
