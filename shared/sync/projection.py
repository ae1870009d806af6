"""The one projection: which fields of an event count.

An event as Graph sent it (``GraphEvent``) and an event as the store keeps it (a row) both become a
``StoredEvent``; ``projection`` says which of its fields a comparison looks at. The store's content hash,
the engine's tests, the benchmarks and the proof suites all compare through it, so "the store equals the
mailbox" means one thing everywhere.

What is left out, and why: ``changeKey`` and ``lastModifiedDateTime`` (version tags: Exchange changes them
by itself, on attendee replies and room processing, without changing what the event says), the body beyond
its preview (Table Storage keeps 64 KiB a property; the preview is what Graph computes), attendees beyond
the first ``MAX_ATTENDEES`` (their full count is kept), and Graph's read-only links (``webLink``). Long
texts are cut to ``MAX_TEXT`` characters, so no event can fail a round by its size.

Times (docs/architecture.md, "The calendar model"): the UTC instants as ISO 8601 strings ending in ``Z``
(Graph answers in UTC unless a request names a zone with ``Prefer: outlook.timezone``, which the product
never sends: "dateTimeTimeZone resource type",
https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone); the event's own zone as an IANA
name, from ``originalStartTimeZone`` (shared/sync/zones.py; UTC with ``zone_flag`` for a custom or unknown
zone); the wall-clock start and end in that zone; and for an all-day event its dates instead (the end
exclusive, as Graph gives it). A recurrence pattern this code does not know is kept verbatim and flagged
(``recurrence_flag``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from shared.graph.wire import Attendee, DateTimeTimeZone, GraphEvent
from shared.sync.zones import all_day_date, event_zone, local_wall_time

MAX_TEXT = 4000          # characters of a subject, location or preview (a property holds 32 K of them)
MAX_ATTENDEES = 50
# "recurrencePattern resource type" and "recurrenceRange resource type"
# (https://learn.microsoft.com/en-us/graph/api/resources/recurrencepattern, .../recurrencerange).
PATTERN_TYPES = frozenset({"daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly",
                           "relativeYearly"})
RANGE_TYPES = frozenset({"endDate", "noEnd", "numbered"})


@dataclass(frozen=True)
class StoredEvent:
    calendar: str
    id: str
    type: str | None = None
    series_master_id: str | None = None
    subject: str | None = None
    start: str | None = None              # UTC instant, "...Z"
    end: str | None = None
    is_all_day: bool | None = None
    is_cancelled: bool | None = None
    show_as: str | None = None
    sensitivity: str | None = None
    location: str | None = None
    organizer: str | None = None          # the organizer's address
    categories: str | None = None         # JSON list, as Graph sent it
    body_preview: str | None = None
    original_start: str | None = None
    original_start_time_zone: str | None = None
    original_end_time_zone: str | None = None
    recurrence: str | None = None         # the patternedRecurrence JSON, verbatim
    recurrence_flag: str | None = None    # "unknown_pattern" when this code does not know its pattern or range
    i_cal_uid: str | None = None
    zone: str | None = None               # the event's own zone (IANA), from originalStartTimeZone
    end_zone: str | None = None           # from originalEndTimeZone
    zone_flag: str | None = None          # custom, unknown or missing: ``zone`` is the UTC fallback
    local_start: str | None = None        # wall clock in ``zone`` ("2026-03-09T09:00:00"); None when all-day
    local_end: str | None = None          # in ``end_zone``
    start_date: str | None = None         # an all-day event's first day ("2026-03-09")
    end_date: str | None = None           # the day after its last (exclusive)
    attendees: str | None = None          # JSON list of the first MAX_ATTENDEES: address, type, response
    attendee_count: int | None = None
    # Version tags: stored, never compared.
    last_modified: str | None = None
    change_key: str | None = None

    @property
    def thin(self) -> bool:
        """An occurrence Graph sent with only its id, type, series master and times (delta does that):
        the round fills it from its series master (shared/sync/calendar.py)."""
        return self.type == "occurrence" and self.subject is None

    @classmethod
    def from_graph(cls, calendar: str, event: GraphEvent) -> StoredEvent:
        organizer = event.organizer.email_address if event.organizer else None
        start, end = utc_instant(event.start), utc_instant(event.end)
        zone = event_zone(event.original_start_time_zone)
        end_zone = event_zone(event.original_end_time_zone or event.original_start_time_zone)
        recurrence = _raw_json(event.recurrence)
        thin = event.type == "occurrence" and event.subject is None
        all_day = bool(event.is_all_day)
        return cls(
            calendar=calendar, id=event.id, type=event.type, series_master_id=event.series_master_id,
            subject=_cap(event.subject), start=start, end=end,
            is_all_day=event.is_all_day, is_cancelled=event.is_cancelled, show_as=event.show_as,
            sensitivity=event.sensitivity, location=_cap(event.location.display_name) if event.location else None,
            organizer=organizer.address if organizer else None,
            categories=_cap(json.dumps(event.categories)) if event.categories is not None else None,
            body_preview=_cap(event.body_preview), original_start=event.original_start,
            original_start_time_zone=event.original_start_time_zone,
            original_end_time_zone=event.original_end_time_zone,
            recurrence=recurrence, recurrence_flag=recurrence_flag(recurrence),
            i_cal_uid=event.i_cal_u_id,
            # A thin occurrence names no zone: its master's fills it (shared/sync/calendar.py).
            zone=None if thin else zone.name, end_zone=None if thin else end_zone.name,
            zone_flag=None if thin else zone.flag,
            local_start=None if thin or all_day else local_wall_time(start, zone.name),
            local_end=None if thin or all_day else local_wall_time(end, end_zone.name),
            start_date=all_day_date(start, zone.name) if all_day else None,
            end_date=all_day_date(end, end_zone.name) if all_day else None,
            attendees=_attendees(event.attendees), attendee_count=len(event.attendees) if event.attendees else None,
            last_modified=event.last_modified_date_time, change_key=event.change_key)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> StoredEvent:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_data(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


FIELDS = tuple(f.name for f in fields(StoredEvent))
# The fields that count (everything but the version tags).
PROJECTED = tuple(name for name in FIELDS if name not in ("last_modified", "change_key"))


def projection(event: StoredEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in PROJECTED}


def content_hash(event: StoredEvent) -> str:
    """A digest of the projection: an event whose hash is unchanged is not rewritten."""
    canonical = json.dumps(projection(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def recurrence_flag(recurrence: str | None) -> str | None:
    """"unknown_pattern" for a recurrence whose pattern or range type this code does not know (or that is
    not JSON): kept verbatim all the same, never a crash."""
    if recurrence is None:
        return None
    try:
        value = json.loads(recurrence)
        pattern, rng = value.get("pattern") or {}, value.get("range") or {}
        known = pattern.get("type") in PATTERN_TYPES and rng.get("type") in RANGE_TYPES
    except (ValueError, AttributeError):
        known = False
    return None if known else "unknown_pattern"


def _cap(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_TEXT else text[:MAX_TEXT]


def _attendees(attendees: list[Attendee] | None) -> str | None:
    if not attendees:
        return None
    kept = [{"address": _cap(a.email_address.address) if a.email_address else None, "type": a.type or None,
             "response": a.status.response if a.status else None} for a in attendees[:MAX_ATTENDEES]]
    return json.dumps(kept, separators=(",", ":"))


def _raw_json(raw: msgspec.Raw) -> str | None:
    text = bytes(raw).decode()
    return None if text in ("", "null") else text


def utc_instant(value: DateTimeTimeZone | None) -> str | None:
    """Graph's local date-time and zone as a UTC instant ("...Z"); None when absent or unreadable."""
    if value is None or not value.date_time:
        return None
    text = value.date_time.rstrip("Z")
    head, _, fraction = text.partition(".")
    try:
        local = datetime.fromisoformat(head)
    except ValueError:
        return None
    microseconds = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
    local = local.replace(microsecond=microseconds)
    zone_name = value.time_zone or "UTC"
    if zone_name.upper() in ("UTC", "Z"):
        moment = local.replace(tzinfo=UTC)
    else:
        try:
            moment = local.replace(tzinfo=ZoneInfo(zone_name)).astimezone(UTC)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z"


def utc_instant_of(value: Any) -> str | None:
    """``utc_instant`` of a dateTimeTimeZone as decoded JSON (an object with dateTime and timeZone)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        return None
    zone = value.get("timeZone")
    return utc_instant(DateTimeTimeZone(value["dateTime"], zone if isinstance(zone, str) else "UTC"))
