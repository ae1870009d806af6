"""Deletions: staged while a round pages, settled when it reaches its delta link, behind the breaker.

A round stages what may have left the calendar as ``removed:{calendar}:{id}`` rows: the ``@removed`` entries
of stored events (and of series masters with stored occurrences), and in a full round every stored event the
round did not see (the sweep). When the round reaches its delta link the settlement runs, in phases kept in
the calendar's cursor (``phase``), each a chunk at a time and checkpointed with the chunk, so a slice boundary
or a crash resumes where it stopped and memory stays flat whatever the calendar's size:

1. ``sweep`` (full rounds): stage the stored events whose ``seen`` stamp is not this round's; ``series``
   (incremental rounds): for each series the round saw occurrences of, stage the stored occurrences Graph
   no longer lists ("List instances"; a cancelled occurrence may leave delta without an ``@removed``).
2. ``classify``: tell what each staged event became. Seen by this full round: ``kept``. Outside the window:
   ``left_window`` (no Graph call). Otherwise Graph is asked where it is (shared/sync/probe.py): 404 is
   ``deleted``, another synced calendar ``moved``, a calendar that is not synced ``left_calendar``, this
   calendar ``left_window`` or ``kept``. An occurrence whose series master is staged too waits for it.
   A master's answer is given to every occurrence stored under it (the ``sm:`` index rows), without a call.
3. ``follow``: occurrences take their master's answer (or are asked about on their own when it was kept).
4. ``decide``: the mass-deletion breaker (below).
5. ``apply``: each change in one transaction with its feed row (``deleted``, ``moved``, ``left_window``,
   ``left_calendar``) and the removal of its staged row; a deleted event leaves a tombstone.
6. ``finish``: the delta link is stored (or not, see the breaker) and the round is complete.

The breaker (docs/architecture.md, "Deletions and the breaker"): more than ``DELETE_BREAKER_SHARE`` of a
calendar's events deleted in one round (once it holds ``DELETE_BREAKER_MIN_EVENTS``), or a full round that
read nothing where the store is full, holds the deletes (``held`` staged rows) while everything else applies,
keeps an incremental round's delta link where it was, degrades the account (reason ``breaker``), journals why
and schedules a confirming full round after ``BREAKER_CONFIRM_MINUTES``. That round applies what it confirms
from a non-empty read; an empty read confirms nothing. An operator can confirm or reject instead
(shared/sync/breaker.py). ``left_window`` never counts: a window that moves is not a deletion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.accounts.status import BREAKER, add_degraded_reason, clear_degraded_reason
from shared.context import Services
from shared.messages import Sync
from shared.ops.journal import JournalEntry
from shared.store.ports import MAILBOX, Row, TableOp
from shared.sync.buckets import bucket_key
from shared.sync.mailbox import (
    CURSOR_PREFIX,
    EventWrite,
    LeaseHolder,
    cursor_key,
    event_key,
    staged_removal_key,
)
from shared.sync.probe import GONE, HERE, LEFT, UNKNOWN, EventProbe
from shared.sync.window import Window, instant

DELETED = "deleted"
MOVED = "moved"
LEFT_WINDOW = "left_window"
LEFT_CALENDAR = "left_calendar"
KEPT = "kept"              # still there: nothing to apply
SERIES_PREFIX = "sm:"
TOUCHED_PREFIX = "touched:"
SERIES_PER_STEP = 10       # series checked per step (each one paged "List instances" call)
CHUNK = 100                # staged or swept rows per step
READ_CONCURRENCY = 16


def series_key(calendar: str, master: str, event_id: str) -> str:
    """The index row of an occurrence or exception under its series master (found when the master goes)."""
    return f"{SERIES_PREFIX}{calendar}:{master}:{event_id}"


def series_prefix(calendar: str, master: str) -> str:
    return f"{SERIES_PREFIX}{calendar}:{master}:"


def touched_key(calendar: str, master: str) -> str:
    """A series an incremental round saw occurrences of: checked against Graph's list of its occurrences."""
    return f"{TOUCHED_PREFIX}{calendar}:{master}"


def now_text(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def later(candidate: str | None, than: str | None) -> bool:
    """Whether ``candidate`` is a later instant than ``than`` (lastModifiedDateTime values; change keys have
    no order, so this is the only test of which version is newer)."""
    a, b = instant(candidate), instant(than)
    return a is not None and (b is None or a > b)


def staged_row(account: str, calendar: str, event_id: str, *, reason: str, master: str, is_master: bool,
               now: float, kind: str = "", to: str = "") -> TableOp:
    return TableOp.upsert(Row(account, staged_removal_key(calendar, event_id), {
        "event": event_id, "reason": reason, "master": master, "is_master": is_master, "at": now,
        "kind": kind, "to": to, "held": False}))


def removal_write(services: Services, account: str, calendar: str, staged: Row, stored: Row | None,
                  kind: str) -> EventWrite:
    """The rows of one settled removal: the staged row goes; a stored event goes (a deleted one leaving its
    tombstone) with its index rows and a feed row."""
    ops = [TableOp.delete(account, staged.row)]
    if stored is None or stored.get("tombstone") or kind == KEPT:
        return EventWrite(ops)
    event_id = str(staged.get("event"))
    now = services.clock()
    if kind == DELETED:
        retention = services.settings.tombstone_retention_days * 86400
        ops.append(TableOp.upsert(Row(account, stored.row, {
            "tombstone": True, "type": stored.get("type"), "series_master_id": stored.get("series_master_id"),
            # What a later version must beat to bring the event back; a thin occurrence has none of its own.
            "last_modified": stored.get("last_modified") or now_text(now),
            "deleted_at": now, "expires": now + retention})))
    else:
        ops.append(TableOp.delete(account, stored.row))
    ops.extend(TableOp.delete(account, bucket_key(b, calendar, event_id))
               for b in str(stored.get("buckets", "")).split(",") if b)
    master = stored.get("series_master_id")
    if stored.get("sm") and master:
        ops.append(TableOp.delete(account, series_key(calendar, str(master), event_id)))
    feed: dict[str, Any] = {"kind": kind, "calendar": calendar, "event": event_id, "at": now_text(now),
                            "dedupe": f"{event_id}|{kind}|{stored.get('last_modified') or ''}"}
    if kind == MOVED:
        feed["to"] = staged.get("to")
    return EventWrite(ops, feed)


@dataclass
class Settlement:
    services: Services
    holder: LeaseHolder
    probe: EventProbe | None     # None: an operator's decision, which asks Graph nothing
    user: str
    calendar: str
    others: Sequence[str] = ()

    @property
    def account(self) -> str:
        return self.holder.account

    async def run(self, cursor: dict[str, Any], deadline: float) -> bool:
        """Settle in steps until ``finish`` (True) or past ``deadline`` (False: a ``continue`` goes on)."""
        steps = {"sweep": self._sweep, "series": self._series, "classify": self._classify, "follow": self._follow,
                 "decide": self._decide, "apply": self._apply}
        while True:
            phase = str(cursor.get("phase", ""))
            if phase == "finish":
                await self._finish(cursor)
                return True
            await steps[phase](cursor)
            if time.monotonic() >= deadline and cursor.get("phase") != "finish":
                return False

    # --- steps -------------------------------------------------------------------------------------

    async def _sweep(self, cursor: dict[str, Any]) -> None:
        """Stage a chunk of stored events this full round did not see; drop expired tombstones."""
        after = str(cursor.get("position", ""))
        prefix = event_key(self.calendar, "")
        rows = [r async for r in self._tables.query(MAILBOX, self.account, prefix=prefix, start=after or None,
                                                    limit=CHUNK + 1) if r.row != after]
        generation = int(cursor.get("full_gen", 0))
        now = self.services.clock()
        writes: list[EventWrite] = []
        stored = int(cursor.get("stored", 0))
        for row in rows:
            if row.get("tombstone"):
                if float(row.get("expires", 0)) <= now:
                    writes.append(EventWrite([TableOp.delete(self.account, row.row)]))
                continue
            stored += 1
            if int(row.get("seen", -1)) != generation:
                event_id = row.row[len(prefix):]
                writes.append(EventWrite([staged_row(
                    self.account, self.calendar, event_id, reason="sweep",
                    master=str(row.get("series_master_id") or ""), is_master=row.get("type") == "seriesMaster",
                    now=now)]))
        cursor.update(stored=stored, swept=int(cursor.get("swept", 0)) + len(writes))
        if rows:
            cursor.update(position=rows[-1].row)
        else:
            cursor.update(phase="classify", position="")
        await self._commit(writes, cursor)

    async def _series(self, cursor: dict[str, Any]) -> None:
        """Stage the stored occurrences of series this round saw that Graph no longer lists (a cancelled
        occurrence may vanish from delta without an ``@removed``); the classification then asks about each."""
        after = str(cursor.get("position", ""))
        prefix = f"{TOUCHED_PREFIX}{self.calendar}:"
        rows = [r async for r in self._tables.query(MAILBOX, self.account, prefix=prefix, start=after or None,
                                                    limit=SERIES_PER_STEP + 1) if r.row != after][:SERIES_PER_STEP]
        if not rows:
            cursor.update(phase="classify", position="")
            await self._commit([], cursor)
            return
        assert self.probe is not None, "an operator's decision never checks series"
        window = Window(str(cursor.get("window_start")), str(cursor.get("window_end")))
        now = self.services.clock()
        writes: list[EventWrite] = []
        for row in rows:
            master = str(row.get("master"))
            writes.append(EventWrite([TableOp.delete(self.account, row.row)]))
            listed = await self.probe.occurrences(self.account, self.user, self.calendar, master, window)
            if listed is None:
                continue  # the master is gone: its own removal says so
            index_prefix = series_prefix(self.calendar, master)
            async for index in self._tables.query(MAILBOX, self.account, prefix=index_prefix):
                occurrence = index.row[len(index_prefix):]
                if occurrence in listed or await self._tables.get(
                        MAILBOX, self.account, staged_removal_key(self.calendar, occurrence)) is not None:
                    continue
                writes.append(EventWrite([staged_row(self.account, self.calendar, occurrence, reason="series_check",
                                                     master=master, is_master=False, now=now)]))
        cursor.update(position=rows[-1].row)
        await self._commit(writes, cursor)

    async def _classify(self, cursor: dict[str, Any]) -> None:
        await self._classify_step(cursor, follow=False)

    async def _follow(self, cursor: dict[str, Any]) -> None:
        await self._classify_step(cursor, follow=True)

    async def _classify_step(self, cursor: dict[str, Any], *, follow: bool) -> None:
        staged, more = await self._staged_chunk(cursor)
        window = Window(str(cursor.get("window_start")), str(cursor.get("window_end")))
        full = bool(cursor.get("full"))
        generation = int(cursor.get("full_gen", 0))
        stored_rows = await self._read_all([event_key(self.calendar, str(r.get("event"))) for r in staged])
        decided: dict[str, tuple[str, str]] = {}   # staged row key -> (kind, to)
        ask: dict[str, Row] = {}                    # event id -> staged row, for Graph
        masters_staged: dict[str, Row | None] = {}
        masters: set[str] = set()  # staged rows of series masters: their answer goes to their occurrences
        for row, stored in zip(staged, stored_rows, strict=True):
            event_id = str(row.get("event"))
            if row.get("is_master") or (stored is not None and stored.get("type") == "seriesMaster"):
                masters.add(row.row)
            if full and stored is not None and int(stored.get("seen", -1)) == generation:
                if row.get("kind") != KEPT:
                    decided[row.row] = (KEPT, "")  # this full round saw it: it is there
                continue
            if row.get("kind"):
                continue
            if (stored is None or stored.get("tombstone")) and not row.get("is_master"):
                decided[row.row] = (KEPT, "")  # nothing stored to remove
                continue
            master = str(row.get("master") or "")
            if master:
                if master not in masters_staged:
                    masters_staged[master] = await self._tables.get(
                        MAILBOX, self.account, staged_removal_key(self.calendar, master))
                master_row = masters_staged[master]
                if master_row is not None:
                    if not follow:
                        continue  # its master answers first
                    master_kind = str(master_row.get("kind") or "")
                    if master_kind in (DELETED, MOVED, LEFT_CALENDAR):
                        decided[row.row] = (master_kind, str(master_row.get("to") or ""))
                        continue
            if stored is not None and row.row not in masters \
                    and not window.overlaps(stored.get("start"), stored.get("end")):
                decided[row.row] = (LEFT_WINDOW, "")
                continue
            ask[event_id] = row
        if ask:
            assert self.probe is not None, "an operator's decision never classifies"
            located = await self.probe.locate(self.account, self.user, self.calendar, list(ask), self.others)
            for event_id, row in ask.items():
                where = located.get(event_id)
                decided[row.row] = self._kind_of(where.where if where else UNKNOWN, where, row, window)
            await self._journal_located(located)
        writes = [EventWrite([TableOp.merge(Row(self.account, key, {"kind": kind, "to": to}))])
                  for key, (kind, to) in decided.items()]
        if not follow:
            for row in staged:
                if row.row in masters:
                    kind, to = decided.get(row.row, ("", ""))
                    writes.extend(await self._expand_series(row, kind, to))
        if more:
            cursor.update(position=staged[-1].row)
        else:
            cursor.update(phase="follow" if not follow else "decide", position="")
        await self._commit(writes, cursor)

    def _kind_of(self, where: str, located: Any, row: Row, window: Window) -> tuple[str, str]:
        if where == GONE:
            return DELETED, ""
        if where == LEFT:
            return LEFT_CALENDAR, ""
        if where == UNKNOWN:
            return KEPT, ""
        if where == HERE:
            if not row.get("is_master") and located is not None and located.start is not None \
                    and not window.overlaps(located.start, located.end):
                return LEFT_WINDOW, ""
            return KEPT, ""
        return MOVED, where

    async def _expand_series(self, master_row: Row, kind: str, to: str) -> list[EventWrite]:
        """Stage every occurrence stored under a series master that went, with the master's answer."""
        if kind not in (DELETED, MOVED, LEFT_CALENDAR):
            return []
        master = str(master_row.get("event"))
        prefix = series_prefix(self.calendar, master)
        now = self.services.clock()
        writes = []
        async for index in self._tables.query(MAILBOX, self.account, prefix=prefix):
            writes.append(EventWrite([staged_row(self.account, self.calendar, index.row[len(prefix):],
                                                 reason="series", master=master, is_master=False, now=now,
                                                 kind=kind, to=to)]))
        return writes

    async def _decide(self, cursor: dict[str, Any]) -> None:
        settings = self.services.settings
        counts = {DELETED: 0, MOVED: 0, LEFT_WINDOW: 0, LEFT_CALENDAR: 0, KEPT: 0}
        async for row in self._tables.query(MAILBOX, self.account, prefix=staged_removal_key(self.calendar, "")):
            kind = str(row.get("kind") or "")
            if kind in counts:
                counts[kind] += 1
        deleted = counts[DELETED]
        full = bool(cursor.get("full"))
        empty_read = full and int(cursor.get("full_saw", 0)) == 0
        was_held = bool(cursor.get("held"))
        # Only a full round that started once the confirmation was due confirms: the delay lets a passing
        # fault at Graph pass.
        confirming = full and was_held and float(cursor.get("round_started", 0)) >= float(cursor.get("confirm_due", 0))
        minimum = settings.delete_breaker_min_events
        stored = int(cursor.get("stored", 0)) if full else None
        why = ""
        if confirming and not empty_read:
            hold = False
        elif confirming:
            hold, why = True, "the confirming full round read no events (an empty read confirms nothing)"
        elif was_held:
            hold, why = True, "an earlier round's deletes wait for confirmation"
        elif empty_read and (stored or 0) >= minimum:
            # Nothing read where the store is full: a fault at Graph until a non-empty read says otherwise,
            # whatever the checks of single events answered.
            hold, why = True, f"a full round read no events where {stored} are stored"
        elif deleted == 0:
            hold = False
        else:
            if stored is None and deleted > settings.delete_breaker_share * minimum:
                stored = await self._count_stored()
            stored = stored or 0
            hold = stored >= minimum and deleted > settings.delete_breaker_share * stored
            why = (f"{deleted} of {stored} events deleted in one round, more than "
                   f"{settings.delete_breaker_share:.0%}") if hold else ""
        cursor.update(phase="apply", position="", hold=hold, tripped=hold and not was_held, why=why,
                      rearm=hold and confirming, confirmed=was_held and not hold, counts_deleted=deleted)
        await self.services.journal.record(self.account, JournalEntry(
            "sync", "info", stage="removals", calendar=self.calendar, counts=counts,
            detail=("deletes held: " + why) if hold else "removals settled"))
        await self._commit([], cursor)

    async def _apply(self, cursor: dict[str, Any]) -> None:
        staged, more = await self._staged_chunk(cursor)
        hold = bool(cursor.get("hold"))
        stored_rows = await self._read_all([event_key(self.calendar, str(r.get("event"))) for r in staged])
        writes: list[EventWrite] = []
        for row, stored in zip(staged, stored_rows, strict=True):
            kind = str(row.get("kind") or "")
            if not kind:
                continue  # not settled (never happens after classify and follow): left for the next round
            if kind == DELETED and hold:
                if not row.get("held"):
                    writes.append(EventWrite([TableOp.merge(Row(self.account, row.row, {"held": True}))]))
                continue
            writes.append(removal_write(self.services, self.account, self.calendar, row, stored, kind))
        if more:
            cursor.update(position=staged[-1].row)
        else:
            cursor.update(phase="finish", position="")
        await self._commit(writes, cursor)

    async def _finish(self, cursor: dict[str, Any]) -> None:
        hold, tripped, confirmed = bool(cursor.get("hold")), bool(cursor.get("tripped")), bool(cursor.get("confirmed"))
        rearm = bool(cursor.get("rearm"))  # a confirming round that could not confirm: another one, later
        pending = str(cursor.get("pending_delta_link", ""))
        now = self.services.clock()
        delay = self.services.settings.breaker_confirm_minutes * 60
        if hold and not cursor.get("full"):
            # The breaker keeps an incremental round's delta link where it was: the next round reads the
            # same changes again; the link it reached waits for an operator's decision.
            cursor.update(held_delta_link=pending)
        elif pending:
            # A full round's link is stored even when deletes are held: the link it started from is gone
            # (expired, or dropped for a new window), and every later round would otherwise be a full one.
            cursor.update(delta_link=pending, held_delta_link="")
        if hold:
            due = now + delay if tripped or rearm else float(cursor.get("confirm_due", 0))
            cursor.update(held=True, confirm_due=due)
        else:
            cursor.update(held=False, confirm_due=0.0)
        why = cursor.get("why")
        cursor.update(phase="", pending_delta_link="", full=False, fresh=False, staged=0, hold=False, tripped=False,
                      rearm=False, confirmed=False, position="", last_round_completed=now,
                      rounds=int(cursor.get("rounds", 0)) + 1)
        # A trip is told before the cursor records it: a failure in between runs the round's end again
        # (the same trip, told twice at worst), never a hold that nobody hears of.
        if rearm:
            await self.services.journal.record(self.account, JournalEntry(
                "breaker", "error", stage="unconfirmed", calendar=self.calendar,
                detail=f"the confirming round could not confirm ({why}); another in {delay // 60} min"))
        if tripped:
            await add_degraded_reason(self.services, self.account, BREAKER)
            await self.services.journal.record(self.account, JournalEntry(
                "breaker", "error", stage="tripped", calendar=self.calendar,
                counts={"deleted": int(cursor.get("counts_deleted", 0))},
                detail=f"deletes held: {why}; a confirming full round in {delay // 60} min"))
        if tripped or rearm:
            await self.services.queue.send(Sync(account=self.account, reason="breaker", full=True),
                                           delay_seconds=delay)
        await self._commit([], cursor)
        if confirmed:
            await self.services.journal.record(self.account, JournalEntry(
                "breaker", "ok", stage="confirmed", calendar=self.calendar,
                counts={"deleted": int(cursor.get("counts_deleted", 0))},
                detail="a confirming full round applied the held deletes"))

    # --- helpers -----------------------------------------------------------------------------------

    @property
    def _tables(self) -> Any:
        return self.services.tables

    async def _staged_chunk(self, cursor: dict[str, Any]) -> tuple[list[Row], bool]:
        """The next chunk of staged rows after the cursor's position, and whether more follow it."""
        after = str(cursor.get("position", ""))
        rows = [r async for r in self._tables.query(MAILBOX, self.account,
                                                    prefix=staged_removal_key(self.calendar, ""),
                                                    start=after or None, limit=CHUNK + 2) if r.row != after]
        return rows[:CHUNK], len(rows) > CHUNK

    async def _read_all(self, keys: list[str]) -> list[Row | None]:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(key: str) -> Row | None:
            async with gate:
                return await self._tables.get(MAILBOX, self.account, key)  # type: ignore[no-any-return]

        return list(await asyncio.gather(*(read(k) for k in keys)))

    async def _count_stored(self) -> int:
        count = 0
        async for row in self._tables.query(MAILBOX, self.account, prefix=event_key(self.calendar, "")):
            count += 0 if row.get("tombstone") else 1
        return count

    async def _commit(self, writes: list[EventWrite], cursor: dict[str, Any]) -> None:
        await self.holder.commit(writes, [TableOp.upsert(Row(self.account, cursor_key(self.calendar), cursor))])

    async def _journal_located(self, located: dict[str, Any]) -> None:
        tally: dict[str, int] = {}
        for where in located.values():
            key = where.where if where.where in (GONE, HERE, LEFT, UNKNOWN) else "other_calendar"
            tally[key] = tally.get(key, 0) + 1
        await self.services.journal.record(self.account, JournalEntry(
            "sync", "info", stage="locate", calendar=self.calendar, counts=tally,
            detail=f"asked Graph where {len(located)} removed events are"))


async def clear_breaker_if_none_held(services: Services, account: str) -> None:
    """Clear the ``breaker`` reason once no calendar of the account holds deletes."""
    async for row in services.tables.query(MAILBOX, account, prefix=CURSOR_PREFIX):
        if row.get("held"):
            return
    await clear_degraded_reason(services, account, BREAKER)
