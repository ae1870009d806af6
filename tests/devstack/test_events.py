"""Events through the real msgraph-sdk (raw httpx where the SDK hides status or headers) against the simulator:
create, get, list, update, delete, the properties Graph returns, change keys, If-Match, time zones, immutable ids,
translateExchangeIds, transactionId and single-value extended properties. Each test names its Microsoft doc."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.event import Event
from msgraph.generated.models.event_type import EventType
from msgraph.generated.models.exchange_id_format import ExchangeIdFormat
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.location import Location
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder
from msgraph.generated.users.item.translate_exchange_ids.translate_exchange_ids_post_request_body import (
    TranslateExchangeIdsPostRequestBody,
)

from tests.devstack.world import World

TAG = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SyncSource"


def a_token(world: World, user: str) -> str:
    _, tokens = world.sign_in(user)
    token: str = tokens["access_token"]
    return token


def raw(world: World, method: str, path: str, token: str, json: Any = None, **headers: str) -> httpx.Response:
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10) as client:
        return client.request(method, f"{world.sim.graph_url}{path}", json=json,
                              headers={"Authorization": f"Bearer {token}", **headers})


def lunch(**extra: Any) -> dict[str, Any]:
    return {"subject": "Let's go for lunch", "body": {"contentType": "HTML", "content": "Does noon work?"},
            "start": {"dateTime": "2030-04-15T12:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2030-04-15T14:00:00", "timeZone": "Pacific Standard Time"},
            "location": {"displayName": "  Harry's Bar "}, **extra}


def sdk_event(subject: str = "Planning", zone: str = "W. Europe Standard Time") -> Event:
    return Event(subject=subject, body=ItemBody(content_type=BodyType.Text, content="Line one\nline <two>"),
                 start=DateTimeTimeZone(date_time="2030-06-01T09:00:00", time_zone=zone),
                 end=DateTimeTimeZone(date_time="2030-06-01T10:00:00", time_zone=zone),
                 location=Location(display_name="Room 1"))


async def test_create_and_read_back_through_the_sdk(world: World):
    """Create event (https://learn.microsoft.com/en-us/graph/api/user-post-events) and event resource type
    (https://learn.microsoft.com/en-us/graph/api/resources/event): 201 with id, etag = W/"changeKey", times,
    iCalUId, type, organizer, isOrganizer; a text body comes back as HTML with a derived bodyPreview (switches)."""
    client = world.graph(a_token(world, world.alice))
    created = await client.me.events.post(sdk_event())
    assert created is not None
    assert created.id
    assert created.change_key
    assert created.additional_data["@odata.etag"] == f'W/"{created.change_key}"'
    assert created.type == EventType.SingleInstance
    assert created.is_organizer is True
    assert created.organizer is not None
    assert created.organizer.email_address is not None
    assert created.organizer.email_address.address == "alice@fabrikam.test"
    assert created.i_cal_u_id
    assert created.i_cal_u_id.startswith("0400000082")
    assert created.body is not None
    assert created.body.content_type == BodyType.Html
    assert "Line one<br>" in (created.body.content or "")
    assert "&lt;two&gt;" in (created.body.content or "")
    assert created.body_preview == "Line one line <two>"
    assert created.original_start_time_zone == "W. Europe Standard Time"
    assert created.start is not None
    assert (created.start.date_time, created.start.time_zone) == ("2030-06-01T07:00:00.0000000", "UTC")
    assert created.transaction_id is None
    again = await client.me.events.by_event_id(created.id).get()
    assert again is not None
    assert (again.id, again.change_key, again.subject) == (created.id, created.change_key, "Planning")


async def test_list_default_calendar_or_the_calendar_named(world: World):
    """List events (https://learn.microsoft.com/en-us/graph/api/user-list-events): /events and /calendar/events
    list the default calendar, /calendars/{id}/events the one named; Create event posts to the same three forms."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    await client.me.events.post(sdk_event("in default"))
    await client.me.calendars.by_calendar_id(world.alice_projects).events.post(sdk_event("in projects"))
    assert raw(world, "POST", "/me/calendar/events", token, lunch()).status_code == 201
    default = await client.users.by_user_id(world.alice).events.get()
    assert default is not None
    assert sorted(e.subject or "" for e in default.value or []) == ["Let's go for lunch", "in default"]
    projects = await client.me.calendars.by_calendar_id(world.alice_projects).events.get()
    assert projects is not None
    assert [e.subject for e in projects.value or []] == ["in projects"]
    calendar = raw(world, "GET", "/me/calendar/events", token).json()["value"]
    assert len(calendar) == 2


async def test_paging_with_top_and_next_link(world: World):
    """List events: pages of $top (or Prefer: odata.maxpagesize) with @odata.nextLink until the last page."""
    token = a_token(world, world.alice)
    for i in range(5):
        raw(world, "POST", "/me/events", token, lunch(subject=f"e{i}"))
    first = raw(world, "GET", "/me/events?$top=2", token).json()
    assert [e["subject"] for e in first["value"]] == ["e0", "e1"]
    seen = [e["subject"] for e in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = raw(world, "GET", link.split("/v1.0", 1)[1], token).json()
        seen += [e["subject"] for e in page["value"]]
        link = page.get("@odata.nextLink")
    assert seen == [f"e{i}" for i in range(5)]
    sized = raw(world, "GET", "/me/events", token, **{"Prefer": "odata.maxpagesize=3"}).json()
    assert len(sized["value"]) == 3


async def test_update_moves_the_change_key_and_if_match_guards_it(world: World):
    """Update event (https://learn.microsoft.com/en-us/graph/api/event-update): PATCH changes the properties sent,
    and the change key (and etag) are new on every change. A stale If-Match answers 412 (switch if_match,
    assumed: not documented for events); "ignore" lets it through."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    created = await client.me.events.post(sdk_event())
    assert created is not None
    assert created.id
    updated = await client.me.events.by_event_id(created.id).patch(Event(subject="Renamed"))
    assert updated is not None
    assert updated.subject == "Renamed"
    assert updated.change_key != created.change_key
    assert updated.location is not None
    assert updated.location.display_name == "Room 1"
    stale = raw(world, "PATCH", f"/me/events/{created.id}", token, {"subject": "x"},
                **{"If-Match": f'W/"{created.change_key}"'})
    assert stale.status_code == 412
    current = raw(world, "PATCH", f"/me/events/{created.id}", token, {"subject": "y"},
                  **{"If-Match": f'W/"{updated.change_key}"'})
    assert current.status_code == 200
    world.control("PATCH", "switches", {"if_match": "ignore"})
    assert raw(world, "DELETE", f"/me/events/{created.id}", token,
               **{"If-Match": f'W/"{created.change_key}"'}).status_code == 204


async def test_delete_then_404_in_graphs_error_shape(world: World):
    """Delete event (https://learn.microsoft.com/en-us/graph/api/event-delete): 204; afterwards the id is 404
    ErrorItemNotFound in Graph's error body (Microsoft Graph error responses,
    https://learn.microsoft.com/en-us/graph/errors)."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    created = await client.me.events.post(sdk_event())
    assert created is not None
    assert created.id
    await client.me.events.by_event_id(created.id).delete()
    with pytest.raises(ODataError) as raised:
        await client.me.events.by_event_id(created.id).get()
    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "ErrorItemNotFound"
    body = raw(world, "GET", f"/me/events/{created.id}", token).json()
    assert set(body["error"]) == {"code", "message", "innerError"}
    assert set(body["error"]["innerError"]) == {"date", "request-id", "client-request-id"}


async def test_permissions_to_write(world: World):
    """Create event needs Calendars.ReadWrite: a Calendars.Read token is 403; Bob's shared calendar (read role)
    cannot be written by Alice (Get shared or delegated Outlook calendar and its events,
    https://learn.microsoft.com/en-us/graph/outlook-get-shared-events-calendars)."""
    _, reader = world.sign_in(world.alice, scopes=["Calendars.Read"])
    assert raw(world, "POST", "/me/events", reader["access_token"], lunch()).status_code == 403
    assert raw(world, "GET", "/me/events", reader["access_token"]).status_code == 200
    _, shared = world.sign_in(world.alice, scopes=["Calendars.ReadWrite.Shared"])
    assert raw(world, "POST", f"/users/{world.bob}/events", shared["access_token"], lunch()).status_code == 403
    assert raw(world, "GET", f"/users/{world.bob}/events", shared["access_token"]).status_code == 200


# --- time zones ------------------------------------------------------------------------------------------


async def test_times_in_utc_unless_outlook_timezone(world: World):
    """Get event (https://learn.microsoft.com/en-us/graph/api/event-get): start/end come back in UTC, or in the
    zone Prefer: outlook.timezone names (then Preference-Applied says so)."""
    token = a_token(world, world.alice)
    created = raw(world, "POST", "/me/events", token, lunch()).json()
    assert created["start"] == {"dateTime": "2030-04-15T19:00:00.0000000", "timeZone": "UTC"}
    shown = raw(world, "GET", f"/me/events/{created['id']}", token,
                **{"Prefer": 'outlook.timezone="Eastern Standard Time"'})
    assert shown.json()["start"] == {"dateTime": "2030-04-15T15:00:00.0000000", "timeZone": "Eastern Standard Time"}
    assert shown.headers["Preference-Applied"] == 'outlook.timezone="Eastern Standard Time"'
    client = world.graph(token)
    config = RequestConfiguration[EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters]()
    config.headers.add("Prefer", 'outlook.timezone="Tokyo Standard Time"')
    tokyo = await client.me.events.by_event_id(created["id"]).get(config)
    assert tokyo is not None
    assert tokyo.start is not None
    assert (tokyo.start.date_time, tokyo.start.time_zone) == ("2030-04-16T04:00:00.0000000", "Tokyo Standard Time")


async def test_an_iana_zone_comes_back_as_its_windows_name(world: World):
    """dateTimeTimeZone resource type (https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone) and
    event resource type: an IANA name written is reported in originalStartTimeZone as the Windows name (CLDR's
    windowsZones table); an unknown zone or the custom zone cannot be written (400)."""
    token = a_token(world, world.alice)
    berlin = {"dateTime": "2030-01-10T09:00:00", "timeZone": "Europe/Berlin"}
    created = raw(world, "POST", "/me/events", token, lunch(start=berlin, end={**berlin, "dateTime":
                                                                                "2030-01-10T10:00:00"})).json()
    assert (created["originalStartTimeZone"], created["originalEndTimeZone"]) == ("W. Europe Standard Time",) * 2
    assert created["start"]["dateTime"] == "2030-01-10T08:00:00.0000000"
    for zone in ("Mars/Olympus_Mons", "tzone://Microsoft/Custom"):
        bad = raw(world, "POST", "/me/events", token, lunch(start={"dateTime": "2030-01-10T09:00:00",
                                                                   "timeZone": zone}))
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "TimeZoneNotSupportedException"


async def test_all_day_events_run_midnight_to_midnight_in_one_zone(world: World):
    """event resource type: an all-day event starts and ends at midnight in the same time zone (400 otherwise);
    it comes back at midnight whatever outlook.timezone asks (switch all_day_floating, assumed)."""
    token = a_token(world, world.alice)
    day = {"isAllDay": True, "start": {"dateTime": "2030-05-01T00:00:00", "timeZone": "Pacific Standard Time"},
           "end": {"dateTime": "2030-05-02T00:00:00", "timeZone": "Pacific Standard Time"}}
    created = raw(world, "POST", "/me/events", token, {**lunch(), **day})
    assert created.status_code == 201
    assert created.json()["start"] == {"dateTime": "2030-05-01T00:00:00.0000000", "timeZone": "UTC"}
    not_midnight = {**day, "end": {"dateTime": "2030-05-02T09:00:00", "timeZone": "Pacific Standard Time"}}
    two_zones = {**day, "end": {"dateTime": "2030-05-02T00:00:00", "timeZone": "Eastern Standard Time"}}
    for wrong in (not_midnight, two_zones):
        answer = raw(world, "POST", "/me/events", token, {**lunch(), **wrong})
        assert answer.status_code == 400
    world.control("PATCH", "switches", {"all_day_floating": False})
    instant = raw(world, "GET", f"/me/events/{created.json()['id']}", token).json()
    assert instant["start"]["dateTime"] == "2030-05-01T07:00:00.0000000"


async def test_custom_zone_is_seeded_by_control(world: World):
    """event resource type: tzone://Microsoft/Custom marks a custom zone set in desktop Outlook; Graph cannot
    write one, so a control call seeds it; Graph reads it back with UTC times."""
    made = world.control("POST", f"users/{world.alice}/events", {
        **lunch(start={"dateTime": "2030-03-01T10:00:00", "timeZone": "UTC"},
                end={"dateTime": "2030-03-01T11:00:00", "timeZone": "UTC"}), "customZone": True})
    got = raw(world, "GET", f"/me/events/{made['id']}", a_token(world, world.alice)).json()
    assert got["originalStartTimeZone"] == "tzone://Microsoft/Custom"
    assert got["start"] == {"dateTime": "2030-03-01T10:00:00.0000000", "timeZone": "UTC"}


# --- identifiers -----------------------------------------------------------------------------------------


async def test_immutable_ids_survive_a_move_rest_ids_do_not(world: World):
    """Obtain immutable identifiers for Outlook resources (https://learn.microsoft.com/en-us/graph/outlook-immutable-id):
    with Prefer: IdType="ImmutableId" the id stays when the event moves to another calendar; the default id
    changes, and the old one is gone."""
    token = a_token(world, world.alice)
    immutable = {"Prefer": 'IdType="ImmutableId"'}
    created = raw(world, "POST", "/me/events", token, lunch(), **immutable).json()
    rest = raw(world, "GET", f"/me/events/{created['id']}", token).json()["id"]
    assert rest != created["id"]
    moved = world.control("POST", f"users/{world.alice}/events/{rest}/move", {"calendar": world.alice_projects})
    assert moved["oldRestId"] == rest
    assert moved["immutableId"] == created["id"]
    assert raw(world, "GET", f"/me/events/{rest}", token).status_code == 404
    again = raw(world, "GET", f"/me/calendars/{world.alice_projects}/events/{created['id']}", token, **immutable)
    assert again.json()["id"] == created["id"]
    new_rest = raw(world, "GET", f"/me/events/{created['id']}", token).json()["id"]
    assert new_rest == moved["restId"] != rest


async def test_translate_exchange_ids(world: World):
    """user: translateExchangeIds (https://learn.microsoft.com/en-us/graph/api/user-translateexchangeids): restId
    to restImmutableEntryId and back, entryId's padding digit; an unknown id carries errorDetails."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    created = raw(world, "POST", "/me/events", token, lunch()).json()
    immutable = raw(world, "GET", f"/me/events/{created['id']}", token, Prefer='IdType="ImmutableId"').json()["id"]
    answer = await client.me.translate_exchange_ids.post(TranslateExchangeIdsPostRequestBody(
        input_ids=[created["id"]], source_id_type=ExchangeIdFormat.RestId,
        target_id_type=ExchangeIdFormat.RestImmutableEntryId))
    assert answer is not None
    assert [(r.source_id, r.target_id) for r in answer.value or []] == [(created["id"], immutable)]
    entry = raw(world, "POST", "/me/translateExchangeIds", token, {
        "inputIds": [created["id"]], "sourceIdType": "restId", "targetIdType": "entryId"}).json()["value"][0]
    assert entry["targetId"][-1] in "012"
    assert "=" not in entry["targetId"]
    back = raw(world, "POST", "/me/translateExchangeIds", token, {
        "inputIds": [entry["targetId"], "AAMkAGnothere="], "sourceIdType": "entryId", "targetIdType": "restId"})
    assert back.json()["value"][0]["targetId"] == created["id"]
    assert back.json()["value"][1]["errorDetails"]["code"] == "ErrorItemNotFound"


# --- idempotency helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "status"), [("created", 201), ("ok", 200), ("conflict", 409)])
async def test_a_repeated_transaction_id_creates_one_event(world: World, mode: str, status: int):
    """event resource type: transactionId lets the server drop a redundant create (returned only when set).
    The duplicate's answer is a switch (transaction_duplicate, assumed): 201 or 200 with the existing event, or
    409."""
    token = a_token(world, world.alice)
    world.control("PATCH", "switches", {"transaction_duplicate": mode})
    first = raw(world, "POST", "/me/events", token, lunch(transactionId="tx-1"))
    assert first.status_code == 201
    assert first.json()["transactionId"] == "tx-1"
    second = raw(world, "POST", "/me/events", token, lunch(transactionId="tx-1"))
    assert second.status_code == status
    if status != 409:
        assert second.json()["id"] == first.json()["id"]
    assert len(raw(world, "GET", "/me/events", token).json()["value"]) == 1


async def test_the_dedupe_window_and_a_fixed_transaction_id(world: World):
    """transactionId dedupes within transaction_window_seconds (assumed); it cannot change on update."""
    token = a_token(world, world.alice)
    world.control("PATCH", "switches", {"transaction_window_seconds": 60})
    first = raw(world, "POST", "/me/events", token, lunch(transactionId="tx-2")).json()
    world.control("POST", "clock/advance", {"seconds": 61})
    token = a_token(world, world.alice)
    later = raw(world, "POST", "/me/events", token, lunch(transactionId="tx-2")).json()
    assert later["id"] != first["id"]
    changed = raw(world, "PATCH", f"/me/events/{first['id']}", token, {"transactionId": "other"})
    assert changed.status_code == 400


async def test_single_value_extended_properties(world: World):
    """Get singleValueLegacyExtendedProperty
    (https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get): created with the event,
    read with $expand=...($filter=id eq ...), events found with $filter=...Any(ep: ep/id eq ... and ep/value eq
    ...) (value case-insensitive; the filtered list does not carry the property)."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    tagged = sdk_event("tagged")
    tagged.single_value_extended_properties = [SingleValueLegacyExtendedProperty(id=TAG, value="Source-42")]
    created = await client.me.events.post(tagged)
    await client.me.events.post(sdk_event("plain"))
    assert created is not None
    assert created.id
    expand = f"singleValueExtendedProperties($filter=id eq '{TAG}')"
    config = RequestConfiguration[EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters]()
    config.query_parameters = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(expand=[expand])
    read = await client.me.events.by_event_id(created.id).get(config)
    assert read is not None
    assert [(p.id, p.value) for p in read.single_value_extended_properties or []] == [(TAG, "Source-42")]
    for clause in ("ep/value eq 'source-42'", "startswith(ep/value, 'Source')", "contains(ep/value, '42')"):
        found_filter = f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG}' and {clause})"
        list_config = RequestConfiguration[EventsRequestBuilder.EventsRequestBuilderGetQueryParameters]()
        list_config.query_parameters = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
            filter=found_filter)
        found = await client.me.events.get(list_config)
        assert found is not None
        assert [e.subject for e in found.value or []] == ["tagged"]
        assert (found.value or [])[0].single_value_extended_properties is None
    other_name = TAG.replace("SyncSource", "syncsource")  # the Name is case-sensitive
    none = raw(world, "GET", f"/me/events?$filter=singleValueExtendedProperties/Any(ep: ep/id eq '{other_name}' "
               "and ep/value eq 'Source-42')", token).json()
    assert none["value"] == []
