"""Zones as Outlook names them, and an event's times in its own zone (pure code: no I/O, no SDK).

Graph answers start and end in UTC (the product never sends ``Prefer: outlook.timezone``) and names the
zone an event was written in by ``originalStartTimeZone`` / ``originalEndTimeZone``: usually a Windows
zone name ("Pacific Standard Time"), sometimes one of the IANA names Outlook accepts, and
``tzone://Microsoft/Custom`` for a legacy custom zone of desktop Outlook ("dateTimeTimeZone resource
type", https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone; "event resource type",
https://learn.microsoft.com/en-us/graph/api/resources/event). Python's ``zoneinfo`` knows only IANA
names, so Windows names are mapped through CLDR's windowsZones table as the ``tzlocal`` package ships
it (docs/dependencies.md). A custom or unknown zone falls back to UTC with a flag, never a failure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from shared.sync.window import instant as parse_instant

CUSTOM = "custom"      # tzone://Microsoft/Custom, "Customized Time Zone": rules we cannot read
UNKNOWN = "unknown"    # a name neither CLDR nor the IANA database knows
MISSING = "missing"    # no zone given at all
_CUSTOM_NAMES = frozenset({"tzone://microsoft/custom", "customized time zone"})
_UTC_NAMES = frozenset({"utc", "etc/utc", "etc/gmt", "gmt", "z", "tzone://microsoft/utc",
                        "coordinated universal time"})
_WINDOWS = {name.lower(): iana for name, iana in win_tz.items()}


@dataclass(frozen=True)
class EventZone:
    name: str                 # an IANA zone name ("UTC" for the fallback)
    flag: str | None = None   # None, CUSTOM, UNKNOWN or MISSING: the times are shown in UTC instead


@functools.lru_cache(maxsize=1024)
def event_zone(name: str | None) -> EventZone:
    """The IANA zone of a zone name as Graph reports it."""
    if not name or not name.strip():
        return EventZone("UTC", MISSING)
    key = name.strip().lower()
    if key in _UTC_NAMES:
        return EventZone("UTC")
    if key in _CUSTOM_NAMES:
        return EventZone("UTC", CUSTOM)
    iana = _WINDOWS.get(key)
    if iana is not None:
        return EventZone("UTC" if iana in ("Etc/UTC", "Etc/GMT") else iana)
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return EventZone("UTC", UNKNOWN)
    return EventZone(name.strip())


def local_wall_time(instant: str | None, zone: str) -> str | None:
    """A UTC instant ("...Z") as the wall-clock date-time in ``zone`` ("2026-03-09T09:00:00")."""
    moment = parse_instant(instant)
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


def all_day_date(instant: str | None, zone: str) -> str | None:
    """The date of an all-day event's start or (exclusive) end.

    Graph keeps an all-day event at midnight: either the wall-clock midnight as it is (what Outlook is
    seen to answer, whatever zone is asked for) or that midnight in the event's zone converted to UTC.
    A UTC midnight is taken as the date it shows; anything else is converted to the event's own zone,
    where it is midnight. Both readings give the same date for a viewer anywhere."""
    moment = parse_instant(instant)
    if moment is None:
        return None
    if moment.time() != datetime.min.time():
        moment = moment.astimezone(ZoneInfo(zone))
        if moment.hour >= 12:  # a midnight a little off (a zone's rules changed since): the nearer day
            moment += timedelta(hours=24 - moment.hour)
    return moment.strftime("%Y-%m-%d")
