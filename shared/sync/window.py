"""The sync window and how it moves.

The window is fixed inside a delta token: a calendarView delta round's state tokens encode its
startDateTime and endDateTime, and every later request only follows the links Graph returned ("Get
incremental changes to events in a calendar view", https://learn.microsoft.com/en-us/graph/delta-query-events).
A window that slides with every day would need a new full round every day, so the window moves in coarse
steps instead: it starts on the first of a month and ends on the first of a month with at least a month of
slack beyond what the settings ask for, and it moves (a new full round, which reports what fell out as
``left_window``) only when it no longer covers ``SYNC_WINDOW_PAST_DAYS`` before today and
``SYNC_WINDOW_FUTURE_DAYS`` after it: about once a month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SLACK_DAYS = 31


@dataclass(frozen=True)
class Window:
    start: str   # ISO 8601 UTC, "...Z"
    end: str

    def overlaps(self, start: str | None, end: str | None) -> bool:
        """Whether an event from ``start`` to ``end`` touches the window (unreadable times: assumed so)."""
        first, last = instant(start), instant(end)
        if first is None or last is None:
            return True
        lo, hi = instant(self.start), instant(self.end)
        if lo is None or hi is None:
            return True
        return first < hi and (last > lo or (last == first and first >= lo))


def instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(moment: datetime) -> datetime:
    return _month_start(_month_start(moment) + timedelta(days=32))


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def required_range(now: float, past_days: int, future_days: int) -> tuple[datetime, datetime]:
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=past_days), today + timedelta(days=future_days)


def wanted_window(now: float, past_days: int, future_days: int) -> Window:
    """The window a new round covers: month-aligned, at least the required range plus a month of slack ahead."""
    low, high = required_range(now, past_days, future_days)
    return Window(_text(_month_start(low)), _text(_next_month(high + timedelta(days=SLACK_DAYS))))


def covers(window: Window, now: float, past_days: int, future_days: int) -> bool:
    """Whether ``window`` still covers the range the settings ask for today."""
    low, high = required_range(now, past_days, future_days)
    start, end = instant(window.start), instant(window.end)
    return start is not None and end is not None and start <= low and end >= high
