"""An in-memory DeltaSource for the engine's unit tests: a mailbox with a change log, served in pages with
opaque next and delta links, as "Use delta query to track changes in Microsoft Graph data"
(https://learn.microsoft.com/en-us/graph/delta-query-overview) describes the loop. Rounds through the real
Graph shape run against the simulator in tests/integration; this fake is for the engine's own logic
(faults at exact points, counting what was fetched)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.graph.wire import GraphEvent, decode_page
from shared.sync.probe import GONE, HERE, Located
from shared.sync.projection import utc_instant_of
from shared.sync.source import CalendarInfo, CalendarRef, FetchedPage, Window

PRIMARY = "AAMkPrimaryCalendar="


def event(n: int, subject: str | None = None, day: int = 10) -> dict[str, Any]:
    return {"id": f"ev{n:05d}", "type": "singleInstance", "subject": subject or f"Meeting {n}",
            "start": {"dateTime": f"2026-12-{day:02d}T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": f"2026-12-{day:02d}T10:00:00.0000000", "timeZone": "UTC"},
            "isAllDay": False, "isCancelled": False, "showAs": "busy", "changeKey": f"ck{n}-0",
            "lastModifiedDateTime": "2026-12-01T00:00:00Z", "bodyPreview": "", "location": {"displayName": ""}}


@dataclass
class FakeMailbox:
    page_size: int = 2
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)         # ids in change order
    rounds: dict[str, tuple[list[str], int]] = field(default_factory=dict)   # round id -> (ids, log position)
    fetched: list[str] = field(default_factory=list)     # "first" or the link followed
    before_fetch: Callable[[str], None] | None = None    # a fault hook: raise, or change the world
    extra_items: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # page index -> items added
    loop_at: int | None = None                           # page index whose next link points at itself
    located: list[str] = field(default_factory=list)     # ids the engine asked the probe about
    series_masters: dict[str, dict[str, Any]] = field(default_factory=dict)  # served by ``masters`` only

    def put(self, item: dict[str, Any]) -> None:
        self.events[item["id"]] = item
        self.log.append(item["id"])

    def delete(self, event_id: str) -> None:
        self.events.pop(event_id, None)
        self.log.append(event_id)

    # --- DeltaSource ---------------------------------------------------------------------------

    async def first(self, account: str, calendar: CalendarRef, window: Window) -> FetchedPage:
        """A new round over the events that touch ``window``."""
        inside = [i for i, e in sorted(self.events.items())
                  if window.overlaps(utc_instant_of(e.get("start")), utc_instant_of(e.get("end")))]
        return self._serve("first", inside, len(self.log))

    async def follow(self, account: str, calendar: CalendarRef, link: str) -> FetchedPage:
        kind, _, rest = link.partition(":")
        if kind == "delta":
            since = int(rest)
            changed = list(dict.fromkeys(self.log[since:]))
            return self._serve(link, changed, len(self.log))
        round_id, _, offset = rest.partition("@")
        ids, position = self.rounds[round_id]
        return self._page(link, round_id, ids, position, int(offset))

    async def primary_calendar(self, account: str, user: str) -> str:
        return PRIMARY

    async def calendars(self, account: str, user: str) -> list[CalendarInfo]:
        return [CalendarInfo(PRIMARY, "Calendar", True, None)]  # this fake serves one calendar

    # --- EventProbe ------------------------------------------------------------------------------

    async def locate(self, account: str, user: str, calendar: str, ids: Sequence[str],
                     others: Sequence[str] = ()) -> dict[str, Located]:
        """Every event of this fake is in the primary calendar; an id it no longer has is deleted."""
        self.located.extend(ids)
        answers = {}
        for event_id in ids:
            item = self.events.get(event_id)
            answers[event_id] = Located(GONE) if item is None else Located(
                HERE, utc_instant_of(item.get("start")), utc_instant_of(item.get("end")))
        return answers

    async def occurrences(self, account: str, user: str, calendar: str, master: str,
                          window: Window) -> set[str] | None:
        return {i for i, e in self.events.items() if e.get("seriesMasterId") == master}

    async def masters(self, account: str, user: str, calendar: str, ids: Sequence[str]) -> dict[str, GraphEvent]:
        return {i: msgspec.json.decode(json.dumps(self.series_masters[i]).encode(), type=GraphEvent)
                for i in ids if i in self.series_masters}

    # --- pages -----------------------------------------------------------------------------------

    def _serve(self, what: str, ids: list[str], position: int) -> FetchedPage:
        round_id = f"r{len(self.rounds)}"
        self.rounds[round_id] = (ids, position)
        return self._page(what, round_id, ids, position, 0)

    def _page(self, what: str, round_id: str, ids: list[str], position: int, offset: int) -> FetchedPage:
        if self.before_fetch is not None:
            self.before_fetch(what)
        self.fetched.append(what)
        index = offset // self.page_size
        chunk = ids[offset:offset + self.page_size]
        items = [self.events.get(i) or {"id": i, "@removed": {"reason": "deleted"}} for i in chunk]
        items += self.extra_items.get(index, [])
        body: dict[str, Any] = {"value": items}
        if self.loop_at == index and what != "first":
            body["@odata.nextLink"] = what
        elif offset + self.page_size < len(ids):
            body["@odata.nextLink"] = f"next:{round_id}@{offset + self.page_size}"
        else:
            body["@odata.deltaLink"] = f"delta:{position}"
        raw = json.dumps(body).encode()
        return FetchedPage(decode_page(raw), hashlib.sha256(raw).hexdigest()[:32], len(raw))
