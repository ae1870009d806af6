"""Store fixtures for the contract suites: every suite runs once per store version."""

from __future__ import annotations

import uuid

import pytest

from shared.config import StorageSettings
from shared.store.factory import build_table_store, build_work_queue
from shared.store.memory import InMemoryTableStore, InMemoryWorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table_name() -> str:
    return "t" + uuid.uuid4().hex[:16]


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
async def table_store(request):
    if request.param == "memory":
        yield InMemoryTableStore()
        return
    conn = request.getfixturevalue("storage_connection_string")
    store = build_table_store(StorageSettings(connection_string=conn))
    yield store
    await store.close()


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
async def work_queue(request):
    """(queue, advance): advance(seconds) moves time on for delayed messages."""
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield InMemoryWorkQueue(clock), advance
        return
    import asyncio

    conn = request.getfixturevalue("storage_connection_string")
    queue = build_work_queue(StorageSettings(connection_string=conn))

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    yield queue, sleep
    await queue.close()
