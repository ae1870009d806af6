"""Recurring series: expansion of every pattern and range type in the series' own zone (expected dates written by
hand, across daylight-saving changes in New York, Sydney and Adelaide, and in half-hour-offset Kolkata), and series
through the real msgraph-sdk: instances, calendarView, an occurrence edited (exception), cancelled or deleted, the
master reshaped, and event: cancel.

Doc pages: patternedRecurrence resource type (https://learn.microsoft.com/en-us/graph/api/resources/patternedrecurrence),
recurrencePattern resource type (https://learn.microsoft.com/en-us/graph/api/resources/recurrencepattern),
recurrenceRange resource type (https://learn.microsoft.com/en-us/graph/api/resources/recurrencerange), List instances
(https://learn.microsoft.com/en-us/graph/api/event-list-instances), List calendarView
(https://learn.microsoft.com/en-us/graph/api/user-list-calendarview), event resource type
(https://learn.microsoft.com/en-us/graph/api/resources/event), event: cancel
(https://learn.microsoft.com/en-us/graph/api/event-cancel)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.day_of_week import DayOfWeek
from msgraph.generated.models.event import Event
from msgraph.generated.models.event_type import EventType
from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
from msgraph.generated.models.recurrence_pattern import RecurrencePattern
from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
from msgraph.generated.models.recurrence_range import RecurrenceRange
from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.generated.users.item.events.item.instances.instances_request_builder import InstancesRequestBuilder

from devstack.m365.eventdata import Preferences
from devstack.m365.graph import GraphError
from devstack.m365.recurrence import Series, check
from devstack.m365.series import occurrence_json, occurrences_in
from devstack.m365.state import SimState
from devstack.m365.timezones import resolve
from tests.devstack.subscribing import delegated_client, subscribe
from tests.devstack.test_events import a_token, raw
from tests.devstack.webhook import Webhook
from tests.devstack.world import World


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def expanded(pattern: dict[str, Any], span: dict[str, Any], first_local: str, zone: str,
             after: str = "2029-01-01T00:00", before: str = "2032-01-01T00:00") -> list[str]:
    named = resolve(zone)
    assert named is not None
    start = datetime.fromisoformat(first_local).replace(tzinfo=named.tz).timestamp()
    series = Series({"pattern": {"interval": 1, **pattern}, "range": span}, start, named.windows)
    return [datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%MZ")
            for s in series.starts_between(utc(after), utc(before))]


MONDAYS = {"type": "weekly", "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"}


def test_weekly_keeps_local_time_across_dst_in_new_york():
    """recurrencePattern weekly, recurrenceRange numbered: 09:00 in New York is 14:00Z before and 13:00Z after the
    change to daylight time on Sunday 10 March 2030."""
    assert expanded(MONDAYS, {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 3},
                    "2030-03-04T09:00", "Eastern Standard Time") == [
        "2030-03-04T14:00Z", "2030-03-11T13:00Z", "2030-03-18T13:00Z"]


def test_weekly_keeps_local_time_across_dst_in_sydney_written_as_windows_zone():
    """Southern hemisphere: Sydney leaves daylight time on Sunday 7 April 2030 (UTC+11 to UTC+10); the series is
    written with the Windows zone "AUS Eastern Standard Time"; recurrenceRange endDate includes its last day."""
    assert expanded(MONDAYS, {"type": "endDate", "startDate": "2030-04-01", "endDate": "2030-04-15"},
                    "2030-04-01T09:00", "AUS Eastern Standard Time") == [
        "2030-03-31T22:00Z", "2030-04-07T23:00Z", "2030-04-14T23:00Z"]


def test_half_hour_offsets_in_adelaide_across_dst_and_kolkata_without():
    """Adelaide (UTC+10:30 to +9:30 on 7 April 2030) and Kolkata (UTC+5:30, no daylight time): daily, interval 2,
    noEnd (bounded by the window asked)."""
    assert expanded(MONDAYS, {"type": "noEnd", "startDate": "2030-04-01"}, "2030-04-01T09:00", "Australia/Adelaide",
                    before="2030-04-09T00:00") == ["2030-03-31T22:30Z", "2030-04-07T23:30Z"]
    assert expanded({"type": "daily", "interval": 2}, {"type": "noEnd", "startDate": "2030-01-30"},
                    "2030-01-30T09:00", "India Standard Time", before="2030-02-04T00:00") == [
        "2030-01-30T03:30Z", "2030-02-01T03:30Z", "2030-02-03T03:30Z"]


def test_weekly_several_days_with_interval_and_first_day_of_week():
    """recurrencePattern weekly: interval 2 counts weeks from firstDayOfWeek. Series starting Sunday 6 January 2030
    on Sunday and Tuesday: with weeks starting on Sunday the Tuesday of the same week belongs to it; with weeks
    starting on Monday, Sunday the 6th closes a week and Tuesday the 8th opens the next (skipped)."""
    span = {"type": "numbered", "startDate": "2030-01-06", "numberOfOccurrences": 4}
    pattern = {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "tuesday"]}
    assert expanded({**pattern, "firstDayOfWeek": "sunday"}, span, "2030-01-06T10:00", "UTC") == [
        "2030-01-06T10:00Z", "2030-01-08T10:00Z", "2030-01-20T10:00Z", "2030-01-22T10:00Z"]
    assert expanded({**pattern, "firstDayOfWeek": "monday"}, span, "2030-01-06T10:00", "UTC") == [
        "2030-01-06T10:00Z", "2030-01-15T10:00Z", "2030-01-20T10:00Z", "2030-01-29T10:00Z"]


def test_monthly_and_yearly_patterns():
    """absoluteMonthly (dayOfMonth), relativeMonthly (index last, in India Standard Time), absoluteYearly (month,
    dayOfMonth) and relativeYearly (index first, Monday or Tuesday: the first of either)."""
    assert expanded({"type": "absoluteMonthly", "dayOfMonth": 15, "interval": 2},
                    {"type": "numbered", "startDate": "2030-01-15", "numberOfOccurrences": 3},
                    "2030-01-15T12:00", "UTC") == ["2030-01-15T12:00Z", "2030-03-15T12:00Z", "2030-05-15T12:00Z"]
    assert expanded({"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"},
                    {"type": "endDate", "startDate": "2030-01-25", "endDate": "2030-04-30"},
                    "2030-01-25T10:00", "India Standard Time") == [
        "2030-01-25T04:30Z", "2030-02-22T04:30Z", "2030-03-29T04:30Z", "2030-04-26T04:30Z"]
    assert expanded({"type": "absoluteYearly", "month": 2, "dayOfMonth": 29},
                    {"type": "numbered", "startDate": "2028-02-29", "numberOfOccurrences": 2},
                    "2028-02-29T08:00", "UTC", after="2028-01-01T00:00", before="2040-01-01T00:00") == [
        "2028-02-29T08:00Z", "2032-02-29T08:00Z"]
    assert expanded({"type": "relativeYearly", "month": 9, "daysOfWeek": ["monday", "tuesday"], "index": "first"},
                    {"type": "numbered", "startDate": "2030-09-01", "numberOfOccurrences": 2},
                    "2030-09-03T09:00", "W. Europe Standard Time") == ["2030-09-02T07:00Z", "2031-09-01T07:00Z"]


@pytest.mark.parametrize("recurrence", [
    {"pattern": {"type": "hourly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2030-01-01"}},
    {"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2030-01-01"}},
    {"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd", "startDate": "2030-01-01"}},
    {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2030-01-01"}},
    {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate", "startDate": "2030-01-01"}},
])
def test_a_malformed_recurrence_is_refused(recurrence: dict[str, Any]):
    """recurrencePattern: weekly needs daysOfWeek, interval is 1 or more; recurrenceRange: numbered needs
    numberOfOccurrences, endDate needs endDate."""
    with pytest.raises(GraphError) as raised:
        check(recurrence)
    assert raised.value.status == 400


# --- through Graph ---------------------------------------------------------------------------------------------


def weekly_standup(subject: str = "Standup", occurrences: int = 4) -> Event:
    """Mondays 09:00 in Sydney from 1 April 2030 (across the end of daylight time on 7 April)."""
    zone = "AUS Eastern Standard Time"
    return Event(
        subject=subject, start=DateTimeTimeZone(date_time="2030-04-01T09:00:00", time_zone=zone),
        end=DateTimeTimeZone(date_time="2030-04-01T09:30:00", time_zone=zone),
        recurrence=PatternedRecurrence(
            pattern=RecurrencePattern(type=RecurrencePatternType.Weekly, interval=1, days_of_week=[DayOfWeek.Monday],
                                      first_day_of_week=DayOfWeek.Sunday),
            range=RecurrenceRange(type=RecurrenceRangeType.Numbered, start_date=datetime(2030, 4, 1).date(),
                                  number_of_occurrences=occurrences)))


STANDUP_STARTS = ["2030-03-31T22:00:00.0000000", "2030-04-07T23:00:00.0000000", "2030-04-14T23:00:00.0000000",
                  "2030-04-21T23:00:00.0000000"]


async def instances_of(world: World, token: str, master_id: str, start: str = "2030-03-01T00:00:00Z",
                       end: str = "2030-06-01T00:00:00Z") -> list[Event]:
    client = world.graph(token)
    config = RequestConfiguration[InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters]()
    config.query_parameters = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
        start_date_time=start, end_date_time=end, top=50)
    answer = await client.me.events.by_event_id(master_id).instances.get(config)
    assert answer is not None
    return answer.value or []


async def test_instances_through_the_sdk(world: World):
    """List instances: the occurrences of a series master in the range, each with its own id, type occurrence,
    seriesMasterId and originalStart (event resource type); the master is type seriesMaster; both startDateTime and
    endDateTime are required (400)."""
    token = a_token(world, world.alice)
    master = await world.graph(token).me.events.post(weekly_standup())
    assert master is not None
    assert master.id
    assert master.type == EventType.SeriesMaster
    found = await instances_of(world, token, master.id)
    assert [o.start.date_time for o in found if o.start] == STANDUP_STARTS
    assert {o.type for o in found} == {EventType.Occurrence}
    assert {o.series_master_id for o in found} == {master.id}
    assert len({o.id for o in found}) == 4
    assert found[1].original_start == datetime(2030, 4, 7, 23, 0, tzinfo=UTC)
    assert found[0].subject == "Standup"
    one = raw(world, "GET", f"/me/events/{found[2].id}", token).json()
    assert (one["type"], one["seriesMasterId"], one["start"]["dateTime"]) == ("occurrence", master.id,
                                                                               STANDUP_STARTS[2])
    narrow = await instances_of(world, token, master.id, "2030-04-07T00:00:00Z", "2030-04-15T00:00:00Z")
    assert [o.start.date_time for o in narrow if o.start] == STANDUP_STARTS[1:3]
    missing = raw(world, "GET", f"/me/events/{master.id}/instances?startDateTime=2030-03-01T00:00:00Z", token)
    assert missing.status_code == 400


async def test_calendar_view_expands_series_without_the_master(world: World):
    """List calendarView: single instances and occurrences overlapping the window, not the series master, on
    /users/{id}/calendarView (default calendar) and /calendars/{id}/calendarView (that calendar); paged with
    Prefer: odata.maxpagesize, echoed in Preference-Applied."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    await client.me.events.post(weekly_standup())
    single = raw(world, "POST", "/me/events", token, {
        "subject": "Dentist", "start": {"dateTime": "2030-04-10T08:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-04-10T09:00:00", "timeZone": "UTC"}}).json()
    raw(world, "POST", f"/me/calendars/{world.alice_projects}/events", token, {
        "subject": "Elsewhere", "start": {"dateTime": "2030-04-10T08:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-04-10T09:00:00", "timeZone": "UTC"}})
    config = RequestConfiguration[CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters]()
    config.query_parameters = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
        start_date_time="2030-04-07T00:00:00Z", end_date_time="2030-04-15T00:00:00Z")
    view = await client.users.by_user_id(world.alice).calendar_view.get(config)
    assert view is not None
    assert [(e.subject, e.type) for e in view.value or []] == [
        ("Standup", EventType.Occurrence), ("Dentist", EventType.SingleInstance), ("Standup", EventType.Occurrence)]
    assert (view.value or [])[1].id == single["id"]
    paged = raw(world, "GET", "/me/calendarView?startDateTime=2030-04-07T00:00:00Z&endDateTime=2030-04-15T00:00:00Z",
                token, Prefer="odata.maxpagesize=2")
    assert len(paged.json()["value"]) == 2
    assert "@odata.nextLink" in paged.json()
    assert paged.headers["Preference-Applied"] == "odata.maxpagesize=2"
    other = raw(world, "GET", f"/me/calendars/{world.alice_projects}/calendarView?startDateTime=2030-04-07T00:00:00"
                "&endDateTime=2030-04-15T00:00:00", token).json()["value"]
    assert [e["subject"] for e in other] == ["Elsewhere"]
    assert raw(world, "GET", "/me/calendarView?startDateTime=2030-04-07T00:00:00Z", token).status_code == 400


async def test_edit_cancel_and_delete_occurrences(world: World):
    """Update event on an occurrence makes an exception (type exception, its own time and subject, same
    seriesMasterId); Delete event on an occurrence cancels it: it vanishes from calendarView and /instances and its
    id answers 404; event: cancel does the same for the organizer."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    master = await client.me.events.post(weekly_standup())
    assert master is not None
    assert master.id
    ids = [o.id for o in await instances_of(world, token, master.id)]
    moved = raw(world, "PATCH", f"/me/events/{ids[1]}", token, {
        "subject": "Standup (moved)", "start": {"dateTime": "2030-04-09T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-04-09T10:30:00", "timeZone": "UTC"}})
    assert moved.status_code == 200
    assert (moved.json()["type"], moved.json()["id"]) == ("exception", ids[1])
    assert raw(world, "DELETE", f"/me/events/{ids[2]}", token).status_code == 204
    assert raw(world, "POST", f"/me/events/{ids[3]}/cancel", token, {"Comment": "no"}).status_code == 202
    found = await instances_of(world, token, master.id)
    assert [(o.id, o.type, o.subject, o.start.date_time if o.start else None) for o in found] == [
        (ids[0], EventType.Occurrence, "Standup", STANDUP_STARTS[0]),
        (ids[1], EventType.Exception, "Standup (moved)", "2030-04-09T10:00:00.0000000")]
    assert raw(world, "GET", f"/me/events/{ids[2]}", token).status_code == 404
    view = raw(world, "GET", "/me/calendarView?startDateTime=2030-03-01T00:00:00Z&endDateTime=2030-06-01T00:00:00Z",
               token).json()["value"]
    assert [e["id"] for e in view] == ids[:2]


async def test_reshaping_the_master_and_deleting_the_series(world: World):
    """Update event on the master: a new subject reaches every occurrence; a new end date (the user truncating the
    series) leaves fewer occurrences; a new time moves them all; deleting the master removes the series."""
    token = a_token(world, world.alice)
    master = raw(world, "POST", "/me/events", token, {
        "subject": "Review", "start": {"dateTime": "2030-01-07T15:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2030-01-07T16:00:00", "timeZone": "Europe/Berlin"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                       "range": {"type": "noEnd", "startDate": "2030-01-07"}}}).json()
    window = "startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z"

    def view() -> list[tuple[str, str]]:
        answer = raw(world, "GET", f"/me/calendarView?{window}", token).json()["value"]
        return [(e["subject"], e["start"]["dateTime"][:16]) for e in answer]

    assert len(view()) == 4
    raw(world, "PATCH", f"/me/events/{master['id']}", token, {"subject": "Weekly review"})
    assert {s for s, _ in view()} == {"Weekly review"}
    world.control("POST", f"users/{world.alice}/events/{master['id']}/truncate", {"endDate": "2030-01-14"})
    assert view() == [("Weekly review", "2030-01-07T14:00"), ("Weekly review", "2030-01-14T14:00")]
    raw(world, "PATCH", f"/me/events/{master['id']}", token, {
        "start": {"dateTime": "2030-01-07T17:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2030-01-07T18:00:00", "timeZone": "Europe/Berlin"}})
    assert [t for _, t in view()] == ["2030-01-07T16:00", "2030-01-14T16:00"]
    assert raw(world, "DELETE", f"/me/events/{master['id']}", token).status_code == 204
    assert view() == []


async def test_user_actions_on_occurrences_by_control(world: World):
    """The control API's user actions: edit one occurrence (an exception) and cancel another."""
    token = a_token(world, world.alice)
    master = await world.graph(token).me.events.post(weekly_standup())
    assert master is not None
    assert master.id
    ids = [o.id for o in await instances_of(world, token, master.id)]
    edited = world.control("PATCH", f"users/{world.alice}/occurrences/{ids[0]}", {"subject": "Kick-off"})
    assert (edited["type"], edited["subject"]) == ("exception", "Kick-off")
    world.control("DELETE", f"users/{world.alice}/occurrences/{ids[1]}")
    found = await instances_of(world, token, master.id)
    assert [(o.id, o.subject) for o in found] == [(ids[0], "Kick-off"), (ids[2], "Standup"), (ids[3], "Standup")]


async def test_series_exceptions_and_cancellations_survive_the_state_file(world: World, tmp_path: Path):
    """The state file keeps a series master's recurrence, exceptions and cancelled occurrences (SimState.save and
    load): the same instances come back."""
    token = a_token(world, world.alice)
    master = await world.graph(token).me.events.post(weekly_standup())
    assert master is not None
    assert master.id
    ids = [o.id for o in await instances_of(world, token, master.id)]
    raw(world, "PATCH", f"/me/events/{ids[0]}", token, {"subject": "Kick-off"})
    raw(world, "DELETE", f"/me/events/{ids[1]}", token)
    path = tmp_path / "state.json"

    def shown(state: SimState) -> list[dict[str, Any]]:
        found = state.events.find(master.id or "")
        assert found is not None
        return [occurrence_json(o, Preferences(), state.switches, "https://x")
                for o in occurrences_in(found, utc("2030-03-01T00:00"), utc("2030-06-01T00:00"))]

    with world.state.lock:
        world.state.save(path)
        before = shown(world.state)
    after = shown(SimState.load(path))
    assert after == before
    assert [o["id"] for o in after] == [ids[0], ids[2], ids[3]]


async def test_occurrence_changes_notify_the_series_master(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): editing or cancelling one
    occurrence (a user action) is a change to the series, notified as "updated" with the master's id (which id
    Exchange names is not documented: assumed)."""
    client = delegated_client(world, world.alice)
    await subscribe(world, hook, client)
    world.control("PATCH", "switches", {"create_also_updated": False})
    token = a_token(world, world.alice)
    master = raw(world, "POST", "/me/events", token, {
        "subject": "Daily", "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T09:15:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 3}}}).json()
    ids = [o.id for o in await instances_of(world, token, master["id"], "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")]
    world.control("PATCH", f"users/{world.alice}/occurrences/{ids[0]}", {"subject": "Daily (moved)"})
    world.control("DELETE", f"users/{world.alice}/occurrences/{ids[1]}")
    world.control("POST", "notifications/flush", {"seconds": 5})
    assert [(i["changeType"], i["resourceData"]["id"]) for i in hook.items()] == [
        ("created", master["id"]), ("updated", master["id"]), ("updated", master["id"])]
