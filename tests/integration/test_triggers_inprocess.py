"""Triggers called in-process through the azure-functions library's own request objects."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from shared.config import get_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


@pytest.fixture
def env(monkeypatch):
    for name in SAMPLE:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def health_request() -> func.HttpRequest:
    return func.HttpRequest(method="GET", url="http://localhost:7071/api/health", headers={}, params={},
                            route_params={}, body=b"")


async def test_health_is_ok_with_valid_settings(env):
    for name, value in SAMPLE.items():
        env.setenv(name, value)
    response = await function_app.health_check(health_request())
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body())["status"] == "ok"


async def test_health_names_missing_settings_without_values(env):
    for name, value in SAMPLE.items():
        if name not in ("CLIENT_ID", "KEY_VAULT_URL"):
            env.setenv(name, value)
    response = await function_app.health_check(health_request())
    assert response.status_code == 503
    body = json.loads(response.get_body())
    assert body["status"] == "misconfigured"
    assert body["problems"] == ["KEY_VAULT_URL: missing", "CLIENT_ID: missing"]
    assert SAMPLE["CLIENT_SECRET"] not in response.get_body().decode()
