"""Graph's event JSON as the project's own typed records, decoded straight from a response's bytes.

Why not msgraph-sdk's models: building one costs 15-23 ms per event on the machines this runs on, so a
10,000-event first sync would spend minutes in parsing alone. msgspec decodes a whole delta page into
these Structs in one pass; the choice and its measurement are in docs/dependencies.md ("Decoding Graph
pages"). Fields Graph sends that are not listed here are skipped by the decoder, never an error: Graph
adds properties over time.

Shapes: "event resource type" (https://learn.microsoft.com/en-us/graph/api/resources/event) and, for
``@removed``, "Get incremental changes to events in a calendar view"
(https://learn.microsoft.com/en-us/graph/delta-query-events).
"""

from __future__ import annotations

import msgspec


class DateTimeTimeZone(msgspec.Struct, frozen=True, rename="camel"):
    """"dateTimeTimeZone resource type": a local date-time and the zone it is in (UTC unless the request
    named another with ``Prefer: outlook.timezone``)."""

    date_time: str = ""
    time_zone: str = "UTC"


class EmailAddress(msgspec.Struct, frozen=True, rename="camel"):
    name: str = ""
    address: str = ""


class Recipient(msgspec.Struct, frozen=True, rename="camel"):
    email_address: EmailAddress | None = None


class ResponseStatus(msgspec.Struct, frozen=True, rename="camel"):
    response: str = ""


class Attendee(msgspec.Struct, frozen=True, rename="camel"):
    type: str = ""
    email_address: EmailAddress | None = None
    status: ResponseStatus | None = None


class Location(msgspec.Struct, frozen=True, rename="camel"):
    display_name: str = ""


class Removed(msgspec.Struct, frozen=True):
    reason: str = ""


class GraphEvent(msgspec.Struct, frozen=True, rename="camel"):
    """One item of a calendarView or delta page. A removed item carries only ``id`` and ``removed``;
    an occurrence in delta may carry only id, type, seriesMasterId, start and end ("thin")."""

    id: str
    removed: Removed | None = msgspec.field(default=None, name="@removed")
    type: str | None = None
    series_master_id: str | None = None
    start: DateTimeTimeZone | None = None
    end: DateTimeTimeZone | None = None
    original_start: str | None = None
    original_start_time_zone: str | None = None
    original_end_time_zone: str | None = None
    subject: str | None = None
    body_preview: str | None = None
    is_all_day: bool | None = None
    is_cancelled: bool | None = None
    show_as: str | None = None
    sensitivity: str | None = None
    location: Location | None = None
    organizer: Recipient | None = None
    categories: list[str] | None = None
    attendees: list[Attendee] | None = None
    last_modified_date_time: str | None = None
    change_key: str | None = None
    i_cal_u_id: str | None = msgspec.field(default=None, name="iCalUId")
    # Kept as the JSON Graph sent, undecoded: stored verbatim (a pattern this code does not know survives).
    # Absent is an empty Raw, and JSON null is b"null" (msgspec cannot make Raw optional).
    recurrence: msgspec.Raw = msgspec.Raw()

    @property
    def is_removed(self) -> bool:
        return self.removed is not None


class DeltaPage(msgspec.Struct, frozen=True):
    """A page of ``calendarView/delta`` ("event: delta", https://learn.microsoft.com/en-us/graph/api/event-delta):
    items, then either a next link (more pages) or a delta link (the round is complete)."""

    value: list[GraphEvent] = msgspec.field(default_factory=list)
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")
    delta_link: str | None = msgspec.field(default=None, name="@odata.deltaLink")


_page_decoder = msgspec.json.Decoder(DeltaPage)


class MalformedPage(ValueError):
    """A page whose JSON does not have the documented shape (the text names the field, never content)."""


def decode_page(body: bytes) -> DeltaPage:
    """:raises MalformedPage: not JSON, or a field of the wrong type."""
    try:
        return _page_decoder.decode(body)
    except msgspec.DecodeError as exc:
        # msgspec names the path (e.g. "Expected `str`, got `int` - at `$.value[3].subject`"), no values.
        raise MalformedPage(f"delta page does not have Graph's shape: {exc}") from None
