"""Availability (shared/sync/availability.py) on the event writer's in-memory world: showAs ranked and
merged, free and cancelled time left out, recurring occurrences counted, all-day events as whole days in
their own zone, clipped to the range; errors in the shared shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared.messages import Sync
from shared.sync.availability import Busy, availability, merge
from tests.unit.delta_fake import PRIMARY, event
from tests.unit.test_calendar_model import MASTER, thin, utc
from tests.unit.test_event_writer import setup  # noqa: F401
from tests.unit.test_openapi import fits


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def timed(n: int, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {**event(n), "start": utc(f"2026-12-{start}:00.0000000"), "end": utc(f"2026-12-{end}:00.0000000"), **extra}


async def ask(world: Any, account: str, **params: str) -> tuple[int, Any]:
    result = await availability(world.services, account, params)
    return result.status, json.loads(result.body)


def test_the_strongest_status_wins_and_touching_intervals_join():
    merged = merge([Busy(at(9), at(11), "tentative"), Busy(at(10), at(12), "busy"), Busy(at(12), at(13), "busy"),
                    Busy(at(10, 30), at(10, 45), "oof"), Busy(at(14), at(15), "workingElsewhere")])
    assert [(b.start.strftime("%H:%M"), b.end.strftime("%H:%M"), b.show_as) for b in merged] == [
        ("09:00", "10:00", "tentative"), ("10:00", "10:30", "busy"), ("10:30", "10:45", "oof"),
        ("10:45", "13:00", "busy"), ("14:00", "15:00", "workingElsewhere")]
    assert merge([]) == []


async def test_busy_time_from_the_store(setup):  # noqa: F811
    world, account, mailbox, writer = setup
    for n in range(5):
        mailbox.delete(f"ev{n:05d}")
    mailbox.put(timed(1, "10T09:00", "10T10:00", showAs="busy"))
    mailbox.put(timed(2, "10T09:30", "10T11:00", showAs="tentative"))
    mailbox.put(timed(3, "10T12:00", "10T13:00", showAs="free"))
    mailbox.put(timed(4, "10T13:00", "10T14:00", showAs="oof", isCancelled=True))
    mailbox.put(timed(5, "10T15:00", "10T16:00", showAs="workingElsewhere"))
    mailbox.series_masters["sm1"] = MASTER  # busy, every day at 17:00 UTC
    mailbox.put(thin("2026-12-10", "17"))
    mailbox.put({**event(6), "isAllDay": True, "showAs": "oof", "originalStartTimeZone": "Tonga Standard Time",
                 "start": utc("2026-12-12T00:00:00.0000000"), "end": utc("2026-12-13T00:00:00.0000000")})
    await writer.handle(Sync(account=account, reason="connect"))

    status, body = await ask(world, account, start="2026-12-10T00:00:00Z", end="2026-12-13T00:00:00Z")
    assert status == 200
    fits("Availability", json.dumps(body).encode())
    assert body["calendars"] == [PRIMARY]
    assert [(b["start"], b["end"], b["show_as"]) for b in body["busy"]] == [
        ("2026-12-10T09:00:00Z", "2026-12-10T10:00:00Z", "busy"),
        ("2026-12-10T10:00:00Z", "2026-12-10T11:00:00Z", "tentative"),
        ("2026-12-10T15:00:00Z", "2026-12-10T16:00:00Z", "workingElsewhere"),
        ("2026-12-10T17:00:00Z", "2026-12-10T17:15:00Z", "busy"),           # an occurrence of the series
        ("2026-12-11T11:00:00Z", "2026-12-12T11:00:00Z", "oof"),            # 12 December in Tonga (UTC+13)
    ]
    _, clipped = await ask(world, account, start="2026-12-10T09:30:00Z", end="2026-12-10T09:45:00Z")
    assert clipped["busy"] == [{"start": "2026-12-10T09:30:00Z", "end": "2026-12-10T09:45:00Z", "show_as": "busy"}]
    _, chosen = await ask(world, account, start="2026-12-10T00:00:00Z", end="2026-12-11T00:00:00Z",
                          calendars=PRIMARY)
    assert len(chosen["busy"]) == 4


async def test_bad_requests_name_the_field(setup):  # noqa: F811
    world, account, _mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    for params, code, field in (({"end": "2026-12-11T00:00:00Z"}, "missing_field", "start"),
                                ({"start": "2026-12-10T00:00:00Z", "end": "2026-12-11T00:00:00Z",
                                  "calendars": "not-synced"}, "invalid_field", "calendars")):
        status, body = await ask(world, account, **params)
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, code, field)
    status, body = await ask(world, "acct_unknown", start="2026-12-10T00:00:00Z", end="2026-12-11T00:00:00Z")
    assert (status, body["error"]["code"]) == (404, "account_not_found")
