"""Six-field NCRONTAB schedules (seconds first), as the Functions host's timer trigger reads them.

The host parses schedules with NCrontab (github.com/atifaziz/NCrontab). What this module copies from
its source (NCrontab/CrontabSchedule.cs, CrontabFieldImpl.cs, CrontabField.cs):

- Day of month and day of week are ANDed. ``CrontabSchedule.GetNextOccurrence`` finds the next date
  whose day and month match and then only accepts it if ``_daysOfWeek.Contains(DayOfWeek)``, else it
  retries from the end of that day. So ``0 0 0 13 * Fri`` is "Friday the 13th" only, unlike Vixie
  cron, which ORs the two fields when both are restricted (NCrontab's own test: ``45 16 1 * Mon``
  after 2003-01-01 is 2003-09-01, the first 1st of a month that is a Monday).
- Fields: ``*``, values, ``a-b`` (a reversed range is swapped), ``a/n`` (a to the field maximum in
  steps of n, also for n = 1), ``*/n``, ``a-b/n``, comma lists. Day of week is 0-6 with Sunday 0 (7 is rejected).
  Month and day names match as case-insensitive prefixes of the English names (``Jan``, ``augu``,
  ``SEPT-October``); the first name in calendar order that starts with the text wins.
- The next occurrence is strictly after the base time, at whole seconds (milliseconds ignored).

Times are naive datetimes in whatever zone the caller uses (the runner uses UTC).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

# (name, minimum, maximum, value names) for each of the six fields, in expression order.
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)

# A schedule such as "0 0 0 29 Feb Mon" matches once in up to 28 years; give up well after that.
_SEARCH_YEARS = 60


class CrontabError(ValueError):
    """The expression is not a valid six-field NCRONTAB schedule."""


def _parse_value(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> int:
    name, _, _, names = field
    if text[:1].isdigit():
        return int(text)
    for index, candidate in enumerate(names):
        if text and candidate.startswith(text.lower()):
            return index + field[1]
    raise CrontabError(f"{text!r} is not a valid {name} value")


def _parse_field(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> frozenset[int]:
    name, low, high, _ = field
    values: set[int] = set()
    for element in text.split(","):
        if not element:
            raise CrontabError(f"empty element in {name} field {text!r}")
        step = 1
        stepped = "/" in element
        if stepped:
            element, _, step_text = element.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise CrontabError(f"bad step in {name} field {text!r}")
            step = int(step_text)
        if element == "*":
            start, end = low, high
        elif "-" in element:
            first, _, last = element.partition("-")
            start, end = sorted((_parse_value(first, field), _parse_value(last, field)))
        else:
            start = _parse_value(element, field)
            # "a/n" runs from a to the maximum, even "a/1" (NCrontab's test: "40 14/1 * * *" fires at 15:40)
            end = high if stepped else start
        if start < low or end > high:
            raise CrontabError(f"{name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) != 6:
            raise CrontabError(f"{expression!r} must have 6 fields: second minute hour day month day-of-week")
        fields = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *fields)

    def _matches_date(self, day: date) -> bool:
        # Both day fields must match (AND, as NCrontab does); isoweekday() is 1-7 with Sunday 7.
        return (day.month in self.months and day.day in self.days
                and day.isoweekday() % 7 in self.days_of_week)

    def _first_time_of_day(self, day: date, after: datetime | None) -> datetime | None:
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                for second in sorted(self.seconds):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, second)
                    if after is None or candidate > after:
                        return candidate
        return None

    def next_after(self, base: datetime) -> datetime | None:
        """The first occurrence strictly after ``base`` (whole seconds), or None within 60 years."""
        tz = base.tzinfo
        base = base.replace(microsecond=0, tzinfo=None)
        day = base.date()
        last_day = date(min(day.year + _SEARCH_YEARS, 9999), 12, 31)
        first = True
        while day <= last_day:
            if self._matches_date(day):
                found = self._first_time_of_day(day, base if first else None)
                if found is not None:
                    return found.replace(tzinfo=tz)
            first = False
            day = _next_candidate_day(day, self.months)
        return None

    def next_occurrences(self, base: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        current: datetime | None = base
        while current is not None and len(out) < count:
            current = self.next_after(current)
            if current is not None:
                out.append(current)
        return out


def _next_candidate_day(day: date, months: frozenset[int]) -> date:
    """The next day, skipping whole months the schedule excludes (keeps rare schedules fast)."""
    following = day + timedelta(days=1)
    while following.month not in months:
        days_in_month = calendar.monthrange(following.year, following.month)[1]
        following = following.replace(day=days_in_month) + timedelta(days=1)
    return following
