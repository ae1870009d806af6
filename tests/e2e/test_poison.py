"""A message that fails five times, through the local runner on Azurite (real azure-storage-queue and
azure-data-tables) against the Microsoft 365 simulator: Graph answers the first sync's delta call with 500
every time, so after host.json's maxDequeueCount (5) deliveries the host moves the message to
``sync-poison``; the poison handler keeps it in the poison table with the journal's five attempts and
degrades the account (``poison:sync``, which pauses inbound sync). Once the fault is cleared, an operator's
replay brings the account back to active and the sync runs.

Microsoft's pages: "Azure Queue storage trigger for Azure Functions", poison messages
(https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages),
and "Microsoft Graph error responses and resource types" (https://learn.microsoft.com/en-us/graph/errors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from shared.config import StorageSettings
from shared.store.factory import build_table_store
from shared.store.ports import MAILBOX
from shared.wiring import get_work_queue
from tests.devstack.conftest import until
from tests.e2e.test_connect import ADELE, account_status, connect

WALL = "%Y-%m-%dT%H:%M:%S"


@pytest.mark.disabled_functions("subscription_worker")  # only the sync queue is under test
@pytest.mark.runner_config(queue_visibility_timeout=0.5, queue_max_polling_interval=0.5)
async def test_a_sync_that_fails_five_times_is_held_degrades_the_account_and_replays_once_fixed(stack, azurite):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    for n in range(2):
        stack.sim_session.post(f"{stack.sim_url}/_sim/users/{ADELE}/events", timeout=10, json={
            "subject": f"Poison {n}", "start": {"dateTime": (start + timedelta(hours=n)).strftime(WALL),
                                                "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(hours=n, minutes=30)).strftime(WALL), "timeZone": "UTC"}},
        ).raise_for_status()
    stack.control("faults", {"path": f"/v1.0/users/{ADELE}/calendarView/delta*", "status": 500, "count": 1000})
    account, confirmed = await connect(stack)  # queues the first (full) sync
    assert confirmed.status_code == 200, confirmed.text

    async def held() -> list[dict]:
        response = await stack.http.get(f"{stack.base}/api/poison", headers=stack.keyed(),
                                        params={"queue": "sync", "account": account})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def held_and_marked() -> list[dict]:
        items = await held()  # the row is written first, then the account, then the row's marks
        return items if items and items[0]["degraded"] else []

    items = cast(list[dict], await until(held_and_marked, 90, "the sync message in the poison table, its account "
                                                              "degraded"))
    (item,) = items
    assert item["state"] == "held"
    assert (item["kind"], item["account"], item["reason"], item["degraded"]) == ("sync", account, "poison:sync", True)
    assert [a["dequeue_count"] for a in item["attempts"]] == [5, 4, 3, 2, 1]
    assert {a["http_status"] for a in item["attempts"]} == {500}
    assert item["last_error"]["error_class"] == "TransientGraphError"
    assert item["poisoned_at"].endswith("Z")
    status = await account_status(stack, account)
    assert (status["status"], status["reason"]) == ("degraded", "poison:sync")
    await until(lambda: _empty(get_work_queue(), "sync-poison"), 20, "the handler to complete the poison message")

    tables = build_table_store(StorageSettings(connection_string=azurite.connection_string))
    try:
        assert [r async for r in tables.query(MAILBOX, account, prefix="ev:")] == []
        stack.sim_session.delete(f"{stack.sim_url}/_sim/faults", timeout=10).raise_for_status()
        replayed = await stack.http.post(f"{stack.base}/api/poison/sync/{item['id']}/replay", headers=stack.keyed())
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["state"] == "replayed"

        async def synced() -> list:
            return [r async for r in tables.query(MAILBOX, account, prefix="ev:")]

        events = cast(list, await until(synced, 60, "the replayed sync to store the mailbox's events"))
        assert {r.get("subject") for r in events} == {"Poison 0", "Poison 1"}
    finally:
        await tables.close()
    status = await account_status(stack, account)
    assert (status["status"], status["reason"]) == ("active", None)
    assert await held() == []
    again = await stack.http.post(f"{stack.base}/api/poison/sync/{item['id']}/replay", headers=stack.keyed())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "poison_already_replayed"


async def _empty(queue, name: str) -> bool:
    return await queue.peek(name) == []
