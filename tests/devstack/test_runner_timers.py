"""Timer triggers through the runner on Azurite: the schedule, the singleton lock between two
runners, the schedule monitor's past-due detection and runOnStartup."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob.aio import BlobServiceClient

from devstack.azurite import Azurite
from tests.devstack.conftest import app_module, until

pytestmark = pytest.mark.azurite

FIRED = app_module("timer_app").FIRED


@pytest.fixture(autouse=True)
def every_second(monkeypatch):
    monkeypatch.setenv("TICK_SCHEDULE", "* * * * * *")
    FIRED.clear()


def ticks() -> list[dict[str, Any]]:
    return [f for f in FIRED if f["fn"] == "tick"]


async def test_timer_fires_on_schedule(start_runner):
    await start_runner("timer_app:app", timer_lock_retry=0.2)
    await until(lambda: len(ticks()) >= 3, 10, "three ticks")
    occurrences = [datetime.fromisoformat(t["status"]["Next"]) for t in ticks()]
    assert all(o.microsecond == 0 for o in occurrences)  # whole seconds, as the schedule says
    assert [b - a for a, b in itertools.pairwise(occurrences)] == [timedelta(seconds=1)] * (len(occurrences) - 1)
    assert not any(t["past_due"] for t in ticks())
    assert [f for f in FIRED if f["fn"] == "yearly"] == []  # no status yet and not runOnStartup: waits


async def test_two_runners_never_fire_the_same_occurrence(start_runner):
    first = await start_runner("timer_app:app", host_id="shared-host", timer_lock_retry=0.2)
    await start_runner("timer_app:app", host_id="shared-host", timer_lock_retry=0.2)
    await asyncio.sleep(3.2)
    await first.stop()           # releases the lock: the other runner takes over
    before_takeover = len(ticks())
    await asyncio.sleep(2.5)
    occurrences = [t["status"]["Next"] for t in ticks()]
    assert before_takeover >= 2
    assert len(occurrences) >= before_takeover + 2
    assert len(set(occurrences)) == len(occurrences), occurrences


async def write_status(azurite: Azurite, host_id: str, function: str, status: dict[str, str]) -> None:
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client("azure-webjobs-hosts")
        if not await container.exists():
            await container.create_container()
        blob = container.get_blob_client(f"timers/{host_id}/Host.Functions.{function}/status")
        await blob.upload_blob(json.dumps(status), overwrite=True)


async def read_status(azurite: Azurite, host_id: str, function: str) -> dict[str, str]:
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        blob = service.get_blob_client("azure-webjobs-hosts", f"timers/{host_id}/Host.Functions.{function}/status")
        status: dict[str, str] = json.loads(await (await blob.download_blob()).readall())
        return status


async def test_missed_occurrence_fires_at_start_as_past_due(start_runner, azurite):
    # The monitor says the yearly timer should have run on 2026-01-01 and no runner did.
    missed = {"Last": "2025-01-01T00:00:00+00:00", "Next": "2026-01-01T00:00:00+00:00",
              "LastUpdated": "2025-01-01T00:00:00+00:00"}
    await write_status(azurite, "past-due-host", "yearly", missed)
    await start_runner("timer_app:app", host_id="past-due-host", timer_lock_retry=0.2)
    await until(lambda: [f for f in FIRED if f["fn"] == "yearly"], 10, "the past-due firing")
    yearly = [f for f in FIRED if f["fn"] == "yearly"]
    assert len(yearly) == 1
    assert yearly[0]["past_due"] is True
    assert yearly[0]["status"] == missed
    await until(lambda: _next_year(azurite), 5, "the updated status")


async def _next_year(azurite: Azurite) -> bool:
    status = await read_status(azurite, "past-due-host", "yearly")
    year = datetime.now(UTC).year + 1
    return status["Next"] == f"{year}-01-01T00:00:00+00:00"


async def test_status_is_kept_for_the_next_start(start_runner, azurite):
    runner = await start_runner("timer_app:app", host_id="status-host", timer_lock_retry=0.2)
    await until(lambda: ticks(), 5, "a tick")
    await runner.stop()
    status = await read_status(azurite, "status-host", "tick")
    fired = datetime.fromisoformat(ticks()[-1]["status"]["Next"])  # the occurrence the last tick was for
    # Last is when it ran (the host records the invocation time), Next the following occurrence.
    assert fired <= datetime.fromisoformat(status["Last"]) < fired + timedelta(seconds=1)
    assert datetime.fromisoformat(status["Next"]) == fired + timedelta(seconds=1)


async def test_run_on_startup_fires_once_at_start_without_monitor_status(start_runner):
    await start_runner("timer_app:app", timer_lock_retry=0.2)
    await until(lambda: [f for f in FIRED if f["fn"] == "on_startup"], 5, "the startup firing")
    await asyncio.sleep(1.2)
    startup = [f for f in FIRED if f["fn"] == "on_startup"]
    assert startup == [{"fn": "on_startup", "past_due": False, "status": {}}]
