"""Graph routes over a time window: calendarView, an event's instances, and calendarView delta.

Sources: List calendarView (https://learn.microsoft.com/en-us/graph/api/user-list-calendarview, and
https://learn.microsoft.com/en-us/graph/api/calendar-list-calendarview for /calendars/{id}/calendarView): the
occurrences, exceptions and single instances of events in the window, series masters left out, startDateTime and
endDateTime required; List instances (https://learn.microsoft.com/en-us/graph/api/event-list-instances); event:
delta (https://learn.microsoft.com/en-us/graph/api/event-delta) on /users/{id}/calendarView/delta and, as
msgraph-sdk calls it, .../calendarView/delta() and /users/{id}/calendars/{id}/calendarView/delta() (the per-calendar
form is documented on the beta page; a calendar view may come from any calendar of the user, Get incremental
changes to events in a calendar view, https://learn.microsoft.com/en-us/graph/delta-query-events).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devstack.m365.delta import Deltas
from devstack.m365.eventdata import Preferences, bad_request, event_json
from devstack.m365.events import Events, page_options, preferences_applied
from devstack.m365.eventstore import Event, EventStore
from devstack.m365.graph import Caller, GraphAuth, async_route, odata_json
from devstack.m365.series import Occurrence, occurrence_json, occurrences_in, overlaps
from devstack.m365.state import SimState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VIEW_OPTIONS = {"$top", "$skip", "$select", "$orderby"}
DELTA_UNSUPPORTED = frozenset({"$select", "$expand", "$filter", "$orderby", "$search"})  # event: delta


def parse_window(query: Any) -> tuple[float, float]:
    """startDateTime and endDateTime (case-insensitive names) as UTC seconds; a value without an offset is UTC.

    :raises GraphError: 400 when either is missing or not ISO 8601 (code and message assumed)."""
    named = {k.lower(): v for k, v in query.items()}
    if "startdatetime" not in named or "enddatetime" not in named:
        raise bad_request("This request requires a time window specified by the query string parameters "
                          "StartDateTime and EndDateTime.", "ErrorInvalidParameter")
    try:
        start, end = (_instant(named[k]) for k in ("startdatetime", "enddatetime"))
    except ValueError:
        raise bad_request("startDateTime and endDateTime take ISO 8601 times.", "ErrorInvalidParameter") from None
    return start, end


def _instant(text: str) -> float:
    value = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00").replace(" ", "+")
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def in_window(store: EventStore, calendar_id: str, window_start: float, window_end: float
              ) -> list[Event | Occurrence]:
    """What calendarView lists for a calendar: single instances, occurrences and exceptions overlapping the window
    (series expanded, cancelled occurrences and masters left out), in start order."""
    found: list[Event | Occurrence] = []
    for key in store.in_calendar(calendar_id):
        event = store.events[key]
        if event.props.get("recurrence"):
            found += occurrences_in(event, window_start, window_end)
        elif overlaps(event.start, event.end, window_start, window_end):
            found.append(event)
    return sorted(found, key=lambda item: item.start)


class CalendarViews:
    def __init__(self, state: SimState, auth: GraphAuth, events: Events) -> None:
        self.state = state
        self.auth = auth
        self.events = events
        self.deltas = Deltas(state)

    def routes(self) -> list[web.RouteDef]:
        table: list[web.RouteDef] = []
        for prefix in ("/v1.0/me", "/v1.0/users/{user}"):
            for view in ("/calendarView", "/calendar/calendarView", "/calendars/{calendar}/calendarView"):
                table += [web.get(prefix + view, self._handle(self.view)),
                          web.get(prefix + view + "/delta", self._handle(self.delta)),
                          web.get(prefix + view + "/delta()", self._handle(self.delta))]
            for events in ("/events", "/calendar/events", "/calendars/{calendar}/events"):
                table.append(web.get(prefix + events + "/{event}/instances", self._handle(self.instances)))
        return table

    def _handle(self, handler: Callable[[web.Request, Caller], Awaitable[web.Response]]) -> Handler:
        return async_route(self.state, self.auth, handler)

    def _paged(self, request: web.Request, context: str,
               items: Callable[[], list[Any]], render: Callable[[Any, Preferences, list[str] | None], Any]
               ) -> web.Response:
        """A window's items in start order, paged by $top/$skip or Prefer: odata.maxpagesize (events_page_size)."""
        query = request.query
        prefs, top, skip, select = page_options(request, self.state.switches.events_page_size, VIEW_OPTIONS)
        found = items()
        values = [render(item, prefs, select) for item in found[skip:skip + top]]
        body: dict[str, Any] = {"value": values}
        if len(found) > skip + top:
            body["@odata.nextLink"] = str(request.url.with_query({**query, "$skip": str(skip + top)}))
        response = odata_json(request, context, body)
        preferences_applied(response, prefs, prefs.max_page_size if "$top" not in query else None)
        return response

    async def view(self, request: web.Request, caller: Caller) -> web.Response:
        window = parse_window(request.query)
        origin = f"{request.scheme}://{request.host}"
        with self.state.lock:
            owner, calendars = self.events.calendars_named(request, caller)
            calendar = calendars[0][0]
            store, switches = self.state.events, self.state.switches

            def items() -> list[Any]:
                return in_window(store, calendar.id, *window)

            def render(item: Any, prefs: Preferences, select: list[str] | None) -> Any:
                if isinstance(item, Occurrence):
                    return occurrence_json(item, prefs, switches, origin, select=select)
                return event_json(item, prefs, switches, origin, select=select)

            return self._paged(request, f"users('{owner.id}')/calendarView", items, render)

    async def instances(self, request: web.Request, caller: Caller) -> web.Response:
        """List instances: a series master's occurrences and exceptions in the window (cancelled ones left out);
        any other event has none (assumed)."""
        window = parse_window(request.query)
        origin = f"{request.scheme}://{request.host}"
        with self.state.lock:
            owner, master = self.events.event_named(request, caller, write=False)
            switches = self.state.switches

            def items() -> list[Any]:
                return occurrences_in(master, *window) if master.props.get("recurrence") else []

            return self._paged(request, f"users('{owner.id}')/events('{master.rest_id}')/instances",
                               items, lambda o, prefs, select: occurrence_json(o, prefs, switches, origin,
                                                                               select=select))

    async def delta(self, request: web.Request, caller: Caller) -> web.Response:
        query = {k.lower(): v for k, v in request.query.items()}
        token = query.get("$skiptoken") or query.get("$deltatoken")
        unsupported = set(query) & DELTA_UNSUPPORTED
        if unsupported:  # event: delta: not supported on calendarView delta (the answer is assumed)
            raise bad_request(f"Query options {sorted(unsupported)} are not supported by delta.", "BadRequest")
        window = None if token else parse_window(request.query)
        prefs = Preferences.of(request.headers)
        origin = f"{request.scheme}://{request.host}"
        with self.state.lock:
            owner, calendars = self.events.calendars_named(request, caller)
            page = self.deltas.page(owner.id, calendars[0][0].id, window, token, prefs, origin)
        body: dict[str, Any] = {"value": page.values}
        link = f"{origin}{request.path}"
        if page.next_token is not None:
            body["@odata.nextLink"] = f"{link}?$skiptoken={page.next_token}"
        else:
            body["@odata.deltaLink"] = f"{link}?$deltatoken={page.delta_token}"
        response = odata_json(request, "Collection(event)", body)
        preferences_applied(response, prefs, prefs.max_page_size)
        return response
