"""Randomized runs of the event writer through the real parts (msgraph-sdk, msal, Key Vault client, Azurite)
against the simulator: seeded sequences of creates, updates, deletes, moves to another calendar and back, moves
out of the window and back, series created, cancelled occurrences and series deleted, with rounds in between
and faults interleaved (a 503 mid-round, a worker failing mid-round, evicted delta tokens, a looping next link,
a duplicated item, a page size that is not respected, duplicated and reordered notifications, a notification
handled while a round runs, notifications that never came), each seed under one setting of the simulator's
assumed switches for deleted series and cancelled occurrences. After the reconciler's last round (and the
breaker's confirmation, when a round held deletes):

- the store's projection equals the projection of what Graph's calendarView holds;
- the change feed has sequence numbers 1..N with no gap and no dedupe key twice; each event's rows go
  created, updated..., a removal (deleted, left_window, left_calendar), created again...; each event's last
  row says where the test left it; no event Graph still has was ever reported deleted; and each stored
  event's last row names the version the store holds.

20 seeds run in the default test command; ``SYNC_RANDOM_SEEDS=300 bash devstack/test.sh
tests/integration/test_sync_randomized.py`` runs more (docs/architecture.md records a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared.connect.connector import FIRST_ROUND_GRACE_SECONDS
from shared.errors import GraphError
from shared.messages import Sync
from shared.sync.availability import availability
from shared.sync.due import BUCKET_SECONDS
from shared.sync.events_api import list_events
from shared.sync.feed import read_changes
from shared.sync.mailbox import MailboxLease
from shared.sync.reconcile import plan_due
from tests.integration.sync_world import SyncWorld

# The connected-account stack of the connect tests (a fixture defined in that module).
from tests.integration.test_connect_real_clients import (
    ADELE,
    stack,  # noqa: F401
)

SEEDS = range(int(os.environ.get("SYNC_RANDOM_SEEDS", "20")))
DELTA_PATH = f"/v1.0/users/{ADELE}/calendarView/delta*"
FAULTS = ("none", "none", "503", "fail", "evict", "loop", "duplicate", "page_size", "burst", "concurrent")


async def round_with(world: SyncWorld, rng: random.Random, fault: str) -> None:
    if fault == "503":
        world.stack.control("faults", {"path": DELTA_PATH, "status": 503, "skip": rng.randrange(3), "count": 1})
    elif fault == "fail":  # more 500s than the gateway retries: the message fails mid-round, as a crash would
        world.stack.control("faults", {"path": DELTA_PATH, "status": 500, "skip": rng.randrange(3), "count": 4})
    elif fault == "evict":
        world.sim("POST", f"users/{ADELE}/delta-tokens/expire")
    elif fault == "loop":
        world.switches(delta_loop_page=2)
    elif fault == "duplicate":
        world.switches(delta_duplicate_item=True)
    elif fault == "page_size":
        world.switches(delta_page_size_override=rng.choice((1, 3, 8)))
    try:
        if fault == "concurrent":
            await round_beside_a_notification(world)
        elif fault == "burst":  # notifications duplicated and out of order: each runs or coalesces
            clock = world.stack.services.clock()
            for offset in rng.sample(range(-30, 5), 4):
                await world.writer.handle(Sync(account=world.account, reason="notification",
                                               enqueued_at=clock + offset))
            await world.sync("continue")
        else:
            await world.sync("notification")
    except GraphError:
        assert fault == "fail"
    finally:
        world.sim("DELETE", "faults")
        world.switches(delta_loop_page=0, delta_duplicate_item=False, delta_page_size_override=0)


async def round_beside_a_notification(world: SyncWorld) -> None:
    """A notification handled while a round holds the lease (its second page held back at the simulator):
    it sets ``dirty``; the round must still commit its pages and release the lease, and the wake-up runs."""
    services = world.stack.services
    lease = MailboxLease(services, world.account)
    world.stack.control("faults", {"path": DELTA_PATH, "status": "delay", "seconds": 0.5, "skip": 1, "count": 1})

    async def notify_while_held() -> bool:
        for _ in range(400):
            if (await lease.read()).held_at(services.clock()):
                await world.writer.handle(Sync(account=world.account, reason="notification",
                                               enqueued_at=services.clock()))
                return True
            await asyncio.sleep(0.005)
        return False

    notifier = asyncio.create_task(notify_while_held())
    await world.writer.handle(Sync(account=world.account, reason="notification"))
    assert await notifier
    state = await lease.read()
    assert state.held_by is None  # released, not left to expire
    await world.sync("continue")  # the one wake-up (delayed at the queue, so run here)


# The simulator's assumed switches the engine must be right under: how a deleted series and a cancelled
# occurrence show in delta (docs/devstack.md, "calendarView delta"). Each seed runs under one combination.
SWITCHES = [{"delta_series_delete": d, "delta_cancelled_occurrence": c}
            for d in ("occurrences", "master") for c in ("removed", "vanish")]
REMOVAL_KINDS = {"deleted", "moved", "left_window", "left_calendar"}


class Mailbox:
    """What the test did to the user's calendar: each single event's place (in the window, deleted, in the
    other calendar, far outside the window) and the live series."""

    def __init__(self, world: SyncWorld, rng: random.Random, seed: int) -> None:
        self.world, self.rng, self.seed = world, rng, seed
        self.primary, self.other = world.calendars()
        self.place: dict[str, str] = {}
        self.series: list[str] = []

    def where(self, place: str) -> list[str]:
        return sorted(i for i, p in self.place.items() if p == place)

    def pick(self, place: str) -> str | None:
        found = self.where(place)
        return self.rng.choice(found) if found else None

    async def act(self, step: int) -> None:
        rng, world = self.rng, self.world
        for _ in range(rng.randint(0, 4)):
            event_id = world.create(f"Seed {self.seed} event {len(self.place)}", day=rng.randint(1, 60),
                                    hour=rng.randint(6, 18))
            self.place[event_id] = "in"
        for event_id in rng.sample(self.where("in"), min(len(self.where("in")), rng.randint(0, 2))):
            world.edit(event_id, subject=f"Edited at step {step} ({rng.random():.4f})")
        action = rng.choice(("none", "delete", "delete", "away", "back", "far", "near", "series", "series",
                             "unseries", "cancel", "cancel"))
        if action == "delete" and (chosen := self.pick("in")):
            world.delete(chosen)
            self.place[chosen] = "deleted"
        elif action == "away" and (chosen := self.pick("in")):
            world.move(chosen, self.other)
            self.place[chosen] = "other"
        elif action == "back" and (chosen := self.pick("other")):
            world.move(chosen, self.primary)
            self.place[chosen] = "in"
        elif action == "far" and (chosen := self.pick("in")):
            world.edit(chosen, start=_at(900, 9), end=_at(900, 10))
            self.place[chosen] = "far"
        elif action == "near" and (chosen := self.pick("far")):
            world.edit(chosen, start=_at(rng.randint(1, 60), 9), end=_at(rng.randint(61, 62), 10))
            self.place[chosen] = "in"
        elif action == "series":
            self.series.append(world.series(f"Seed {self.seed} series", day=rng.randint(1, 50), count=6))
        elif action == "unseries" and self.series:
            world.delete(self.series.pop(rng.randrange(len(self.series))))
        elif action == "cancel" and self.series:
            stored = [r for r in await world.rows("ev:") if r.get("series_master_id") in self.series
                      and not r.get("tombstone")]
            if stored:
                with contextlib.suppress(requests.HTTPError):  # already cancelled or reshaped: nothing to do
                    world.cancel_occurrence(str(rng.choice(stored).get("id")))


def _at(day: int, hour: int) -> dict[str, str]:
    moment = (datetime.now(UTC) + timedelta(days=day)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


async def confirm_held_deletes(world: SyncWorld) -> None:
    """The breaker's confirming round, run now rather than after BREAKER_CONFIRM_MINUTES."""
    calendar = await world.calendar_id()
    cursor = await world.tables.get("mailbox", world.account, f"cursor:{calendar}")
    if cursor is not None and cursor.get("held"):
        await world.tables.merge("mailbox", cursor.with_data(confirm_due=0.0))
        await world.sync("breaker")


async def events_api(services, account: str, start: str, end: str) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    page: str | None = None
    while True:
        params = {"start": start, "end": end, "limit": "7", **({"page": page} if page else {})}
        body = json.loads((await list_events(services, account, params)).body)
        for e in body["events"]:
            assert e["id"] not in found, e["id"]
            found[e["id"]] = (e["type"], e["subject"], e["start"], e["end"])
        page = body["next_page"]
        if page is None:
            return found


def union(spans) -> list[tuple]:
    joined: list[list] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([start, end])
    return [(a, b) for a, b in joined if a < b]


def second(instant: str | None) -> str | None:
    return None if instant is None else instant[:19] + "Z"


@pytest.mark.parametrize("seed", SEEDS)
async def test_randomized_changes_deletes_moves_and_faults(stack, seed):  # noqa: F811
    await plan_due(stack.services)  # the app's first reconciler run
    account, confirmed = await stack.connect()
    assert confirmed.status == 200
    world = SyncWorld(stack, account, page_size=4)
    await world.drain()
    world.switches(**SWITCHES[seed % len(SWITCHES)])
    rng = random.Random(seed)
    mailbox = Mailbox(world, rng, seed)
    try:
        await world.sync("connect")
        for step in range(rng.randint(4, 8)):
            await mailbox.act(step)
            fault = rng.choice((*FAULTS, "dropped"))
            if fault != "dropped":  # "dropped": the notifications never came; the next round finds it all
                await round_with(world, rng, fault)
        # The reconciler's timer an interval later finds the mailbox due: its round, no faults.
        later = stack.services.settings.reconcile_interval_minutes * 60 + FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS
        assert (await world.reconcile(after_seconds=later)).due == (account,)
        await confirm_held_deletes(world)
    finally:
        world.switches(**SWITCHES[0])

    stored = await world.store_projection()
    assert stored == await world.graph_projection()  # thin occurrences filled from their series master
    live = {m for m in mailbox.series}
    assert all(e["subject"] for e in stored.values() if e["series_master_id"] in live)
    # The SaaS reading the events API over the window sees the same events, each once.
    cursor = (await world.tables.get("mailbox", account, f"cursor:{await world.calendar_id()}")).data
    api = await events_api(stack.services, account, cursor["window_start"], cursor["window_end"])
    assert api == {i: (e["type"], e["subject"], second(e["start"]), second(e["end"])) for i, e in stored.items()}
    # The change feed through its API from cursor 0, a page at a time: the same rows, once each, in order.
    read, cursor_at = [], 0
    while True:
        page = json.loads((await read_changes(stack.services, account, {"cursor": str(cursor_at),
                                                                         "limit": "9"})).body)
        read += [(c["seq"], c["kind"], c["event"], c["dedupe"]) for c in page["changes"]]
        cursor_at = page["cursor"]
        if not page["more"]:
            break
    rows = await world.feed()
    assert read == [(int(r.row.split(":")[1]), r.get("kind"), r.get("event"), r.get("dedupe")) for r in rows]
    # Availability over the window: the union of the busy events' times, merged independently here.
    answer = await availability(stack.services, account, {"start": cursor["window_start"],
                                                         "end": cursor["window_end"]})
    busy = json.loads(answer.body)["busy"]
    assert [(b["start"], b["end"]) for b in busy] == union(
        (second(e["start"]), second(e["end"])) for e in stored.values()
        if e["show_as"] == "busy" and not e["is_cancelled"] and not e["is_all_day"])
    feed = await world.feed()
    assert [int(r.row.split(":")[1]) for r in feed] == list(range(1, len(feed) + 1))
    keys = [r.get("dedupe") for r in feed]
    assert len(keys) == len(set(keys))
    history: dict[str, list[str]] = {}
    for row in feed:
        history.setdefault(str(row.get("event")), []).append(str(row.get("kind")))
    for event_id, kinds in history.items():  # created, updated..., a removal, created again, ...
        for before, after in zip(["gone", *kinds], kinds, strict=False):
            assert (after == "created") == (before == "gone" or before in REMOVAL_KINDS), (event_id, kinds)
    expected_last = {"in": {"created", "updated"}, "deleted": {"deleted"}, "other": {"left_calendar"},
                     "far": {"left_window"}}
    for event_id, place in mailbox.place.items():
        if event_id in history:
            assert history[event_id][-1] in expected_last[place], (event_id, place, history[event_id])
        else:
            assert place != "in", event_id
    for event_id, kinds in history.items():  # no event Graph still has was ever reported deleted
        if "deleted" in kinds:
            assert not await world.graph_has(event_id), (event_id, kinds)
    last_version = {r.get("event"): r.get("dedupe") for r in feed}
    for row in await world.rows("ev:"):
        if not row.get("tombstone"):
            version = f"{row.get('id')}|{row.get('last_modified') or ''}|{row.get('change_key') or ''}"
            assert last_version[row.get("id")] == version
