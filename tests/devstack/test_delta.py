"""calendarView delta through the real msgraph-sdk (the URL it emits, paging with with_url) and raw httpx (pages,
headers, status codes): the window fixed in the tokens, nextLink pages then a deltaLink, Prefer: odata.maxpagesize
as a hint a series can exceed, thin occurrences, a later round with only what changed, @removed for deletions and
for items that left the window or changed outside it, the assumed switches, tokens evicted or expired (410), the
reported service faults, and the request counters.

Doc pages: event: delta (https://learn.microsoft.com/en-us/graph/api/event-delta); Get incremental changes to events
in a calendar view (https://learn.microsoft.com/en-us/graph/delta-query-events); Use delta query to track changes in
Microsoft Graph data (https://learn.microsoft.com/en-us/graph/delta-query-overview)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.event_type import EventType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

from tests.devstack.test_events import a_token, raw
from tests.devstack.test_recurrence import weekly_standup
from tests.devstack.world import World

WINDOW = {"startDateTime": "2030-03-25T00:00:00Z", "endDateTime": "2030-05-01T00:00:00Z"}
THIN = {"@odata.type", "@odata.etag", "id", "type", "seriesMasterId", "start", "end"}


def single(subject: str, day: str = "2030-04-10", hour: int = 8) -> dict[str, Any]:
    return {"subject": subject, "start": {"dateTime": f"{day}T{hour:02d}:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day}T{hour + 1:02d}:00:00", "timeZone": "UTC"}}


def delta_round(world: World, token: str, first: str, page_size: int | None = 2,
                limit: int = 50) -> tuple[list[list[dict[str, Any]]], str]:
    """Follow nextLinks from ``first`` (a path under /v1.0 or a full link) to the deltaLink: (pages, deltaLink)."""
    headers = {"Authorization": f"Bearer {token}"}
    if page_size:
        headers["Prefer"] = f"odata.maxpagesize={page_size}"
    pages = []
    link = first if first.startswith("https://") else world.sim.graph_url + first
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10, headers=headers) as http:
        for _ in range(limit):
            answer = http.get(link)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            pages.append(body["value"])
            if "@odata.deltaLink" in body:
                assert "@odata.nextLink" not in body
                return pages, body["@odata.deltaLink"]
            link = body["@odata.nextLink"]
    raise AssertionError("no deltaLink")


def get(world: World, link: str, token: str, **headers: str) -> httpx.Response:
    """One GET of a full link (a nextLink or deltaLink) or of a path under /v1.0."""
    url = link if link.startswith("https://") else world.sim.graph_url + link
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10) as http:
        return http.get(url, headers={"Authorization": f"Bearer {token}", **headers})


def first_link(calendar: str = "") -> str:
    return (f"/me{calendar}/calendarView/delta()?startDateTime={WINDOW['startDateTime']}"
            f"&endDateTime={WINDOW['endDateTime']}")


def flat(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [item for page in pages for item in page]


async def seeded(world: World) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Alice's token, a weekly series (4 occurrences in the window) and three single events (one outside it)."""
    token = a_token(world, world.alice)
    master = (await world.graph(token).me.events.post(weekly_standup()))
    assert master is not None
    singles = [raw(world, "POST", "/me/events", token, single(name, day)).json()
               for name, day in (("A", "2030-04-02"), ("B", "2030-04-03"), ("Outside", "2030-06-01"))]
    return token, {"id": master.id}, singles


async def test_first_round_through_the_sdk_with_the_url_it_emits(world: World):
    """event: delta through msgraph-sdk: client.users.by_user_id(u).calendar_view.delta.get with startDateTime and
    endDateTime, then with_url(nextLink) until a deltaLink; the SDK calls .../calendarView/delta() with the window;
    every occurrence and single instance in the window comes back once, the series master does not, and
    occurrences are thin (id, type, seriesMasterId, start, end)."""
    token, master, singles = await seeded(world)
    client = world.graph(token)
    config = RequestConfiguration[DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters]()
    config.query_parameters = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
        start_date_time=WINDOW["startDateTime"], end_date_time=WINDOW["endDateTime"])
    config.headers.add("Prefer", "odata.maxpagesize=2")
    builder = client.users.by_user_id(world.alice).calendar_view.delta
    page = await builder.get(request_configuration=config)
    items, pages = [], 0
    while page is not None:
        pages += 1
        items += page.value or []
        if page.odata_next_link:
            page = await builder.with_url(page.odata_next_link).get(request_configuration=config)
        else:
            assert page.odata_delta_link
            delta_link = page.odata_delta_link
            break
    assert "$deltatoken=" in delta_link
    paths = [r.path for r in world.state.requests if "calendarView" in r.path]
    assert paths[0] == f"/v1.0/users/{world.alice}/calendarView/delta()"
    occurrences = [e for e in items if e.type == EventType.Occurrence]
    assert sorted(e.subject or "" for e in items if e.type == EventType.SingleInstance) == ["A", "B"]
    assert len(occurrences) == 4
    assert {e.series_master_id for e in occurrences} == {master["id"]}
    assert all(e.subject is None for e in occurrences)  # thin
    assert singles[2]["id"] not in {e.id for e in items}
    assert master["id"] not in {e.id for e in items}
    assert pages == 2  # the four occurrences together on the first page, then A and B


async def test_pages_thin_occurrences_and_the_page_size_hint(world: World):
    """Get incremental changes to events in a calendar view: Prefer: odata.maxpagesize sets the page size (echoed
    in Preference-Applied); a series' occurrences stay together on one page, so that page exceeds the size
    (switch delta_series_on_one_page, assumed); thin occurrences carry only their seven properties."""
    token, _, _ = await seeded(world)
    answer = get(world, first_link(), token, Prefer="odata.maxpagesize=2")
    assert answer.headers["Preference-Applied"] == "odata.maxpagesize=2"
    assert answer.json()["@odata.context"].endswith("/v1.0/$metadata#Collection(event)")
    pages, _ = delta_round(world, token, first_link())
    sizes = [len(p) for p in pages]
    assert 4 in sizes  # the series' page
    for item in flat(pages):
        if item["type"] == "occurrence":
            assert set(item) == THIN
        else:
            assert item["@odata.type"] == "#microsoft.graph.event"
            assert "subject" in item
    world.control("PATCH", "switches", {"delta_series_on_one_page": False, "delta_thin_occurrences": False})
    pages, _ = delta_round(world, token, first_link())
    assert max(len(p) for p in pages) == 2
    assert all("subject" in item for item in flat(pages))


async def test_a_later_round_returns_only_what_changed(world: World):
    """event: delta: a later round from the deltaLink returns the events changed in the window, @removed with
    reason deleted for one deleted, for one moved out of the window, and for one outside the window that changed;
    nothing else. The window stays the one in the token whatever the later request says."""
    token, master, singles = await seeded(world)
    _, delta_link = delta_round(world, token, first_link())
    a, b, outside = singles
    raw(world, "PATCH", f"/me/events/{a['id']}", token, {"subject": "A2"})
    raw(world, "DELETE", f"/me/events/{b['id']}", token)
    raw(world, "PATCH", f"/me/events/{outside['id']}", token, {"subject": "Outside2"})
    moved_out = raw(world, "POST", "/me/events", token, single("C", "2030-04-04")).json()
    pages, next_delta = delta_round(world, token, delta_link)
    assert flat(pages)[0]["id"] == a["id"]  # in change order
    assert flat(pages)[0]["subject"] == "A2"
    removed = {i["id"]: i["@removed"] for i in flat(pages) if "@removed" in i}
    assert removed == {b["id"]: {"reason": "deleted"}, outside["id"]: {"reason": "deleted"}}
    assert {i["id"] for i in flat(pages)} == {a["id"], b["id"], outside["id"], moved_out["id"]}
    raw(world, "PATCH", f"/me/events/{moved_out['id']}", token, single("C", "2030-07-01"))
    pages, _ = delta_round(world, token, next_delta + "&startDateTime=2030-06-01T00:00:00Z")
    assert flat(pages) == [{"@odata.type": "#microsoft.graph.event", "id": moved_out["id"],
                            "@removed": {"reason": "deleted"}}]
    pages, _ = delta_round(world, token, next_delta)  # a delta link can be used again: the same changes
    assert len(flat(pages)) == 1
    assert master["id"]


async def test_series_changes_in_a_later_round(world: World):
    """Recurrence in delta: a cancelled occurrence yields @removed (switch delta_cancelled_occurrence "removed") or
    simply vanishes ("vanish"); an edited occurrence comes back as an exception in full; a series truncated yields
    @removed for the occurrences cut off; both assumed behaviours where the docs are silent."""
    token, master, _ = await seeded(world)
    _, link = delta_round(world, token, first_link())
    occurrences = raw(world, "GET", f"/me/events/{master['id']}/instances?startDateTime=2030-03-01T00:00:00Z"
                      "&endDateTime=2030-06-01T00:00:00Z", token).json()["value"]
    ids = [o["id"] for o in occurrences]
    raw(world, "DELETE", f"/me/events/{ids[0]}", token)
    raw(world, "PATCH", f"/me/events/{ids[1]}", token, {"subject": "Moved standup"})
    pages, link = delta_round(world, token, link)
    items = {i["id"]: i for i in flat(pages)}
    assert items[ids[0]] == {"@odata.type": "#microsoft.graph.event", "id": ids[0], "@removed": {"reason": "deleted"}}
    assert (items[ids[1]]["type"], items[ids[1]]["subject"]) == ("exception", "Moved standup")
    assert set(items[ids[2]]) == THIN
    world.control("PATCH", "switches", {"delta_cancelled_occurrence": "vanish"})
    raw(world, "DELETE", f"/me/events/{ids[3]}", token)
    pages, link = delta_round(world, token, link)
    assert ids[3] not in {i["id"] for i in flat(pages)}
    assert ids[0] not in {i["id"] for i in flat(pages)}
    world.control("POST", f"users/{world.alice}/events/{master['id']}/truncate", {"endDate": "2030-04-10"})
    pages, _ = delta_round(world, token, link)
    removed = {i["id"] for i in flat(pages) if "@removed" in i}
    assert ids[2] in removed  # 15 April, cut off


async def test_rescheduling_a_series_replaces_its_occurrence_ids(world: World):
    """A user moves the series' time (control PATCH on the master): every occurrence gets a new original start and
    so a new id; the later round brings the new occurrences and @removed for each old id in the window (the ids of
    the series' earlier shape), as field reports describe stale occurrence ids after a reschedule."""
    token, master, _ = await seeded(world)
    pages, link = delta_round(world, token, first_link())
    old = {i["id"] for i in flat(pages) if i.get("type") == "occurrence"}
    world.control("PATCH", f"users/{world.alice}/events/{master['id']}", {
        "start": {"dateTime": "2030-04-01T10:00:00", "timeZone": "AUS Eastern Standard Time"},
        "end": {"dateTime": "2030-04-01T10:30:00", "timeZone": "AUS Eastern Standard Time"}})
    pages, _ = delta_round(world, token, link)
    removed = {i["id"] for i in flat(pages) if "@removed" in i}
    new = {i["id"] for i in flat(pages) if i.get("type") == "occurrence"}
    assert removed == old
    assert len(new) == 4
    assert not new & old
    assert sorted(i["start"]["dateTime"][11:16] for i in flat(pages) if i.get("type") == "occurrence") == [
        "00:00", "00:00", "00:00", "23:00"]  # 10:00 in Sydney: 23:00Z in daylight time, then 00:00Z


async def test_a_single_event_made_a_series_and_back(world: World):
    """A single event given a recurrence (Update event) leaves the view as a single instance (@removed for its id)
    and comes back as occurrences; a series whose recurrence is removed becomes a single event again: its
    occurrences are removed and the event comes back in full (assumed where the docs are silent)."""
    token, _, singles = await seeded(world)
    a = singles[0]
    _, link = delta_round(world, token, first_link())
    weekly = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
              "range": {"type": "numbered", "startDate": "2030-04-02", "numberOfOccurrences": 2}}
    raw(world, "PATCH", f"/me/events/{a['id']}", token, {"recurrence": weekly})
    pages, link = delta_round(world, token, link)
    items = flat(pages)
    assert items[0] == {"@odata.type": "#microsoft.graph.event", "id": a["id"], "@removed": {"reason": "deleted"}}
    occurrences = [i["id"] for i in items[1:]]
    assert [i["type"] for i in items[1:]] == ["occurrence", "occurrence"]
    raw(world, "PATCH", f"/me/events/{a['id']}", token, {"recurrence": None})
    pages, _ = delta_round(world, token, link)
    items = flat(pages)
    assert (items[0]["id"], items[0]["type"]) == (a["id"], "singleInstance")
    assert sorted(i["id"] for i in items[1:] if "@removed" in i) == sorted(occurrences)


async def test_a_series_reshaped_in_the_middle_of_a_round(world: World):
    """Occurrences listed when a round starts but gone by the time their page is served (the series was
    rescheduled) are not served with ids that no longer exist; the next round removes them (Use delta query to track
    changes: changes during a round reach the next one)."""
    token, master, _ = await seeded(world)
    world.control("PATCH", "switches", {"delta_series_on_one_page": False})
    first = get(world, first_link(), token, Prefer="odata.maxpagesize=2").json()
    served = [i["id"] for i in first["value"]]
    world.control("PATCH", f"users/{world.alice}/events/{master['id']}", {
        "start": {"dateTime": "2030-04-01T11:00:00", "timeZone": "AUS Eastern Standard Time"},
        "end": {"dateTime": "2030-04-01T11:30:00", "timeZone": "AUS Eastern Standard Time"}})
    pages, link = delta_round(world, token, first["@odata.nextLink"])
    assert [i["subject"] for i in flat(pages)] == ["A", "B"]  # the two later occurrences are not served
    pages, _ = delta_round(world, token, link)
    assert set(served) <= {i["id"] for i in flat(pages) if "@removed" in i}


@pytest.mark.parametrize(("mode", "expected"), [("occurrences", 5), ("master", 1)])
async def test_deleting_a_series(world: World, mode: str, expected: int):
    """Deleting a series yields @removed for the master and each occurrence in the window ("occurrences") or for
    the master only ("master"): switch delta_series_delete, assumed (the docs are silent)."""
    token, master, _ = await seeded(world)
    world.control("PATCH", "switches", {"delta_series_delete": mode})
    _, link = delta_round(world, token, first_link())
    raw(world, "DELETE", f"/me/events/{master['id']}", token)
    pages, _ = delta_round(world, token, link)
    assert len(flat(pages)) == expected
    assert all(i["@removed"] == {"reason": "deleted"} for i in flat(pages))
    assert master["id"] in {i["id"] for i in flat(pages)}


async def test_the_series_master_in_delta_by_switch(world: World):
    """Whether the series master itself is an item of calendarView delta: switch delta_series_master (assumed;
    default off, as calendarView leaves masters out)."""
    token, master, _ = await seeded(world)
    pages, _ = delta_round(world, token, first_link())
    assert master["id"] not in {i["id"] for i in flat(pages)}
    world.control("PATCH", "switches", {"delta_series_master": True})
    pages, _ = delta_round(world, token, first_link())
    masters = [i for i in flat(pages) if i["id"] == master["id"]]
    assert [m["type"] for m in masters] == ["seriesMaster"]


async def test_per_calendar_delta_through_the_sdk(world: World):
    """The per-calendar form /users/{id}/calendars/{id}/calendarView/delta() (msgraph-sdk's builder) sees only that
    calendar, /me/calendar/calendarView/delta and /me/calendarView/delta() the default one; Get incremental changes
    to events in a calendar view: each calendar is tracked on its own."""
    token = a_token(world, world.alice)
    raw(world, "POST", "/me/events", token, single("default"))
    raw(world, "POST", f"/me/calendars/{world.alice_projects}/events", token, single("projects"))
    client = world.graph(token)
    builder = client.users.by_user_id(world.alice).calendars.by_calendar_id(world.alice_projects).calendar_view.delta
    config = RequestConfiguration[Any]()
    config.query_parameters = type(builder).DeltaRequestBuilderGetQueryParameters(
        start_date_time=WINDOW["startDateTime"], end_date_time=WINDOW["endDateTime"])
    page = await builder.get(request_configuration=config)
    assert page is not None
    assert [e.subject for e in page.value or []] == ["projects"]
    assert page.odata_delta_link
    last = [r for r in world.state.requests if "calendarView" in r.path][-1]
    assert last.path == f"/v1.0/users/{world.alice}/calendars/{world.alice_projects}/calendarView/delta()"
    pages, _ = delta_round(world, token, first_link("/calendar"))
    assert [i["subject"] for i in flat(pages)] == ["default"]
    mine = client.me.calendar_view.delta  # /me/calendarView/delta(): the default calendar
    config.query_parameters = type(mine).DeltaRequestBuilderGetQueryParameters(
        start_date_time=WINDOW["startDateTime"], end_date_time=WINDOW["endDateTime"])
    default = await mine.get(request_configuration=config)
    assert default is not None
    assert [e.subject for e in default.value or []] == ["default"]
    assert [r for r in world.state.requests if "calendarView" in r.path][-1].path == "/v1.0/me/calendarView/delta()"


async def test_evicted_or_expired_tokens_answer_410(world: World):
    """Use delta query to track changes: Outlook tokens have no fixed lifetime and are evicted from a cache; an
    evicted one answers 410 Gone, code SyncStateNotFound (field reports; switch delta_expired_code). Evicted on
    demand (control API), when the mailbox's cache is full (delta_token_cache_size, oldest first) or after
    delta_token_lifetime_seconds (switch); the SDK raises ODataError 410."""
    token, _, _ = await seeded(world)
    _, link = delta_round(world, token, first_link())
    assert world.control("POST", f"users/{world.alice}/delta-tokens/expire")["evicted"] >= 1
    gone = get(world, link, token)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "SyncStateNotFound"
    assert gone.json()["error"]["message"].startswith("The sync state generation is not found")
    with pytest.raises(ODataError) as raised:
        await world.graph(token).users.by_user_id(world.alice).calendar_view.delta.with_url(link).get()
    assert raised.value.response_status_code == 410
    world.control("PATCH", "switches", {"delta_token_cache_size": 3})  # the cache fills: the oldest token goes
    _, link = delta_round(world, token, first_link(), page_size=10)
    assert get(world, link, token).status_code == 200
    for _ in range(3):
        delta_round(world, token, first_link(), page_size=10)
    assert get(world, link, token).status_code == 410
    world.control("PATCH", "switches", {"delta_token_lifetime_seconds": 3600, "delta_token_cache_size": 1000})
    _, link = delta_round(world, token, first_link())
    world.control("POST", "clock/advance", {"seconds": 3601})
    token = a_token(world, world.alice)
    assert get(world, link, token).status_code == 410


@pytest.mark.parametrize("status", [503, 504])
async def test_an_error_in_the_middle_of_a_round(world: World, status: int):
    """A 503 or 504 on the second page of a round (POST /_sim/faults with "skip": the first matching request is
    served); the same next link then works again (Microsoft Graph error responses,
    https://learn.microsoft.com/en-us/graph/errors: 503 and 504 are transient). Raw httpx: msgraph-sdk's retry
    handler would retry them itself."""
    token, _, _ = await seeded(world)
    world.control("POST", "faults", {"path": "/v1.0/me/calendarView/delta*", "status": status, "skip": 1})
    first = get(world, first_link(), token, Prefer="odata.maxpagesize=2").json()
    assert get(world, first["@odata.nextLink"], token).status_code == status
    pages, _ = delta_round(world, token, first["@odata.nextLink"])
    assert len(first["value"]) + len(flat(pages)) == 6


async def test_reported_service_faults(world: World):
    """Faults reported against delta (switches and control faults): a next link that loops on the same page
    (delta_loop_page), a page size that is not respected (delta_page_size_override), the same item twice in one
    round (delta_duplicate_item) and empty pages that still carry a next link (delta_empty_pages); Use delta query to
    track changes: keep following a next link even when the page is empty; the same item may appear more than
    once."""
    token, _, _ = await seeded(world)
    world.control("PATCH", "switches", {"delta_loop_page": 2, "delta_loop_times": 2, "delta_series_on_one_page":
                                        False})
    pages, _ = delta_round(world, token, first_link())
    assert pages[1] == pages[2] == pages[3]  # the second page, served three times
    world.control("PATCH", "switches", {"delta_loop_page": 0, "delta_page_size_override": 5,
                                        "delta_duplicate_item": True, "delta_empty_pages": 2})
    pages, _ = delta_round(world, token, first_link())
    assert [len(p) for p in pages] == [5, 1, 0, 0, 1]
    assert pages[0][0] == pages[-1][0]


async def test_counters_per_mailbox_endpoint_and_status(world: World):
    """Control API counters: requests per mailbox by endpoint (the route, /me folded into /users/{user}) and status,
    and their reset, so a benchmark counts exactly what a client spent."""
    token, _, _ = await seeded(world)
    world.control("POST", "counters/reset")
    _, link = delta_round(world, token, first_link(), page_size=3)
    world.control("POST", f"users/{world.alice}/delta-tokens/expire")
    get(world, link, token)
    counts = world.control("GET", "counters")["endpoints"][world.alice]
    assert counts == {"GET /v1.0/users/{user}/calendarView/delta()": {"200": 2, "410": 1}}
    world.control("POST", "counters/reset")
    assert world.control("GET", "counters")["endpoints"] == {}


async def test_a_generated_mailbox_with_series(world: World):
    """Generated mailboxes (control API) can hold weekly series (patternedRecurrence resource type,
    https://learn.microsoft.com/en-us/graph/api/resources/patternedrecurrence): a first delta round over their
    whole span lists every single event and every occurrence, series masters left out."""
    world.control("POST", f"users/{world.alice}/events/generate",
                  {"count": 40, "seed": 9, "series": 6, "start": 1_900_000_000})
    with world.state.lock:
        events = list(world.state.events.events.values())
        expected = sum((e.props["recurrence"] or {"range": {"numberOfOccurrences": 1}})["range"]["numberOfOccurrences"]
                       for e in events)
    assert sum(1 for e in events if e.props["recurrence"]) == 6
    token = a_token(world, world.alice)
    pages, _ = delta_round(world, token, "/me/calendarView/delta()?startDateTime=2030-03-01T00:00:00Z"
                           "&endDateTime=2031-12-31T00:00:00Z", page_size=25)
    items = flat(pages)
    assert len(items) == expected
    assert sum(1 for i in items if i["type"] == "occurrence") == expected - 34
    assert len({i["id"] for i in items}) == expected
