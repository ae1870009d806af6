"""Drift: the measure of lost notifications (docs/architecture.md, "Delta reconciler").

A change counts as drift when a round the reconciler's timer started found it on a calendar with a live
subscription, and no notification-started round (or deferral) came within ``DRIFT_WINDOW_MINUTES``
before that round: Graph should have told us, and did not (or we lost what it said). Kept per account on
the lease row (``drift_changes``, ``drift_rounds``, ``last_drift_at``) and in total in the application
state row ``drift`` of the accounts table, and journaled. Only the primary calendar's changes count: the
account's subscription is for it (``PER_CALENDAR_SUBSCRIPTIONS`` is not built), and a selected calendar's
changes are expected to arrive with the reconciler's rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.accounts.repository import APP_PARTITION
from shared.context import Services
from shared.errors import RowNotFound, StorageConflict
from shared.ops.journal import JournalEntry
from shared.store.ports import ACCOUNTS, SUBSCRIPTIONS, Row

TOTAL_ROW = "drift"
WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class DriftTotal:
    changes: int
    rounds: int
    last_at: float | None


async def count_drift(services: Services, account: str, *, round_started: float, found: int,
                      last_notification_round: float | None) -> int:
    """The changes of a completed timer-started round that count as drift (0 when none do), added to the
    total and journaled."""
    if found <= 0:
        return 0
    window = services.settings.drift_window_minutes * 60
    if last_notification_round is not None and last_notification_round >= round_started - window:
        return 0  # a notification came shortly before: these may be its changes, merely delayed
    if not await _subscribed(services, account, round_started):
        return 0  # nothing was meant to tell us
    await _add_to_total(services, found)
    await services.journal.record(account, JournalEntry(
        "drift", "error", stage="timer_round", counts={"changes": found},
        detail="a reconcile round found changes that no notification announced"))
    return found


async def drift_total(services: Services) -> DriftTotal:
    row = await services.tables.get(ACCOUNTS, APP_PARTITION, TOTAL_ROW)
    if row is None:
        return DriftTotal(0, 0, None)
    return DriftTotal(int(row.get("changes", 0)), int(row.get("rounds", 0)), row.get("last_at"))


async def _subscribed(services: Services, account: str, at: float) -> bool:
    """Whether the account had a live subscription at ``at``: a subscription row of the ``subscriptions``
    table (layout in shared/subscriptions/rows.py: the rows with an expiry) expiring after it."""
    async for row in services.tables.query(SUBSCRIPTIONS, account):
        expires_at = row.get("expires_at")
        if isinstance(expires_at, int | float) and float(expires_at) > at:
            return True
    return False


async def _add_to_total(services: Services, found: int) -> None:
    """One optimistic increment (rare: only drifting rounds write it); a lost race tries again."""
    tables = services.tables
    for _ in range(WRITE_ATTEMPTS):
        row = await tables.get(ACCOUNTS, APP_PARTITION, TOTAL_ROW)
        now = services.clock()
        data = {"changes": int(row.get("changes", 0)) + found if row else found,
                "rounds": int(row.get("rounds", 0)) + 1 if row else 1, "last_at": now}
        try:
            if row is None:
                await tables.insert(ACCOUNTS, Row(APP_PARTITION, TOTAL_ROW, data))
            else:
                await tables.merge(ACCOUNTS, Row(APP_PARTITION, TOTAL_ROW, data), etag=row.etag)
            return
        except (StorageConflict, RowNotFound):
            continue
