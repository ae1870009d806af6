"""One calendar's delta round, a slice at a time, checkpointed with every page.

A round follows ``@odata.nextLink`` (even past empty pages) until a page brings ``@odata.deltaLink``
("Use delta query to track changes in Microsoft Graph data", https://learn.microsoft.com/en-us/graph/delta-query-overview).
Each page is applied in fenced transactions whose last one also stores the link to go on from, so a
worker killed anywhere resumes from the last applied page: a page applied twice changes nothing, because an
event whose content hash is unchanged is not rewritten and gets no second feed row.

The cursor row (``cursor:{calendar}``) holds the window, the link to go on from (``next_link`` inside a
round, ``delta_link`` between rounds), when the round started, and what guards the loop: the last page's
digest and link, and the pages of this round. A page that repeats (the same link handed back, or the same
body twice) is followed again up to ``MAX_REPEATS`` times in a row; beyond that, or past ``ROUND_MAX_PAGES``,
the round restarts from its delta link; three restarts in a row fail the message (retried, then poisoned)
rather than loop.

A round is *full* when it starts with no delta link: the first sync, a dead delta token (410,
``syncStateNotFound``, ``resyncRequired``, ``InvalidDeltaToken``), a window that moved (shared/sync/window.py),
a message that asks for one, or the breaker's confirmation. A full round stamps every event it sees with its
generation (``seen``) and, at its end, sweeps the stored events it did not see. ``@removed`` entries and the
sweep stage removals, which are settled when the round reaches its delta link (shared/sync/removals.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.context import Services
from shared.errors import ResyncRequired, RowExists, TransientGraphError
from shared.graph.wire import GraphEvent
from shared.ops.journal import JournalEntry
from shared.store.ports import MAILBOX, Row, TableOp
from shared.sync.buckets import LONG, bucket_key, bucket_names
from shared.sync.calendar import fill_from_master
from shared.sync.mailbox import EventWrite, LeaseHolder, cursor_key, event_key, staged_removal_key
from shared.sync.probe import EventProbe
from shared.sync.projection import StoredEvent, content_hash
from shared.sync.removals import Settlement, later, now_text, series_key, series_prefix, staged_row, touched_key
from shared.sync.source import CalendarRef, DeltaSource, FetchedPage
from shared.sync.window import Window, covers, wanted_window

# A round of more pages than this is not converging (10,000 pages of 50 is half a million events).
ROUND_MAX_PAGES = 10_000
# A page that repeats is followed again this often (the fault is often brief), then the round restarts.
MAX_REPEATS = 2
MAX_RESTARTS = 3
# Point reads of stored events per page, in parallel.
READ_CONCURRENCY = 16


@dataclass(frozen=True)
class SliceResult:
    complete: bool        # the round reached its delta link
    pages: int
    changed: int          # events written (created or updated)
    unchanged: int
    removed_staged: int
    round_started: float | None


@dataclass(frozen=True)
class Budget:
    pages: int
    seconds: float


def sync_window(services: Services) -> Window:
    """The window a new round covers (month-aligned, shared/sync/window.py)."""
    settings = services.settings
    return wanted_window(services.clock(), settings.sync_window_past_days, settings.sync_window_future_days)


class CalendarRound:
    def __init__(self, services: Services, holder: LeaseHolder, source: DeltaSource, calendar: CalendarRef,
                 probe: EventProbe, others: Sequence[str] = ()) -> None:
        self._services = services
        self._holder = holder
        self._source = source
        self._probe = probe
        self._calendar = calendar
        self._others = others
        self._account = holder.account

    async def run(self, budget: Budget, *, full: bool = False) -> SliceResult:
        """Go on with the calendar's round for at most ``budget``; ``full`` asks for a full round (the
        current one finishes first when it is under way)."""
        stored = await self._services.tables.get(MAILBOX, self._account, cursor_key(self._calendar.id))
        cursor: dict[str, Any] = dict(stored.data) if stored is not None else {}
        started_at = time.monotonic()
        deadline = started_at + budget.seconds
        pages = 0
        tally = [0, 0, 0]  # changed, unchanged, removals staged

        def result(complete: bool, round_started: float) -> SliceResult:
            return SliceResult(complete, pages, tally[0], tally[1], tally[2], round_started)

        if cursor.get("next_link") or cursor.get("phase"):
            if full:
                cursor.update(full_next=True)  # kept with the next checkpoint
        else:
            self._begin(cursor, full)
        while True:
            round_started = float(cursor.get("round_started", self._services.clock()))
            if cursor.get("phase"):
                done = await Settlement(self._services, self._holder, self._probe, self._calendar.user,
                                        self._calendar.id, self._others).run(cursor, deadline)
                return result(done, round_started)
            link = str(cursor["next_link"]) if cursor.get("next_link") else (
                str(cursor["delta_link"]) if cursor.get("delta_link") else None)
            try:
                fetched = await self._fetch(cursor, link)
            except ResyncRequired as exc:
                await self._restart(cursor, f"delta token no longer valid ({exc.code or exc.status}); new full round",
                                    from_scratch=True)
                continue
            pages += 1
            looping = self._loops(cursor, link, fetched)
            repeats = int(cursor.get("repeats", 0)) + 1 if looping else 0
            if int(cursor.get("round_pages", 0)) >= ROUND_MAX_PAGES:
                looping, repeats = f"the round passed {ROUND_MAX_PAGES} pages", MAX_REPEATS + 1
            fresh = bool(cursor.get("fresh"))
            if looping is not None and repeats > MAX_REPEATS:
                counts = await self._apply(fetched, cursor, fresh, lambda _: [])  # what the page says still holds
                tally = [a + b for a, b in zip(tally, counts, strict=True)]
                await self._restart(cursor, looping, from_scratch=False)
                return result(False, round_started)

            def tail(counts: tuple[int, int, int], fetched: FetchedPage = fetched, link: str | None = link,
                     repeats: int = repeats) -> list[TableOp]:
                cursor.update(self._advance(cursor, link, fetched, counts), repeats=repeats)
                return [self._checkpoint(cursor)]

            counts = await self._apply(fetched, cursor, fresh, tail)
            tally = [a + b for a, b in zip(tally, counts, strict=True)]
            if fetched.page.delta_link is not None and not cursor.get("phase"):
                return result(True, round_started)
            if fetched.page.delta_link is None and (pages >= budget.pages or time.monotonic() >= deadline):
                return result(False, round_started)

    def _begin(self, cursor: dict[str, Any], full: bool) -> None:
        """Start a round: incremental from the delta link, or full (see the module's docstring)."""
        settings = self._services.settings
        now = self._services.clock()
        window = Window(str(cursor["window_start"]), str(cursor["window_end"])) if cursor.get("window_start") \
            else None
        moved = window is None or not covers(window, now, settings.sync_window_past_days,
                                             settings.sync_window_future_days)
        confirm = bool(cursor.get("held")) and now >= float(cursor.get("confirm_due", 0))
        full = full or bool(cursor.get("full_next")) or moved or confirm or not cursor.get("delta_link")
        cursor.update(round_started=now, full_next=False)
        if not full:
            return
        if moved:
            window = sync_window(self._services)
        assert window is not None
        cursor.update(full=True, full_gen=int(cursor.get("full_gen", 0)) + 1, full_saw=0, delta_link="",
                      next_link="", window_start=window.start, window_end=window.end, fresh=None)

    async def _fetch(self, cursor: dict[str, Any], link: str | None) -> FetchedPage:
        if link is not None:
            return await self._source.follow(self._account, self._calendar, link)
        if not cursor.get("window_start"):
            self._begin(cursor, True)
        window = Window(str(cursor["window_start"]), str(cursor["window_end"]))
        if cursor.get("fresh") is None:
            any_stored = self._services.tables.query(MAILBOX, self._account,
                                                     prefix=event_key(self._calendar.id, ""), limit=1)
            cursor.update(fresh=not [row async for row in any_stored])
        return await self._source.first(self._account, self._calendar, window)

    def _loops(self, cursor: dict[str, Any], link: str | None, fetched: FetchedPage) -> str | None:
        """Why this page shows the round is not converging, or None."""
        page = fetched.page
        if page.next_link is not None and page.next_link == link:
            return "the next link points at the page it came with"
        if page.next_link is not None and fetched.digest == cursor.get("last_digest") \
                and page.next_link == cursor.get("last_next"):
            return "the same page came twice"
        return None

    def _advance(self, cursor: dict[str, Any], link: str | None, fetched: FetchedPage,
                 counts: tuple[int, int, int]) -> dict[str, Any]:
        page = fetched.page
        in_round = page.delta_link is None
        full = bool(cursor.get("full"))
        staged = int(cursor.get("staged", 0)) + counts[2]
        saw = int(cursor.get("full_saw", 0)) + (sum(1 for item in page.value if not item.is_removed) if full else 0)
        update: dict[str, Any] = {
            "next_link": page.next_link if in_round else "",
            "round_pages": int(cursor.get("round_pages", 0)) + 1 if in_round else 0,
            "last_digest": fetched.digest, "last_next": page.next_link or "",
            "restarts": int(cursor.get("restarts", 0)) if in_round else 0,
            "staged": staged, "full_saw": saw,
        }
        if in_round:
            return update
        sweep = full and not cursor.get("fresh")
        if sweep or staged > 0 or cursor.get("held"):
            # Removals to settle before the round is complete (shared/sync/removals.py).
            update.update(phase="sweep" if sweep else "series", position="", stored=0, swept=0,
                          pending_delta_link=page.delta_link)
            return update
        update.update(delta_link=page.delta_link, full=False, fresh=False, staged=0,
                      rounds=int(cursor.get("rounds", 0)) + 1, last_round_completed=self._services.clock())
        return update

    async def _restart(self, cursor: dict[str, Any], why: str, *, from_scratch: bool) -> None:
        restarts = int(cursor.get("restarts", 0)) + 1
        await self._services.journal.record(self._account, JournalEntry(
            "sync", "error", stage="delta", calendar=self._calendar.id, counts={"restarts": restarts},
            detail=f"round restarted: {why}"))
        if restarts > MAX_RESTARTS:
            raise TransientGraphError(f"delta round of calendar {self._calendar.id} restarted {MAX_RESTARTS} times")
        cursor.update(next_link="", round_pages=0, last_digest="", last_next="", restarts=restarts, repeats=0)
        if from_scratch:
            cursor.update(delta_link="")
            self._begin(cursor, True)
        await self._holder.commit([], [self._checkpoint(cursor)])

    def _checkpoint(self, cursor: dict[str, Any]) -> TableOp:
        return TableOp.upsert(Row(self._account, cursor_key(self._calendar.id), cursor))

    async def _apply(self, fetched: FetchedPage, cursor: dict[str, Any], fresh: bool,
                     tail: Callable[[tuple[int, int, int]], list[TableOp]]) -> tuple[int, int, int]:
        """Write what the page changes, with ``tail(counts)`` (the checkpoint) in the last transaction;
        returns (changed, unchanged, removals staged).

        In a fresh round (the calendar's first, over a calendar with no stored events) nothing is read: each
        event is inserted, and an insert that meets its row (the same item earlier in the round, or a page
        applied again after a crash) sends the page down the careful path, which reads what is stored. A
        page with removals always takes the careful path: an event of this round may be what it removes."""
        stamp = int(cursor.get("full_gen", 0)) if cursor.get("full") else None
        items = fetched.page.value
        if fresh and not any(item.is_removed for item in items):
            writes, counts = await self._plan(items, fresh=True, stamp=stamp)
            try:
                await self._holder.commit(writes, tail(counts))
                return counts
            except RowExists:
                pass
        writes, counts = await self._plan(items, fresh=False, stamp=stamp)
        await self._holder.commit(writes, tail(counts))
        return counts

    async def _plan(self, items: Sequence[GraphEvent], *, fresh: bool,
                    stamp: int | None) -> tuple[list[EventWrite], tuple[int, int, int]]:
        """The writes one page asks for: (writes, (changed, unchanged, removals staged and series to check)).
        ``stamp``: the
        full round's generation, marked on every event it sees (the sweep's test)."""
        latest = {item.id: item for item in items}  # the same id twice in a page: the last one counts
        stored = {} if fresh else await self._stored(list(latest))
        removed = [i for i, item in latest.items() if item.is_removed]
        staged_already = {} if fresh else await self._stored(removed, key=self._staged_key)
        masters = {} if fresh else await self._masters_with_occurrences(
            [i for i in removed if i not in stored and i not in staged_already])
        series = await self._series_masters(latest.values())
        writes: list[EventWrite] = []
        changed = unchanged = staged = 0
        now = self._services.clock()
        for event_id, item in latest.items():
            current = stored.get(event_id)
            if current is not None and current.get("tombstone"):
                if float(current.get("expires", 0)) <= now:
                    current = None  # past retention: as if never stored
                elif item.is_removed or not await self._beats_tombstone(item, current, series):
                    continue  # a late copy of a deleted event: the tombstone holds
                else:
                    current = None  # a later version: the event is back
            if item.is_removed:
                if event_id in staged_already:
                    continue  # staged already (and perhaps settled or held): not asked about twice
                if current is not None or event_id in masters:
                    staged += 1
                    writes.append(EventWrite([staged_row(
                        self._account, self._calendar.id, event_id,
                        reason=item.removed.reason if item.removed else "", now=now,
                        master=str(current.get("series_master_id") or "") if current is not None else "",
                        is_master=current is None or current.get("type") == "seriesMaster")]))
                continue
            event = StoredEvent.from_graph(self._calendar.id, item)
            if event.thin and event.series_master_id in series:
                event = fill_from_master(event, series[event.series_master_id])
            digest = content_hash(event)
            if current is not None and current.get("hash") == digest:
                unchanged += 1
                if stamp is not None and int(current.get("seen", -1)) != stamp:
                    writes.append(EventWrite([TableOp.merge(Row(self._account, current.row, {"seen": stamp}))]))
                continue
            changed += 1
            writes.append(self._event_write(event, digest, current, insert=fresh, stamp=stamp))
        if not fresh and stamp is None:  # an incremental round: the series it saw are checked at its end
            masters_seen = sorted({i.series_master_id for i in latest.values()
                                   if i.series_master_id and not i.is_removed})
            writes.extend(EventWrite([TableOp.upsert(Row(self._account, touched_key(self._calendar.id, m),
                                                         {"master": m}))]) for m in masters_seen)
            staged += len(masters_seen)
        return writes, (changed, unchanged, staged)

    async def _series_masters(self, items: Iterable[GraphEvent]) -> dict[str, StoredEvent]:
        """The series masters of a page's thin occurrences, read whole from Graph (20 to a JSON batch)."""
        wanted = sorted({i.series_master_id for i in items if i.series_master_id and not i.is_removed
                         and i.type == "occurrence" and i.subject is None})
        if not wanted:
            return {}
        found = await self._probe.masters(self._account, self._calendar.user, self._calendar.id, wanted)
        return {master_id: StoredEvent.from_graph(self._calendar.id, master) for master_id, master in found.items()}

    async def _beats_tombstone(self, item: GraphEvent, tombstone: Row, series: dict[str, StoredEvent]) -> bool:
        """Whether ``item`` is a later version than the deletion (its lastModifiedDateTime, or for a thin
        occurrence its series master's: as Graph answered it in this round, else as stored)."""
        modified = item.last_modified_date_time
        if modified is None and item.series_master_id in series:
            modified = series[item.series_master_id].last_modified
        elif modified is None and item.series_master_id:
            master = await self._services.tables.get(MAILBOX, self._account,
                                                     event_key(self._calendar.id, item.series_master_id))
            modified = master.get("last_modified") if master is not None and not master.get("tombstone") else None
        return later(modified, tombstone.get("last_modified"))

    def _staged_key(self, event_id: str) -> str:
        return staged_removal_key(self._calendar.id, event_id)

    async def _stored(self, ids: list[str], key: Callable[[str], str] | None = None) -> dict[str, Row]:
        gate = asyncio.Semaphore(READ_CONCURRENCY)
        tables = self._services.tables
        row_key = key or (lambda i: event_key(self._calendar.id, i))

        async def read(event_id: str) -> Row | None:
            async with gate:
                return await tables.get(MAILBOX, self._account, row_key(event_id))

        rows = await asyncio.gather(*(read(i) for i in ids))
        return {event_id: row for event_id, row in zip(ids, rows, strict=True) if row is not None}

    async def _masters_with_occurrences(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` (removed, never stored themselves) are series masters with stored occurrences."""
        gate = asyncio.Semaphore(READ_CONCURRENCY)
        tables = self._services.tables

        async def has_occurrences(event_id: str) -> bool:
            async with gate:
                found = tables.query(MAILBOX, self._account, prefix=series_prefix(self._calendar.id, event_id),
                                     limit=1)
                return bool([row async for row in found])

        answers = await asyncio.gather(*(has_occurrences(i) for i in ids))
        return {event_id for event_id, yes in zip(ids, answers, strict=True) if yes}

    def _event_write(self, event: StoredEvent, digest: str, current: Row | None, *, insert: bool,
                     stamp: int | None) -> EventWrite:
        calendar, event_id = self._calendar.id, event.id
        buckets = bucket_names(event.start, event.end)
        master = event.series_master_id
        data: dict[str, Any] = {**event.to_data(), "hash": digest, "buckets": ",".join(buckets), "sm": bool(master),
                                # Who: whose mailbox and calendar, and whose token read it (kept apart).
                                "mailbox": self._calendar.user, "calendar_owner": self._calendar.owner,
                                "acting_user": self._calendar.acting_user}
        if stamp is not None:
            data["seen"] = stamp
        row = Row(self._account, event_key(calendar, event_id), data)
        ops = [TableOp.insert(row) if insert else TableOp.upsert(row)]
        old = set(str(current.get("buckets", "")).split(",")) - {""} if current is not None else set()
        ops.extend(TableOp.delete(self._account, bucket_key(b, calendar, event_id)) for b in sorted(old - set(buckets)))
        index = {"calendar": calendar, "event": event_id, "start": event.start, "end": event.end,
                 "type": event.type, "show_as": event.show_as, "is_all_day": event.is_all_day,
                 "is_cancelled": event.is_cancelled, "long": buckets == [LONG],
                 # What availability needs of an all-day event: its days in its own zone.
                 "zone": event.zone, "start_date": event.start_date, "end_date": event.end_date}
        ops.extend(TableOp.upsert(Row(self._account, bucket_key(b, calendar, event_id), index)) for b in buckets)
        if master:
            ops.append(TableOp.upsert(Row(self._account, series_key(calendar, master, event_id), {"event": event_id})))
        feed = {"kind": "updated" if current is not None else "created", "calendar": calendar, "event": event_id,
                "dedupe": f"{event_id}|{event.last_modified or ''}|{event.change_key or ''}",
                "at": now_text(self._services.clock())}
        return EventWrite(ops, feed)
