"""Availability: ``GET /api/accounts/{account}/availability?start=&end=&calendars=`` (function key).

Busy intervals merged across the selected calendars, from the synced store alone (the time-bucket rows of
the weeks the range covers: no Graph call, no partition scan), what a booking engine asks before it
offers a slot. An event counts by its ``showAs`` ("event resource type",
https://learn.microsoft.com/en-us/graph/api/resources/event): ``busy``, ``tentative``, ``oof`` and
``workingElsewhere`` do, ``free`` (and an unknown value) does not, nor does a cancelled event. Recurring
occurrences are in the store as Graph expanded them, so they count like any event. An all-day event
covers whole days in its own zone (its dates from midnight to midnight there), not the instants Graph
happens to give it.

Where intervals overlap the strongest status wins, in the order Outlook's free/busy view ranks them
(``oof`` > ``busy`` > ``tentative`` > ``workingElsewhere``), and touching intervals of one status are
joined: the answer is a list of disjoint intervals in time order, each clipped to the range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from shared.accounts.repository import AccountRepository
from shared.api import RequestError
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.store.ports import CALENDARS, MAILBOX
from shared.sync.buckets import PREFIX
from shared.sync.events_api import Range, moment, parse_range, second, week_buckets
from shared.sync.mailbox import event_key

STRENGTH = {"workingElsewhere": 1, "tentative": 2, "busy": 3, "oof": 4}
MAX_CALENDARS = 20


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    show_as: str


async def availability(services: Services, account_id: str, params: Mapping[str, str]) -> HttpResult:
    try:
        window = parse_range(params)
        if await AccountRepository(services.tables).get(account_id) is None:
            raise RequestError(404, "account_not_found", "no such account", "account")
        calendars = await _calendars(services, account_id, params.get("calendars"))
    except RequestError as exc:
        return exc.result()
    intervals = await busy_intervals(services, account_id, window, calendars)
    return json_result(200, {
        "start": second(window.start.isoformat()), "end": second(window.end.isoformat()),
        "calendars": sorted(calendars),
        "busy": [{"start": second(b.start.isoformat()), "end": second(b.end.isoformat()), "show_as": b.show_as}
                 for b in merge(intervals)]})


async def busy_intervals(services: Services, account: str, window: Range, calendars: set[str]) -> list[Busy]:
    seen: set[tuple[str, str]] = set()
    found: list[Busy] = []
    for bucket in week_buckets(window):
        async for row in services.tables.query(MAILBOX, account, prefix=f"{PREFIX}{bucket}:"):
            key = (str(row.get("calendar")), str(row.get("event")))
            show_as = row.get("show_as")
            if key in seen or key[0] not in calendars or row.get("is_cancelled") or show_as not in STRENGTH:
                continue
            seen.add(key)
            span = await _span(services, account, dict(row.data))
            if span is None:
                continue
            start, end = max(span[0], window.start), min(span[1], window.end)
            if start < end:
                found.append(Busy(start, end, str(show_as)))
    return found


def merge(intervals: list[Busy]) -> list[Busy]:
    """Disjoint intervals in time order, the strongest status winning where several overlap (one sweep over
    the intervals' ends: a count of open intervals per status)."""
    changes: dict[datetime, dict[str, int]] = {}
    for b in intervals:
        changes.setdefault(b.start, {}).setdefault(b.show_as, 0)
        changes[b.start][b.show_as] += 1
        changes.setdefault(b.end, {}).setdefault(b.show_as, 0)
        changes[b.end][b.show_as] -= 1
    open_count = dict.fromkeys(STRENGTH, 0)
    merged: list[Busy] = []
    current: str | None = None
    since: datetime | None = None
    for at in sorted(changes):
        for name, delta in changes[at].items():
            open_count[name] += delta
        strongest = max((s for s, n in open_count.items() if n > 0), key=STRENGTH.__getitem__, default=None)
        if strongest == current:
            continue
        if current is not None and since is not None:
            merged.append(Busy(since, at, current))
        current, since = strongest, at
    return merged


async def _span(services: Services, account: str, index: dict[str, Any]) -> tuple[datetime, datetime] | None:
    if not index.get("is_all_day"):
        start, end = moment(index.get("start")), moment(index.get("end"))
        return (start, end) if start is not None and end is not None else None
    if not index.get("start_date"):  # an index row written before it carried the dates: the event's row has them
        row = await services.tables.get(MAILBOX, account, event_key(str(index.get("calendar")),
                                                                    str(index.get("event"))))
        index = dict(row.data) if row is not None else {}
    zone = ZoneInfo(str(index.get("zone") or "UTC"))
    try:
        first = datetime.combine(datetime.fromisoformat(str(index["start_date"])).date(), time(), zone)
        last = datetime.combine(datetime.fromisoformat(str(index["end_date"])).date(), time(), zone)
    except (KeyError, ValueError):
        return None
    return first, last


async def _calendars(services: Services, account: str, asked: str | None) -> set[str]:
    """The calendars asked for (comma-separated ids), each one the account syncs; all it syncs by default."""
    synced = {row.row async for row in services.tables.query(CALENDARS, account) if row.get("sync", True)}
    if not asked:
        return synced
    wanted = {c.strip() for c in asked.split(",") if c.strip()}
    if len(wanted) > MAX_CALENDARS:
        raise RequestError(400, "invalid_field", f"at most {MAX_CALENDARS} calendars", "calendars")
    unknown = sorted(wanted - synced)
    if unknown:
        raise RequestError(400, "invalid_field", f"not a synced calendar of this account: {unknown[0]}", "calendars")
    return wanted
