"""A runner process killed in the middle of a first sync (SIGKILL: no exception, no cleanup) and a new one
taking over: the round resumes from the last checkpoint, and the store ends equal to what Graph's calendarView
holds with each event created once in a gap-free feed ("Use delta query to track changes in Microsoft Graph
data", https://learn.microsoft.com/en-us/graph/delta-query-overview)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from devstack.azurite import free_port
from shared.config import StorageSettings
from shared.store.factory import build_table_store
from shared.store.ports import MAILBOX
from tests.devstack.conftest import until
from tests.e2e.conftest import ROOT
from tests.e2e.test_connect import ADELE, connect

EVENTS = 40
WALL = "%Y-%m-%dT%H:%M:%S"


def start_runner(storage: str) -> subprocess.Popen[bytes]:
    """The product's app in a runner process of its own, with short host timings so a message whose runner
    died comes back within seconds (the host's 10-minute invisibility is the same mechanism)."""
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobs.event_writer.Disabled"}
    port = free_port()
    env.update({"AzureWebJobsStorage": storage, "DEVSTACK_HOST_ID": f"kill-{port}", "DEVSTACK_QUEUE_INVISIBILITY": "3",
                "DELTA_PAGE_SIZE": "4", "LEASE_SECONDS": "4", "SLICE_MAX_PAGES": "100",
                # Other functions of the app stay off: only the event writer is under test.
                **{f"AzureWebJobs.{name}.Disabled": "true" for name in ("subscription_worker", "subscription_renewer",
                                                                         "delta_reconciler")}})
    return subprocess.Popen([sys.executable, "-m", "devstack", "runner", "--app", "function_app:app",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.disabled_functions("event_writer", "subscription_worker")
async def test_a_killed_runner_resumes_the_round_without_duplicates_or_losses(stack, azurite, simulator):
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for n in range(EVENTS):
        start = today + timedelta(days=1 + n % 15, hours=n % 9)
        stack.sim_session.post(f"{stack.sim_url}/_sim/users/{ADELE}/events", timeout=10, json={
            "subject": f"Event {n}", "start": {"dateTime": start.strftime(WALL), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(minutes=30)).strftime(WALL), "timeZone": "UTC"}}
        ).raise_for_status()
    # Each delta page takes 0.4 s, so the round is still running when the runner is killed.
    stack.control("faults", {"path": f"/v1.0/users/{ADELE}/calendarView/delta*", "status": "delay",
                             "seconds": 0.4, "count": 1000})
    account, confirmed = await connect(stack)  # queues the first sync
    assert confirmed.status_code == 200
    tables = build_table_store(StorageSettings(connection_string=azurite.connection_string))

    async def feed() -> list:
        return [r async for r in tables.query(MAILBOX, account, prefix="feed:")]

    try:
        first = start_runner(azurite.connection_string)
        try:
            await until(lambda: _between(feed, 8, EVENTS - 8), 60, "the first runner to be mid-round")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = len(await feed())
        assert 0 < killed_at < EVENTS
        second = start_runner(azurite.connection_string)
        try:
            await until(lambda: _between(feed, EVENTS, EVENTS), 90, "the second runner to finish the round")
            await asyncio.sleep(1)  # anything more it would write (a duplicate), it writes now
            rows = await feed()
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(30)
        assert [int(r.row.split(":")[1]) for r in rows] == list(range(1, EVENTS + 1))
        created = Counter(r.get("event") for r in rows if r.get("kind") == "created")
        assert len(created) == EVENTS
        assert set(created.values()) == {1}
        stored = [r async for r in tables.query(MAILBOX, account, prefix="ev:")]
        assert {r.get("subject") for r in stored} == {f"Event {n}" for n in range(EVENTS)}
    finally:
        await tables.close()


async def _between(feed, low: int, high: int) -> bool:
    return low <= len(await feed()) <= high
