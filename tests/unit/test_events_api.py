"""The events API (shared/sync/events_api.py) on the event writer's in-memory world: the range read from the
time-bucket rows, each event once in order of start, paging, the calendar model's fields, and errors in the
shared shape. Through the simulator and Azurite: tests/integration/test_sync_randomized.py."""

from __future__ import annotations

import json
from typing import Any

from shared.messages import Sync
from shared.sync.events_api import list_events
from tests.unit.delta_fake import PRIMARY, event
from tests.unit.test_calendar_model import MASTER, thin, utc
from tests.unit.test_event_writer import setup  # noqa: F401
from tests.unit.test_openapi import fits

DECEMBER = {"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}


async def events(world: Any, account: str, **params: Any) -> tuple[int, Any]:
    result = await list_events(world.services, account, {k: str(v) for k, v in params.items()})
    return result.status, json.loads(result.body)


async def everything(world: Any, account: str, **params: Any) -> list[dict[str, Any]]:
    found, page = [], None
    while True:
        status, body = await events(world, account, **params, **({"page": page} if page else {}))
        assert status == 200, body
        fits("EventsPage", json.dumps(body).encode())
        found += body["events"]
        page = body["next_page"]
        if page is None:
            return found


async def test_a_range_answers_each_event_once_in_order_of_start(setup):  # noqa: F811
    world, account, mailbox, writer = setup
    spanning = {**event(20), "start": utc("2026-12-05T22:00:00.0000000"), "end": utc("2026-12-09T08:00:00.0000000")}
    long = {**event(21), "start": utc("2026-11-02T00:00:00.0000000"), "end": utc("2027-02-01T00:00:00.0000000")}
    early = {**event(22, day=3)}
    for item in (spanning, long, early):
        mailbox.put(item)
    await writer.handle(Sync(account=account, reason="connect"))
    found = await everything(world, account, **DECEMBER)
    ids = [e["id"] for e in found]
    assert ids == ["ev00021", "ev00022", "ev00020", "ev00000", "ev00001", "ev00002", "ev00003", "ev00004"]
    assert found[3]["start"] == "2026-12-10T09:00:00Z"
    paged = await everything(world, account, **DECEMBER, limit=2)
    assert [e["id"] for e in paged] == ids  # pages join up: nothing twice, nothing missing

    _, body = await events(world, account, start="2026-12-10T09:30:00Z", end="2026-12-10T09:45:00Z")
    assert sorted(e["id"] for e in body["events"]) == ["ev00000", "ev00001", "ev00002", "ev00003", "ev00004",
                                                       "ev00021"]
    _status, body = await events(world, account, start="2026-12-10T10:00:00Z", end="2026-12-11T00:00:00Z")
    assert [e["id"] for e in body["events"]] == ["ev00021"]  # an event ending at 10:00 is not in [10:00, ...)
    assert await everything(world, account, **DECEMBER, calendar="another") == []
    assert len(await everything(world, account, **DECEMBER, calendar=PRIMARY)) == 8


async def test_events_carry_the_calendar_model(setup):  # noqa: F811
    world, account, mailbox, writer = setup
    mailbox.series_masters["sm1"] = MASTER
    mailbox.put(thin("2026-12-14", "17"))
    mailbox.put({**event(30), "isAllDay": True, "originalStartTimeZone": "Tonga Standard Time",
                 "start": utc("2026-12-20T00:00:00.0000000"), "end": utc("2026-12-21T00:00:00.0000000")})
    await writer.handle(Sync(account=account, reason="connect"))
    by_id = {e["id"]: e for e in await everything(world, account, **DECEMBER)}
    occurrence = by_id["sm1-2026-12-14"]
    assert (occurrence["type"], occurrence["series_master_id"], occurrence["subject"]) == (
        "occurrence", "sm1", "Standup")
    assert (occurrence["zone"], occurrence["local_start"], occurrence["start"]) == (
        "America/Los_Angeles", "2026-12-14T09:00:00", "2026-12-14T17:00:00Z")
    all_day = by_id["ev00030"]
    assert (all_day["is_all_day"], all_day["start_date"], all_day["end_date"], all_day["local_start"]) == (
        True, "2026-12-20", "2026-12-21", None)
    assert all_day["booking_id"] is None


async def test_bad_requests_name_the_field(setup):  # noqa: F811
    world, account, _mailbox, _writer = setup
    cases = [({"end": DECEMBER["end"]}, "missing_field", "start"),
             ({**DECEMBER, "end": "2026-11-01T00:00:00Z"}, "invalid_field", "end"),
             ({**DECEMBER, "end": "2028-06-01T00:00:00Z"}, "invalid_field", "end"),
             ({**DECEMBER, "start": "2026-12-01T00:00:00"}, "invalid_field", "start"),   # no zone
             ({**DECEMBER, "start": "tomorrow"}, "invalid_field", "start"),
             ({**DECEMBER, "limit": "0"}, "invalid_field", "limit"),
             ({**DECEMBER, "page": "not-a-token"}, "invalid_field", "page")]
    for params, code, field in cases:
        status, body = await events(world, account, **params)
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, code, field), params
        fits("Error", json.dumps(body).encode())
    status, body = await events(world, "acct_unknown", **DECEMBER)
    assert (status, body["error"]["code"]) == (404, "account_not_found")
