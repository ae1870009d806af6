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

Not in this part: ``@removed`` entries are staged as ``removed:{calendar}:{id}`` rows for the deletion
logic to apply (tombstones, the breaker), and a dead delta token restarts the round from scratch over the
same window without sweeping what it no longer sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.api import iso_utc
from shared.context import Services
from shared.errors import ResyncRequired, RowExists, TransientGraphError
from shared.graph.wire import GraphEvent
from shared.ops.journal import JournalEntry
from shared.store.ports import MAILBOX, Row, TableOp
from shared.sync.buckets import LONG, bucket_key, bucket_names
from shared.sync.mailbox import EventWrite, LeaseHolder, cursor_key, event_key, staged_removal_key
from shared.sync.projection import StoredEvent, content_hash
from shared.sync.source import CalendarRef, DeltaSource, FetchedPage, Window

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
    """The window a new round covers, from today's date (UTC midnight) and the window settings."""
    today = datetime.fromtimestamp(services.clock(), UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    settings = services.settings
    start = today - timedelta(days=settings.sync_window_past_days)
    end = today + timedelta(days=settings.sync_window_future_days)
    return Window(str(iso_utc(start.timestamp())), str(iso_utc(end.timestamp())))


class CalendarRound:
    def __init__(self, services: Services, holder: LeaseHolder, source: DeltaSource, calendar: CalendarRef) -> None:
        self._services = services
        self._holder = holder
        self._source = source
        self._calendar = calendar
        self._account = holder.account

    async def run(self, budget: Budget) -> SliceResult:
        stored = await self._services.tables.get(MAILBOX, self._account, cursor_key(self._calendar.id))
        cursor: dict[str, Any] = dict(stored.data) if stored is not None else {}
        started_at = time.monotonic()
        pages = 0
        tally = [0, 0, 0]  # changed, unchanged, removals staged

        def result(complete: bool, round_started: float) -> SliceResult:
            return SliceResult(complete, pages, tally[0], tally[1], tally[2], round_started)

        while True:
            link, round_started = self._position(cursor)
            try:
                fetched = await self._fetch(cursor, link)
            except ResyncRequired as exc:
                await self._restart(cursor, f"delta token no longer valid ({exc.code or exc.status}); new round",
                                    from_scratch=True)
                continue
            pages += 1
            looping = self._loops(cursor, link, fetched)
            repeats = int(cursor.get("repeats", 0)) + 1 if looping else 0
            if int(cursor.get("round_pages", 0)) >= ROUND_MAX_PAGES:
                looping, repeats = f"the round passed {ROUND_MAX_PAGES} pages", MAX_REPEATS + 1
            fresh = bool(cursor.get("fresh"))
            if looping is not None and repeats > MAX_REPEATS:
                counts = await self._apply(fetched, fresh, [])  # what the page says still holds
                tally = [a + b for a, b in zip(tally, counts, strict=True)]
                await self._restart(cursor, looping, from_scratch=False)
                return result(False, round_started)
            cursor.update(self._advance(cursor, link, fetched, round_started), repeats=repeats)
            counts = await self._apply(fetched, fresh, [self._checkpoint(cursor)])
            tally = [a + b for a, b in zip(tally, counts, strict=True)]
            if fetched.page.delta_link is not None:
                return result(True, round_started)
            if pages >= budget.pages or time.monotonic() - started_at >= budget.seconds:
                return result(False, round_started)

    def _position(self, cursor: dict[str, Any]) -> tuple[str | None, float]:
        """The link to fetch (None: a new round from scratch) and when the current round started."""
        if cursor.get("next_link"):
            return str(cursor["next_link"]), float(cursor.get("round_started", self._services.clock()))
        return (str(cursor["delta_link"]) if cursor.get("delta_link") else None), self._services.clock()

    async def _fetch(self, cursor: dict[str, Any], link: str | None) -> FetchedPage:
        if link is not None:
            return await self._source.follow(self._account, self._calendar, link)
        window = Window(str(cursor["window_start"]), str(cursor["window_end"])) if cursor.get("window_start") \
            else sync_window(self._services)
        any_stored = self._services.tables.query(MAILBOX, self._account, prefix=event_key(self._calendar.id, ""),
                                                 limit=1)
        cursor.update(window_start=window.start, window_end=window.end,
                      fresh=not [row async for row in any_stored])
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
                 round_started: float) -> dict[str, Any]:
        page = fetched.page
        in_round = page.delta_link is None
        return {
            "next_link": page.next_link if in_round else "",
            "delta_link": page.delta_link if not in_round else cursor.get("delta_link", ""),
            "round_started": round_started, "round_pages": int(cursor.get("round_pages", 0)) + 1 if in_round else 0,
            "last_digest": fetched.digest, "last_next": page.next_link or "",
            "restarts": int(cursor.get("restarts", 0)) if in_round else 0,
            "rounds": int(cursor.get("rounds", 0)) + (0 if in_round else 1),
            "fresh": bool(cursor.get("fresh")) and in_round,
            "last_round_completed": self._services.clock() if not in_round else cursor.get("last_round_completed"),
        }

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
        await self._holder.commit([], [self._checkpoint(cursor)])

    def _checkpoint(self, cursor: dict[str, Any]) -> TableOp:
        return TableOp.upsert(Row(self._account, cursor_key(self._calendar.id), cursor))

    async def _apply(self, fetched: FetchedPage, fresh: bool, tail: list[TableOp]) -> tuple[int, int, int]:
        """Write what the page changes; returns (changed, unchanged, removals staged).

        In a fresh round (the calendar's first, over a calendar with no stored events) nothing is read: each
        event is inserted, and an insert that meets its row (the same item earlier in the round, or a page
        applied again after a crash) sends the page down the careful path, which reads what is stored."""
        if fresh:
            writes, counts = await self._plan(fetched.page.value, fresh=True)
            try:
                await self._holder.commit(writes, tail)
                return counts
            except RowExists:
                pass
        writes, counts = await self._plan(fetched.page.value, fresh=False)
        await self._holder.commit(writes, tail)
        return counts

    async def _plan(self, items: Sequence[GraphEvent], *, fresh: bool) -> tuple[list[EventWrite], tuple[int, int, int]]:
        """The writes one page asks for: (writes, (changed, unchanged, removals staged))."""
        latest = {item.id: item for item in items}  # the same id twice in a page: the last one counts
        stored = {} if fresh else await self._stored(list(latest))
        writes: list[EventWrite] = []
        changed = unchanged = staged = 0
        for event_id, item in latest.items():
            current = stored.get(event_id)
            if item.is_removed:
                if current is not None:
                    staged += 1
                    writes.append(EventWrite([TableOp.upsert(Row(self._account, staged_removal_key(
                        self._calendar.id, event_id), {"reason": item.removed.reason if item.removed else "",
                                                       "at": self._services.clock()}))]))
                continue
            event = StoredEvent.from_graph(self._calendar.id, item)
            digest = content_hash(event)
            if current is not None and current.get("hash") == digest:
                unchanged += 1
                continue
            changed += 1
            writes.append(self._event_write(event, digest, current, insert=fresh))
        return writes, (changed, unchanged, staged)

    async def _stored(self, ids: list[str]) -> dict[str, Row]:
        gate = asyncio.Semaphore(READ_CONCURRENCY)
        tables = self._services.tables

        async def read(event_id: str) -> Row | None:
            async with gate:
                return await tables.get(MAILBOX, self._account, event_key(self._calendar.id, event_id))

        rows = await asyncio.gather(*(read(i) for i in ids))
        return {event_id: row for event_id, row in zip(ids, rows, strict=True) if row is not None}

    def _event_write(self, event: StoredEvent, digest: str, current: Row | None, *, insert: bool) -> EventWrite:
        calendar, event_id = self._calendar.id, event.id
        buckets = bucket_names(event.start, event.end)
        row = Row(self._account, event_key(calendar, event_id),
                  {**event.to_data(), "hash": digest, "buckets": ",".join(buckets)})
        ops = [TableOp.insert(row) if insert else TableOp.upsert(row)]
        old = set(str(current.get("buckets", "")).split(",")) - {""} if current is not None else set()
        ops.extend(TableOp.delete(self._account, bucket_key(b, calendar, event_id)) for b in sorted(old - set(buckets)))
        index = {"calendar": calendar, "event": event_id, "start": event.start, "end": event.end,
                 "type": event.type, "show_as": event.show_as, "is_all_day": event.is_all_day,
                 "is_cancelled": event.is_cancelled, "long": buckets == [LONG]}
        ops.extend(TableOp.upsert(Row(self._account, bucket_key(b, calendar, event_id), index)) for b in buckets)
        now = datetime.fromtimestamp(self._services.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        feed = {"kind": "updated" if current is not None else "created", "calendar": calendar, "event": event_id,
                "dedupe": f"{event_id}|{event.last_modified or ''}|{event.change_key or ''}", "at": now}
        return EventWrite(ops, feed)
