"""The simulator's events: one record per event, indexed by both of its ids, kept per calendar in creation order
(the order lists page through), with a change sequence per mailbox and a change log per mailbox that delta reads
(a later round looks only at the entries after its token's sequence, never at the whole mailbox).

Identifiers follow "Obtain immutable identifiers for Outlook resources"
(https://learn.microsoft.com/en-us/graph/outlook-immutable-id): the default (REST) id changes when the event
moves to another calendar (a folder); the immutable id stays while the event stays in its mailbox. Both are
URL-safe base64 of opaque bytes, as Graph's are.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

REST_PREFIX = b"\x00\x03\x24\x00"  # "AAMkA…", the shape of Graph's REST ids
IMMUTABLE_PREFIX = b"\x00\x09\x00\x2e\x00\x00"  # "AAkALgAA…", the shape of immutable ids
ICAL_PREFIX = "040000008200E00074C5B7101A82E00800000000"  # the shape of Outlook's iCalUIds


def id_from_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def new_rest_id(rng: random.Random | None = None) -> str:
    return id_from_bytes(REST_PREFIX + (rng.randbytes(43) if rng else secrets.token_bytes(43)))


def new_immutable_id(rng: random.Random | None = None) -> str:
    return id_from_bytes(IMMUTABLE_PREFIX + (rng.randbytes(40) if rng else secrets.token_bytes(40)))


def new_change_key(rng: random.Random | None = None) -> str:
    return base64.b64encode(rng.randbytes(20) if rng else secrets.token_bytes(20)).decode()


@dataclass
class Event:
    """An event as Exchange keeps it. ``props`` holds the writable properties in Graph's JSON form; times are UTC
    seconds; zones are Windows names (or the custom zone)."""

    key: str  # internal and permanent; never shown to clients
    mailbox_id: str
    calendar_id: str
    rest_id: str
    immutable_id: str
    change_key: str
    created: float
    modified: float
    ical_uid: str
    start: float
    end: float
    start_zone: str
    end_zone: str
    props: dict[str, Any] = field(default_factory=dict)
    organizer: dict[str, Any] = field(default_factory=dict)
    is_organizer: bool = True
    response: dict[str, Any] = field(default_factory=lambda: {"response": "organizer",
                                                               "time": "0001-01-01T00:00:00Z"})
    is_cancelled: bool = False
    transaction_id: str | None = None
    extended: dict[str, str] = field(default_factory=dict)  # singleValueExtendedProperties: id -> value
    organizer_key: str | None = None  # an attendee's copy: the organizer's event
    seq: int = 0  # the mailbox's change sequence at the last change
    generated: bool = False  # made by a bulk seed: regenerated from its seed, not saved
    # a series master: edited occurrences (exceptions) and cancelled ones, by original start (str(int(seconds)));
    # an exception is {"start", "end", "props", "change_key"}
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    # the event's earlier shapes: {"series": series_shape, None for a single event, "replaced_at": the sequence
    # that replaced it}
    shapes: list[dict[str, Any]] = field(default_factory=list)


def series_shape(event: Event) -> dict[str, Any] | None:
    """What delta needs to know which occurrences a series had: None for a single event."""
    if not event.props.get("recurrence"):
        return None
    return {"recurrence": event.props["recurrence"], "start": event.start, "end": event.end,
            "start_zone": event.start_zone, "cancelled": list(event.cancelled),
            "exceptions": {k: {"start": v["start"], "end": v["end"]} for k, v in event.exceptions.items()}}


@dataclass
class LogEntry:
    """One change in a mailbox: the event (``key``) changed in ``calendar_id``, where it had these ids; ``series`` is
    the shape of a series master that was removed from the calendar."""

    seq: int
    key: str
    calendar_id: str
    rest_id: str
    immutable_id: str
    series: dict[str, Any] | None = None


@dataclass
class EventStore:
    events: dict[str, Event] = field(default_factory=dict)  # key -> event
    by_id: dict[str, str] = field(default_factory=dict)  # rest or immutable id -> key
    by_calendar: dict[str, dict[str, None]] = field(default_factory=dict)  # calendar -> keys, in creation order
    seq: dict[str, int] = field(default_factory=dict)  # mailbox -> last change sequence
    log: dict[str, list[LogEntry]] = field(default_factory=dict)  # mailbox -> changes in sequence order
    # ids that answer 404 for the next N reads (the "created id cannot be found" write fault)
    hidden_reads: dict[str, int] = field(default_factory=dict)
    generated: list[dict[str, Any]] = field(default_factory=list)  # bulk seeds, saved instead of their events
    transactions: dict[str, str] = field(default_factory=dict)  # "mailbox|transactionId" -> key
    copies: dict[str, list[str]] = field(default_factory=dict)  # organizer's event key -> attendee copies' keys

    def find(self, event_id: str) -> Event | None:
        key = self.by_id.get(event_id)
        return self.events.get(key) if key is not None else None

    def by_transaction(self, mailbox_id: str, transaction_id: str) -> Event | None:
        key = self.transactions.get(f"{mailbox_id}|{transaction_id}")
        return self.events.get(key) if key is not None else None

    def copies_of(self, event: Event) -> list[Event]:
        return [self.events[k] for k in self.copies.get(event.key, []) if k in self.events]

    def in_calendar(self, calendar_id: str) -> list[str]:
        return list(self.by_calendar.get(calendar_id, {}))

    def count(self, calendar_id: str) -> int:
        return len(self.by_calendar.get(calendar_id, {}))

    def page(self, calendar_id: str, skip: int, top: int) -> list[Event]:
        keys = self.by_calendar.get(calendar_id, {})  # dict order is creation order
        return [self.events[key] for key in itertools.islice(keys, skip, skip + top)]

    def _log(self, event: Event, calendar_id: str, rest_id: str, series: dict[str, Any] | None = None) -> int:
        seq = self.seq[event.mailbox_id] = self.seq.get(event.mailbox_id, 0) + 1
        self.log.setdefault(event.mailbox_id, []).append(
            LogEntry(seq, event.key, calendar_id, rest_id, event.immutable_id, series))
        return seq

    def touch(self, event: Event) -> int:
        event.seq = self._log(event, event.calendar_id, event.rest_id)
        return event.seq

    def changes_since(self, mailbox_id: str, seq: int) -> list[LogEntry]:
        entries = self.log.get(mailbox_id, [])
        return entries[bisect.bisect_right(entries, seq, key=lambda e: e.seq):]

    def add(self, event: Event) -> Event:
        self.events[event.key] = event
        self.by_id[event.rest_id] = event.key
        self.by_id[event.immutable_id] = event.key
        self.by_calendar.setdefault(event.calendar_id, {})[event.key] = None
        if event.transaction_id:
            self.transactions[f"{event.mailbox_id}|{event.transaction_id}"] = event.key
        if event.organizer_key:
            self.copies.setdefault(event.organizer_key, []).append(event.key)
        self.touch(event)
        return event

    def remove(self, event: Event) -> None:
        self.events.pop(event.key, None)
        self.by_id.pop(event.rest_id, None)
        self.by_id.pop(event.immutable_id, None)
        self.by_calendar.get(event.calendar_id, {}).pop(event.key, None)
        if event.transaction_id:
            self.transactions.pop(f"{event.mailbox_id}|{event.transaction_id}", None)
        self._log(event, event.calendar_id, event.rest_id, series_shape(event))

    def move(self, event: Event, calendar_id: str) -> str:
        """Into another calendar of the mailbox: a new REST id, the immutable id kept; returns the old REST id."""
        old = event.rest_id
        self._log(event, event.calendar_id, old, series_shape(event))  # it left the old calendar
        self.by_calendar.get(event.calendar_id, {}).pop(event.key, None)
        self.by_id.pop(old, None)
        event.calendar_id = calendar_id
        event.rest_id = new_rest_id()
        self.by_id[event.rest_id] = event.key
        self.by_calendar.setdefault(calendar_id, {})[event.key] = None
        self.touch(event)
        return old
