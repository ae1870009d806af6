"""The calendar model (shared/sync/zones.py, projection.py, calendar.py): an event's own zone from Outlook's
zone names, its wall-clock times there across DST changes, all-day events as dates, fallbacks and caps, and
thin occurrences filled from their series master, here as pure code and through a round on the fake source.
The same through the simulator and Azurite is in tests/integration/test_sync_randomized.py (full
occurrences compared with calendarView's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.graph.wire import decode_page
from shared.messages import Sync
from shared.store.ports import MAILBOX
from shared.sync.calendar import fill_from_master
from shared.sync.mailbox import event_key
from shared.sync.projection import MAX_ATTENDEES, MAX_TEXT, StoredEvent
from shared.sync.zones import CUSTOM, MISSING, UNKNOWN, all_day_date, event_zone, local_wall_time
from tests.unit.delta_fake import PRIMARY
from tests.unit.test_event_writer import feed, setup  # noqa: F401


def stored(item: dict[str, Any]) -> StoredEvent:
    return StoredEvent.from_graph(PRIMARY, decode_page(json.dumps({"value": [item]}).encode()).value[0])


def utc(text: str) -> dict[str, str]:
    return {"dateTime": text, "timeZone": "UTC"}


@pytest.mark.parametrize(("name", "iana", "flag"), [
    ("Pacific Standard Time", "America/Los_Angeles", None),
    ("pacific standard time", "America/Los_Angeles", None),       # Windows names in any case
    ("AUS Eastern Standard Time", "Australia/Sydney", None),
    ("W. Europe Standard Time", "Europe/Berlin", None),
    ("Tonga Standard Time", "Pacific/Tongatapu", None),
    ("UTC", "UTC", None),
    ("Europe/Berlin", "Europe/Berlin", None),                     # an IANA name Outlook accepts
    ("tzone://Microsoft/Custom", "UTC", CUSTOM),
    ("Customized Time Zone", "UTC", CUSTOM),
    ("Mars Standard Time", "UTC", UNKNOWN),
    (None, "UTC", MISSING),
])
def test_outlook_zone_names_map_to_iana_or_fall_back_to_utc_with_a_flag(name, iana, flag):
    zone = event_zone(name)
    assert (zone.name, zone.flag) == (iana, flag)


def test_a_weekly_0900_pacific_meeting_stays_0900_local_across_both_dst_changes():
    # 2027: DST starts on 14 March and ends on 7 November in the US.
    for instant in ("2027-03-08T17:00:00Z", "2027-03-15T16:00:00Z", "2027-11-01T16:00:00Z", "2027-11-08T17:00:00Z"):
        assert str(local_wall_time(instant, "America/Los_Angeles")).endswith("T09:00:00"), instant


def test_the_same_in_the_southern_hemisphere():
    # 2027: Sydney's DST ends on 4 April and starts on 3 October; 09:00 there is 22:00 or 23:00 UTC the day before.
    for instant in ("2027-03-28T22:00:00Z", "2027-04-04T23:00:00Z", "2027-09-26T23:00:00Z", "2027-10-03T22:00:00Z"):
        assert str(local_wall_time(instant, "Australia/Sydney")).endswith("T09:00:00"), instant


def test_an_event_across_a_dst_change_keeps_both_wall_clock_times():
    event = stored({"id": "e1", "type": "singleInstance", "subject": "Night shift",
                    "start": utc("2027-03-14T09:00:00.0000000"), "end": utc("2027-03-14T11:00:00.0000000"),
                    "originalStartTimeZone": "Pacific Standard Time", "originalEndTimeZone": "Pacific Standard Time"})
    assert (event.zone, event.local_start, event.local_end) == (
        "America/Los_Angeles", "2027-03-14T01:00:00", "2027-03-14T04:00:00")  # two hours, three on the clock


@pytest.mark.parametrize("zone", ["Tonga Standard Time", "Hawaiian Standard Time"])  # UTC+13 and UTC-10
@pytest.mark.parametrize("floating", [True, False])
def test_an_all_day_event_is_the_same_date_for_viewers_anywhere(zone, floating):
    iana = event_zone(zone).name
    if floating:  # Graph keeps the wall-clock midnight as it is
        start, end = utc("2026-12-10T00:00:00.0000000"), utc("2026-12-11T00:00:00.0000000")
    else:  # or converts the event's midnight to UTC
        offset = {"Pacific/Tongatapu": "2026-12-09T11", "Pacific/Honolulu": "2026-12-10T10"}[iana]
        nxt = {"Pacific/Tongatapu": "2026-12-10T11", "Pacific/Honolulu": "2026-12-11T10"}[iana]
        start, end = utc(f"{offset}:00:00.0000000"), utc(f"{nxt}:00:00.0000000")
    event = stored({"id": "d1", "type": "singleInstance", "subject": "Holiday", "isAllDay": True, "start": start,
                    "end": end, "originalStartTimeZone": zone, "originalEndTimeZone": zone})
    assert (event.start_date, event.end_date, event.local_start) == ("2026-12-10", "2026-12-11", None)
    assert all_day_date("2026-12-10T00:00:00Z", iana) == "2026-12-10"


def test_a_custom_zone_event_is_shown_in_utc_and_flagged():
    event = stored({"id": "c1", "type": "singleInstance", "subject": "Old Outlook",
                    "start": utc("2026-12-10T15:30:00.0000000"), "end": utc("2026-12-10T16:00:00.0000000"),
                    "originalStartTimeZone": "tzone://Microsoft/Custom"})
    assert (event.zone, event.zone_flag, event.local_start) == ("UTC", CUSTOM, "2026-12-10T15:30:00")


def test_an_unknown_recurrence_pattern_is_kept_verbatim_and_flagged():
    odd = {"pattern": {"type": "lunar", "interval": 1}, "range": {"type": "noEnd", "startDate": "2026-12-10"}}
    weekly = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
              "range": {"type": "noEnd", "startDate": "2026-12-07"}}
    base = {"type": "seriesMaster", "subject": "Series", "start": utc("2026-12-07T09:00:00.0000000"),
            "end": utc("2026-12-07T10:00:00.0000000")}
    flagged = stored({"id": "s1", **base, "recurrence": odd})
    assert (json.loads(str(flagged.recurrence)), flagged.recurrence_flag) == (odd, "unknown_pattern")
    assert stored({"id": "s2", **base, "recurrence": weekly}).recurrence_flag is None


def test_large_texts_and_attendee_lists_are_capped_with_the_full_count():
    people = [{"type": "required", "emailAddress": {"address": f"p{n}@contoso.test"}, "status": {"response": "none"}}
              for n in range(MAX_ATTENDEES + 70)]
    event = stored({"id": "big", "type": "singleInstance", "subject": "x" * 100_000, "bodyPreview": "y" * 9000,
                    "start": utc("2026-12-10T09:00:00.0000000"), "end": utc("2026-12-10T10:00:00.0000000"),
                    "attendees": people})
    assert (len(str(event.subject)), len(str(event.body_preview))) == (MAX_TEXT, MAX_TEXT)
    kept = json.loads(str(event.attendees))
    assert (len(kept), event.attendee_count) == (MAX_ATTENDEES, MAX_ATTENDEES + 70)
    assert kept[0] == {"address": "p0@contoso.test", "type": "required", "response": "none"}


MASTER = {"id": "sm1", "type": "seriesMaster", "subject": "Standup", "showAs": "busy", "isAllDay": False,
          "location": {"displayName": "Room 1"}, "originalStartTimeZone": "Pacific Standard Time",
          "originalEndTimeZone": "Pacific Standard Time", "lastModifiedDateTime": "2026-12-01T08:00:00Z",
          "changeKey": "ck-m", "start": utc("2027-03-08T17:00:00.0000000"), "end": utc("2027-03-08T17:15:00.0000000"),
          "recurrence": {"pattern": {"type": "daily", "interval": 1},
                         "range": {"type": "noEnd", "startDate": "2027-03-08"}}}


def thin(day: str, hour: str) -> dict[str, Any]:
    return {"id": f"sm1-{day}", "type": "occurrence", "seriesMasterId": "sm1",
            "start": utc(f"{day}T{hour}:00:00.0000000"), "end": utc(f"{day}T{hour}:15:00.0000000")}


def test_a_thin_occurrence_is_filled_from_its_series_master_in_the_masters_zone():
    occurrence = stored(thin("2027-03-15", "16"))  # after the DST change: 16:00 UTC is 09:00 in Los Angeles
    assert occurrence.thin
    filled = fill_from_master(occurrence, stored(MASTER))
    assert (filled.id, filled.type, filled.series_master_id) == ("sm1-2027-03-15", "occurrence", "sm1")
    assert (filled.subject, filled.location, filled.show_as) == ("Standup", "Room 1", "busy")
    assert (filled.zone, filled.local_start, filled.local_end) == (
        "America/Los_Angeles", "2027-03-15T09:00:00", "2027-03-15T09:15:00")
    assert (filled.recurrence, filled.original_start, filled.last_modified) == (
        None, "2027-03-15T16:00:00Z", "2026-12-01T08:00:00Z")


async def test_a_round_fills_thin_occurrences_and_a_master_edit_updates_them(setup):  # noqa: F811
    world, account, mailbox, writer = setup
    mailbox.series_masters["sm1"] = MASTER
    mailbox.put(thin("2026-12-14", "17"))
    mailbox.put(thin("2026-12-15", "17"))
    await writer.handle(Sync(account=account, reason="connect"))
    row = await world.services.tables.get(MAILBOX, account, event_key(PRIMARY, "sm1-2026-12-14"))
    assert (row.get("subject"), row.get("local_start")) == ("Standup", "2026-12-14T09:00:00")

    # The user renames the series: delta sends its occurrences again, as thin as before.
    mailbox.series_masters["sm1"] = {**MASTER, "subject": "Daily standup",
                                     "lastModifiedDateTime": "2026-12-02T08:00:00Z"}
    mailbox.put(thin("2026-12-14", "17"))
    mailbox.put(thin("2026-12-15", "17"))
    world.clock.advance(60)
    await writer.handle(Sync(account=account, reason="notification"))
    row = await world.services.tables.get(MAILBOX, account, event_key(PRIMARY, "sm1-2026-12-15"))
    assert row.get("subject") == "Daily standup"
    assert feed(world)[-2:] == [("updated", "sm1-2026-12-14"), ("updated", "sm1-2026-12-15")]


async def test_an_occurrence_whose_master_is_gone_stays_thin_and_fails_nothing(setup):  # noqa: F811
    world, account, mailbox, writer = setup
    mailbox.put(thin("2026-12-14", "17"))
    await writer.handle(Sync(account=account, reason="connect"))
    row = await world.services.tables.get(MAILBOX, account, event_key(PRIMARY, "sm1-2026-12-14"))
    assert (row.get("type"), row.get("subject")) == ("occurrence", None)
