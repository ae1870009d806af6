"""Deletions through the real parts (msgraph-sdk, msal, Key Vault client, Azurite) against the simulator: an event
deleted, moved to another calendar and back, moved out of the window, a series deleted, an empty read from a full
mailbox, and a user really deleting most of a calendar. ``@removed`` in a calendarView round means deleted, or
changed outside the window ("event: delta", https://learn.microsoft.com/en-us/graph/api/event-delta), so the
engine asks Graph where each stored one went, in JSON batches ("Combine multiple HTTP requests using JSON
batching", https://learn.microsoft.com/en-us/graph/json-batching)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.accounts.model import Status
from shared.accounts.repository import AccountRepository
from shared.messages import Sync
from shared.sync.breaker import breaker_route
from tests.integration.sync_world import SyncWorld, connected_world
from tests.integration.test_connect_real_clients import (
    ADELE,
    stack,  # noqa: F401
)


@pytest.fixture
async def world(stack):  # noqa: F811
    return await connected_world(stack)


def kinds(feed) -> list[tuple[str, str]]:
    return [(r.get("kind"), r.get("event")) for r in feed]


def bookings_calendar(world: SyncWorld) -> str:
    (calendar,) = [c.id for c in world.stack.sim.state.calendars_of(ADELE) if not c.is_default]
    return str(calendar)


def graph_calls(world: SyncWorld, since: int) -> list[str]:
    return [r.path for r in world.stack.sim.state.requests[since:] if r.path.startswith("/v1.0/")]


async def status_of(world: SyncWorld) -> tuple[Status, str | None]:
    account = await AccountRepository(world.tables).get(world.account)
    assert account is not None
    return account.status, account.reason


async def test_deleted_moved_away_and_out_of_the_window_each_get_their_kind(world):
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(12)]
    await world.sync("connect")
    world.sim("DELETE", f"users/{ADELE}/events/{ids[0]}")
    world.sim("POST", f"users/{ADELE}/events/{ids[1]}/move", {"calendar": bookings_calendar(world)})
    far = (datetime.now(UTC) + timedelta(days=900)).replace(microsecond=0)
    world.edit(ids[2], start={"dateTime": far.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
               end={"dateTime": (far + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"})
    since = len(world.stack.sim.state.requests)
    await world.sync("notification")
    assert sorted(kinds((await world.feed())[12:])) == sorted([("deleted", ids[0]), ("left_calendar", ids[1]),
                                                              ("left_window", ids[2])])
    assert await world.store_projection() == await world.graph_projection()
    assert [p for p in graph_calls(world, since) if p.endswith("$batch")] == ["/v1.0/$batch"] * 2

    # Back in the synced calendar: the same immutable id, created again (a move leaves no tombstone).
    world.sim("POST", f"users/{ADELE}/events/{ids[1]}/move", {"calendar": await world.calendar_id()})
    await world.sync("notification")
    assert kinds((await world.feed())[15:]) == [("created", ids[1])]
    assert await world.store_projection() == await world.graph_projection()


@pytest.mark.parametrize("series_delete", ["occurrences", "master"])
async def test_a_series_deleted_is_one_question_to_graph(world, series_delete):
    world.switches(delta_series_delete=series_delete)
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    master = world.sim("POST", f"users/{ADELE}/events", {
        "subject": "Daily stand-up",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": start.strftime("%Y-%m-%d"),
                                 "numberOfOccurrences": 150}}})["immutableId"]
    keep = [world.create(f"Meeting {n}", day=n + 2) for n in range(3)]
    # 150 of 153 events go at once: more than the breaker's share, so this test raises it to see the cost.
    settings = world.stack.services.settings
    world.stack.services.settings = dataclasses.replace(settings, delete_breaker_share=0.99)
    try:
        await world.sync("connect")
        assert len(await world.store_projection()) == 153
        world.sim("DELETE", f"users/{ADELE}/events/{master}")
        since = len(world.stack.sim.state.requests)
        await world.sync("notification")
    finally:
        world.stack.services.settings = settings
    assert sorted(await world.store_projection()) == sorted(keep)
    assert await world.store_projection() == await world.graph_projection()
    deleted = [e for k, e in kinds(await world.feed()) if k == "deleted"]
    assert len(deleted) == 150
    batches = [p for p in graph_calls(world, since) if p.endswith("$batch")]
    assert len(batches) == 1  # the master's answer is every occurrence's


async def test_an_empty_read_from_a_full_mailbox_holds_and_deletes_nothing(world):
    for n in range(12):
        world.create(f"Meeting {n}", day=n + 1)
    await world.sync("connect")
    before = await world.store_projection()
    world.sim("POST", f"users/{ADELE}/delta-tokens/expire")  # the next round is a full one ...
    world.stack.control("faults", {"path": f"/v1.0/users/{ADELE}/calendarView/delta*", "status": "empty",
                                   "count": 100})  # ... and Graph reads the mailbox as empty
    await world.sync("notification")
    world.sim("DELETE", "faults")
    assert await world.store_projection() == before
    assert await status_of(world) == (Status.DEGRADED, "breaker")
    assert not [k for k, _ in kinds(await world.feed()) if k == "deleted"]
    journal = [e.detail or "" for e in await world.stack.services.journal.recent(world.account, limit=200)]
    assert any("a full round read no events where 12 are stored" in d for d in journal)


async def test_most_of_a_calendar_really_deleted_is_held_then_confirmed(world):
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(20)]
    await world.sync("connect")
    for event_id in ids[:18]:  # 90%
        world.sim("DELETE", f"users/{ADELE}/events/{event_id}")
    await world.sync("notification")
    assert len(await world.store_projection()) == 20  # held
    assert await status_of(world) == (Status.DEGRADED, "breaker")
    # The confirming round, due after BREAKER_CONFIRM_MINUTES (its delayed message is run here directly).
    settings = world.stack.services.settings
    world.stack.services.settings = dataclasses.replace(settings, breaker_confirm_minutes=0)
    try:
        calendar = await world.calendar_id()
        cursor = await world.tables.get("mailbox", world.account, f"cursor:{calendar}")
        await world.tables.merge("mailbox", cursor.with_data(confirm_due=0.0))
        await world.sync("breaker")
    finally:
        world.stack.services.settings = settings
    assert await world.store_projection() == await world.graph_projection()
    assert sorted(e for k, e in kinds(await world.feed()) if k == "deleted") == sorted(ids[:18])
    assert await status_of(world) == (Status.ACTIVE, None)


async def test_an_operator_confirms_what_the_breaker_holds(world):
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(12)]
    await world.sync("connect")
    for event_id in ids[:10]:
        world.sim("DELETE", f"users/{ADELE}/events/{event_id}")
    await world.sync("notification")
    answer = await breaker_route(world.stack.services, world.account, b'{"action": "confirm"}')
    assert answer.status == 200
    assert await world.store_projection() == await world.graph_projection()
    assert await status_of(world) == (Status.ACTIVE, None)
    await world.sync("notification")  # from the link the held round reached: nothing raised again
    assert await status_of(world) == (Status.ACTIVE, None)


@pytest.mark.parametrize("cancelled", ["removed", "vanish"])
async def test_a_cancelled_occurrence_is_deleted_whether_or_not_delta_reports_it(world, cancelled):
    world.switches(delta_cancelled_occurrence=cancelled)
    try:
        master = world.series("Daily check-in", day=2, count=6)
        for n in range(10):
            world.create(f"Meeting {n}", day=n + 1)
        await world.sync("connect")
        occurrences = sorted(str(r.get("id")) for r in await world.rows("ev:") if r.get("series_master_id") == master)
        assert len(occurrences) == 6
        world.cancel_occurrence(occurrences[2])
        since = len(world.stack.sim.state.requests)
        await world.sync("notification")
    finally:
        world.switches(delta_cancelled_occurrence="removed")
    assert ("deleted", occurrences[2]) in kinds(await world.feed())
    stored = {str(r.get("id")) for r in await world.rows("ev:") if not r.get("tombstone")}
    assert occurrences[2] not in stored
    assert set(occurrences) - {occurrences[2]} <= stored
    assert len([p for p in graph_calls(world, since) if p.endswith("/instances")]) == 1  # the series, checked once


async def test_a_crash_in_the_middle_of_a_full_rounds_sweep_resumes_and_reports_each_change_once(world, monkeypatch):
    import shared.sync.removals as removals

    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(12)]
    await world.sync("connect")
    world.sim("POST", f"users/{ADELE}/delta-tokens/expire")  # the next round is a full one, with a sweep
    for event_id in ids[:3]:
        world.delete(event_id)
    monkeypatch.setattr(removals, "CHUNK", 4)
    real_sweep = removals.Settlement._sweep
    calls = 0

    async def crash_on_second(self, cursor):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("worker killed mid-sweep")
        await real_sweep(self, cursor)

    monkeypatch.setattr(removals.Settlement, "_sweep", crash_on_second)
    with pytest.raises(RuntimeError):
        await world.sync("notification")
    calendar = await world.calendar_id()
    cursor = await world.tables.get("mailbox", world.account, f"cursor:{calendar}")
    assert cursor.get("phase") == "sweep"
    await world.sync("continue")
    assert await world.store_projection() == await world.graph_projection()
    assert sorted(e for k, e in kinds(await world.feed()) if k == "deleted") == sorted(ids[:3])


async def test_a_delta_token_expired_mid_round_restarts_a_full_round_that_misses_nothing(world):
    ids = [world.create(f"Meeting {n}", day=n + 1) for n in range(12)]
    await world.sync("connect")
    world.edit(ids[5], subject="Changed before the round")
    settings = world.stack.services.settings
    world.stack.services.settings = dataclasses.replace(settings, slice_max_pages=1)
    try:
        await world.writer.handle(Sync(account=world.account, reason="notification"))  # one page, then a continue
        await world.drain()
        world.sim("POST", f"users/{ADELE}/delta-tokens/expire")  # the stored next link dies
        world.delete(ids[0])  # gone while the round was cut off: only a sweep can tell
        await world.sync("continue")
    finally:
        world.stack.services.settings = settings
    assert await world.store_projection() == await world.graph_projection()
    history = kinds((await world.feed())[12:])
    assert ("deleted", ids[0]) in history
    assert history.count(("updated", ids[5])) == 1
    statuses = [r.status for r in world.stack.sim.state.requests if "calendarView/delta" in r.path]
    assert 410 in statuses
