"""Time zones as Outlook names them: Windows zone names, mapped to IANA zones through the simulator's own copy of
CLDR's windowsZones.xml (devstack/m365/cldr/), and the legacy custom zone of desktop Outlook.

dateTimeTimeZone resource type (https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone): a
``timeZone`` is a Windows zone name or one of the IANA names Outlook accepts; event resource type
(https://learn.microsoft.com/en-us/graph/api/resources/event): ``originalStartTimeZone`` holds the zone the event
was written in, ``tzone://Microsoft/Custom`` for a custom zone that desktop Outlook set.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WINDOWS_ZONES = Path(__file__).parent / "cldr" / "windowsZones.xml"
CUSTOM_ZONE = "tzone://Microsoft/Custom"
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z"})


@dataclass(frozen=True)
class Zone:
    """A zone a client named: ``windows`` is what Outlook reports back (originalStartTimeZone)."""

    windows: str
    tz: tzinfo


@functools.cache
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """(Windows name -> IANA zone of territory 001, IANA zone -> Windows name), from windowsZones.xml."""
    to_iana: dict[str, str] = {}
    to_windows: dict[str, str] = {}
    for zone in ET.parse(WINDOWS_ZONES).getroot().iter("mapZone"):  # noqa: S314 - our own vendored file
        windows, territory, types = zone.get("other", ""), zone.get("territory", ""), zone.get("type", "")
        if territory == "001":
            to_iana[windows] = types.split()[0]
        for iana in types.split():
            to_windows.setdefault(iana, windows)
    return to_iana, to_windows


@functools.lru_cache(maxsize=1024)
def resolve(name: str) -> Zone | None:
    """The zone a client wrote (a Windows or an IANA name, case as written for Windows names), or None."""
    to_iana, to_windows = _tables()
    if name in UTC_NAMES:
        return Zone("UTC", UTC)
    windows = next((w for w in to_iana if w.lower() == name.lower()), None)
    if windows is not None:
        return Zone(windows, _zoneinfo(to_iana[windows]))
    if name in to_windows:
        return Zone(to_windows[name], _zoneinfo(name))
    return None


def windows_names() -> list[str]:
    return sorted(_tables()[0])


@functools.cache
def _zoneinfo(iana: str) -> tzinfo:
    try:
        return ZoneInfo(iana)
    except ZoneInfoNotFoundError:  # an old CLDR name the tz database dropped: fixed UTC rather than a crash
        return UTC


def to_utc(local: datetime, zone: Zone) -> datetime:
    """A wall-clock time in ``zone`` (or an aware time) as UTC."""
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone.tz)
    return local.astimezone(UTC)


def wall_clock(moment: datetime, zone: Zone) -> str:
    """``moment`` in ``zone`` as Graph writes dateTime: no offset, seven fractional digits."""
    local = moment.astimezone(zone.tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0"


def utc_now(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
