"""The bookings API (shared/bookings/api.py) on in-memory parts: the desired state recorded before the
``outbound`` message, versions, idempotency, cancellation, validation naming the field, the status matrix,
and the reconciler sending what a crash left unqueued. The writer, through the simulator:
tests/integration/test_outbound_simulator.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.accounts.model import Status
from shared.accounts.status import set_status
from shared.bookings.api import UNQUEUED, cancel_booking, get_booking, list_bookings, put_booking, send_unqueued
from shared.bookings.api import transaction_id as tx
from shared.messages import Outbound, parse_message
from shared.store.ports import BOOKINGS, CALENDARS, Row
from tests.unit.test_connect import World
from tests.unit.test_openapi import fits

BOOKING = {"version": 1, "subject": "Haircut",
           "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "Europe/Berlin"},
           "end": {"dateTime": "2026-12-10T09:30:00", "timeZone": "W. Europe Standard Time"}}


@pytest.fixture
async def world() -> tuple[World, str]:
    w = World()
    account, token = await w.sign_in()
    assert (await w.confirm(account, token)).status == 200
    w.services.queue.clear("outbound")  # type: ignore[attr-defined]
    return w, account


def outbound(w: World) -> list[Outbound]:
    return [m for m in map(parse_message, w.services.queue.all_bodies("outbound"))  # type: ignore[attr-defined]
            if isinstance(m, Outbound)]


async def put(w: World, account: str, booking: str, body: dict[str, Any]) -> tuple[int, Any]:
    result = await put_booking(w.services, account, booking, json.dumps(body).encode())
    return result.status, json.loads(result.body)


async def test_a_booking_is_recorded_then_queued_and_read_back(world):
    w, account = world
    status, body = await put(w, account, "b-1", BOOKING)
    assert status == 202
    fits("Booking", json.dumps(body).encode())
    assert (body["status"], body["version"], body["event_id"], body["attempts"]) == ("pending", 1, None, 0)
    assert outbound(w) == [Outbound(account=account, booking="b-1", version=1)]
    assert [r for r in w.services.tables.rows(BOOKINGS) if r.partition == UNQUEUED] == []
    got = json.loads((await get_booking(w.services, account, "b-1")).body)
    assert got["desired"]["subject"] == "Haircut"
    listed = json.loads((await list_bookings(w.services, account, {})).body)
    fits("BookingsPage", json.dumps(listed).encode())
    assert [b["booking"] for b in listed["bookings"]] == ["b-1"]


async def test_versions_same_request_again_older_and_conflicting(world):
    w, account = world
    await put(w, account, "b-1", BOOKING)
    assert (await put(w, account, "b-1", BOOKING))[0] == 200  # the same again: nothing more queued
    assert len(outbound(w)) == 1
    status, body = await put(w, account, "b-1", {**BOOKING, "subject": "Colour"})
    assert (status, body["error"]["code"], body["error"]["field"]) == (409, "version_conflict", "version")
    assert (await put(w, account, "b-1", {**BOOKING, "version": 3, "subject": "Colour"}))[0] == 202
    status, body = await put(w, account, "b-1", {**BOOKING, "version": 2})
    assert (status, body["error"]["code"], body["error"]["field"]) == (409, "version_outdated", "version")
    assert [m.version for m in outbound(w)] == [1, 3]


async def test_a_cancel_is_recorded_and_queued_once(world):
    w, account = world
    await put(w, account, "b-1", BOOKING)
    first = await cancel_booking(w.services, account, "b-1")
    again = await cancel_booking(w.services, account, "b-1")
    assert (first.status, again.status) == (202, 200)
    assert json.loads(first.body)["desired"] == {"cancelled": True}
    assert len(outbound(w)) == 2
    missing = await cancel_booking(w.services, account, "nope")
    assert (missing.status, json.loads(missing.body)["error"]["code"]) == (404, "booking_not_found")


@pytest.mark.parametrize(("change", "field"), [
    ({"start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "Mars/Olympus"}}, "start.timeZone"),
    ({"start": {"dateTime": "2026-12-10T09:00:00+01:00", "timeZone": "UTC"}}, "start.dateTime"),
    ({"end": {"dateTime": "2026-12-10T08:00:00", "timeZone": "Europe/Berlin"}}, "end"),
    ({"subject": ""}, "subject"),
    ({"version": 0}, "version"),
    ({"show_as": "maybe"}, "show_as"),
    ({"all_day": True, "start_date": "2026-12-10", "end_date": "2026-12-10"}, "end_date"),
    ({"all_day": True, "start_date": "2026-12-10T00:00:00", "end_date": "2026-12-11"}, "start_date"),
    ({"attendees": ["a@contoso.test"]}, "attendees"),
    ({"calendar": "not-a-calendar"}, "calendar"),
])
async def test_bad_requests_name_the_field_and_record_nothing(world, change, field):
    w, account = world
    status, body = await put(w, account, "b-1", {**BOOKING, **change})
    assert (status, body["error"]["field"]) == (400, field), body
    fits("Error", json.dumps(body).encode())
    assert w.services.tables.rows(BOOKINGS) == []
    assert outbound(w) == []


async def test_all_day_bookings_and_a_chosen_calendar(world):
    w, account = world
    await w.services.tables.upsert(CALENDARS, Row(account, "cal-2", {"sync": True}))
    status, body = await put(w, account, "b-2", {"version": 1, "subject": "Off", "all_day": True,
                                                 "start_date": "2026-12-24", "end_date": "2026-12-27",
                                                 "calendar": "cal-2"})
    assert (status, body["desired"]["start_date"], body["desired"]["calendar"]) == (202, "2026-12-24", "cal-2")
    row = await w.services.tables.get(BOOKINGS, account, "b-2")
    assert row.get("transaction_id") == tx("b-2", "cal-2") != tx("b-2", "other")  # per booking and calendar


async def test_the_status_matrix_decides_who_writes(world):
    w, account = world
    await set_status(w.services, account, Status.DEGRADED, "breaker")
    assert (await put(w, account, "b-1", BOOKING))[0] == 202  # degraded still writes
    await set_status(w.services, account, Status.NEEDS_RECONNECT, "invalid_grant")
    status, body = await put(w, account, "b-2", BOOKING)
    assert (status, body["error"]["code"], body["error"]["field"]) == (409, "account_not_writable", "account")
    status, body = await put(w, "acct_unknown", "b-3", BOOKING)
    assert (status, body["error"]["code"]) == (404, "account_not_found")


async def test_a_crash_before_the_message_is_repaired_by_the_reconciler(world, monkeypatch):
    w, account = world

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker died")

    monkeypatch.setattr(w.services.queue, "send", dies)
    with pytest.raises(RuntimeError):
        await put(w, account, "b-1", BOOKING)
    monkeypatch.undo()
    assert await send_unqueued(w.services) == 0  # its own request may still be on its way
    w.clock.advance(61)
    assert await send_unqueued(w.services) == 1
    assert outbound(w) == [Outbound(account=account, booking="b-1", version=1)]
    assert await send_unqueued(w.services) == 0


async def test_bookings_that_waited_for_a_reconnect_are_queued_again_by_it(world):
    w, account = world
    await put(w, account, "b-1", BOOKING)                     # queued, not yet written
    await set_status(w.services, account, Status.NEEDS_RECONNECT, "invalid_grant")
    w.services.queue.clear("outbound")  # the writer left it pending
    _, token = await w.sign_in()
    assert (await w.confirm(account, token)).status == 200
    assert outbound(w) == [Outbound(account=account, booking="b-1", version=1)]
