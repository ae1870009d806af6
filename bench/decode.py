"""Decoding a delta page: the project's msgspec records against the other ways, measured in one run.

A page of PAGE_SIZE events shaped like Graph's "event resource type"
(https://learn.microsoft.com/en-us/graph/api/resources/event): an HTML body, five attendees, an organizer,
a location; every event with its own id. Decoded by:

- ours: ``shared.graph.wire.decode_page`` (msgspec Structs, straight from bytes);
- orjson: ``orjson.loads`` and the same records built by hand from the dicts;
- json: the standard library's ``json.loads`` and the same hand-built records;
- the baseline: msgraph-sdk's model parsing (kiota's JSON parse node into ``DeltaGetResponse``), what a
  client gets from ``calendar_view.delta.get()``.

Run: `.venv/bin/python -m bench.decode [--pages 200]` (or `bash bench/run.sh`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.metrics import emit
from shared.graph.wire import DateTimeTimeZone, DeltaPage, GraphEvent, Location, decode_page

PAGE_SIZE = 50


def event_json(n: int) -> dict[str, Any]:
    attendees = [{"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                  "emailAddress": {"name": f"Person {i}", "address": f"person{i}@contoso.example"}}
                 for i in range(5)]
    return {
        "@odata.etag": f'W/"etag{n}"', "id": f"AAMkAGI1AAAt9AHj{n:08d}AAA=",
        "createdDateTime": "2026-11-01T10:00:00.0000000Z", "lastModifiedDateTime": "2026-11-02T10:00:00.0000000Z",
        "changeKey": f"ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ{n}==", "categories": ["Blue category"],
        "originalStartTimeZone": "Pacific Standard Time", "originalEndTimeZone": "Pacific Standard Time",
        "iCalUId": f"040000008200E00074C5B7101A82E00800000000{n:08d}", "reminderMinutesBeforeStart": 15,
        "isReminderOn": True, "hasAttachments": False, "subject": f"Planning meeting {n}",
        "bodyPreview": "Agenda: review the quarter's numbers and plan the next one." * 3,
        "importance": "normal", "sensitivity": "normal", "isAllDay": False, "isCancelled": False,
        "isOrganizer": True, "responseRequested": True, "seriesMasterId": None, "showAs": "busy",
        "type": "singleInstance", "webLink": f"https://outlook.office365.com/owa/?itemid={n}&exvsurl=1",
        "onlineMeetingUrl": None, "isOnlineMeeting": False, "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True, "isDraft": False, "hideAttendees": False,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html",
                 "content": "<html><body><p>Agenda</p>" + "<p>item</p>" * 150 + "</body></html>"},
        "start": {"dateTime": "2026-12-10T17:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-10T18:00:00.0000000", "timeZone": "UTC"},
        "location": {"displayName": "Room 1", "locationType": "default", "uniqueIdType": "unknown"},
        "locations": [{"displayName": "Room 1", "locationType": "default"}], "recurrence": None,
        "attendees": attendees,
        "organizer": {"emailAddress": {"name": "Organizer", "address": "organizer@contoso.example"}},
    }


def page_bytes() -> bytes:
    return json.dumps({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
                       "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=x",
                       "value": [event_json(n) for n in range(PAGE_SIZE)]}).encode()


def _by_hand(data: dict[str, Any]) -> DeltaPage:
    def when(value: dict[str, Any] | None) -> DateTimeTimeZone | None:
        return None if value is None else DateTimeTimeZone(value.get("dateTime", ""), value.get("timeZone", "UTC"))

    events = []
    for item in data.get("value", []):
        location = item.get("location")
        events.append(GraphEvent(
            id=item["id"], type=item.get("type"), series_master_id=item.get("seriesMasterId"),
            start=when(item.get("start")), end=when(item.get("end")), subject=item.get("subject"),
            body_preview=item.get("bodyPreview"), is_all_day=item.get("isAllDay"),
            is_cancelled=item.get("isCancelled"), show_as=item.get("showAs"),
            location=Location(location.get("displayName", "")) if location else None,
            last_modified_date_time=item.get("lastModifiedDateTime"), change_key=item.get("changeKey"),
            original_start_time_zone=item.get("originalStartTimeZone"), i_cal_u_id=item.get("iCalUId")))
    return DeltaPage(events, data.get("@odata.nextLink"), data.get("@odata.deltaLink"))


def sdk_parse(body: bytes) -> Any:
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.users.item.calendar_view.delta.delta_get_response import DeltaGetResponse

    node = JsonParseNodeFactory().get_root_parse_node("application/json", body)
    return node.get_object_value(DeltaGetResponse)


WAYS: dict[str, Callable[[bytes], Any]] = {
    "msgspec (ours)": decode_page,
    "orjson + records": lambda body: _by_hand(orjson.loads(body)),
    "json + records": lambda body: _by_hand(json.loads(body)),
    "msgraph-sdk models": sdk_parse,
}


def events_per_second(decode: Callable[[bytes], Any], body: bytes, pages: int) -> float:
    decode(body)  # warm: imports, caches
    started = time.perf_counter()
    for _ in range(pages):
        decode(body)
    return pages * PAGE_SIZE / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    body = page_bytes()
    # Interleaved rounds so machine noise hits every way alike; the median round counts.
    rounds: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(5):
        for name, decode in WAYS.items():
            pages = args.pages if name != "msgraph-sdk models" else max(1, args.pages // 20)
            rounds[name].append(events_per_second(decode, body, pages))
    rates = {name: sorted(values)[len(values) // 2] for name, values in rounds.items()}
    baseline = rates["msgraph-sdk models"]
    print(f"Decoding a delta page of {PAGE_SIZE} events ({len(body) // 1024} KiB), events per second:")
    for name, rate in rates.items():
        print(f"  {name:<22} {rate:>12,.0f}   {rate / baseline:>8.1f}x the SDK")
    emit("delta_page_decode_events_per_s", rates["msgspec (ours)"], baseline, "events/s", cost=False)


if __name__ == "__main__":
    main()
