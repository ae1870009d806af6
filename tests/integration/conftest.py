"""The app's environment for in-process trigger tests: the sample settings, storage on the test
session's Azurite, and fresh process-wide services for each test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shared.wiring as services_module
from shared.config import QUEUES, StorageSettings, get_settings
from shared.store.factory import QUEUE_API_VERSION, build_table_store
from shared.store.ports import TABLES, TableOp

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


async def close_process_state() -> None:
    """Close what the app built in this process (its clients hold connections), then forget it."""
    await services_module.close_services()
    reset_process_state()


def reset_process_state() -> None:
    get_settings.cache_clear()
    services_module._services = None
    services_module._queue = None
    services_module._auth = None


async def wipe_product_storage(connection_string: str) -> None:
    """Empty the product's tables and queues on the shared Azurite, so each test starts clean."""
    store = build_table_store(StorageSettings(connection_string=connection_string))
    try:
        for table in TABLES:
            rows = [r async for r in store.scan(table)]
            await store.bulk_write(table, [TableOp.delete(r.partition, r.row) for r in rows])
    finally:
        await store.close()
    await clear_product_queues(connection_string)


async def clear_product_queues(connection_string: str) -> None:
    """Empty the product's queues and their poison twins on the shared Azurite."""
    from azure.storage.queue.aio import QueueServiceClient

    async with QueueServiceClient.from_connection_string(connection_string, api_version=QUEUE_API_VERSION) as service:
        async for queue in service.list_queues():
            if queue.name.split("-poison")[0] in QUEUES:
                await service.get_queue_client(queue.name).clear_messages()


@pytest.fixture
async def app_env(monkeypatch, storage_connection_string):
    """Set the sample settings (tests may change them before first use) and clean up after."""
    for name, value in SAMPLE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection_string)
    reset_process_state()
    await wipe_product_storage(storage_connection_string)
    yield monkeypatch
    await close_process_state()
