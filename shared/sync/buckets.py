"""Time buckets: the index rows that let a range query read only the weeks it covers.

The rule (docs/architecture.md, "Time buckets"), fixed now because changing it means rewriting every
index row:

- A bucket is one UTC week, named by its Monday: ``tb:2026-11-30:{calendar}:{id}``.
- An event gets one row per week it touches, up to ``MAX_BUCKETS`` weeks. So an event's rows (the event,
  its bucket rows, its feed row) and the lease row always fit one transaction of at most 100 rows.
- An event longer than that (or with unreadable times) gets a single row in the ``long`` range instead
  (``tb:long:{calendar}:{id}``), which every range query also reads and filters by its times.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.sync.window import instant

MAX_BUCKETS = 8
LONG = "long"
PREFIX = "tb:"


def bucket_names(start: str | None, end: str | None) -> list[str]:
    """The buckets of an event from ``start`` to ``end`` (UTC instants, "...Z")."""
    first, last = instant(start), instant(end)
    if first is None or last is None or last < first:
        return [LONG]
    # The end is exclusive: an event ending at Monday 00:00 does not touch that week.
    last = max(first, last - timedelta(microseconds=1))
    monday = monday_of(first)
    names: list[str] = []
    while monday <= last:
        if len(names) == MAX_BUCKETS:
            return [LONG]
        names.append(monday.strftime("%Y-%m-%d"))
        monday += timedelta(days=7)
    return names


def bucket_key(bucket: str, calendar: str, event_id: str) -> str:
    return f"{PREFIX}{bucket}:{calendar}:{event_id}"


def monday_of(moment: datetime) -> datetime:
    """Midnight UTC of the Monday of ``moment``'s week: the start of its bucket."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())
