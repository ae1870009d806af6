"""The delta reconciler's fan-out: ``sync`` (reason ``timer``) for the accounts that are due, read from the
due-time index (shared/sync/due.py), never from a scan of the accounts or the mailboxes.

An account is due when the status matrix lets it sync and its lease row says no round runs and one of:
it never completed a round; its last good round is older than ``RECONCILE_INTERVAL_MINUTES`` (within
one bucket: a row is read at most once a bucket); or it is ``dirty`` with an expired lease (a wake-up
lost, a holder that died). Each row read is then moved to where the account should next be looked at
(the new row first, then the old one deleted), or dropped when the account no longer syncs (its
confirm arms it again). Accounts not due cost table operations only, never a Graph request.

The buckets read are those since the last run (kept in the application state row ``reconciler``),
plus a few before it for a row a clock a little behind put there; a first run (no state yet) arms
every live account once, spread over an interval, which is how accounts connected before the index
existed join it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from shared.accounts.model import Account
from shared.accounts.repository import AccountRepository
from shared.accounts.status import degraded_reasons, poison_reason
from shared.context import Services
from shared.errors import StorageConflict
from shared.messages import Sync
from shared.store.fanout import send_all, spread_delay
from shared.store.ports import MAILBOX, Row
from shared.sync.due import BUCKET_SECONDS, arm, bucket_start, due_partition
from shared.sync.mailbox import LEASE, LeaseState

STATE = "reconciler"
LOOKBACK_BUCKETS = 2
# After an outage the timer catches up at most this far back (a row older than that was lost anyway).
MAX_CATCH_UP_SECONDS = 7 * 24 * 3600
CONCURRENCY = 16


@dataclass(frozen=True)
class ReconcilePlan:
    due: tuple[str, ...]       # accounts to sync now
    looked_at: int             # due rows read
    dropped: int               # rows of accounts that no longer sync
    backfilled: int            # accounts armed by a first run
    buckets: int               # bucket partitions read

    def messages(self, spread_seconds: float) -> list[tuple[Sync, float]]:
        """The fan-out: one ``timer`` round each, spread over ``spread_seconds`` by account id so a fleet's
        rounds (and their Key Vault reads) never land in one second."""
        return [(Sync(account=a, reason="timer"), spread_delay(a, spread_seconds)) for a in self.due]


async def plan_due(services: Services) -> ReconcilePlan:
    now = services.clock()
    repo = AccountRepository(services.tables)
    state = await repo.get_app_state(STATE)
    backfilled = 0
    if state is None or state.get("scanned_until") is None:
        backfilled = await _arm_every_live_account(services, now)
        first = bucket_start(now)
    else:
        first = max(int(float(state.get("scanned_until"))) - LOOKBACK_BUCKETS * BUCKET_SECONDS,
                    bucket_start(now - MAX_CATCH_UP_SECONDS))
    due: list[str] = []
    looked_at = dropped = buckets = 0
    limit = asyncio.Semaphore(CONCURRENCY)

    async def settle(row: Row) -> None:
        nonlocal dropped
        async with limit:
            verdict = await _settle(services, row, now)
        if verdict == "due":
            due.append(row.row)
        elif verdict == "dropped":
            dropped += 1

    for start in range(first, bucket_start(now) + 1, BUCKET_SECONDS):
        buckets += 1
        rows = [row async for row in services.tables.query(MAILBOX, due_partition(start))]
        looked_at += len(rows)
        await asyncio.gather(*(settle(row) for row in rows))
    await repo.put_app_state(STATE, {"scanned_until": float(bucket_start(now)), "ran_at": now})
    return ReconcilePlan(tuple(sorted(set(due))), looked_at, dropped, backfilled, buckets)


async def run_reconcile(services: Services) -> ReconcilePlan:
    plan = await plan_due(services)
    await send_all(services.queue, plan.messages(BUCKET_SECONDS))
    return plan


async def _settle(services: Services, row: Row, now: float) -> str:
    """Look at one due row: "due" (the row moved one interval on), "later" (moved to when the account
    is next due), or "dropped" (the account no longer syncs)."""
    account = await AccountRepository(services.tables).get(row.row)
    if account is None or not account.rules.runs_inbound_sync:
        await _drop(services, row)
        return "dropped"
    lease = LeaseState.from_row(await services.tables.get(MAILBOX, row.row, LEASE))
    interval = services.settings.reconcile_interval_minutes * 60
    if lease.held_at(now):
        await _move(services, row, lease.running_until)  # a round runs: look again when its lease ends
        return "later"
    next_due = None if lease.last_good_sync is None else float(lease.last_good_sync) + interval
    if next_due is not None and next_due > now + BUCKET_SECONDS and not lease.dirty:
        await _move(services, row, next_due)
        return "later"
    await _move(services, row, now + interval)  # if the round fails, the timer tries again then
    if _sync_paused(account):
        return "later"
    return "due"


def _sync_paused(account: Account) -> bool:
    # The matrix: a poisoned sync message pauses inbound sync until an operator acts (the gate would drop it).
    return poison_reason("sync") in degraded_reasons(account)


async def _move(services: Services, row: Row, at: float) -> None:
    moved = await arm(services.tables, row.row, at)
    if moved.partition != row.partition:
        await _drop(services, row)


async def _drop(services: Services, row: Row) -> None:
    with contextlib.suppress(StorageConflict):  # re-armed meanwhile (a confirm): that row stands
        await services.tables.delete(MAILBOX, row.partition, row.row, etag=row.etag)


async def _arm_every_live_account(services: Services, now: float) -> int:
    """A first run: every account whose status syncs gets a row now (one pass over the accounts table)."""
    live = [a.account async for a in AccountRepository(services.tables).every_account() if a.rules.runs_inbound_sync]
    await _arm_all(services, live, now, services.settings.reconcile_interval_minutes * 60)
    return len(live)


async def _arm_all(services: Services, accounts: Sequence[str], now: float, spread: float) -> None:
    """Each account armed at a stable offset within ``spread``: a fleet joins the index over an interval,
    not in one run."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(account: str) -> None:
        async with limit:
            await arm(services.tables, account, now + spread_delay(account, spread))

    await asyncio.gather(*(one(a) for a in accounts))
