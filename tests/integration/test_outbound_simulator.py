"""The outbound writer through the real parts against the simulator: a booking becomes one verified Outlook
event, follows an update, survives a create whose answer was lost (found again by its extended property,
never created twice), and goes when cancelled; no invitation is sent ("Create event",
https://learn.microsoft.com/en-us/graph/api/user-post-events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.bookings.api import cancel_booking, get_booking, put_booking
from shared.bookings.writer import OutboundWriter
from shared.messages import Outbound
from tests.integration.sync_world import SyncWorld, connected_world
from tests.integration.test_connect_real_clients import stack  # noqa: F401


@pytest.fixture
async def world(stack):  # noqa: F811
    return await connected_world(stack)


def booking(version: int, subject: str) -> bytes:
    start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    wall = "%Y-%m-%dT%H:%M:%S"
    return json.dumps({"version": version, "subject": subject,
                       "start": {"dateTime": start.strftime(wall), "timeZone": "W. Europe Standard Time"},
                       "end": {"dateTime": (start + timedelta(minutes=45)).strftime(wall),
                               "timeZone": "W. Europe Standard Time"}}).encode()


async def status(world: SyncWorld, booking_id: str) -> dict:
    return json.loads((await get_booking(world.stack.services, world.account, booking_id)).body)


async def in_outlook(world: SyncWorld, subject: str) -> list[dict]:
    return [e for e in (await world.graph_projection()).values() if e["subject"] == subject]


async def test_a_booking_becomes_one_verified_event_follows_an_update_and_goes_when_cancelled(world):
    await world.sync("connect")  # the primary calendar is known
    writer = OutboundWriter(world.stack.services, world.gateway)
    services = world.stack.services
    assert (await put_booking(services, world.account, "b-1", booking(1, "Haircut"))).status == 202
    await writer.handle(Outbound(account=world.account, booking="b-1", version=1))
    await writer.handle(Outbound(account=world.account, booking="b-1", version=1))  # delivered twice
    done = await status(world, "b-1")
    assert (done["status"], done["attempts"]) == ("verified", 2)
    (event,) = await in_outlook(world, "Haircut")
    assert event["id"] == done["event_id"]
    assert event["zone"] == "Europe/Berlin"
    assert event["local_start"].endswith("T09:00:00")
    assert sum(world.stack.sim.state.invitations.values()) == 0  # attendee-safe: no invitation went out

    assert (await put_booking(services, world.account, "b-1", booking(2, "Haircut and colour"))).status == 202
    await writer.handle(Outbound(account=world.account, booking="b-1", version=1))  # stale: skipped
    await writer.handle(Outbound(account=world.account, booking="b-1", version=2))
    assert await in_outlook(world, "Haircut") == []
    (moved,) = await in_outlook(world, "Haircut and colour")
    assert moved["id"] == done["event_id"]

    assert (await cancel_booking(services, world.account, "b-1")).status == 202
    await writer.handle(Outbound(account=world.account, booking="b-1", version=2))
    assert (await status(world, "b-1"))["status"] == "cancelled"
    assert await in_outlook(world, "Haircut and colour") == []


async def test_a_create_whose_answer_was_lost_is_found_again_not_duplicated(world):
    await world.sync("connect")
    writer = OutboundWriter(world.stack.services, world.gateway)
    assert (await put_booking(world.stack.services, world.account, "b-2", booking(1, "Lost answer"))).status == 202
    world.stack.control("faults", {"path": "*/calendars/*/events", "method": "POST", "status": "timeout",
                                   "after": True, "count": 1, "seconds": 1})
    with pytest.raises(Exception):  # noqa: B017, PT011 - the host retries whatever the transport raised
        await writer.handle(Outbound(account=world.account, booking="b-2", version=1))
    await writer.handle(Outbound(account=world.account, booking="b-2", version=1))  # the queue's retry
    done = await status(world, "b-2")
    assert done["status"] == "verified"
    (event,) = await in_outlook(world, "Lost answer")
    assert event["id"] == done["event_id"]


async def test_a_created_event_that_cannot_be_read_back_is_found_by_its_property(world):
    """201, then 404 on the read-back (reported: "created id cannot be found"; the simulator's "hidden"
    fault): the writer looks the event up by the booking's extended property and verifies that one."""
    await world.sync("connect")
    writer = OutboundWriter(world.stack.services, world.gateway)
    assert (await put_booking(world.stack.services, world.account, "b-3", booking(1, "Hidden"))).status == 202
    world.stack.control("faults", {"path": "*/calendars/*/events", "method": "POST", "status": "hidden",
                                   "reads": 1})
    await writer.handle(Outbound(account=world.account, booking="b-3", version=1))
    done = await status(world, "b-3")
    (event,) = await in_outlook(world, "Hidden")
    assert (done["status"], done["event_id"], done["attempts"]) == ("verified", event["id"], 1)
    misses = [r for r in world.stack.sim.state.requests if r.method == "GET" and r.status == 404
              and r.path.endswith(event["id"])]
    assert len(misses) == 1  # the read-back did miss it


async def test_throttling_and_unavailability_storms_end_in_one_event(world):
    """429s on the create are waited out inside the call (a 429 is refused before any work: "Microsoft Graph
    throttling guidance", https://learn.microsoft.com/en-us/graph/throttling); a 503 is not retried inline (a
    create might have happened), the queue's retry looks for the event first, then creates it once."""
    await world.sync("connect")
    writer = OutboundWriter(world.stack.services, world.gateway)
    services = world.stack.services
    assert (await put_booking(services, world.account, "b-4", booking(1, "Throttled"))).status == 202
    world.stack.control("faults", {"path": "*/calendars/*/events", "method": "POST", "status": 429, "count": 3,
                                   "retryAfter": 0})
    await writer.handle(Outbound(account=world.account, booking="b-4", version=1))
    assert (await status(world, "b-4"))["status"] == "verified"
    assert len(await in_outlook(world, "Throttled")) == 1
    assert sum(1 for r in world.stack.sim.state.requests if r.method == "POST" and r.status == 429) == 3

    assert (await put_booking(services, world.account, "b-5", booking(1, "Unavailable"))).status == 202
    world.stack.control("faults", {"path": "*/calendars/*/events", "method": "POST", "status": 503, "count": 1})
    with pytest.raises(Exception):  # noqa: B017, PT011 - the queue retries it
        await writer.handle(Outbound(account=world.account, booking="b-5", version=1))
    await writer.handle(Outbound(account=world.account, booking="b-5", version=1))
    done = await status(world, "b-5")
    assert (done["status"], done["attempts"]) == ("verified", 2)
    assert len(await in_outlook(world, "Unavailable")) == 1
    assert sum(1 for r in world.stack.sim.state.requests if r.method == "POST" and r.status == 503) == 1


async def test_versions_out_of_order_and_a_worker_killed_after_the_create(world, monkeypatch):
    await world.sync("connect")
    writer = OutboundWriter(world.stack.services, world.gateway)
    services = world.stack.services
    # Version 3 is handled before version 2's message: 2 is stale and changes nothing.
    assert (await put_booking(services, world.account, "b-6", booking(2, "Second"))).status == 202
    assert (await put_booking(services, world.account, "b-6", booking(3, "Third"))).status == 202
    await writer.handle(Outbound(account=world.account, booking="b-6", version=3))
    await writer.handle(Outbound(account=world.account, booking="b-6", version=2))
    assert [e["subject"] for e in await in_outlook(world, "Third")] == ["Third"]
    assert await in_outlook(world, "Second") == []

    # The worker dies after Graph created the event, before the event id was recorded.
    assert (await put_booking(services, world.account, "b-7", booking(1, "Killed"))).status == 202
    merge = OutboundWriter._merge

    async def dies_on_written(self, row, **data):
        if data.get("status") == "written":
            raise SystemExit("worker killed")
        await merge(self, row, **data)

    monkeypatch.setattr(OutboundWriter, "_merge", dies_on_written)
    with pytest.raises(SystemExit):
        await writer.handle(Outbound(account=world.account, booking="b-7", version=1))
    monkeypatch.undo()
    await writer.handle(Outbound(account=world.account, booking="b-7", version=1))  # the message comes back
    done = await status(world, "b-7")
    (event,) = await in_outlook(world, "Killed")
    assert (done["status"], done["event_id"]) == ("verified", event["id"])
