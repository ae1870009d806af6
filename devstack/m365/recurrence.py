"""Recurrence expansion: a patternedRecurrence (pattern and range) turned into the original start times of its
occurrences, computed in the series' own time zone with dateutil's rrule over wall-clock times, so a weekly 09:00
meeting stays 09:00 local across a daylight-saving change. Independent of the product (no shared code).

Sources: patternedRecurrence resource type (https://learn.microsoft.com/en-us/graph/api/resources/patternedrecurrence);
recurrencePattern resource type (https://learn.microsoft.com/en-us/graph/api/resources/recurrencepattern): types
daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly with interval, daysOfWeek,
firstDayOfWeek (default sunday), dayOfMonth, month and index (first..fourth, last); recurrenceRange resource type
(https://learn.microsoft.com/en-us/graph/api/resources/recurrencerange): endDate, noEnd, numbered, startDate, endDate,
numberOfOccurrences and recurrenceTimeZone (default: the start time zone of the event).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil import rrule

from devstack.m365.graph import GraphError
from devstack.m365.timezones import Zone, resolve

WEEKDAYS = {"monday": rrule.MO, "tuesday": rrule.TU, "wednesday": rrule.WE, "thursday": rrule.TH,
            "friday": rrule.FR, "saturday": rrule.SA, "sunday": rrule.SU}
INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
FREQUENCY = {"daily": rrule.DAILY, "weekly": rrule.WEEKLY, "absoluteMonthly": rrule.MONTHLY,
             "relativeMonthly": rrule.MONTHLY, "absoluteYearly": rrule.YEARLY, "relativeYearly": rrule.YEARLY}
# recurrencePattern: which properties each type needs (and may carry)
NEEDS = {"daily": set(), "weekly": {"daysOfWeek"}, "absoluteMonthly": {"dayOfMonth"},
         "relativeMonthly": {"daysOfWeek"}, "absoluteYearly": {"dayOfMonth", "month"},
         "relativeYearly": {"daysOfWeek", "month"}}
RANGES = ("endDate", "noEnd", "numbered")


def invalid(message: str) -> GraphError:
    # The code is assumed: the reference pages do not name the error of a malformed recurrence.
    return GraphError(400, "ErrorInvalidRecurrence", message)


def check(recurrence: Any) -> None:
    """A patternedRecurrence as Graph accepts it, else 400."""
    if not isinstance(recurrence, dict) or not isinstance(recurrence.get("pattern"), dict) \
            or not isinstance(recurrence.get("range"), dict):
        raise invalid("A recurrence needs a pattern and a range.")
    pattern, span = recurrence["pattern"], recurrence["range"]
    kind = pattern.get("type")
    if kind not in FREQUENCY:
        raise invalid(f"Recurrence pattern type '{kind}' is not valid.")
    if not isinstance(pattern.get("interval"), int) or pattern["interval"] < 1:
        raise invalid("The recurrence pattern needs an interval of 1 or more.")
    for name in NEEDS[kind]:
        if not pattern.get(name):
            raise invalid(f"A {kind} recurrence pattern needs {name}.")
    if any(d not in WEEKDAYS for d in pattern.get("daysOfWeek") or []):
        raise invalid("daysOfWeek holds names of days, sunday to saturday.")
    if kind.startswith("relative") and pattern.get("index", "first") not in INDEX:
        raise invalid("index is first, second, third, fourth or last.")
    if span.get("type") not in RANGES:
        raise invalid(f"Recurrence range type '{span.get('type')}' is not valid.")
    try:
        date.fromisoformat(str(span.get("startDate")))
        if span["type"] == "endDate":
            date.fromisoformat(str(span.get("endDate")))
    except ValueError:
        raise invalid("The recurrence range needs startDate (and endDate) as yyyy-mm-dd.") from None
    if span["type"] == "numbered" and (not isinstance(span.get("numberOfOccurrences"), int)
                                       or span["numberOfOccurrences"] < 1):
        raise invalid("A numbered recurrence range needs numberOfOccurrences of 1 or more.")


@dataclass(frozen=True)
class Series:
    """What the expansion needs of a series master: its recurrence, its first start (UTC seconds) and its zone."""

    recurrence: dict[str, Any]
    start: float
    start_zone: str

    def zone(self) -> Zone:
        named = self.recurrence.get("range", {}).get("recurrenceTimeZone") or self.start_zone
        return resolve(named) or resolve("UTC")  # type: ignore[return-value]

    def rule(self) -> rrule.rrule:
        pattern, span = self.recurrence["pattern"], self.recurrence["range"]
        zone = self.zone()
        local_time = datetime.fromtimestamp(self.start, UTC).astimezone(zone.tz).time().replace(tzinfo=None)
        first = datetime.combine(date.fromisoformat(span["startDate"]), local_time)  # naive wall clock
        kind = pattern["type"]
        options: dict[str, Any] = {"dtstart": first, "interval": pattern["interval"],
                                   "wkst": WEEKDAYS[pattern.get("firstDayOfWeek") or "sunday"]}
        days = [WEEKDAYS[d] for d in pattern.get("daysOfWeek") or []]
        if kind == "weekly":
            options["byweekday"] = days
        if kind.startswith("absolute"):
            options["bymonthday"] = pattern["dayOfMonth"]
        if kind.startswith("relative"):
            # "the first Monday or Tuesday": the index picks among all the days named (bysetpos)
            options["byweekday"] = days
            options["bysetpos"] = INDEX[pattern.get("index") or "first"]
        if kind.endswith("Yearly"):
            options["bymonth"] = pattern["month"]
        if span["type"] == "endDate":
            options["until"] = datetime.combine(date.fromisoformat(span["endDate"]), time.max)
        elif span["type"] == "numbered":
            options["count"] = span["numberOfOccurrences"]
        return rrule.rrule(FREQUENCY[kind], **options)

    def starts_between(self, after: float, before: float) -> list[float]:
        """Original starts (UTC seconds) of the occurrences starting in [after, before]."""
        zone = self.zone()
        margin = timedelta(days=2)  # the naive local bounds may be off by the zone's offset
        low = datetime.fromtimestamp(after, UTC).astimezone(zone.tz).replace(tzinfo=None) - margin
        high = datetime.fromtimestamp(before, UTC).astimezone(zone.tz).replace(tzinfo=None) + margin
        found = []
        for local in self.rule().between(low, high, inc=True):
            instant = local.replace(tzinfo=zone.tz).timestamp()
            if after <= instant <= before:
                found.append(instant)
        return found

    def is_occurrence(self, original: float) -> bool:
        return original in self.starts_between(original - 1, original + 1)
