"""The events API: ``GET /api/accounts/{account}/events?start=&end=&calendar=&limit=&page=`` (function key).

What the SaaS reads of a mailbox, answered from the store alone: the time-bucket index rows the engine
writes with each event (shared/sync/buckets.py: one row per UTC week an event touches, or one ``long`` row)
for the weeks the range covers, never a scan of the partition, then the events' own rows. Occurrences are
the ones Graph expanded (the engine never expands a series itself), each with its UTC instants, its own
zone and wall-clock times (or its dates when all-day), its type and series master.

Order and paging: events in order of start (ties by calendar and id), each once however many weeks it
touches; a page ends after ``limit`` events with an opaque ``next_page`` token (the week and the last
event's sort key: a change between two pages moves nothing already read).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.accounts.repository import AccountRepository
from shared.api import RequestError, query_whole
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.store.ports import MAILBOX, Row
from shared.sync.buckets import LONG, PREFIX, monday_of
from shared.sync.mailbox import event_key
from shared.sync.window import instant

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_RANGE_DAYS = 500  # the sync window, month-aligned with its slack, spans up to about 490 days
READ_CONCURRENCY = 16


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime

    def overlaps(self, start: str | None, end: str | None) -> bool:
        first, last = moment(start), moment(end)
        if first is None or last is None:
            return False
        return first < self.end and (last > self.start or (last == first and first >= self.start))


async def list_events(services: Services, account_id: str, params: Mapping[str, str]) -> HttpResult:
    try:
        window = parse_range(params)
        limit = query_whole(params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        calendar = params.get("calendar") or None
        week, after = _page(params.get("page"))
        if await AccountRepository(services.tables).get(account_id) is None:
            raise RequestError(404, "account_not_found", "no such account", "account")
    except RequestError as exc:
        return exc.result()
    found: list[dict[str, Any]] = []
    next_page: str | None = None
    for bucket in week_buckets(window):
        if week is not None and _order(bucket) < _order(week):
            continue
        keys = await _bucket_events(services, account_id, bucket, window, calendar)
        if week == bucket and after is not None:
            keys = [k for k in keys if k[0] > after]
        take = keys[:limit - len(found)]
        found.extend(await _events(services, account_id, take))
        if len(found) >= limit:
            more = len(keys) > len(take) or bucket != week_buckets(window)[-1]
            if more:
                next_page = _token(bucket, take[-1][0]) if take else None
            break
    return json_result(200, {"events": found, "next_page": next_page})


def event_json(data: Mapping[str, Any]) -> dict[str, Any]:
    all_day = bool(data.get("is_all_day"))
    return {
        "id": data.get("id"), "calendar": data.get("calendar"), "type": data.get("type"),
        "series_master_id": data.get("series_master_id"), "subject": data.get("subject"),
        "start": second(data.get("start")), "end": second(data.get("end")),
        "is_all_day": all_day, "start_date": data.get("start_date"), "end_date": data.get("end_date"),
        "zone": data.get("zone"), "end_zone": data.get("end_zone"), "zone_flag": data.get("zone_flag"),
        "local_start": data.get("local_start"), "local_end": data.get("local_end"),
        "show_as": data.get("show_as"), "is_cancelled": bool(data.get("is_cancelled")),
        "location": data.get("location") or None, "original_start": second(data.get("original_start")),
        "recurrence": json.loads(data["recurrence"]) if data.get("recurrence") else None,
        "recurrence_flag": data.get("recurrence_flag"),
        "booking_id": data.get("booking_id"),  # set when the product wrote the event (outbound writes)
    }


# --- reading -----------------------------------------------------------------------------------------


async def _bucket_events(services: Services, account: str, bucket: str, window: Range,
                         calendar: str | None) -> list[tuple[str, str, str]]:
    """(sort key, calendar, event id) of the bucket's events that overlap ``window``, each in the bucket
    where the range first meets it, sorted."""
    prefix = f"{PREFIX}{bucket}:" + (f"{calendar}:" if calendar else "")
    keys: list[tuple[str, str, str]] = []
    async for row in services.tables.query(MAILBOX, account, prefix=prefix):
        start, end = row.get("start"), row.get("end")
        if not window.overlaps(start, end):
            continue
        if bucket != LONG and _home_bucket(start, window) != bucket:
            continue  # reported from the week the range first meets it
        keys.append((f"{second(start) or ''}|{row.get('calendar')}|{row.get('event')}",
                     str(row.get("calendar")), str(row.get("event"))))
    return sorted(keys)


async def _events(services: Services, account: str, keys: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(calendar: str, event_id: str) -> Row | None:
        async with gate:
            return await services.tables.get(MAILBOX, account, event_key(calendar, event_id))

    rows = await asyncio.gather(*(read(c, e) for _, c, e in keys))
    # An index row whose event is gone (or a tombstone now) is a leftover the next write removes: skipped.
    return [event_json(row.data) for row in rows if row is not None and not row.get("tombstone")]


def week_buckets(window: Range) -> list[str]:
    """The ``long`` range first (events longer than the weeks' rows hold), then each week the range touches."""
    monday = monday_of(window.start)
    weeks = [LONG]
    while monday < window.end:
        weeks.append(monday.strftime("%Y-%m-%d"))
        monday += timedelta(days=7)
    return weeks


def _order(bucket: str) -> str:
    return "" if bucket == LONG else bucket


def _home_bucket(start: str | None, window: Range) -> str | None:
    first = moment(start)
    if first is None:
        return None
    return monday_of(max(first, window.start)).strftime("%Y-%m-%d")


# --- parameters --------------------------------------------------------------------------------------


def parse_range(params: Mapping[str, str]) -> Range:
    start, end = _instant(params.get("start"), "start"), _instant(params.get("end"), "end")
    if end <= start:
        raise RequestError(400, "invalid_field", "end must be after start", "end")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise RequestError(400, "invalid_field", f"the range may span at most {MAX_RANGE_DAYS} days", "end")
    return Range(start, end)


def _instant(value: str | None, name: str) -> datetime:
    if not value:
        raise RequestError(400, "missing_field", f"{name} is required (ISO 8601 with a zone, e.g. "
                           "2026-12-01T00:00:00Z)", name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(400, "invalid_field", f"{name} is not an ISO 8601 date-time", name) from None
    if parsed.tzinfo is None:
        raise RequestError(400, "invalid_field", f"{name} needs a zone (Z or an offset)", name)
    return parsed.astimezone(UTC)


def _token(bucket: str, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"w": bucket, "a": after}).encode()).decode().rstrip("=")


def _page(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        week, after = data["w"], data["a"]
        if not isinstance(week, str) or not isinstance(after, str):
            raise TypeError
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise RequestError(400, "invalid_field", "page is not a token this API gave", "page") from None
    return week, after


def moment(value: Any) -> datetime | None:
    """A stored UTC instant ("...Z") as a datetime; None when absent or unreadable."""
    return instant(value) if isinstance(value, str) else None


def second(value: Any) -> str | None:
    """An instant as the API writes it: ISO 8601 UTC to the second."""
    parsed = moment(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed is not None else None
