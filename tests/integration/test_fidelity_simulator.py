"""Calendar fidelity end to end: a user's action at the simulator, the product's sync through the real parts
(msgraph-sdk, msal, Key Vault client, Azurite), then what the SaaS reads from the events API and the change
feed. Zones as Outlook names them ("dateTimeTimeZone resource type",
https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone), series as "recurrencePattern
resource type" (https://learn.microsoft.com/en-us/graph/api/resources/recurrencepattern) describes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.sync.events_api import list_events
from shared.sync.feed import read_changes
from tests.integration.sync_world import SyncWorld, connected_world
from tests.integration.test_connect_real_clients import (
    ADELE,
    stack,  # noqa: F401
)

NEXT_YEAR = datetime.now(UTC).year + 1


@pytest.fixture
async def world(stack):  # noqa: F811
    return await connected_world(stack, page_size=50)


def local(date_time: str, zone: str) -> dict[str, str]:
    return {"dateTime": date_time, "timeZone": zone}


def weekly(start_date: str, end_date: str | None = None, days: tuple[str, ...] = ("monday",)) -> dict[str, Any]:
    return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": list(days), "firstDayOfWeek": "sunday"},
            "range": {"type": "endDate", "startDate": start_date, "endDate": end_date or f"{NEXT_YEAR}-12-31"}}


def make(world: SyncWorld, **event: Any) -> str:
    return str(world.sim("POST", f"users/{ADELE}/events", event)["immutableId"])


async def events(world: SyncWorld, start: str, end: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = None
    while True:
        answer = await list_events(world.stack.services, world.account,
                                   {"start": start, "end": end, "limit": "500", **({"page": page} if page else {})})
        body = json.loads(answer.body)
        assert answer.status == 200, body
        found += body["events"]
        page = body["next_page"]
        if page is None:
            return found


async def changes(world: SyncWorld) -> list[tuple[str, str]]:
    body = json.loads((await read_changes(world.stack.services, world.account, {"limit": "1000"})).body)
    return [(c["kind"], c["event"]) for c in body["changes"]]


@pytest.mark.parametrize(("zone", "iana", "dst_dates"), [
    # 2027 DST changes: the US on 14 March and 7 November; Sydney on 4 April and 3 October.
    ("Pacific Standard Time", "America/Los_Angeles", ("03-08", "03-15", "11-01", "11-08")),
    ("AUS Eastern Standard Time", "Australia/Sydney", ("03-29", "04-05", "09-27", "10-04")),
])
async def test_a_weekly_0900_meeting_stays_0900_local_across_both_dst_changes(world, zone, iana, dst_dates):
    first = f"{NEXT_YEAR}-{dst_dates[0]}"
    series = make(world, subject="Weekly 09:00", start=local(f"{first}T09:00:00", zone),
                  end=local(f"{first}T09:30:00", zone), recurrence=weekly(first))
    await world.sync("connect")
    found = [e for e in await events(world, f"{NEXT_YEAR}-01-01T00:00:00Z", f"{NEXT_YEAR}-12-31T00:00:00Z")
             if e["series_master_id"] == series]
    assert len(found) > 30
    by_date = {e["local_start"][:10]: e for e in found}
    for day in dst_dates:
        occurrence = by_date[f"{NEXT_YEAR}-{day}"]
        assert (occurrence["zone"], occurrence["local_start"][11:], occurrence["subject"]) == (
            iana, "09:00:00", "Weekly 09:00")
    offsets = {by_date[f"{NEXT_YEAR}-{d}"]["start"][11:13] for d in dst_dates}
    assert len(offsets) == 2  # the UTC instant moves by an hour at each change; the wall clock does not


@pytest.mark.parametrize("zone", ["Tonga Standard Time", "Hawaiian Standard Time"])  # UTC+13 and UTC-10
async def test_an_all_day_event_is_the_same_date_wherever_it_was_written(world, zone):
    made = make(world, subject="Holiday", isAllDay=True, start=local(f"{NEXT_YEAR}-02-10T00:00:00", zone),
                end=local(f"{NEXT_YEAR}-02-11T00:00:00", zone))
    await world.sync("connect")
    (found,) = [e for e in await events(world, f"{NEXT_YEAR}-02-01T00:00:00Z", f"{NEXT_YEAR}-03-01T00:00:00Z")
                if e["id"] == made]
    assert (found["is_all_day"], found["start_date"], found["end_date"], found["local_start"]) == (
        True, f"{NEXT_YEAR}-02-10", f"{NEXT_YEAR}-02-11", None)


async def test_an_event_across_a_dst_change_keeps_its_wall_clock_ends(world):
    made = make(world, subject="Night shift", start=local(f"{NEXT_YEAR}-03-14T01:00:00", "Pacific Standard Time"),
                end=local(f"{NEXT_YEAR}-03-14T04:00:00", "Pacific Standard Time"))
    await world.sync("connect")
    (found,) = [e for e in await events(world, f"{NEXT_YEAR}-03-13T00:00:00Z", f"{NEXT_YEAR}-03-16T00:00:00Z")
                if e["id"] == made]
    assert (found["local_start"], found["local_end"]) == (f"{NEXT_YEAR}-03-14T01:00:00", f"{NEXT_YEAR}-03-14T04:00:00")
    assert (found["start"], found["end"]) == (f"{NEXT_YEAR}-03-14T09:00:00Z", f"{NEXT_YEAR}-03-14T11:00:00Z")


async def test_series_edits_exceptions_cancellations_and_truncation_reach_the_events_api_and_the_feed(world):
    first = f"{NEXT_YEAR}-01-04"  # a Monday
    zone = "W. Europe Standard Time"
    series = make(world, subject="Planning", start=local(f"{first}T10:00:00", zone),
                  end=local(f"{first}T11:00:00", zone), recurrence=weekly(first, f"{NEXT_YEAR}-03-29"))
    for n in range(40):  # the rest of the calendar: the truncation below is not most of it (the breaker)
        world.create(f"Meeting {n}", day=n + 1)
    await world.sync("connect")
    span = (f"{NEXT_YEAR}-01-01T00:00:00Z", f"{NEXT_YEAR}-04-30T00:00:00Z")

    def of_series(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted((e for e in found if e["series_master_id"] == series), key=lambda e: e["start"])

    occurrences = of_series(await events(world, *span))
    assert len(occurrences) == 13

    # An exception moved to another day (Tuesday), a cancelled occurrence.
    moved, cancelled = occurrences[1], occurrences[2]
    world.sim("PATCH", f"users/{ADELE}/occurrences/{moved['id']}", {
        "start": local(f"{NEXT_YEAR}-01-12T14:00:00", zone), "end": local(f"{NEXT_YEAR}-01-12T15:00:00", zone)})
    world.cancel_occurrence(cancelled["id"])
    await world.sync("notification")
    now = {e["id"]: e for e in of_series(await events(world, *span))}
    assert (now[moved["id"]]["type"], now[moved["id"]]["local_start"]) == ("exception", f"{NEXT_YEAR}-01-12T14:00:00")
    assert now[moved["id"]]["original_start"] == moved["start"]
    assert cancelled["id"] not in now
    assert ("deleted", cancelled["id"]) in await changes(world)

    # The master edited twice: the time, then the pattern (Mondays and Wednesdays).
    world.edit(series, start=local(f"{first}T08:30:00", zone), end=local(f"{first}T09:30:00", zone))
    await world.sync("notification")
    assert {e["local_start"][11:] for e in of_series(await events(world, *span)) if e["type"] == "occurrence"} == {
        "08:30:00"}
    world.edit(series, recurrence=weekly(first, f"{NEXT_YEAR}-03-29", days=("monday", "wednesday")))
    await world.sync("notification")
    twice = of_series(await events(world, *span))
    assert {datetime.fromisoformat(e["local_start"]).strftime("%A") for e in twice} == {"Monday", "Wednesday"}
    assert await world.store_projection() == await world.graph_projection()

    # Truncated by a new end date: the occurrences after it leave the events API and are deleted in the feed.
    world.sim("POST", f"users/{ADELE}/events/{series}/truncate", {"endDate": f"{NEXT_YEAR}-01-31"})
    await world.sync("notification")
    left = of_series(await events(world, *span))
    assert left
    assert max(e["local_start"] for e in left) < f"{NEXT_YEAR}-02-01"
    gone = {e["id"] for e in twice} - {e["id"] for e in left}
    assert gone
    assert gone <= {event for kind, event in await changes(world) if kind == "deleted"}
    assert await world.store_projection() == await world.graph_projection()


async def test_a_series_without_end_is_stored_as_graph_expands_it_in_the_window(world):
    """Thousands of occurrences in all (it never ends): the store holds the window's, as Graph expands them, each
    filled from the master read once a page."""
    start = datetime.now(UTC).strftime("%Y-%m-%d")
    series = make(world, subject="Daily", start=local(f"{start}T07:00:00", "UTC"),
                  end=local(f"{start}T07:15:00", "UTC"),
                  recurrence={"pattern": {"type": "daily", "interval": 1},
                              "range": {"type": "noEnd", "startDate": start}})
    since = len(world.stack.sim.state.requests)
    await world.sync("connect")
    calls = [r.path for r in world.stack.sim.state.requests[since:] if r.path.startswith("/v1.0/")]
    stored = await world.store_projection()
    mine = [e for e in stored.values() if e["series_master_id"] == series]
    assert len(mine) > 300
    assert all(e["subject"] == "Daily" for e in mine)
    assert stored == await world.graph_projection()
    delta_pages = sum(1 for p in calls if "/delta" in p)
    assert sum(1 for p in calls if p.endswith("/$batch")) <= delta_pages  # one master read per page at most


async def test_a_custom_zone_event_is_shown_in_utc_and_flagged(world):
    """Desktop Outlook can write a legacy custom zone, which Graph reports as ``tzone://Microsoft/Custom``
    ("event resource type", https://learn.microsoft.com/en-us/graph/api/resources/event); the simulator's
    clients cannot create one, so the test sets the stored zone as that desktop client would have."""
    made = make(world, subject="Old desktop Outlook", start=local(f"{NEXT_YEAR}-05-10T15:30:00", "UTC"),
                end=local(f"{NEXT_YEAR}-05-10T16:00:00", "UTC"))
    stored = world.stack.sim.state.events.find(made)
    assert stored is not None
    stored.start_zone = stored.end_zone = "tzone://Microsoft/Custom"
    await world.sync("connect")
    (found,) = [e for e in await events(world, f"{NEXT_YEAR}-05-01T00:00:00Z", f"{NEXT_YEAR}-06-01T00:00:00Z")
                if e["id"] == made]
    assert (found["zone"], found["zone_flag"], found["local_start"], found["start"]) == (
        "UTC", "custom", f"{NEXT_YEAR}-05-10T15:30:00", f"{NEXT_YEAR}-05-10T15:30:00Z")
