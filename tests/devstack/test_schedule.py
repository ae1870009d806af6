"""calendar: getSchedule against the simulator over HTTPS (raw httpx where the exact JSON matters, msgraph-sdk once):
schedule items and the availability view of a known layout, a series expanded with a cancelled occurrence left out,
Prefer: outlook.timezone, who sees subjects, an unknown address, validation errors, permissions, throttling and the
request log.

Doc pages: calendar: getSchedule (https://learn.microsoft.com/en-us/graph/api/calendar-getschedule),
scheduleInformation resource type (https://learn.microsoft.com/en-us/graph/api/resources/scheduleinformation),
scheduleItem resource type (https://learn.microsoft.com/en-us/graph/api/resources/scheduleitem), workingHours
resource type (https://learn.microsoft.com/en-us/graph/api/resources/workinghours), Get free/busy schedule of Outlook
calendar users and resources (https://learn.microsoft.com/en-us/graph/outlook-get-free-busy-schedule)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.free_busy_status import FreeBusyStatus
from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import (
    GetSchedulePostRequestBody,
)

from tests.devstack.subscribing import app_token
from tests.devstack.test_events import a_token, raw
from tests.devstack.world import CLIENT_ID, World

ALICE, BOB = "alice@fabrikam.test", "bob@fabrikam.test"


def utc(text: str) -> dict[str, str]:
    return {"dateTime": text, "timeZone": "UTC"}


def seed_event(world: World, user: str, subject: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    """A user's event (control API), times in UTC on 15 April 2030 unless a full date is given."""
    def at(time: str) -> dict[str, str]:
        return utc(time if "T" in time else f"2030-04-15T{time}:00")
    event: dict[str, Any] = world.control("POST", f"users/{user}/events",
                                          {"subject": subject, "start": at(start), "end": at(end), **extra})
    return event


def ask(world: World, token: str, schedules: list[str], start: dict[str, str], end: dict[str, str],
        interval: Any = None, path: str = "/me/calendar/getSchedule", **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"schedules": schedules, "startTime": start, "endTime": end}
    if interval is not None:
        body["availabilityViewInterval"] = interval
    return raw(world, "POST", path, token, body, **headers)


def working_day(world: World, token: str, schedules: list[str], **headers: str) -> list[dict[str, Any]]:
    """The doc example's request: 09:00 to 18:00 in hours (here in UTC, 15 April 2030)."""
    answer = ask(world, token, schedules, utc("2030-04-15T09:00:00"), utc("2030-04-15T18:00:00"), 60, **headers)
    assert answer.status_code == 200, answer.text
    values: list[dict[str, Any]] = answer.json()["value"]
    return values


def times(item: dict[str, Any]) -> tuple[str, str]:
    return item["start"]["dateTime"], item["end"]["dateTime"]


def test_items_and_the_availability_view_of_a_known_layout(world: World):
    """getSchedule: one item per event of the default calendar overlapping the window (one starting before it keeps
    its own start, as the doc example's 08:30 item), in start order, with status from showAs; availabilityView one
    digit per 60-minute slot, 0 free, 1 tentative, 2 busy, 3 oof, 4 workingElsewhere, the busiest item winning a
    shared slot (assumed order); a free event is listed (switch schedule_free_items, assumed) and adds nothing; a
    private event shows status and times only (Event data returned); workingHours Monday to Friday 08:00-17:00
    (assumed). The owner sees subjects and locations, and the reported isMeeting/isRecurring/isException/
    isReminderSet (switch schedule_item_flags)."""
    for subject, start, end, show_as in [
            ("Standup", "08:30", "09:30", "busy"), ("Focus", "10:00", "11:00", "free"),
            ("Lunch", "12:00", "14:00", "busy"), ("Maybe", "13:00", "13:30", "tentative"),
            ("Offsite", "15:00", "15:30", "oof"), ("Remote", "16:00", "17:00", "workingElsewhere"),
            ("Late", "17:30", "18:30", "tentative"), ("Evening", "19:00", "20:00", "busy")]:
        seed_event(world, world.alice, subject, start, end, showAs=show_as, location={"displayName": "Harry's Bar"})
    seed_event(world, world.alice, "Doctor", "14:00", "14:30", sensitivity="private")
    seed_event(world, world.alice, "Elsewhere", "11:00", "12:00", calendar=world.alice_projects)
    token = a_token(world, world.alice)
    answer = ask(world, token, [ALICE], utc("2030-04-15T09:00:00"), utc("2030-04-15T18:00:00"), 60)
    assert answer.status_code == 200
    body = answer.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)")
    [alice] = body["value"]
    assert alice["scheduleId"] == ALICE
    assert alice["availabilityView"] == "200222341"
    items = alice["scheduleItems"]
    assert [(i.get("subject"), i["status"]) for i in items] == [
        ("Standup", "busy"), ("Focus", "free"), ("Lunch", "busy"), ("Maybe", "tentative"), (None, "busy"),
        ("Offsite", "oof"), ("Remote", "workingElsewhere"), ("Late", "tentative")]
    assert times(items[0]) == ("2030-04-15T08:30:00.0000000", "2030-04-15T09:30:00.0000000")
    assert items[2] == {
        "isPrivate": False, "status": "busy", "subject": "Lunch", "location": "Harry's Bar", "isMeeting": False,
        "isRecurring": False, "isException": False, "isReminderSet": True,
        "start": utc("2030-04-15T12:00:00.0000000"), "end": utc("2030-04-15T14:00:00.0000000")}
    assert items[4] == {"status": "busy", "start": utc("2030-04-15T14:00:00.0000000"),
                        "end": utc("2030-04-15T14:30:00.0000000")}
    assert alice["workingHours"] == {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                     "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                                     "timeZone": {"name": "UTC"}}
    world.control("PATCH", "switches", {"schedule_free_items": False, "schedule_item_flags": False})
    [again] = working_day(world, token, [ALICE])
    assert again["availabilityView"] == "200222341"
    assert "Focus" not in [i.get("subject") for i in again["scheduleItems"]]
    assert "isMeeting" not in again["scheduleItems"][0]


def test_a_series_is_expanded_and_a_cancelled_occurrence_is_absent(world: World):
    """Occurrences of a series in the window are items, as calendarView lists them: an edited one (an exception) at
    its own time, a cancelled one absent and free in availabilityView (one 1440-minute slot a day); the series
    master itself is no item."""
    token = a_token(world, world.alice)
    master = raw(world, "POST", "/me/events", token, {
        "subject": "Daily", "start": utc("2030-04-15T09:00:00"), "end": utc("2030-04-15T09:30:00"),
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": "2030-04-15", "numberOfOccurrences": 5}}}).json()
    ids = [o["id"] for o in raw(world, "GET", f"/me/events/{master['id']}/instances?startDateTime=2030-04-01T00:00:00Z"
                                "&endDateTime=2030-05-01T00:00:00Z", token).json()["value"]]
    assert len(ids) == 5
    world.control("DELETE", f"users/{world.alice}/occurrences/{ids[2]}")
    world.control("PATCH", f"users/{world.alice}/occurrences/{ids[3]}", {
        "subject": "Daily (late)", "start": utc("2030-04-18T11:00:00"), "end": utc("2030-04-18T11:30:00")})
    answer = ask(world, token, [ALICE], utc("2030-04-15T00:00:00"), utc("2030-04-20T00:00:00"), 1440)
    [alice] = answer.json()["value"]
    assert alice["availabilityView"] == "22022"
    assert [(i["subject"], i["start"]["dateTime"], i["isRecurring"], i["isException"])
            for i in alice["scheduleItems"]] == [
        ("Daily", "2030-04-15T09:00:00.0000000", True, False), ("Daily", "2030-04-16T09:00:00.0000000", True, False),
        ("Daily (late)", "2030-04-18T11:00:00.0000000", True, True),
        ("Daily", "2030-04-19T09:00:00.0000000", True, False)]


def test_prefer_outlook_timezone_and_a_window_in_another_zone(world: World):
    """getSchedule: the window is read in the zones startTime and endTime name; item times come back in UTC, or in
    the zone Prefer: outlook.timezone names (echoed in Preference-Applied, as Get event does)."""
    seed_event(world, world.alice, "Call", "19:00", "20:00")
    token = a_token(world, world.alice)
    pacific = {"dateTime": "2030-04-15T11:00:00", "timeZone": "Pacific Standard Time"}  # 18:00Z (daylight time)
    until = {"dateTime": "2030-04-15T13:00:00", "timeZone": "Pacific Standard Time"}  # 20:00Z
    plain = ask(world, token, [ALICE], pacific, until)
    [item] = plain.json()["value"][0]["scheduleItems"]
    assert (item["start"], item["end"]) == (utc("2030-04-15T19:00:00.0000000"), utc("2030-04-15T20:00:00.0000000"))
    assert plain.json()["value"][0]["availabilityView"] == "0022"
    local = ask(world, token, [ALICE], pacific, until, Prefer='outlook.timezone="Pacific Standard Time"')
    [item] = local.json()["value"][0]["scheduleItems"]
    assert item["start"] == {"dateTime": "2030-04-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert item["end"] == {"dateTime": "2030-04-15T13:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert local.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'


def test_who_sees_subjects_and_an_unknown_address(world: World):
    """Event data returned: subject and location only on a calendar shared with the signed-in user (bob's, shared
    with alice as read), where an attendee's copy of a cancelled meeting adds nothing (assumed); alice's own
    calendar, not shared with bob, shows bob status and times only. An address the
    tenant does not have (a user of another tenant included) answers a scheduleInformation with only scheduleId and
    error (message and responseCode "5009" of a field report), in the order asked."""
    seed_event(world, world.alice, "Alice's lunch", "12:00", "13:00")
    seed_event(world, world.bob, "Bob's lunch", "12:00", "13:00", showAs="tentative")
    meeting = seed_event(world, world.alice, "Cancelled review", "15:00", "16:00",
                         attendees=[{"emailAddress": {"address": BOB}}])
    world.control("DELETE", f"users/{world.alice}/events/{meeting['id']}")  # bob's copy stays, cancelled
    bob, nobody, carol = working_day(world, a_token(world, world.alice),
                                     [BOB, "nobody@fabrikam.test", "carol@northwind.test"])
    assert bob["availabilityView"] == "000100000"
    assert [(i["subject"], i["status"]) for i in bob["scheduleItems"]] == [("Bob's lunch", "tentative")]
    assert nobody == {"scheduleId": "nobody@fabrikam.test", "error": {
        "message": "Unable to resolve e-mail address nobody@fabrikam.test to an Active Directory object.",
        "responseCode": "5009"}}
    assert carol["error"]["responseCode"] == "5009"
    [alice] = working_day(world, a_token(world, world.bob), [ALICE])
    assert alice["availabilityView"] == "000200000"
    assert alice["scheduleItems"] == [{"status": "busy", "start": utc("2030-04-15T12:00:00.0000000"),
                                       "end": utc("2030-04-15T13:00:00.0000000")}]


@pytest.mark.parametrize(("interval", "window_end"), [
    (4, "2030-04-16T00:00:00"), (1441, "2030-04-17T00:00:00"), ("ten", "2030-04-16T00:00:00"),
    (60, "2030-04-15T00:30:00")])
def test_an_interval_out_of_range_is_400(world: World, interval: Any, window_end: str):
    """availabilityViewInterval: minimum 5, maximum 1440 (getSchedule), and no longer than the window (field
    reports: code ErrorInvalidMergedFreeBusyInterval and its message), in Graph's error shape."""
    token = a_token(world, world.alice)
    answer = ask(world, token, [ALICE], utc("2030-04-15T00:00:00"), utc(window_end), interval)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "ErrorInvalidMergedFreeBusyInterval"
    assert error["message"].startswith("The specified merged free/busy interval is not valid.")
    assert error["innerError"]["request-id"] == answer.headers["request-id"]


def test_the_interval_bounds_the_default_and_the_window_limits(world: World):
    """5 and 1440 minutes are accepted (288 and 1 slots a day; the concept page sends the interval as a string),
    30 is the default; the window must end after it starts and span at most 62 days (switch schedule_max_days;
    codes and wording of field reports); more schedules than schedule_max_schedules (20, documented) is 400."""
    token = a_token(world, world.alice)
    day = (utc("2030-04-15T00:00:00"), utc("2030-04-16T00:00:00"))

    def view(interval: Any) -> str:
        answer = ask(world, token, [ALICE], *day, interval)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["value"][0]["availabilityView"])

    assert (len(view(5)), len(view("1440")), len(view(None))) == (288, 1, 48)
    backwards = ask(world, token, [ALICE], day[1], day[0])
    assert (backwards.status_code, backwards.json()["error"]["code"]) == (400, "ErrorInvalidTimeInterval")
    assert ask(world, token, [ALICE], utc("2030-04-01T00:00:00"), utc("2030-06-02T00:00:00")).status_code == 200
    long = ask(world, token, [ALICE], utc("2030-04-01T00:00:00"), utc("2030-06-03T00:00:00"))
    assert (long.status_code, long.json()["error"]["code"]) == (400, "ErrorTimeIntervalTooBig")
    many = ask(world, token, [f"u{n}@fabrikam.test" for n in range(21)], *day)
    assert (many.status_code, many.json()["error"]["code"]) == (400, "ErrorMailboxDataArrayTooBig")


def test_permissions_app_only_and_the_users_route(world: World):
    """getSchedule needs Calendars.Read or Calendars.ReadWrite, delegated or application: User.Read alone is 403
    ErrorAccessDenied, and so is an app token with only User.Read.All; one with the role Calendars.Read asks on
    /users/{id}/calendar/getSchedule and sees free/busy only (the organization's freeBusyRead entry, assumed for
    apps); /me with an app token is 400."""
    seed_event(world, world.alice, "Alice's lunch", "12:00", "13:00")
    user_read = world.sign_in(world.bob, ["User.Read"])[1]["access_token"]
    refused = ask(world, user_read, [ALICE], utc("2030-04-15T09:00:00"), utc("2030-04-15T18:00:00"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "ErrorAccessDenied")
    assert ask(world, app_token(world, ["User.Read.All"]), [ALICE], utc("2030-04-15T09:00:00"),
               utc("2030-04-15T18:00:00"), path=f"/users/{world.bob}/calendar/getSchedule").status_code == 403
    app = app_token(world, ["Calendars.Read"])
    answer = ask(world, app, [ALICE], utc("2030-04-15T09:00:00"), utc("2030-04-15T18:00:00"), 60,
                 path=f"/users/{world.bob}/calendar/getSchedule")
    assert answer.status_code == 200
    assert answer.json()["value"][0]["scheduleItems"] == [
        {"status": "busy", "start": utc("2030-04-15T12:00:00.0000000"), "end": utc("2030-04-15T13:00:00.0000000")}]
    assert ask(world, app, [ALICE], utc("2030-04-15T09:00:00"), utc("2030-04-15T18:00:00")).status_code == 400


def test_counted_in_the_request_log_and_throttled_as_a_read(world: World):
    """Microsoft Graph service-specific throttling limits (https://learn.microsoft.com/en-us/graph/throttling-limits):
    getSchedule counts against the app and mailbox's request budget like other reads, not against the write budget
    (a POST that only reads), and the request log and route counters list it, the 429 included."""
    token = a_token(world, world.alice)
    world.control("POST", "throttling", {"requests": 3, "writes": 1})
    statuses = [ask(world, token, [ALICE], utc("2030-04-15T09:00:00"), utc("2030-04-15T18:00:00")).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    counters = world.control("GET", "counters")
    assert counters["routes"]["POST /v1.0/me/calendar/getSchedule"] == 4
    assert counters["throttled"] == {f"{CLIENT_ID}|{world.alice}": 1}
    logged = [r["status"] for r in world.control("GET", "requests")["requests"]
              if r["path"] == "/v1.0/me/calendar/getSchedule"]
    assert logged == [200, 200, 200, 429]


async def test_through_the_sdk(world: World):
    """msgraph-sdk's calendar.get_schedule: the request it writes is read, the answer parses into
    scheduleInformation (the reported flags land in additional_data)."""
    seed_event(world, world.bob, "Bob's lunch", "12:00", "13:00")
    client = world.graph(a_token(world, world.alice))
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", 'outlook.timezone="W. Europe Standard Time"')
    answer = await client.me.calendar.get_schedule.post(GetSchedulePostRequestBody(
        schedules=[BOB], availability_view_interval=60,
        start_time=DateTimeTimeZone(date_time="2030-04-15T09:00:00", time_zone="UTC"),
        end_time=DateTimeTimeZone(date_time="2030-04-15T18:00:00", time_zone="UTC")), config)
    assert answer is not None
    [bob] = answer.value or []
    assert (bob.schedule_id, bob.availability_view) == (BOB, "000200000")
    [item] = bob.schedule_items or []
    assert (item.status, item.subject, item.is_private) == (FreeBusyStatus.Busy, "Bob's lunch", False)
    assert item.start is not None
    assert (item.start.date_time, item.start.time_zone) == ("2030-04-15T14:00:00.0000000", "W. Europe Standard Time")
    assert item.additional_data["isMeeting"] is False
