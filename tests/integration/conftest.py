"""The app's environment for in-process trigger tests: the sample settings, storage on the test
session's Azurite, and fresh process-wide services for each test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shared.services as services_module
from shared.config import get_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


def reset_process_state() -> None:
    get_settings.cache_clear()
    services_module._services = None
    services_module._auth = None


@pytest.fixture
async def app_env(monkeypatch, storage_connection_string):
    """Set the sample settings (tests may change them before first use) and clean up after."""
    for name, value in SAMPLE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection_string)
    reset_process_state()
    yield monkeypatch
    if services_module._services is not None:
        await services_module._services.close()
    reset_process_state()
