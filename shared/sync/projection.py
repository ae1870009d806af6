"""The one projection: which fields of an event count.

An event as Graph sent it (``GraphEvent``) and an event as the store keeps it (a row) both become a
``StoredEvent``; ``projection`` says which of its fields a comparison looks at. The store's content hash,
the engine's tests, the benchmarks and the proof suites all compare through it, so "the store equals the
mailbox" means one thing everywhere.

What is left out, and why: ``changeKey`` and ``lastModifiedDateTime`` (version tags: Exchange changes them
by itself, on attendee replies and room processing, without changing what the event says), the body beyond
its preview (Table Storage keeps 64 KiB a property; the preview is what Graph computes), attendees (the
fidelity work adds a capped list with its full count), and Graph's read-only links (``webLink``).
Times are UTC instants as ISO 8601 strings ending in ``Z``: Graph answers in UTC unless a request names a
zone with ``Prefer: outlook.timezone``, which the product never sends ("dateTimeTimeZone resource type",
https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from shared.graph.wire import DateTimeTimeZone, GraphEvent


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
    i_cal_uid: str | None = None
    # Version tags: stored, never compared.
    last_modified: str | None = None
    change_key: str | None = None

    @property
    def thin(self) -> bool:
        """An occurrence Graph sent with only its id, type, series master and times (delta does that);
        the fidelity work fills it from its series master."""
        return self.type == "occurrence" and self.subject is None

    @classmethod
    def from_graph(cls, calendar: str, event: GraphEvent) -> StoredEvent:
        organizer = event.organizer.email_address if event.organizer else None
        return cls(
            calendar=calendar, id=event.id, type=event.type, series_master_id=event.series_master_id,
            subject=event.subject, start=utc_instant(event.start), end=utc_instant(event.end),
            is_all_day=event.is_all_day, is_cancelled=event.is_cancelled, show_as=event.show_as,
            sensitivity=event.sensitivity, location=event.location.display_name if event.location else None,
            organizer=organizer.address if organizer else None,
            categories=json.dumps(event.categories) if event.categories is not None else None,
            body_preview=event.body_preview, original_start=event.original_start,
            original_start_time_zone=event.original_start_time_zone,
            original_end_time_zone=event.original_end_time_zone,
            recurrence=_raw_json(event.recurrence),
            i_cal_uid=event.i_cal_u_id, last_modified=event.last_modified_date_time, change_key=event.change_key)

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
