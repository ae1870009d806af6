"""Throttling through the runner never poisons a message (review finding 6): Graph answers the
subscription create with 429 and Retry-After more times than the host's maxDequeueCount (5); each time the
worker re-sends the message with that delay and completes the current copy, so the create lands in the end
and nothing reaches subscriptions-poison.

Microsoft's pages: "Microsoft Graph throttling guidance" (Retry-After,
https://learn.microsoft.com/en-us/graph/throttling) and "Azure Queue storage trigger for Azure Functions"
(maxDequeueCount and the poison queue,
https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue-trigger)."""

from __future__ import annotations

from shared.config import get_settings
from shared.store.ports import POISON
from shared.wiring import get_services, get_work_queue
from tests.devstack.conftest import until
from tests.e2e.test_connect import connect
from tests.e2e.test_subscriptions import sim_patch_switches, sim_subscriptions

THROTTLES = 6  # one more than host.json's maxDequeueCount


async def test_a_throttled_subscribe_is_resent_not_retried_into_the_poison_queue(stack, monkeypatch):
    monkeypatch.setenv("THROTTLE_INLINE_MAX_SECONDS", "0")  # every Retry-After ends the invocation
    get_settings.cache_clear()
    sim_patch_switches(stack, allow_http_loopback_urls=True)
    stack.control("faults", {"path": "/v1.0/subscriptions", "method": "POST", "status": 429,
                             "retryAfter": 1, "count": THROTTLES})
    account, confirmed = await connect(stack)
    assert confirmed.status_code == 200, confirmed.text
    await until(lambda: sim_subscriptions(stack), 60, "the subscription after the throttled creates")
    assert await get_work_queue().peek("subscriptions-poison") == []
    # The poison handler empties that queue into the poison table: nothing may be there either.
    assert [row async for row in get_services().tables.scan(POISON)] == []
    journal = await get_services().journal.recent(account, limit=200)
    throttled = [e for e in journal if e.stage == "throttled"]
    assert len(throttled) == THROTTLES
    assert {(e.http_status, e.counts.get("delay_seconds")) for e in throttled} == {(429, 1)}
    assert sorted(e.counts["throttled"] for e in throttled) == list(range(1, THROTTLES + 1))
