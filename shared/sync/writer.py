"""The event writer: what a ``sync`` message does (the queue-triggered function of that name).

1. The gate (shared/sync/gate.py) drops messages for accounts that do not sync.
2. Coalescing (``decide``): a message that the last completed round already covers exits without a Graph
   call; one that arrives while a round runs, or just after a round that started after it was sent but
   within the replication margin, sets ``dirty`` and exits, and only the worker that flipped ``dirty``
   sends one wake-up, delayed by the margin. A burst of any size so costs one extra round at most.
3. The lease (shared/sync/mailbox.py) keeps one worker per mailbox; the round (shared/sync/rounds.py)
   runs for at most ``SLICE_MAX_PAGES`` pages or ``SLICE_MAX_SECONDS``, then the lease is released and a
   ``continue`` message picks the round up: no invocation nears the function timeout.

Delta replicates with a delay ("Use delta query to track changes in Microsoft Graph data", "Processing
delays", https://learn.microsoft.com/en-us/graph/delta-query-overview): a change notified just before a
round started may not be in that round yet, hence the margin (``DELTA_REPLICATION_MARGIN_SECONDS``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import Enum

from shared.accounts.model import Account
from shared.accounts.outbox import owe_changes
from shared.accounts.status import BREAKER, degraded_reasons
from shared.context import Services
from shared.messages import Message, Sync
from shared.ops.journal import JournalEntry, Outcome
from shared.ops.logging import log_context
from shared.sync.calendars import calendars_to_sync, drop_calendar
from shared.sync.drift import count_drift
from shared.sync.feed import trim_feed
from shared.sync.gate import admit
from shared.sync.mailbox import LeaseHolder, LeaseLost, LeaseState, MailboxLease
from shared.sync.probe import EventProbe
from shared.sync.removals import clear_breaker_if_none_held
from shared.sync.rounds import Budget, CalendarRound, SliceResult
from shared.sync.source import DeltaSource


class Decision(Enum):
    RUN = "run"
    SKIP = "skip"        # covered by the last completed round
    DEFER = "defer"      # a round runs (or ran too early for it): set dirty, one wake-up


def decide(message: Sync, lease: LeaseState, now: float, margin: float) -> Decision:
    """What to do with a sync message, from the lease row alone (no Graph call)."""
    if message.reason == "continue":
        return Decision.RUN  # a slice continuation or a wake-up: it is the round
    if message.full:
        # A full round asked for (connect, the breaker's confirmation): never covered by an earlier round.
        return Decision.DEFER if lease.held_at(now) else Decision.RUN
    last = lease.last_round_started
    sent = message.enqueued_at
    if last is not None and sent is not None and sent + margin <= last:
        return Decision.SKIP
    if lease.held_at(now):
        return Decision.DEFER
    if last is not None and sent is not None and sent < last:
        return Decision.DEFER
    return Decision.RUN


@dataclass
class EventWriter:
    services: Services
    source: DeltaSource
    probe: EventProbe

    async def handle(self, message: Message) -> None:
        assert isinstance(message, Sync)
        account = await admit(self.services, message)
        if account is None:
            return
        settings = self.services.settings
        margin = float(settings.delta_replication_margin_seconds)
        lease = MailboxLease(self.services, account.account)
        decision = decide(message, await lease.read(), self.services.clock(), margin)
        if decision is Decision.SKIP:
            await self._journal(account, "info", f"skipped ({message.reason}): the last round covers it",
                                {"coalesced": 1})
            return
        holder = await lease.acquire() if decision is Decision.RUN else None
        if holder is None:
            await self._defer(account, message, lease, margin)
            return
        try:
            result, subscribed_found = await self._round(account, holder, message.full)
        except LeaseLost:
            await self._journal(account, "info", "lease lost to another worker mid-slice; it goes on", {})
            return
        except BaseException:
            await holder.release()
            raise
        taken = holder.taken or LeaseState.from_row(None)
        # What started the round: a ``continue`` goes on with the round its first slice began.
        origin = taken.round_reason if message.reason == "continue" else message.reason
        # Drift counts only what a subscription should have announced: the primary calendar's changes.
        found = taken.round_found + subscribed_found
        notified = {"last_notification_round": self.services.clock()} if message.reason == "notification" else {}
        latest, pinged = holder.feed_next - 1, {}
        if latest > taken.feed_pinged:
            # The SaaS hears "changes up to N" (one pending ping per account: shared/accounts/outbox.py). The lease
            # row remembers what was pinged, so a slice that died before this line pings on its next run.
            await owe_changes(self.services, account.account, latest)
            pinged = {"feed_pinged": latest}
        if result.complete:
            if BREAKER in degraded_reasons(account):
                # A confirming round (or an earlier one whose status write failed) left nothing held.
                await clear_breaker_if_none_held(self.services, account.account)
            drift = 0
            if origin == "timer" and result.round_started is not None:
                drift = await count_drift(self.services, account.account, round_started=result.round_started,
                                          found=found, last_notification_round=taken.last_notification_round)
            trimmed = await trim_feed(self.services, holder, taken)
            now = self.services.clock()
            drifted = {"drift_changes": taken.drift_changes + drift, "drift_rounds": taken.drift_rounds + 1,
                       "last_drift_at": now} if drift else {}
            await holder.release(last_round_started=result.round_started, last_round_completed=now,
                                 last_good_sync=now, rounds=holder.rounds + 1, round_reason="", round_found=0,
                                 **notified, **drifted, **trimmed, **pinged)
        else:
            await holder.release(round_reason=origin, round_found=found, **notified, **pinged)
            await self.services.queue.send(Sync(account=account.account, reason="continue"))
        await self._journal(account, "ok", "round complete" if result.complete else "slice done; continues",
                            {"pages": result.pages, "changed": result.changed, "unchanged": result.unchanged,
                             "removed_staged": result.removed_staged})

    async def _defer(self, account: Account, message: Sync, lease: MailboxLease, margin: float) -> None:
        if message.reason == "continue" or message.full:
            # The round's own message found the lease held (a slow holder), or a full round was asked for:
            # it comes back itself rather than as a plain wake-up.
            await self.services.queue.send(Sync(account=account.account, reason=message.reason, full=message.full),
                                           delay_seconds=margin)
            return
        notified = {"last_notification_round": self.services.clock()} if message.reason == "notification" else {}
        if not await lease.flag_dirty(**notified):
            await self._journal(account, "info", "coalesced: a wake-up is already due", {"coalesced": 1})
            return
        try:
            await self.services.queue.send(Sync(account=account.account, reason="continue"), delay_seconds=margin)
        except BaseException:
            await lease.clear_dirty()
            raise
        await self._journal(account, "info", f"deferred ({message.reason}): one wake-up in {margin:.0f} s",
                            {"coalesced": 1})

    async def _round(self, account: Account, holder: LeaseHolder, full: bool) -> tuple[SliceResult, int]:
        """One slice over the synced calendars in turn (shared/sync/calendars.py), within one budget; the slice
        is complete when every calendar's round is. A ``continue`` starts again from the first calendar, whose
        round, complete already, costs one delta request. Returns the slice's sums and the changes found on the
        primary calendar (the one the account's subscription covers)."""
        settings = self.services.settings
        deadline = time.monotonic() + settings.slice_max_seconds
        pages_left = settings.slice_max_pages
        calendars, to_drop = await calendars_to_sync(self.services, self.source, account)
        for dropped in to_drop:
            gone = await drop_calendar(self.services, holder, dropped)
            await self._journal(account, "ok", f"calendar {dropped} no longer synced: {gone} events left_calendar",
                                {"left_calendar": gone})
        total = SliceResult(True, 0, 0, 0, 0, None)
        primary_found = 0
        for calendar in calendars:
            seconds_left = deadline - time.monotonic()
            if pages_left <= 0 or seconds_left <= 0:
                return replace(total, complete=False), primary_found
            others = [c.id for c in calendars if c.id != calendar.id]
            with log_context(mailbox=calendar.user, calendar=calendar.id, calendar_owner=calendar.owner,
                             acting_user=calendar.acting_user):
                result = await CalendarRound(self.services, holder, self.source, calendar, self.probe,
                                             others).run(Budget(pages_left, seconds_left), full=full)
            pages_left -= result.pages
            if calendar.primary:
                primary_found = result.changed + result.removed_staged
            started = [t for t in (total.round_started, result.round_started) if t is not None]
            total = SliceResult(result.complete, total.pages + result.pages, total.changed + result.changed,
                                total.unchanged + result.unchanged, total.removed_staged + result.removed_staged,
                                min(started) if started else None)
            if not result.complete:
                return total, primary_found
        return total, primary_found

    async def _journal(self, account: Account, outcome: Outcome, detail: str, counts: dict[str, int]) -> None:
        await self.services.journal.record(account.account, JournalEntry(
            "sync", outcome, stage="writer", detail=detail, counts=counts))
