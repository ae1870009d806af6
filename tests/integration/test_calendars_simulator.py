"""More calendars than the primary one, through the real parts against the simulator: the SaaS lists the
mailbox's calendars and selects one ("List calendars", https://learn.microsoft.com/en-us/graph/api/user-list-calendars),
its events sync with their own cursor, an event moved between the two keeps its immutable id and is reported
`moved` (then `created` in the other), and a calendar deselected leaves with `left_calendar` rows."""

from __future__ import annotations

import json

import pytest

from shared.sync.calendars import list_calendars, select_calendars
from shared.sync.events_api import list_events
from tests.integration.sync_world import connected_world
from tests.integration.test_connect_real_clients import (
    ADELE,
    stack,  # noqa: F401
)


@pytest.fixture
async def world(stack):  # noqa: F811
    return await connected_world(stack)


def feed_of(rows) -> list[tuple[str, str, str, str | None]]:
    return [(r.get("kind"), r.get("event"), r.get("calendar"), r.get("to")) for r in rows]


async def test_select_sync_move_between_and_deselect_a_calendar(world):
    primary, other = world.calendars()
    source = world.writer.source
    services = world.stack.services
    listed = json.loads((await list_calendars(services, source, world.account)).body)["calendars"]
    assert {(c["id"], c["primary"], c["sync"]) for c in listed} >= {(primary, True, True), (other, False, False)}

    refused = await select_calendars(services, source, world.account, b'{"calendars": ["not-a-calendar"]}')
    assert (refused.status, json.loads(refused.body)["error"]["field"]) == (400, "calendars")
    chosen = await select_calendars(services, source, world.account, json.dumps({"calendars": [other]}).encode())
    assert chosen.status == 200
    assert {c["id"] for c in json.loads(chosen.body)["calendars"] if c["sync"]} == {primary, other}

    stays = world.create("Stays", day=3)
    travels = world.create("Travels", day=4)
    there = world.create("Lives there", day=5)
    world.move(there, other)
    await world.sync("manual")
    stored = await world.store_projection()
    assert {stored[i]["calendar"] for i in (stays, travels)} == {primary}
    assert stored[there]["calendar"] == other

    # Who: whose mailbox, whose calendar, whose token, on the event's row and on the round's journal entries.
    row = await world.tables.get("mailbox", world.account, f"ev:{other}:{there}")
    assert (row.get("mailbox"), row.get("calendar_owner"), row.get("acting_user")) == (
        ADELE, "adele@contoso.test", ADELE)
    entries = [e async for e in world.tables.query("journal", world.account)]
    delta_calls = [e for e in entries if e.get("operation") == "graph" and e.get("calendar") == other]
    assert delta_calls
    assert all((e.get("mailbox"), e.get("calendar_owner"), e.get("acting_user")) == (
        ADELE, "adele@contoso.test", ADELE) for e in delta_calls)

    world.move(travels, other)
    await world.sync("manual")
    feed = feed_of(await world.feed())
    assert ("moved", travels, primary, other) in feed
    assert ("created", travels, other, None) in feed
    assert not [f for f in feed if f[0] == "deleted"]
    window = (await world.tables.get("mailbox", world.account, f"cursor:{other}")).data
    seen = json.loads((await list_events(services, world.account, {
        "start": window["window_start"], "end": window["window_end"], "calendar": other})).body)["events"]
    assert {e["id"] for e in seen} == {travels, there}  # the same immutable id, now in the other calendar

    dropped = await select_calendars(services, source, world.account, b'{"calendars": []}')
    assert dropped.status == 200
    await world.sync("manual")
    feed = feed_of(await world.feed())
    assert {(k, e) for k, e, c, _ in feed if c == other and k == "left_calendar"} == {
        ("left_calendar", travels), ("left_calendar", there)}
    assert {e["calendar"] for e in (await world.store_projection()).values()} == {primary}
    assert await world.tables.get("mailbox", world.account, f"cursor:{other}") is None
