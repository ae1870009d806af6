"""The event writer's incremental rounds on the in-memory stores and a fake delta source: checkpoints,
resumption, the fenced lease, coalescing and slices ("Use delta query to track changes in Microsoft Graph
data", https://learn.microsoft.com/en-us/graph/delta-query-overview). The same behaviour through the real
SDK, Azurite and the simulator is in tests/integration/test_event_writer_simulator.py."""

from __future__ import annotations

import dataclasses
import json

import pytest

from shared.errors import ResyncRequired
from shared.graph.wire import decode_page
from shared.messages import Sync
from shared.store.memory import InMemoryWorkQueue
from shared.store.ports import MAILBOX, Row
from shared.sync.mailbox import LEASE, LeaseState, MailboxLease, cursor_key, event_key
from shared.sync.projection import StoredEvent, projection
from shared.sync.writer import Decision, EventWriter, decide
from tests.unit.delta_fake import PRIMARY, FakeMailbox, event
from tests.unit.test_connect import World


class Crash(Exception):
    """A worker dying mid-round (as far as the code can tell: the invocation ends with an error)."""


@pytest.fixture
async def setup():
    world = World()
    account, token = await world.sign_in()
    assert (await world.confirm(account, token)).status == 200
    queue(world).clear("sync")  # confirm queued the first sync; each test sends its own
    mailbox = FakeMailbox(page_size=2)
    for n in range(5):
        mailbox.put(event(n))
    return world, account, mailbox, EventWriter(world.services, mailbox, mailbox)


def queue(world) -> InMemoryWorkQueue:
    assert isinstance(world.services.queue, InMemoryWorkQueue)
    return world.services.queue


def rows(world, prefix: str) -> list[Row]:
    return sorted((r for r in world.services.tables.rows(MAILBOX) if r.row.startswith(prefix)), key=lambda r: r.row)


def feed(world) -> list[tuple[str, str]]:
    return [(r.get("kind"), r.get("event")) for r in rows(world, "feed:")]


def stored_projection(world) -> dict[str, dict]:
    return {r.get("id"): projection(StoredEvent.from_data(dict(r.data))) for r in rows(world, "ev:")
            if not r.get("tombstone")}


def mailbox_projection(mailbox: FakeMailbox) -> dict[str, dict]:
    return {i: projection(StoredEvent.from_graph(PRIMARY, decode_page(json.dumps({"value": [e]}).encode()).value[0]))
            for i, e in mailbox.events.items()}


async def run_until_idle(world, writer, account, reason="notification") -> int:
    """Run the message and every continue it sends; returns how many messages ran."""
    await writer.handle(Sync(account=account, reason=reason))
    ran = 1
    while True:
        pending = [json.loads(b) for b in queue(world).all_bodies("sync")]
        queue(world).clear("sync")
        if not pending:
            return ran
        for body in pending:
            await writer.handle(Sync(account=account, reason=body["reason"]))
            ran += 1


async def test_a_first_round_stores_every_event_with_one_created_row_each(setup):
    world, account, mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert feed(world) == [("created", f"ev{n:05d}") for n in range(5)]
    assert [r.row for r in rows(world, "feed:")] == [f"feed:{n:016d}" for n in range(1, 6)]  # gap-free from 1
    cursor = (await world.services.tables.get(MAILBOX, account, cursor_key(PRIMARY))).data
    assert cursor["delta_link"].startswith("delta:")
    assert not cursor.get("next_link")
    lease = LeaseState.from_row(await world.services.tables.get(MAILBOX, account, LEASE))
    assert lease.held_by is None
    assert lease.rounds == 1
    assert lease.feed_next == 6
    assert mailbox.fetched == ["first", "next:r0@2", "next:r0@4"]


async def test_the_next_round_writes_only_what_changed(setup):
    world, account, mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    untouched = await world.services.tables.get(MAILBOX, account, event_key(PRIMARY, "ev00000"))
    mailbox.put(event(1, subject="Moved"))
    mailbox.put(event(7))
    mailbox.put(event(2))  # reported by delta but unchanged: no write, no feed row
    world.clock.advance(60)
    await writer.handle(Sync(account=account, reason="notification"))
    assert feed(world)[5:] == [("updated", "ev00001"), ("created", "ev00007")]
    assert (await world.services.tables.get(MAILBOX, account, event_key(PRIMARY, "ev00000"))).etag == untouched.etag
    assert stored_projection(world) == mailbox_projection(mailbox)


async def test_a_worker_killed_between_pages_resumes_without_duplicates(setup):
    world, account, mailbox, writer = setup

    def crash_on_second_page(what: str) -> None:
        if what == "next:r0@2":
            raise Crash()

    mailbox.before_fetch = crash_on_second_page
    with pytest.raises(Crash):
        await writer.handle(Sync(account=account, reason="connect"))
    assert feed(world) == [("created", "ev00000"), ("created", "ev00001")]
    mailbox.before_fetch = None
    await writer.handle(Sync(account=account, reason="connect"))
    assert mailbox.fetched.count("first") == 1  # resumed from the stored next link
    assert feed(world) == [("created", f"ev{n:05d}") for n in range(5)]
    assert stored_projection(world) == mailbox_projection(mailbox)


async def test_a_page_applied_twice_changes_nothing(setup):
    """Killed after a page's rows landed but before its checkpoint: the page comes again."""
    world, account, _mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    cursor = await world.services.tables.get(MAILBOX, account, cursor_key(PRIMARY))
    before = feed(world)
    # Put the cursor back one page, as if the last commit had not happened.
    await world.services.tables.upsert(MAILBOX, cursor.with_data(next_link="next:r0@2", delta_link=""))
    await writer.handle(Sync(account=account, reason="continue"))
    assert feed(world) == before


async def test_the_same_id_twice_in_a_page_is_one_change(setup):
    world, account, mailbox, writer = setup
    mailbox.extra_items = {0: [event(0, subject="Second copy")]}
    await writer.handle(Sync(account=account, reason="connect"))
    assert feed(world).count(("created", "ev00000")) == 1
    (row,) = [r for r in rows(world, "ev:") if r.get("id") == "ev00000"]
    assert row.get("subject") == "Second copy"  # the last copy counts


async def test_an_item_again_later_in_a_fresh_first_round_is_not_created_twice(setup):
    """A first round over an empty calendar inserts without reading; the same item on a later page (delta
    may send an entity more than once in a round) meets its row and that page is applied the careful way."""
    world, account, mailbox, writer = setup
    mailbox.extra_items = {2: [event(0)]}  # the first page's first event, again on the last page
    await writer.handle(Sync(account=account, reason="connect"))
    assert feed(world) == [("created", f"ev{n:05d}") for n in range(5)]
    cursor = await world.services.tables.get(MAILBOX, account, cursor_key(PRIMARY))
    assert not cursor.get("fresh")  # only a calendar's first round is


async def test_a_looping_next_link_restarts_the_round_from_its_delta_link(setup):
    world, account, mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    mailbox.put(event(1, subject="Changed"))
    for n in range(10, 14):
        mailbox.put(event(n))
    mailbox.loop_at = 1
    await writer.handle(Sync(account=account, reason="continue"))
    entries = await world.services.journal.recent(account)
    assert any("round restarted: the next link points at the page it came with" in (e.detail or "")
               for e in entries)
    mailbox.loop_at = None
    await run_until_idle(world, writer, account, reason="continue")
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert feed(world)[5:].count(("updated", "ev00001")) == 1


async def test_a_dead_delta_token_starts_a_new_round_over_the_same_window(setup):
    world, account, mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    window = (await world.services.tables.get(MAILBOX, account, cursor_key(PRIMARY))).get("window_start")

    def gone(what: str) -> None:
        if what.startswith("delta:"):
            raise ResyncRequired("gone", status=410, code="SyncStateNotFound")

    mailbox.before_fetch = gone
    mailbox.put(event(8))
    world.clock.advance(3 * 86400)
    await writer.handle(Sync(account=account, reason="continue"))
    cursor = (await world.services.tables.get(MAILBOX, account, cursor_key(PRIMARY))).data
    assert cursor["window_start"] == window
    assert cursor["delta_link"]
    assert feed(world)[5:] == [("created", "ev00008")]  # the rest was unchanged


async def test_a_removal_is_checked_and_applied_at_the_end_of_the_round_and_unknown_ids_are_ignored(setup):
    world, account, mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    mailbox.delete("ev00003")
    mailbox.log.append("never-stored")  # a removal for an id this store never had
    await writer.handle(Sync(account=account, reason="continue"))
    assert mailbox.located == ["ev00003"]  # Graph was asked about the stored one only
    assert rows(world, "removed:") == []
    assert stored_projection(world) == mailbox_projection(mailbox)
    (tombstone,) = [r for r in rows(world, "ev:") if r.get("tombstone")]
    assert tombstone.row == event_key(PRIMARY, "ev00003")
    assert tombstone.get("subject") is None  # a tombstone keeps no content
    assert not [r for r in rows(world, "tb:") if r.get("event") == "ev00003"]
    assert feed(world)[-1] == ("deleted", "ev00003")


async def test_a_large_first_sync_proceeds_in_slices(setup):
    world, account, mailbox, writer = setup
    world.services.settings = dataclasses.replace(world.services.settings, slice_max_pages=1)
    ran = await run_until_idle(world, writer, account, reason="connect")
    assert ran == 3  # three pages, one per invocation
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert [r.row for r in rows(world, "feed:")] == [f"feed:{n:016d}" for n in range(1, 6)]


async def test_a_message_finding_the_lease_held_sets_dirty_and_only_the_flipper_wakes(setup):
    world, account, mailbox, writer = setup
    holder = await MailboxLease(world.services, account).acquire()
    assert holder is not None
    for _ in range(5):
        await writer.handle(Sync(account=account, reason="notification"))
    assert mailbox.fetched == []
    wakeups = [json.loads(b) for b in queue(world).all_bodies("sync")]
    assert [w["reason"] for w in wakeups] == ["continue"]
    assert (await MailboxLease(world.services, account).read()).dirty


async def test_a_message_the_last_round_covers_exits_without_a_graph_call(setup):
    world, account, mailbox, writer = setup
    sent = world.clock()
    world.clock.advance(60)
    await writer.handle(Sync(account=account, reason="connect"))
    fetched = list(mailbox.fetched)
    await writer.handle(Sync(account=account, reason="notification", enqueued_at=sent))
    assert mailbox.fetched == fetched
    assert queue(world).all_bodies("sync") == []


async def test_a_lost_lease_writes_nothing_more(setup):
    """A slow holder whose lease expired and was taken: its next commit fails, nothing of it lands."""
    world, account, mailbox, writer = setup

    original_follow = mailbox.follow

    async def follow_then_steal(account_id, calendar, link):
        page = await original_follow(account_id, calendar, link)
        if link == "next:r0@2":
            world.clock.advance(world.services.settings.lease_seconds + 1)
            assert await MailboxLease(world.services, account).acquire() is not None  # the thief
        return page

    mailbox.follow = follow_then_steal
    await writer.handle(Sync(account=account, reason="connect"))
    assert feed(world) == [("created", "ev00000"), ("created", "ev00001")]
    entries = await world.services.journal.recent(account)
    assert any("lease lost" in (e.detail or "") for e in entries)


async def test_a_notification_during_a_round_costs_one_more_round_not_the_lease(setup):
    """The notification sets ``dirty`` on the lease row mid-round: the round still commits and releases,
    and the one wake-up runs the next round at once, not after the lease's expiry."""
    world, account, mailbox, writer = setup
    original_follow = mailbox.follow

    async def follow_and_notify(account_id, calendar, link):
        page = await original_follow(account_id, calendar, link)
        if link == "next:r0@2":
            await writer.handle(Sync(account=account, reason="notification", enqueued_at=world.clock()))
        return page

    mailbox.follow = follow_and_notify
    await writer.handle(Sync(account=account, reason="connect"))
    mailbox.follow = original_follow
    state = await MailboxLease(world.services, account).read()
    assert (state.held_by, state.dirty, state.rounds) == (None, True, 1)
    assert stored_projection(world) == mailbox_projection(mailbox)
    assert [json.loads(b)["reason"] for b in queue(world).all_bodies("sync")] == ["continue"]
    entries = await world.services.journal.recent(account)
    assert not any("lease lost" in (e.detail or "") for e in entries)


@pytest.mark.parametrize(("reason", "sent", "last", "held", "expected"), [
    ("notification", 100.0, 200.0, False, Decision.SKIP),     # sent well before the last round started
    ("notification", 195.0, 200.0, False, Decision.DEFER),    # just before: replication may lag; wake later
    ("notification", 250.0, 200.0, False, Decision.RUN),      # after the last round started
    ("notification", 250.0, 200.0, True, Decision.DEFER),     # a round runs now
    ("notification", None, 200.0, False, Decision.RUN),       # no insertion time: run
    ("continue", 100.0, 200.0, True, Decision.RUN),           # the round's own message
])
def test_decide(reason, sent, last, held, expected):
    lease = LeaseState(held_by="x" if held else None, running_until=1000.0 if held else 0.0, dirty=False,
                       feed_next=1, last_round_started=last, last_round_completed=last, last_good_sync=last,
                       rounds=1, etag=None)
    assert decide(Sync(account="a" * 26, reason=reason, enqueued_at=sent), lease, 300.0, 10.0) is expected
