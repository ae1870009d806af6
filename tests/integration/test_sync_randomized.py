"""Randomized runs of the event writer through the real parts (msgraph-sdk, msal, Key Vault client, Azurite)
against the simulator: seeded sequences of creates and updates with rounds in between, faults interleaved
(a 503 mid-round, a worker failing mid-round, evicted delta tokens, a looping next link, a duplicated item,
a page size that is not respected, duplicated and reordered notifications, a notification handled while a
round runs). After the last round:

- the store's projection equals the projection of what Graph's calendarView holds;
- the change feed has sequence numbers 1..N with no gap, each event exactly one ``created`` row, no
  dedupe key twice, and each event's last row names the version the store holds.

20 seeds run in the default test command; ``SYNC_RANDOM_SEEDS=300 bash devstack/test.sh
tests/integration/test_sync_randomized.py`` runs more (docs/architecture.md records a run).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import pytest

from shared.errors import GraphError
from shared.messages import Sync
from shared.sync.mailbox import MailboxLease
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


@pytest.mark.parametrize("seed", SEEDS)
async def test_randomized_creates_updates_and_faults(stack, seed):  # noqa: F811
    account, confirmed = await stack.connect()
    assert confirmed.status == 200
    world = SyncWorld(stack, account, page_size=4)
    await world.drain()
    rng = random.Random(seed)
    ids: list[str] = []
    await world.sync("connect")
    for step in range(rng.randint(4, 8)):
        for _ in range(rng.randint(0, 5)):
            ids.append(world.create(f"Seed {seed} event {len(ids)}", day=rng.randint(1, 60), hour=rng.randint(6, 18)))
        for event_id in rng.sample(ids, min(len(ids), rng.randint(0, 3))):
            world.edit(event_id, subject=f"Edited at step {step} ({rng.random():.4f})")
        await round_with(world, rng, rng.choice(FAULTS))
    await world.sync("notification")  # the last round, no faults

    assert await world.store_projection() == await world.graph_projection()
    feed = await world.feed()
    assert [int(r.row.split(":")[1]) for r in feed] == list(range(1, len(feed) + 1))
    created = Counter(r.get("event") for r in feed if r.get("kind") == "created")
    assert set(created) == set(ids)
    assert all(count == 1 for count in created.values())
    keys = [r.get("dedupe") for r in feed]
    assert len(keys) == len(set(keys))
    last_version = {r.get("event"): r.get("dedupe") for r in feed}
    for row in await world.rows("ev:"):
        assert last_version[row.get("id")] == f"{row.get('id')}|{row.get('last_modified')}|{row.get('change_key')}"
