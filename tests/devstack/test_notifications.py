"""Change notifications from the simulator to a test webhook: Graph's payload, delivery,
retries and slow-endpoint throttling on the simulated clock (Receive change notifications through webhooks,
https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks), Graph's reported quirks as switches.
Changes are fired through the control API (test_event_actions.py covers those of event writes)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.devstack.conftest import until
from tests.devstack.subscribing import delegated_client, parse_time, subscribe
from tests.devstack.webhook import Webhook
from tests.devstack.world import TENANT_ID, World


def fire(world: World, user: str, change: str = "updated", **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = world.control("POST", "notifications/change", {"user": user, "changeType": change,
                                                                             **extra})
    return result


def flush(world: World) -> dict[str, Any]:
    result: dict[str, Any] = world.control("POST", "notifications/flush", {"seconds": 5})
    return result


async def test_payload_shape(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): a changeNotificationCollection
    {"value": [...]} with subscriptionId,
    subscriptionExpirationDateTime, clientState, changeType, resource, resourceData (@odata.type, @odata.id,
    @odata.etag, id) and tenantId, POSTed as JSON."""
    created = await subscribe(world, hook, delegated_client(world, world.alice))
    fire(world, world.alice, "deleted", event="AAMkAGevent1", etag="DwAAABYAAAB")
    flush(world)
    assert len(hook.posts) == 1
    assert hook.posts[0].content_type.startswith("application/json")
    [item] = hook.items()
    resource = f"Users/{world.alice}/Events/AAMkAGevent1"
    assert item == {
        "subscriptionId": created.id, "subscriptionExpirationDateTime": item["subscriptionExpirationDateTime"],
        "changeType": "deleted", "resource": resource, "clientState": "state-1", "tenantId": TENANT_ID,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                         "@odata.etag": 'W/"DwAAABYAAAB"', "id": "AAMkAGevent1"}}
    assert created.expiration_date_time is not None
    assert abs(parse_time(item["subscriptionExpirationDateTime"]) - created.expiration_date_time.timestamp()) < 1e-3


async def test_the_url_query_string_comes_back(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): a query string on
    notificationUrl is kept on the handshake and on every delivery."""
    await subscribe(world, hook, delegated_client(world, world.alice), notification_url=hook.url("notify?tenant=t1"))
    fire(world, world.alice)
    flush(world)
    assert hook.validations[0].query["tenant"] == "t1"
    assert [(p.path, p.query) for p in hook.posts] == [("/notify", {"tenant": "t1"})]


async def test_delivered_by_the_background_task(world: World, hook: Webhook):
    """Delivery is asynchronous: without a flush, the simulator's background task POSTs the notification."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    fire(world, world.alice)
    await until(lambda: hook.items(), 5, "a notification")


async def test_a_reset_forgets_deliveries_in_flight(world: World, hook: Webhook):
    """A delivery still running when the state is reset (the next test's fixture) counts nowhere."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    hook.delay = 0.3
    fire(world, world.alice)
    await until(lambda: hook.posts, 5, "the delivery to start")
    world.control("POST", "reset")
    await asyncio.sleep(0.5)
    assert world.control("GET", "counters")["notifications"] == {}
    assert world.control("GET", "notifications")["pending"] == []


async def test_only_subscribed_change_types(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview): only the subscription's
    changeType values are notified."""
    await subscribe(world, hook, delegated_client(world, world.alice), change_type="deleted")
    fire(world, world.alice, "created")
    fire(world, world.alice, "updated")
    fire(world, world.alice, "deleted")
    flush(world)
    assert [i["changeType"] for i in hook.items()] == ["deleted"]


async def test_a_create_also_yields_updated(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks) quirk
    (microsoft-graph-docs#7598): one create gives created and updated; switch create_also_updated."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    fire(world, world.alice, "created", event="AAMkAGone")
    flush(world)
    assert [(i["changeType"], i["resourceData"]["id"]) for i in hook.items()] == [
        ("created", "AAMkAGone"), ("updated", "AAMkAGone")]
    world.control("PATCH", "switches", {"create_also_updated": False})
    fire(world, world.alice, "created", event="AAMkAGtwo")
    flush(world)
    assert [i["changeType"] for i in hook.items()][2:] == ["created"]


async def test_duplicates(world: World, hook: Webhook):
    """Duplicates (the webhooks page: de-duplicate): switch duplicate_notifications, or the next n by control."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    world.control("POST", "notifications/plan", {"duplicate": 1})
    fire(world, world.alice, event="AAMkAGa")
    fire(world, world.alice, event="AAMkAGb")
    flush(world)
    assert [i["resourceData"]["id"] for i in hook.items()] == ["AAMkAGa", "AAMkAGa", "AAMkAGb"]
    world.control("PATCH", "switches", {"duplicate_notifications": True})
    fire(world, world.alice, event="AAMkAGc")
    flush(world)
    assert [i["resourceData"]["id"] for i in hook.items()][3:] == ["AAMkAGc", "AAMkAGc"]
    assert world.control("GET", "counters")["notifications"]["duplicated"] == 2


async def test_batches_mix_subscriptions(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): one POST may carry several
    subscriptions' notifications (switch batch_across_subscriptions); at
    most notifications_per_batch items a POST (assumed size)."""
    client = delegated_client(world, world.alice)
    first = await subscribe(world, hook, client)
    second = await subscribe(world, hook, client, f"users/{world.alice}/calendars/{world.alice_projects}/events")
    fire(world, world.alice, calendar=world.alice_projects)
    flush(world)
    assert [sorted(i["subscriptionId"] for i in batch) for batch in hook.batches()] == [
        sorted([str(first.id), str(second.id)])]
    world.control("PATCH", "switches", {"batch_across_subscriptions": False})
    fire(world, world.alice, calendar=world.alice_projects)
    flush(world)
    assert sorted(len({i["subscriptionId"] for i in batch}) for batch in hook.batches()[1:]) == [1, 1]
    world.control("PATCH", "switches", {"batch_across_subscriptions": True, "notifications_per_batch": 1})
    fire(world, world.alice, "created", calendar=world.alice_projects)  # 2 subscriptions x created, updated
    flush(world)
    assert [len(batch) for batch in hook.batches()[3:]] == [1, 1, 1, 1]


async def test_default_calendar_only_switch(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview) report (docs-contrib#51):
    me/events may fire only for the default calendar (switch
    events_default_calendar_only); a per-calendar subscription still hears its calendar."""
    client = delegated_client(world, world.alice)
    await subscribe(world, hook, client)
    per_calendar = await subscribe(world, hook, client,
                                   f"users/{world.alice}/calendars/{world.alice_projects}/events")
    world.control("PATCH", "switches", {"events_default_calendar_only": True})
    fire(world, world.alice, calendar=world.alice_projects)
    fire(world, world.bob)  # another mailbox: nobody listens
    flush(world)
    assert [i["subscriptionId"] for i in hook.items()] == [per_calendar.id]


async def test_dropped_notifications_cause_missed(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks); Reduce missing subscriptions and
    change notifications (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events): dropped
    notifications are counted and the lifecycle URL hears `missed`."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    world.control("POST", "notifications/plan", {"drop": 1})
    fire(world, world.alice)
    flush(world)
    assert hook.items() == []
    assert hook.lifecycle_events() == ["missed"]
    assert world.control("GET", "counters")["notifications"]["dropped"] == 1


async def test_delayed_notifications_wait_for_the_clock(world: World, hook: Webhook):
    """Control delay: notifications are held on the simulated clock; advancing it delivers them."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    world.control("POST", "notifications/plan", {"delaySeconds": 300})
    fire(world, world.alice)
    flush(world)
    assert hook.items() == []
    world.control("POST", "clock/advance", {"seconds": 300})
    assert len(hook.items()) == 1


async def test_failures_are_retried_for_four_hours_then_dropped(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): a non-2xx answer is retried
    (interval: assumed switch, 60 s) for up to 4 hours, then dropped with
    `missed`."""
    world.control("PATCH", "switches", {"access_token_seconds": 86400})  # keep token-expiry events out
    await subscribe(world, hook, delegated_client(world, world.alice))
    hook.statuses["/notify"] = 500
    fire(world, world.alice, event="AAMkAGretry")
    flush(world)
    assert len(hook.posts) == 1
    hook.statuses["/notify"] = 202
    world.control("POST", "clock/advance", {"seconds": 59})
    assert len(hook.posts) == 1
    world.control("POST", "clock/advance", {"seconds": 1})
    assert len(hook.posts) == 2
    hook.statuses["/notify"] = 503
    fire(world, world.alice, event="AAMkAGlost")
    flush(world)
    world.control("POST", "clock/advance", {"seconds": 4 * 3600})
    counts = world.control("GET", "counters")["notifications"]
    assert (counts["sent"], counts["failed"], counts["dropped"]) == (1, 3, 1)
    assert hook.lifecycle_events() == ["missed"]
    assert flush(world)["pending"] == []


async def test_a_delivery_over_the_timeout_fails_and_counts_as_slow(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): a 3 s timeout (switch, 0.2 s
    here); a timed-out delivery is a failure and slow."""
    world.control("PATCH", "switches", {"delivery_timeout_seconds": 0.2})
    await subscribe(world, hook, delegated_client(world, world.alice))
    hook.delay = 0.5
    fire(world, world.alice)
    counts = flush(world)["counts"]
    assert (counts.get("sent", 0), counts["failed"], counts["slow"]) == (0, 1, 1)


async def test_slow_endpoint_is_delayed_then_dropped(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): answers slower than 2,900 ms are
    slow; after 100 notifications, 10 % slow delays delivery by 10
    minutes and 15 % drops it (sample and threshold scaled by switches: 10 notifications, 100 ms)."""
    world.control("PATCH", "switches", {"slow_sample_size": 10, "slow_response_ms": 100})
    client = delegated_client(world, world.alice)
    first = await subscribe(world, hook, client)

    def deliver(count: int, delay: float) -> None:
        hook.delay = delay
        for _ in range(count):
            fire(world, world.alice)
            flush(world)
        hook.delay = 0

    deliver(9, 0)
    deliver(1, 0.2)  # 1 slow in 10: throttled
    fire(world, world.alice, event="AAMkAGlate")
    status = flush(world)
    assert status["endpoints"][hook.url("notify")] == {"windowStart": status["endpoints"][hook.url("notify")]
                                                       ["windowStart"], "sent": 10, "slow": 1}
    assert [p["dueIn"] for p in status["pending"]] == [600]
    assert len(hook.items()) == 10
    world.control("POST", "clock/advance", {"seconds": 600})
    assert hook.items()[-1]["resourceData"]["id"] == "AAMkAGlate"

    # A second endpoint: 2 slow in 10 is over 15 %, so its next notification is dropped.
    world.control("DELETE", f"subscriptions/{first.id}")
    await subscribe(world, hook, client, notification_url=hook.url("other"))
    deliver(8, 0)
    deliver(2, 0.2)
    before = len(hook.items("/other"))
    fire(world, world.alice, event="AAMkAGdropped")
    counts = flush(world)["counts"]
    assert len(hook.items("/other")) == before == 10
    assert (counts["slow"], counts["dropped"]) == (3, 1)
    assert hook.lifecycle_events() == ["missed"]
