"""The delta reconciler timer (``%RECONCILE_SCHEDULE%``): one timer for everything that must happen
whether or not a notification ever comes (docs/architecture.md, "Delta reconciler").

1. Sweep what unfinished connects left (shared/connect/sweep.py) and expired journal rows.
2. Keep quiet mailboxes' refresh tokens alive, once a day (shared/connect/keepalive.py).
3. Fan out ``sync`` (reason ``timer``) for the accounts due, read from the due-time index
   (shared/sync/reconcile.py).
4. Queue again the callbacks owed to the SaaS whose message was lost (shared/pushes/worker.py), and the
   bookings recorded whose ``outbound`` message was never sent (shared/bookings/api.py).

Each part is idempotent and independent: one failing is journaled and does not keep the others from
running; the function then fails so the host logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from shared.auth.credential import TokenBroker
from shared.auth.ports import TokenVault
from shared.bookings.api import send_unqueued
from shared.connect.keepalive import KeepAlive, keep_tokens_alive
from shared.connect.sweep import SweepCounts, sweep_connections
from shared.context import Services
from shared.ops.journal import JournalEntry
from shared.pushes.worker import requeue_unacknowledged
from shared.sync.reconcile import ReconcilePlan, run_reconcile

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ReconcilerRun:
    sweep: SweepCounts | None
    keepalive: KeepAlive | None
    plan: ReconcilePlan | None
    failures: tuple[str, ...]


async def run_reconciler(services: Services, vault: TokenVault, broker: TokenBroker) -> ReconcilerRun:
    failures: list[str] = []
    sweep = await _part(services, "sweep_connections", failures, sweep_connections(services, vault))
    keepalive = await _part(services, "keepalive", failures, keep_tokens_alive(services, broker))
    plan = await _part(services, "reconcile", failures, run_reconcile(services))
    await _part(services, "callbacks", failures, requeue_unacknowledged(services))
    await _part(services, "bookings", failures, send_unqueued(services))
    if plan is not None and (plan.due or plan.dropped or plan.backfilled):
        await services.journal.record(None, JournalEntry("reconcile", "ok", counts={
            "due": len(plan.due), "looked_at": plan.looked_at, "dropped": plan.dropped,
            "backfilled": plan.backfilled}))
    run = ReconcilerRun(sweep, keepalive, plan, tuple(failures))
    if failures:
        raise ReconcilerFailed(f"delta reconciler: {', '.join(failures)} failed (journaled); the rest ran")
    return run


class ReconcilerFailed(RuntimeError):
    pass


async def _part(services: Services, name: str, failures: list[str], work: Awaitable[T]) -> T | None:
    try:
        return await work
    except Exception as exc:
        failures.append(name)
        log.exception("delta reconciler: %s failed", name)
        await services.journal.record(None, JournalEntry.failure(name, exc))
        return None
