"""Deletions on the in-memory stores and the fake delta source: staged removals checked and applied at the end
of the round, tombstones, the mass-deletion breaker with its confirming round and the operator's decision, and
full rounds' sweep across a crash. The same through the real SDK, Azurite and the simulator is in
tests/integration/test_removals_simulator.py."""

from __future__ import annotations

import json

import pytest

import shared.sync.removals as removals
from shared.accounts.model import Status
from shared.accounts.repository import AccountRepository
from shared.errors import ResyncRequired
from shared.messages import Sync
from shared.store.ports import MAILBOX
from shared.sync.breaker import breaker_route
from shared.sync.mailbox import cursor_key, event_key
from shared.sync.writer import EventWriter
from tests.unit.delta_fake import PRIMARY, FakeMailbox, event
from tests.unit.test_connect import World
from tests.unit.test_event_writer import Crash, feed, mailbox_projection, queue, rows, stored_projection


async def make(events: int) -> tuple[World, str, FakeMailbox, EventWriter]:
    world = World()
    account, token = await world.sign_in()
    assert (await world.confirm(account, token)).status == 200
    queue(world).clear("sync")
    mailbox = FakeMailbox(page_size=5)
    for n in range(events):
        mailbox.put(event(n))
    writer = EventWriter(world.services, mailbox, mailbox)
    await run_visible(world, writer, account, Sync(account=account, reason="connect", full=True))
    return world, account, mailbox, writer


async def run_visible(world: World, writer: EventWriter, account: str, first: Sync | None = None) -> None:
    """Run ``first`` and then every message visible now (delayed ones stay queued), until none is."""
    if first is not None:
        await writer.handle(first)
    while True:
        bodies = queue(world).take_visible("sync")
        if not bodies:
            return
        for body in bodies:
            data = json.loads(body)
            await writer.handle(Sync(account=account, reason=data["reason"], full=data.get("full", False)))


async def cursor(world: World, account: str) -> dict:
    row = await world.services.tables.get(MAILBOX, account, cursor_key(PRIMARY))
    assert row is not None
    return dict(row.data)


async def status(world: World, account: str) -> tuple[Status, str | None]:
    found = await AccountRepository(world.services.tables).get(account)
    assert found is not None
    return found.status, found.reason


async def notify(world: World, writer: EventWriter, account: str) -> None:
    world.clock.advance(60)
    await run_visible(world, writer, account, Sync(account=account, reason="notification"))


async def test_deleting_a_few_of_a_small_calendar_is_not_a_mass_deletion():
    world, account, mailbox, writer = await make(5)
    for n in range(3):
        mailbox.delete(f"ev{n:05d}")
    await notify(world, writer, account)
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert feed(world)[-3:] == [("deleted", f"ev{n:05d}") for n in range(3)]
    assert await status(world, account) == (Status.ACTIVE, None)


async def test_a_mass_deletion_is_held_then_applied_by_the_confirming_full_round():
    world, account, mailbox, writer = await make(12)
    before = await cursor(world, account)
    for n in range(10):
        mailbox.delete(f"ev{n:05d}")
    await notify(world, writer, account)
    # Held: every event still stored, the account degraded, the delta link where it was.
    assert len(stored_projection(world)) == 12
    assert all(r.get("held") and r.get("kind") == "deleted" for r in rows(world, "removed:"))
    assert len(rows(world, "removed:")) == 10
    assert await status(world, account) == (Status.DEGRADED, "breaker")
    held = await cursor(world, account)
    assert held["delta_link"] == before["delta_link"]
    assert held["held"]
    pending = [json.loads(b) for b in queue(world).all_bodies("sync")]
    assert pending == [{"v": 1, "kind": "sync", "account": account, "reason": "breaker", "full": True}]
    assert not [k for k, _ in feed(world) if k == "deleted"]
    asked = len(mailbox.located)

    # A round before the confirmation is due reads the same removals again and asks Graph nothing new.
    await notify(world, writer, account)
    assert len(mailbox.located) == asked
    assert len(stored_projection(world)) == 12

    world.clock.advance(world.services.settings.breaker_confirm_minutes * 60)
    await run_visible(world, writer, account)
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert sorted(e for k, e in feed(world) if k == "deleted") == [f"ev{n:05d}" for n in range(10)]
    assert await status(world, account) == (Status.ACTIVE, None)
    assert rows(world, "removed:") == []
    done = await cursor(world, account)
    assert not done["held"]
    assert done["delta_link"] != before["delta_link"]


async def test_an_empty_read_never_confirms_and_an_operator_can():
    world, account, mailbox, writer = await make(12)
    for n in range(12):
        mailbox.delete(f"ev{n:05d}")
    await notify(world, writer, account)
    world.clock.advance(world.services.settings.breaker_confirm_minutes * 60)
    await run_visible(world, writer, account)  # the confirming full round reads nothing
    assert len(stored_projection(world)) == 12
    assert await status(world, account) == (Status.DEGRADED, "breaker")
    entries = [e.detail or "" for e in await world.services.journal.recent(account)]
    assert any("the confirming round could not confirm" in d for d in entries)
    # Another confirmation later, and until then rounds stay incremental (not a full round per notification).
    assert [json.loads(b)["reason"] for b in queue(world).all_bodies("sync")] == ["breaker"]
    firsts = mailbox.fetched.count("first")
    await notify(world, writer, account)
    assert mailbox.fetched.count("first") == firsts

    answer = await breaker_route(world.services, account, b'{"action": "confirm"}')
    assert answer.status == 200
    assert json.loads(answer.body) == {"account": account, "action": "confirm", "calendars": 1, "removals": 12}
    assert stored_projection(world) == {}
    assert len([k for k, _ in feed(world) if k == "deleted"]) == 12
    assert await status(world, account) == (Status.ACTIVE, None)
    again = await breaker_route(world.services, account, b'{"action": "confirm"}')
    assert again.status == 409
    assert json.loads(again.body)["error"]["code"] == "nothing_held"


async def test_an_operator_rejects_held_deletes_and_they_are_not_raised_again():
    world, account, mailbox, writer = await make(12)
    for n in range(10):
        mailbox.delete(f"ev{n:05d}")
    await notify(world, writer, account)
    reached = (await cursor(world, account))["held_delta_link"]
    answer = await breaker_route(world.services, account, b'{"action": "reject"}')
    assert answer.status == 200
    assert len(stored_projection(world)) == 12
    assert rows(world, "removed:") == []
    assert (await cursor(world, account))["delta_link"] == reached
    assert await status(world, account) == (Status.ACTIVE, None)
    queue(world).clear("sync")  # the confirmation that is no longer needed
    await notify(world, writer, account)
    assert await status(world, account) == (Status.ACTIVE, None)
    assert len(stored_projection(world)) == 12


@pytest.mark.parametrize(("body", "code", "http"), [
    (b'{"action": "maybe"}', "invalid_field", 400), (b"[]", "invalid_body", 400), (b"{", "invalid_json", 400)])
async def test_the_breaker_route_refuses_bad_requests(body, code, http):
    world, account, _mailbox, _writer = await make(1)
    answer = await breaker_route(world.services, account, body)
    assert answer.status == http
    assert json.loads(answer.body)["error"]["code"] == code
    unknown = await breaker_route(world.services, "nobody", b'{"action": "reject"}')
    assert unknown.status == 404


async def test_a_tombstone_holds_against_a_late_copy_and_yields_to_a_later_version():
    world, account, mailbox, writer = await make(3)
    late = event(1)  # the version stored before the delete
    mailbox.delete("ev00001")
    await notify(world, writer, account)
    assert feed(world)[-1] == ("deleted", "ev00001")
    mailbox.extra_items = {0: [late]}  # delta sends the old version again
    mailbox.put(event(2, subject="Touch"))
    await notify(world, writer, account)
    assert "ev00001" not in stored_projection(world)
    assert feed(world)[-1] == ("updated", "ev00002")
    mailbox.extra_items = {}
    back = {**event(1, subject="Restored"), "lastModifiedDateTime": "2026-12-05T00:00:00Z"}
    mailbox.put(back)
    await notify(world, writer, account)
    assert feed(world)[-1] == ("created", "ev00001")
    assert stored_projection(world) == mailbox_projection(mailbox)


async def test_a_dead_delta_token_runs_a_full_round_whose_sweep_survives_a_crash(monkeypatch):
    world, account, mailbox, writer = await make(12)
    monkeypatch.setattr(removals, "CHUNK", 2)
    # Gone while the token was dead: the sweep must find them (no @removed arrives for them).
    for n in (1, 4, 7):
        mailbox.events.pop(f"ev{n:05d}")

    def gone(what: str) -> None:
        if what.startswith("delta:"):
            raise ResyncRequired("gone", status=410, code="syncStateNotFound")

    mailbox.before_fetch = gone
    sweeps = 0
    real_sweep = removals.Settlement._sweep

    async def crash_on_second(self, cursor):
        nonlocal sweeps
        sweeps += 1
        if sweeps == 2:
            raise Crash()
        await real_sweep(self, cursor)

    monkeypatch.setattr(removals.Settlement, "_sweep", crash_on_second)
    world.clock.advance(60)
    with pytest.raises(Crash):
        await writer.handle(Sync(account=account, reason="notification"))
    assert (await cursor(world, account))["phase"] == "sweep"
    mailbox.before_fetch = None
    await run_visible(world, writer, account, Sync(account=account, reason="continue"))
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert sorted(e for k, e in feed(world) if k == "deleted") == ["ev00001", "ev00004", "ev00007"]
    assert not (await cursor(world, account)).get("phase")
    tombstone = await world.services.tables.get(MAILBOX, account, event_key(PRIMARY, "ev00004"))
    assert tombstone is not None
    assert tombstone.get("tombstone")


async def test_the_window_moves_monthly_and_what_falls_out_is_left_window():
    world, account, mailbox, writer = await make(12)
    first = await cursor(world, account)
    assert first["window_start"].endswith("-01T00:00:00Z")  # month-aligned
    early = {**event(90), "start": {"dateTime": "2026-08-25T09:00:00.0000000", "timeZone": "UTC"},
             "end": {"dateTime": "2026-08-25T10:00:00.0000000", "timeZone": "UTC"}}
    mailbox.put(early)
    await notify(world, writer, account)
    assert ("created", "ev00090") in feed(world)
    world.clock.advance(10 * 86400)  # still covered: no new window, no full round
    await notify(world, writer, account)
    assert (await cursor(world, account))["window_start"] == first["window_start"]
    world.clock.advance(40 * 86400)  # SYNC_WINDOW_FUTURE_DAYS ahead now passes the window's end: it moves
    asked = len(mailbox.located)
    await notify(world, writer, account)
    moved = await cursor(world, account)
    assert moved["window_start"] > first["window_start"]
    assert feed(world)[-1] == ("left_window", "ev00090")
    assert len(mailbox.located) == asked  # told by its times: no question to Graph
    assert await status(world, account) == (Status.ACTIVE, None)
    assert moved["full_gen"] == first["full_gen"] + 1  # a full round over the new window
