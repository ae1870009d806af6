"""Events in and out: reading a client's event JSON (validated as Graph does), and writing an event back in
Graph's shape, in the zone and id format the request prefers.

Sources: event resource type (https://learn.microsoft.com/en-us/graph/api/resources/event); Create event
(https://learn.microsoft.com/en-us/graph/api/user-post-events), whose examples show the stored shapes of body,
location and attendees; dateTimeTimeZone resource type
(https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone); Get singleValueLegacyExtendedProperty
(https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get) for ``$expand`` and
``$filter`` on extended properties.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.m365.eventstore import Event
from devstack.m365.graph import GraphError
from devstack.m365.state import Switches
from devstack.m365.timezones import CUSTOM_ZONE, Zone, resolve, to_utc, wall_clock

# Properties a client writes; the rest of the event resource is read-only and ignored on input.
WRITABLE = frozenset({
    "subject", "body", "start", "end", "isAllDay", "showAs", "location", "locations", "attendees", "sensitivity",
    "categories", "importance", "isReminderOn", "reminderMinutesBeforeStart", "responseRequested",
    "allowNewTimeProposals", "hideAttendees", "isOnlineMeeting", "onlineMeetingProvider", "recurrence",
    "transactionId", "singleValueExtendedProperties",
})
READ_ONLY = frozenset({
    "id", "@odata.etag", "@odata.type", "@odata.context", "changeKey", "createdDateTime", "lastModifiedDateTime",
    "iCalUId", "type", "bodyPreview", "originalStartTimeZone", "originalEndTimeZone", "isCancelled", "isOrganizer",
    "organizer", "responseStatus", "webLink", "seriesMasterId", "hasAttachments", "onlineMeetingUrl",
    "onlineMeeting", "isDraft", "occurrenceId", "uid",
})
DEFAULTS: dict[str, Any] = {
    "subject": "", "showAs": "busy", "sensitivity": "normal", "categories": [], "importance": "normal",
    "isReminderOn": True, "reminderMinutesBeforeStart": 15, "responseRequested": True,
    "allowNewTimeProposals": True, "hideAttendees": False, "isOnlineMeeting": False,
    "onlineMeetingProvider": "unknown", "recurrence": None, "isAllDay": False, "attendees": [],
    "location": None, "locations": [],
}
NO_TIME = "0001-01-01T00:00:00Z"
PREVIEW_LENGTH = 255  # assumed: Outlook's previews are about this long
_EXTENDED_ID = re.compile(r"^(?P<type>\w+) \{?(?P<guid>[0-9a-fA-F-]{36})\}? (?P<kind>Name|Id) (?P<name>.+)$")


def bad_request(message: str, code: str = "ErrorInvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


@dataclass(frozen=True)
class Preferences:
    """What the request's Prefer headers ask for (event-get: outlook.timezone; immutable ids: IdType)."""

    timezone: str | None = None
    immutable: bool = False
    max_page_size: int | None = None

    @classmethod
    def of(cls, headers: Any) -> Preferences:
        values: dict[str, str] = {}
        for header in headers.getall("Prefer", []) if hasattr(headers, "getall") else [headers.get("Prefer", "")]:
            for part in re.findall(r'([\w.-]+)\s*=\s*("[^"]*"|[^,;\s]+)', header or ""):
                values[part[0].lower()] = part[1].strip('"')
        size = values.get("odata.maxpagesize")
        return cls(timezone=values.get("outlook.timezone"), immutable=values.get("idtype", "") == "ImmutableId",
                   max_page_size=int(size) if size and size.isdigit() else None)


# --- input -----------------------------------------------------------------------------------------


def check_properties(body: dict[str, Any]) -> None:
    for name in body:
        if name not in WRITABLE and name not in READ_ONLY and not name.startswith("@"):
            raise bad_request(f"The property '{name}' does not exist on type 'Microsoft.OutlookServices.Event'. "
                              "Make sure to only use property names that are defined by the type or mark the type "
                              "as open type.", "RequestBodyRead")


def read_time(value: Any, name: str) -> tuple[datetime, Zone]:
    """A dateTimeTimeZone as a UTC instant and the zone it was written in.

    :raises GraphError: 400 for a missing time or a zone Outlook does not know (the custom zone included: Graph
        cannot write it).
    """
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise bad_request(f"'{name}' needs a dateTime.")  # wording assumed
    zone_name = value.get("timeZone") or "UTC"  # assumed: a missing timeZone is UTC
    zone = resolve(zone_name) if zone_name != CUSTOM_ZONE else None
    if zone is None:
        # The code and message of field reports; not in the reference pages.
        raise GraphError(400, "TimeZoneNotSupportedException", "A valid TimeZone value must be specified. The "
                         f"following TimeZone value is not supported: '{zone_name}'.")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value["dateTime"].strip()).replace("Z", "+00:00")
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"Cannot convert the literal '{value['dateTime']}' to the expected type "
                          "'Edm.DateTimeOffset'.", "BadRequest") from None
    return to_utc(local, zone), zone


def check_all_day(start: datetime, start_zone: Zone, end: datetime, end_zone: Zone) -> None:
    """event resource type: an all-day event starts and ends at midnight, in one time zone (message assumed)."""
    local_start, local_end = start.astimezone(start_zone.tz), end.astimezone(end_zone.tz)
    midnight = all(t.hour == t.minute == t.second == t.microsecond == 0 for t in (local_start, local_end))
    if start_zone.windows != end_zone.windows or not midnight or end <= start:
        raise bad_request("Your request can't be completed. If the event is an all-day event, the start and end "
                          "time must be midnight (12:00 AM) in the same time zone.",
                          "ErrorPropertyValidationFailure")


def stored_body(value: Any, switches: Switches) -> dict[str, str]:
    """The body as Exchange keeps it: HTML wrapped in a document as the Create event example shows; a text body
    becomes HTML too (switch text_body_as_html, assumed)."""
    if not isinstance(value, dict):
        return {"contentType": "html", "content": ""}
    kind = str(value.get("contentType") or "text").lower()
    content = str(value.get("content") or "")
    if kind == "text" and switches.text_body_as_html:
        kind, content = "html", html.escape(content).replace("\r\n", "\n").replace("\n", "<br>\r\n")
    if kind == "html" and content and "<html" not in content.lower():
        content = f"<html>\r\n<head>\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n"
    return {"contentType": kind, "content": content}


def preview_of(body: dict[str, str]) -> str:
    text = body["content"]
    if body["contentType"] == "html":
        text = re.sub(r"(?is)<(head|style|script)\b.*?</\1>", " ", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return " ".join(text.split())[:PREVIEW_LENGTH]


def stored_location(value: Any, switches: Switches) -> dict[str, Any]:
    place = dict(value) if isinstance(value, dict) else {}
    name = str(place.get("displayName") or "")
    place["displayName"] = name.strip() if switches.trim_location else name
    place["locationType"] = str(place.get("locationType") or "default")[:1].lower() + \
        str(place.get("locationType") or "default")[1:]
    if place["displayName"]:
        place.setdefault("uniqueId", place["displayName"])
        place.setdefault("uniqueIdType", "private")
    else:
        place.setdefault("uniqueIdType", "unknown")
    return place


def stored_attendees(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("'attendees' must be a collection.", "BadRequest")
    out = []
    for attendee in value:
        email = dict((attendee or {}).get("emailAddress") or {})
        out.append({"type": str(attendee.get("type") or "required").lower(),
                    "status": attendee.get("status") or {"response": "none", "time": NO_TIME},
                    "emailAddress": {"name": email.get("name") or email.get("address", ""),
                                     "address": email.get("address", "")}})
    return out


@functools.lru_cache(maxsize=4096)
def extended_key(property_id: str) -> tuple[str, ...]:
    """What identifies an extended property: type and GUID case-insensitively, the Name case-sensitively
    (Get singleValueLegacyExtendedProperty); a numeric Id by value."""
    match = _EXTENDED_ID.match(property_id.strip())
    if match is None:
        raise bad_request(f"The extended property id '{property_id}' is not valid.", "ErrorInvalidProperty")
    name = match["name"] if match["kind"] == "Name" else str(int(match["name"], 16 if "x" in match["name"] else 10))
    return match["type"].lower(), match["guid"].lower(), match["kind"].lower(), name


def stored_extended(value: Any, current: dict[str, str]) -> dict[str, str]:
    if not isinstance(value, list):
        raise bad_request("'singleValueExtendedProperties' must be a collection.", "BadRequest")
    merged = dict(current)
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise bad_request("An extended property needs an id.", "ErrorInvalidProperty")
        key = extended_key(item["id"])
        for existing in [k for k in merged if extended_key(k) == key]:
            del merged[existing]
        merged[item["id"]] = str(item.get("value", ""))
    return merged


# --- output ----------------------------------------------------------------------------------------


# Cached: formatting times is most of the cost of a delta page of generated events (whose times repeat).
@functools.lru_cache(maxsize=65536)
def graph_datetime(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


@functools.lru_cache(maxsize=65536)
def _wall_clock(seconds: float, zone: Zone) -> str:
    return wall_clock(datetime.fromtimestamp(seconds, UTC), zone)


def time_json(seconds: float, stored_zone: str, wanted: Zone, wanted_name: str, floating: bool) -> dict[str, str]:
    if floating:  # an all-day event keeps its wall-clock midnight (switch all_day_floating, assumed)
        own = resolve(stored_zone)
        return {"dateTime": _wall_clock(seconds, own or wanted), "timeZone": wanted_name}
    return {"dateTime": _wall_clock(seconds, wanted), "timeZone": wanted_name}


def event_json(event: Event, prefs: Preferences, switches: Switches, origin: str,
               expand: list[tuple[str, ...]] | None = None, select: list[str] | None = None) -> dict[str, Any]:
    zone_name = prefs.timezone or "UTC"
    zone = resolve(zone_name) or resolve("UTC")
    assert zone is not None
    props = {**DEFAULTS, **event.props}
    event_id = event.immutable_id if prefs.immutable else event.rest_id
    floating = bool(props["isAllDay"]) and switches.all_day_floating
    body: dict[str, Any] = {
        "@odata.etag": f'W/"{event.change_key}"', "id": event_id,
        "createdDateTime": graph_datetime(event.created), "lastModifiedDateTime": graph_datetime(event.modified),
        "changeKey": event.change_key, "categories": props["categories"],
        "transactionId": event.transaction_id,
        "originalStartTimeZone": event.start_zone, "originalEndTimeZone": event.end_zone,
        "iCalUId": event.ical_uid, "uid": event.ical_uid,
        "reminderMinutesBeforeStart": props["reminderMinutesBeforeStart"], "isReminderOn": props["isReminderOn"],
        "hasAttachments": False, "subject": props["subject"], "bodyPreview": props.get("bodyPreview", ""),
        "importance": props["importance"], "sensitivity": props["sensitivity"], "isAllDay": props["isAllDay"],
        "isCancelled": event.is_cancelled, "isOrganizer": event.is_organizer,
        "responseRequested": props["responseRequested"], "seriesMasterId": None, "showAs": props["showAs"],
        "type": "seriesMaster" if props["recurrence"] else "singleInstance",
        "webLink": f"{origin}/owa/?itemid={event_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None, "isOnlineMeeting": props["isOnlineMeeting"],
        "onlineMeetingProvider": props["onlineMeetingProvider"], "allowNewTimeProposals":
            props["allowNewTimeProposals"], "occurrenceId": None, "isDraft": False,
        "hideAttendees": props["hideAttendees"], "responseStatus": event.response,
        "body": props.get("body", {"contentType": "html", "content": ""}),
        "start": time_json(event.start, event.start_zone, zone, zone_name, floating),
        "end": time_json(event.end, event.end_zone, zone, zone_name, floating),
        "location": props["location"] or {"displayName": "", "locationType": "default", "uniqueIdType": "unknown"},
        "locations": props["locations"], "recurrence": props["recurrence"], "attendees": props["attendees"],
        "organizer": event.organizer, "onlineMeeting": None,
    }
    if event.transaction_id is None:
        del body["transactionId"]  # event resource type: returned only if an app set it
    if expand:
        matches = [{"id": pid, "value": value} for pid, value in event.extended.items()
                   if extended_key(pid) in expand]
        if matches:
            body["singleValueExtendedProperties"] = matches
    if select:
        keep = {"@odata.etag", "id", *select, "singleValueExtendedProperties"}
        body = {k: v for k, v in body.items() if k in keep}
    return body


# --- $expand and $filter on single-value extended properties ----------------------------------------

_EXPAND = re.compile(r"^singleValueExtendedProperties\(\$filter=id eq '(?P<id>[^']+)'\)$", re.IGNORECASE)
_ID_CLAUSE = r"ep/id eq '(?P<id>[^']+)'"
_FILTERS = [
    re.compile(r"^singleValueExtendedProperties/any\(ep:\s*" + _ID_CLAUSE +
               r" and ep/value (?P<op>eq|ne) '(?P<value>[^']*)'\)$", re.IGNORECASE),
    re.compile(r"^singleValueExtendedProperties/any\(ep:\s*" + _ID_CLAUSE +
               r" and (?P<op>contains|startswith)\(ep/value,\s*'(?P<value>[^']*)'\)\)$", re.IGNORECASE),
]


def parse_expand(value: str | None) -> list[tuple[str, ...]]:
    if not value:
        return []
    keys = []
    for part in value.split(","):
        match = _EXPAND.match(part.strip())
        if match is None:
            raise bad_request(f"$expand '{part}' is not simulated: only singleValueExtendedProperties($filter=id "
                              "eq '...').", "BadRequest")
        keys.append(extended_key(match["id"]))
    return keys


def parse_filter(value: str | None) -> Any:
    """A predicate over events for ``$filter``; only extended-property filters are simulated (400 otherwise)."""
    if not value:
        return None
    for pattern in _FILTERS:
        match = pattern.match(value.strip().replace("ep/Id", "ep/id").replace("ep/Value", "ep/value"))
        if match is not None:
            return _matcher(extended_key(match["id"]), match["op"].lower(), match["value"].lower())
    raise bad_request(f"$filter '{value}' is not simulated: only singleValueExtendedProperties/Any(ep: ep/id eq "
                      "'...' and ep/value eq|ne '...' or contains/startswith(ep/value, '...')).", "BadRequest")


def _matcher(key: tuple[str, ...], op: str, wanted: str) -> Any:
    def matches(event: Event) -> bool:
        values = [v.lower() for pid, v in event.extended.items() if extended_key(pid) == key]
        if not values:
            return False
        found = values[0]  # value comparison is case-insensitive (Get singleValueLegacyExtendedProperty)
        return {"eq": found == wanted, "ne": found != wanted, "contains": wanted in found,
                "startswith": found.startswith(wanted)}[op]
    return matches
