"""Occurrences of stored series masters: their ids, the occurrences and exceptions in a time window, their JSON
(full, or thin as delta reports occurrences), and what editing or cancelling one occurrence, or reshaping the
series, does to the master's record.

Sources: event resource type (https://learn.microsoft.com/en-us/graph/api/resources/event): type singleInstance,
occurrence, exception or seriesMaster; seriesMasterId on occurrences and exceptions; originalStart in UTC; List
instances (https://learn.microsoft.com/en-us/graph/api/event-list-instances): the occurrences and exceptions of a
series master in a range; Get incremental changes to events in a calendar view
(https://learn.microsoft.com/en-us/graph/delta-query-events).

An occurrence is not stored: its id carries the master's id and its original start (Graph's occurrence ids are
likewise derived from the series and the date), so an id stays the same as long as the master keeps its id and
the occurrence its original start. An edited occurrence (an exception) and a cancelled one are kept on the master,
keyed by the original start.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.m365.eventdata import Preferences, event_json, time_json
from devstack.m365.eventstore import Event, EventStore, id_from_bytes, series_shape
from devstack.m365.recurrence import Series
from devstack.m365.state import Switches
from devstack.m365.timezones import resolve

OCCURRENCE_PREFIX = b"\x00\x03\x24\x01"
MAX_SHAPES = 50  # earlier shapes kept per master (what delta needs to remove occurrences that no longer exist)


def occurrence_id(master_id: str, original: float) -> str:
    return id_from_bytes(OCCURRENCE_PREFIX + base64.urlsafe_b64decode(master_id) + struct.pack(">q", int(original)))


def split_occurrence_id(value: str) -> tuple[str, float] | None:
    """(the master's id, the original start) an occurrence id names, or None for any other id."""
    try:
        raw = base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(OCCURRENCE_PREFIX) or len(raw) <= len(OCCURRENCE_PREFIX) + 8:
        return None
    return id_from_bytes(raw[len(OCCURRENCE_PREFIX):-8]), float(struct.unpack(">q", raw[-8:])[0])


def series_of(shape: dict[str, Any]) -> Series:
    return Series(shape["recurrence"], shape["start"], shape["start_zone"])


def overlaps(start: float, end: float, window_start: float, window_end: float) -> bool:
    return start < window_end and (end > window_start or start >= window_start)


def original_key(original: float) -> str:
    return str(int(original))


@dataclass(frozen=True)
class Occurrence:
    master: Event
    original: float

    @property
    def key(self) -> str:
        return original_key(self.original)

    @property
    def exception(self) -> dict[str, Any] | None:
        return self.master.exceptions.get(self.key)

    @property
    def start(self) -> float:
        return self.exception["start"] if self.exception else self.original

    @property
    def end(self) -> float:
        return self.exception["end"] if self.exception else self.original + self.master.end - self.master.start

    def id(self, immutable: bool) -> str:
        return occurrence_id(self.master.immutable_id if immutable else self.master.rest_id, self.original)


def find_occurrence(store: EventStore, value: str) -> Occurrence | None:
    """The occurrence (or exception) an id names; None for a cancelled one, another id, or a date the series does
    not have."""
    split = split_occurrence_id(value)
    if split is None:
        return None
    master = store.find(split[0])
    if master is None or not master.props.get("recurrence"):
        return None
    key = original_key(split[1])
    if key in master.cancelled:
        return None
    if key not in master.exceptions and not series_of(shape_of(master)).is_occurrence(split[1]):
        return None
    return Occurrence(master, split[1])


def shape_of(master: Event) -> dict[str, Any]:
    shape = series_shape(master)
    assert shape is not None, "a series master"
    return shape


def originals_in(shape: dict[str, Any], window_start: float, window_end: float) -> list[float]:
    """Original starts of a series shape's occurrences and exceptions overlapping the window, cancelled ones
    included (the caller decides what to do with them)."""
    duration = shape["end"] - shape["start"]
    found = {o for o in series_of(shape).starts_between(window_start - duration, window_end)
             if overlaps(o, o + duration, window_start, window_end)}
    for key, moved in shape["exceptions"].items():
        if overlaps(moved["start"], moved["end"], window_start, window_end):
            found.add(float(key))
        else:
            found.discard(float(key))
    return sorted(found, key=lambda o: shape["exceptions"].get(original_key(o), {}).get("start", o))


def occurrences_in(master: Event, window_start: float, window_end: float) -> list[Occurrence]:
    """The occurrences and exceptions in the window, cancelled ones left out, in start order."""
    return [Occurrence(master, o) for o in originals_in(shape_of(master), window_start, window_end)
            if original_key(o) not in master.cancelled]


def utc_instant(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def occurrence_json(occurrence: Occurrence, prefs: Preferences, switches: Switches, origin: str,
                    thin: bool = False, select: list[str] | None = None) -> dict[str, Any]:
    master, exception = occurrence.master, occurrence.exception
    master_id = master.immutable_id if prefs.immutable else master.rest_id
    if thin and exception is None:
        # Delta reports an occurrence with these properties only (field reports: microsoft-graph-docs#7632,
        # microsoft-graph-docs-contrib#5602); switch delta_thin_occurrences
        zone_name = prefs.timezone or "UTC"
        zone = resolve(zone_name) or resolve("UTC")
        assert zone is not None
        return {"@odata.type": "#microsoft.graph.event", "@odata.etag": f'W/"{master.change_key}"',
                "id": occurrence.id(prefs.immutable), "type": "occurrence", "seriesMasterId": master_id,
                "start": time_json(occurrence.start, master.start_zone, zone, zone_name, False),
                "end": time_json(occurrence.end, master.end_zone, zone, zone_name, False)}
    view = dataclasses.replace(
        master, rest_id=occurrence.id(False), immutable_id=occurrence.id(True), start=occurrence.start,
        end=occurrence.end, props={**master.props, **(exception or {}).get("props", {}), "recurrence": None},
        change_key=exception["change_key"] if exception else master.change_key)
    body = event_json(view, prefs, switches, origin)
    body.update({"type": "exception" if exception else "occurrence", "seriesMasterId": master_id,
                 "originalStart": utc_instant(occurrence.original)})
    if select:
        keep = {"@odata.etag", "id", *select}
        body = {k: v for k, v in body.items() if k in keep}
    return body


# --- changes to a series ----------------------------------------------------------------------------------


def as_exception(occurrence: Occurrence, edited: Event, change_key: str) -> None:
    """Record ``edited`` (a scratch copy of the occurrence with the client's changes applied) as the exception."""
    master = occurrence.master
    own = {k: v for k, v in edited.props.items() if k != "recurrence" and master.props.get(k) != v}
    master.exceptions[occurrence.key] = {"start": edited.start, "end": edited.end, "props": own,
                                         "change_key": change_key}


def scratch_copy(occurrence: Occurrence) -> Event:
    master = occurrence.master
    return dataclasses.replace(master, start=occurrence.start, end=occurrence.end, extended=dict(master.extended),
                               props={**master.props, **(occurrence.exception or {}).get("props", {}),
                                      "recurrence": None})


def cancel(occurrence: Occurrence) -> None:
    master = occurrence.master
    master.exceptions.pop(occurrence.key, None)
    if occurrence.key not in master.cancelled:
        master.cancelled.append(occurrence.key)


def after_master_edit(event: Event, before: dict[str, Any] | None) -> None:
    """An event's series shape changed (a series rescheduled or given another pattern, a single event made a
    series, a series made a single event): keep the old shape, ``None`` for a single event (delta removes what it
    had), and drop exceptions and cancellations, as Outlook does when a series is rescheduled (assumed: not
    documented)."""
    after = series_shape(event)
    keys = ("recurrence", "start", "end", "start_zone")
    if before is None and after is None:
        return
    if before is not None and after is not None and all(before[k] == after[k] for k in keys):
        return
    event.shapes = [*event.shapes, {"replaced_at": event.seq, "series": before}][-MAX_SHAPES:]
    event.exceptions.clear()
    event.cancelled.clear()


def shape_at(event: Event, seq: int) -> dict[str, Any] | None:
    """What a client that synced at ``seq`` knew of the event's shape, when it changed since: ``{"series": the
    series shape, or None for a single event}``; None when the shape is unchanged since ``seq``."""
    return next((s for s in event.shapes if s["replaced_at"] > seq), None)


def ids_of(shape: dict[str, Any], master_id: str, window_start: float, window_end: float,
           skip: Iterable[float] = ()) -> list[str]:
    skipped = {original_key(o) for o in skip}
    return [occurrence_id(master_id, o) for o in originals_in(shape, window_start, window_end)
            if original_key(o) not in skipped]
