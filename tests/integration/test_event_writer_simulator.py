"""The event writer's incremental rounds through the real parts (msgraph-sdk, msal, Key Vault client, Azurite)
against the simulator's calendarView/delta ("event: delta", https://learn.microsoft.com/en-us/graph/api/event-delta;
"Get incremental changes to events in a calendar view", https://learn.microsoft.com/en-us/graph/delta-query-events),
including the faults the service is reported to have."""

from __future__ import annotations

import pytest

from shared.messages import Sync
from tests.integration.sync_world import SyncWorld

# The connected-account stack of the connect tests (a fixture defined in that module).
from tests.integration.test_connect_real_clients import (
    ADELE,
    stack,  # noqa: F401
)


@pytest.fixture
async def world(stack):  # noqa: F811
    account, confirmed = await stack.connect()
    assert confirmed.status == 200
    sync_world = SyncWorld(stack, account)
    await sync_world.drain()  # confirm queued a first sync; each test runs its own
    return sync_world


async def test_a_first_round_then_a_change_then_a_second_round(world):
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(12)]
    assert await world.sync("connect") == 1  # 12 events in pages of 5: one slice of 3 pages
    assert await world.store_projection() == await world.graph_projection()
    feed = await world.feed()
    assert [(r.get("kind"), r.get("event")) for r in feed] == [("created", i) for i in ids]
    assert [int(r.row.split(":")[1]) for r in feed] == list(range(1, 13))

    world.edit(ids[3], subject="Moved to the afternoon")
    new = world.create("Late addition", day=20)
    await world.sync("notification")
    assert await world.store_projection() == await world.graph_projection()
    assert [(r.get("kind"), r.get("event")) for r in (await world.feed())[12:]] == [("updated", ids[3]),
                                                                                   ("created", new)]
    endpoints = world.stack.sim.state.requests
    assert all(r.status == 200 for r in endpoints if "calendarView/delta" in r.path)


async def test_an_evicted_token_starts_a_new_round_and_duplicates_nothing(world):
    """410 Gone with SyncStateNotFound ("Use delta query to track changes in Microsoft Graph data", token
    duration, https://learn.microsoft.com/en-us/graph/delta-query-overview)."""
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(4)]
    await world.sync("connect")
    world.sim("POST", f"users/{ADELE}/delta-tokens/expire")
    world.edit(ids[0], subject="Renamed")
    await world.sync("notification")
    assert await world.store_projection() == await world.graph_projection()
    kinds = [(r.get("kind"), r.get("event")) for r in await world.feed()]
    assert kinds == [("created", i) for i in ids] + [("updated", ids[0])]
    statuses = [r.status for r in world.stack.sim.state.requests if "calendarView/delta" in r.path]
    assert 410 in statuses


async def test_a_503_mid_round_is_retried_on_the_same_link(world):
    """503 on the third page ("Microsoft Graph error responses", https://learn.microsoft.com/en-us/graph/errors;
    reported mid-round on calendarView/delta)."""
    for n in range(12):
        world.create(f"Meeting {n}", day=n + 1)
    world.stack.control("faults", {"path": f"/v1.0/users/{ADELE}/calendarView/delta*", "status": 503, "skip": 2,
                                   "count": 1})
    await world.sync("connect")
    assert await world.store_projection() == await world.graph_projection()
    assert world.sleeps == [1.0]
    assert len(await world.feed()) == 12


@pytest.mark.parametrize("switches", [
    {"delta_loop_page": 2},                    # a next link that names its own page
    {"delta_duplicate_item": True},            # the same item twice in one round
    {"delta_page_size_override": 7},           # a page size that is not respected
    {"delta_empty_pages": 3},                  # empty pages that still carry a next link
])
async def test_reported_service_faults_change_nothing_in_the_result(world, switches):
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(12)]
    world.switches(**switches)
    await world.sync("connect")
    assert await world.store_projection() == await world.graph_projection()
    feed = [(r.get("kind"), r.get("event")) for r in await world.feed()]
    assert sorted(feed) == sorted(("created", i) for i in ids)  # each event once


async def test_two_workers_on_one_mailbox_run_one_round(world):
    """The second finds the lease held: it sets dirty and sends one wake-up, no Graph call."""
    import dataclasses

    from shared.sync.mailbox import MailboxLease

    services = world.stack.services
    services.settings = dataclasses.replace(services.settings, delta_replication_margin_seconds=0)  # visible now
    world.create("Meeting", day=2)
    holder = await MailboxLease(world.stack.services, world.account).acquire()
    assert holder is not None
    before = len(world.stack.sim.state.requests)
    await world.writer.handle(Sync(account=world.account, reason="notification"))
    await world.writer.handle(Sync(account=world.account, reason="notification"))
    assert len(world.stack.sim.state.requests) == before
    queued = await world.stack.services.queue.peek("sync", 32)
    assert len(queued) == 1
    await holder.release()


async def test_a_mailbox_not_enabled_for_rest_turns_the_account_unsupported(world):
    """MailboxNotEnabledForRESTAPI ("Microsoft Graph error responses", https://learn.microsoft.com/en-us/graph/errors):
    reconnecting cannot fix it, so the message settles and the account stops syncing."""
    from shared.accounts.model import Status
    from shared.dispatch import dispatch

    world.create("Meeting", day=2)
    world.sim("POST", f"users/{ADELE}/mailbox", {"state": "notEnabledForRestApi"})
    await dispatch(Sync(account=world.account, reason="notification").to_json(), world.writer.handle,
                   world.stack.services)
    account = await world.stack.repo.get(world.account)
    assert account.status is Status.UNSUPPORTED
    assert account.reason == "MailboxNotEnabledForRESTAPI"


async def test_a_429_storm_slows_the_round_down_and_never_fails_it(world):
    """429s with Retry-After ("Microsoft Graph throttling guidance", https://learn.microsoft.com/en-us/graph/throttling):
    short waits inline, then a wait too long for the invocation sends the message again with that delay
    (not a failed delivery); the round completes when it runs again."""
    from shared.dispatch import dispatch

    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(6)]
    delta = f"/v1.0/users/{ADELE}/calendarView/delta*"
    world.stack.control("faults", {"path": delta, "status": 429, "retryAfter": 1, "count": 3})
    await world.sync("notification")
    assert world.sleeps == [1.0, 1.0, 1.0]
    world.edit(ids[0], subject="Changed")
    world.stack.control("faults", {"path": delta, "status": 429, "retryAfter": 60, "count": 1})
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    await dispatch(Sync(account=world.account, reason="continue").to_json(), world.writer.handle,
                   world.stack.services, sleep=sleep)
    from azure.storage.queue.aio import QueueClient

    from shared.store.factory import QUEUE_API_VERSION

    async with QueueClient.from_connection_string(world.stack.services.settings.storage.connection_string, "sync",
                                                  api_version=QUEUE_API_VERSION) as queue:
        assert (await queue.get_queue_properties()).approximate_message_count == 1  # re-sent, 60 s later
    await world.sync("continue")  # the re-sent copy, once its delay is over
    assert await world.store_projection() == await world.graph_projection()
