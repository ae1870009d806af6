"""Graph events: create, get, list, update and delete on /users/{id}/events, /calendar/events and
/calendars/{id}/events (and /me/...), accept/decline, and translateExchangeIds, over the state's event store.
Every write fires part 2's change notifications. An occurrence id (series.py) reads, edits (an exception) or deletes
(cancels) that one occurrence of its series.

Sources: Create event (https://learn.microsoft.com/en-us/graph/api/user-post-events); List events
(https://learn.microsoft.com/en-us/graph/api/user-list-events: the default calendar, or the one named); Get event
(https://learn.microsoft.com/en-us/graph/api/event-get: Prefer: outlook.timezone); Update event
(https://learn.microsoft.com/en-us/graph/api/event-update); Delete event
(https://learn.microsoft.com/en-us/graph/api/event-delete); event: cancel
(https://learn.microsoft.com/en-us/graph/api/event-cancel: the organizer cancels a meeting, 202); event: accept
(https://learn.microsoft.com/en-us/graph/api/event-accept); user: translateExchangeIds
(https://learn.microsoft.com/en-us/graph/api/user-translateexchangeids).

Handlers read the request body first and then change the state synchronously under the lock (no await there).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devstack.m365.eventdata import (
    Preferences,
    bad_request,
    check_all_day,
    check_properties,
    event_json,
    item_not_found,
    parse_expand,
    parse_filter,
    preview_of,
    read_time,
    stored_attendees,
    stored_body,
    stored_extended,
    stored_location,
)
from devstack.m365.eventstore import ICAL_PREFIX, Event, new_change_key, new_immutable_id, new_rest_id, series_shape
from devstack.m365.graph import (
    USER_ROLES,
    USER_SCOPES_SELF,
    Caller,
    Graph,
    GraphAuth,
    GraphError,
    access_denied,
    async_route,
    odata_json,
    read_body,
)
from devstack.m365.notifications import Notifier, graph_time
from devstack.m365.recurrence import check as check_recurrence
from devstack.m365.series import (
    Occurrence,
    after_master_edit,
    as_exception,
    cancel,
    find_occurrence,
    occurrence_json,
    scratch_copy,
)
from devstack.m365.state import Calendar, SimState, User, new_id
from devstack.m365.timezones import resolve, utc_now
from devstack.serving import MAILBOX

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITE_SCOPES = frozenset({"Calendars.ReadWrite", "Calendars.ReadWrite.Shared"})
MAX_TOP = 1000  # assumed: the largest $top a list accepts
MAX_TRANSLATE = 1000  # user: translateExchangeIds
RESPONSES = {"accept": "accepted", "decline": "declined", "tentativelyAccept": "tentativelyAccepted"}


class EventOps:
    """Changes to events, shared by Graph's routes and the control API's user actions; callers hold the lock."""

    def __init__(self, state: SimState, notifier: Notifier) -> None:
        self.state = state
        self.notifier = notifier

    @property
    def store(self) -> Any:
        return self.state.events

    def notify(self, event: Event, change_type: str, calendar_id: str | None = None,
               rest_id: str | None = None) -> None:
        self.notifier.fire_change(event.mailbox_id, calendar_id or event.calendar_id, rest_id or event.rest_id,
                                  change_type, event.change_key, immutable_id=event.immutable_id)

    def changed(self, event: Event) -> None:
        event.change_key = new_change_key()
        event.modified = self.state.clock.now()
        self.store.touch(event)

    def apply(self, event: Event, body: dict[str, Any], creating: bool) -> None:
        """Validate and write ``body``'s properties onto ``event`` (a fresh one when ``creating``)."""
        check_properties(body)
        if body.get("recurrence") is not None:
            check_recurrence(body["recurrence"])
        s = self.state.switches
        props = dict(event.props)
        for name in ("subject", "showAs", "sensitivity", "categories", "importance", "isReminderOn",
                     "reminderMinutesBeforeStart", "responseRequested", "allowNewTimeProposals", "hideAttendees",
                     "isOnlineMeeting", "onlineMeetingProvider", "recurrence", "isAllDay"):
            if name in body:
                props[name] = body[name]
        if "body" in body:
            props["body"] = stored_body(body["body"], s)
            props["bodyPreview"] = preview_of(props["body"]) if s.derive_body_preview else ""
        if "location" in body:
            props["location"] = stored_location(body["location"], s) if body["location"] else None
        if "locations" in body:
            props["locations"] = [stored_location(p, s) for p in body["locations"] or []]
            if props["locations"] and not props.get("location"):
                props["location"] = stored_location(
                    {"displayName": "; ".join(p["displayName"] for p in props["locations"])}, s)
        elif "location" in body and props.get("location"):
            props["locations"] = [{**props["location"], "uniqueIdType": "unknown"}]
        if "attendees" in body:
            props["attendees"] = stored_attendees(body["attendees"])
        if "transactionId" in body and not creating and body["transactionId"] != event.transaction_id:
            # event resource type: transactionId cannot change after the create (code assumed)
            raise bad_request("The property 'transactionId' can't be changed after the event is created.",
                              "ErrorInvalidPropertyUpdate")
        if creating and ("start" not in body or "end" not in body):
            raise bad_request("An event needs a start and an end.")  # assumed
        start, start_zone = read_time(body["start"], "start") if "start" in body else (None, None)
        end, end_zone = read_time(body["end"], "end") if "end" in body else (None, None)
        start_s = start.timestamp() if start else event.start
        end_s = end.timestamp() if end else event.end
        if end_s < start_s:
            raise bad_request("The end date occurs before the start date.",
                              "ErrorCalendarEndDateIsEarlierThanStartDate")
        if props.get("isAllDay"):
            sz = start_zone or resolve(event.start_zone)
            ez = end_zone or resolve(event.end_zone)
            if sz is None or ez is None:
                raise bad_request("An all-day event needs a named time zone.", "ErrorPropertyValidationFailure")
            check_all_day(utc_now(start_s), sz, utc_now(end_s), ez)
        if "singleValueExtendedProperties" in body:
            event.extended = stored_extended(body["singleValueExtendedProperties"], event.extended)
        event.props = props
        event.start, event.end = start_s, end_s
        if start_zone is not None:
            event.start_zone = start_zone.windows
        if end_zone is not None:
            event.end_zone = end_zone.windows

    # --- create, update, delete ----------------------------------------------------------------------

    def duplicate_of(self, owner: User, body: dict[str, Any]) -> Event | None:
        tid = body.get("transactionId")
        if not isinstance(tid, str) or not tid:
            return None
        found = self.store.by_transaction(owner.id, tid)
        window = self.state.switches.transaction_window_seconds
        if found is None or self.state.clock.now() - found.created > window:
            return None
        return found

    def create(self, owner: User, calendar: Calendar, body: dict[str, Any], *, organizer_key: str | None = None,
               organizer: dict[str, Any] | None = None, zone_override: str | None = None) -> Event:
        now = self.state.clock.now()
        event = Event(key=new_id(), mailbox_id=owner.id, calendar_id=calendar.id, rest_id=new_rest_id(),
                      immutable_id=new_immutable_id(), change_key=new_change_key(), created=now, modified=now,
                      ical_uid=ICAL_PREFIX + secrets.token_hex(28).upper(), start=0.0, end=0.0, start_zone="UTC",
                      end_zone="UTC", organizer=organizer or {"emailAddress": {"name": owner.display_name,
                                                                               "address": owner.upn}},
                      is_organizer=organizer_key is None, organizer_key=organizer_key)
        self.apply(event, body, creating=True)
        if isinstance(body.get("transactionId"), str):
            event.transaction_id = body["transactionId"]
        if zone_override:  # the control API's custom zone, as desktop Outlook writes it
            event.start_zone = event.end_zone = zone_override
        if organizer_key is not None:
            event.response = {"response": "notResponded", "time": "0001-01-01T00:00:00Z"}
        self.store.add(event)
        self.notify(event, "created")
        if event.is_organizer:
            self.invite(event)
        return event

    def update(self, event: Event, body: dict[str, Any]) -> Event:
        before = (event.start, event.end, event.props.get("location"), event.props.get("attendees"),
                  event.props.get("subject"))
        shape = series_shape(event)
        self.apply(event, body, creating=False)
        self.changed(event)
        after_master_edit(event, shape)
        self.notify(event, "updated")
        after = (event.start, event.end, event.props.get("location"), event.props.get("attendees"),
                 event.props.get("subject"))
        if event.is_organizer and before != after:
            self.invite(event)
        return event

    def delete(self, event: Event) -> None:
        self.store.remove(event)
        self.notify(event, "deleted")
        for copy in self.store.copies_of(event):  # the attendees' copies show the meeting as cancelled
            copy.is_cancelled = True
            self.changed(copy)
            self.notify(copy, "updated")

    def edit_occurrence(self, occurrence: Occurrence, body: dict[str, Any]) -> None:
        """The occurrence becomes an exception carrying the changes; the master records it (and is what changes)."""
        if "recurrence" in body:
            raise bad_request("An occurrence of a series cannot carry a recurrence.")  # assumed
        edited = scratch_copy(occurrence)
        self.apply(edited, body, creating=False)
        as_exception(occurrence, edited, new_change_key())
        self.changed(occurrence.master)
        self.notify(occurrence.master, "updated")

    def cancel_occurrence(self, occurrence: Occurrence) -> None:
        cancel(occurrence)
        self.changed(occurrence.master)
        self.notify(occurrence.master, "updated")

    def move(self, event: Event, calendar: Calendar) -> str:
        """Into another calendar of the mailbox (a person does this in Outlook; Graph has no call for it)."""
        old_calendar = event.calendar_id
        old_rest = self.store.move(event, calendar.id)
        self.changed(event)
        if self.state.switches.move_notifications == "updated":
            self.notify(event, "updated")
        else:
            self.notify(event, "deleted", calendar_id=old_calendar, rest_id=old_rest)
            self.notify(event, "created")
        return old_rest

    # --- invitations and replies (what Exchange does; switches, assumed) -----------------------------

    def invite(self, event: Event) -> None:
        attendees = event.props.get("attendees") or []
        s = self.state.switches
        if not attendees or not s.send_invitations:
            return
        self.state.invitations[event.mailbox_id] += len(attendees)
        if not s.attendee_copies:
            return
        copies = {c.mailbox_id: c for c in self.store.copies_of(event)}
        for attendee in attendees:
            user = self.state.find_user(attendee["emailAddress"]["address"])
            if user is None or user.id == event.mailbox_id or user.deleted or user.mailbox != "enabled":
                continue
            shared = {k: v for k, v in event.props.items() if k != "attendees"}
            if user.id in copies:
                copy = copies[user.id]
                copy.props = {**shared, "attendees": event.props.get("attendees", [])}
                copy.start, copy.end, copy.start_zone, copy.end_zone = (event.start, event.end, event.start_zone,
                                                                         event.end_zone)
                self.changed(copy)
                self.notify(copy, "updated")
                continue
            default = next((c for c in self.state.calendars_of(user.id) if c.is_default), None)
            if default is None:
                continue
            now = self.state.clock.now()
            copy = Event(key=new_id(), mailbox_id=user.id, calendar_id=default.id, rest_id=new_rest_id(),
                         immutable_id=new_immutable_id(), change_key=new_change_key(), created=now, modified=now,
                         ical_uid=event.ical_uid, start=event.start, end=event.end, start_zone=event.start_zone,
                         end_zone=event.end_zone, props={**shared, "attendees": event.props.get("attendees", [])},
                         organizer=event.organizer, is_organizer=False,
                         response={"response": "notResponded", "time": "0001-01-01T00:00:00Z"},
                         organizer_key=event.key)
            self.store.add(copy)
            self.notify(copy, "created")

    def respond(self, event: Event, action: str, responder: User) -> None:
        """accept, decline or tentativelyAccept an attendee's copy; the organizer's event records the answer."""
        if event.is_organizer:
            raise bad_request("You can't respond to this meeting because you're the meeting organizer.")
        answer = {"response": RESPONSES[action], "time": graph_time(self.state.clock.now())}
        event.response = answer
        self.changed(event)
        self.notify(event, "updated")
        organizer = self.store.events.get(event.organizer_key or "")
        if organizer is None:
            return
        for attendee in organizer.props.get("attendees", []):
            if attendee["emailAddress"]["address"].lower() == responder.upn.lower():
                attendee["status"] = answer
        if self.state.switches.change_key_on_reply:
            self.changed(organizer)
        self.notify(organizer, "updated")


class Events:
    def __init__(self, state: SimState, auth: GraphAuth, graph: Graph, ops: EventOps) -> None:
        self.state = state
        self.auth = auth
        self.graph = graph
        self.ops = ops

    def routes(self) -> list[web.RouteDef]:
        table: list[web.RouteDef] = []
        for prefix in ("/v1.0/me", "/v1.0/users/{user}"):
            for events in ("/events", "/calendar/events", "/calendars/{calendar}/events"):
                table += [
                    web.get(prefix + events, self._handle(self.list)),
                    web.post(prefix + events, self._handle(self.create)),
                    web.get(prefix + events + "/{event}", self._handle(self.get)),
                    web.patch(prefix + events + "/{event}", self._handle(self.update)),
                    web.delete(prefix + events + "/{event}", self._handle(self.delete)),
                    *[web.post(prefix + events + "/{event}/" + action, self._handle(self.respond))
                      for action in RESPONSES],
                    web.post(prefix + events + "/{event}/cancel", self._handle(self.cancel)),
                ]
            table.append(web.post(prefix + "/translateExchangeIds", self._handle(self.translate)))
        return table

    def _handle(self, handler: Callable[[web.Request, Caller], Awaitable[web.Response]]) -> Handler:
        return async_route(self.state, self.auth, handler)

    # --- where ---------------------------------------------------------------------------------------

    def calendars_named(self, request: web.Request, caller: Caller) -> tuple[User, list[tuple[Calendar, bool]]]:
        """The mailbox owner and the calendars this route names (all visible ones for /events/{id})."""
        owner = self.graph.mailbox_owner(request, caller)
        visible = self.graph.visible_calendars(caller, owner)
        wanted = request.match_info.get("calendar")
        if wanted is not None:
            chosen = [(c, e) for c, e in visible if c.id == wanted]
        elif "event" in request.match_info and "/calendar/" not in request.path:
            chosen = visible
        else:
            chosen = [(c, e) for c, e in visible if c.is_default]
        if not chosen:
            raise item_not_found()
        return owner, chosen

    def _occurrence(self, request: web.Request, caller: Caller, write: bool) -> tuple[User, Occurrence] | None:
        """The occurrence the route's id names, checked like its master; None when the id is not an occurrence's."""
        occurrence = find_occurrence(self.state.events, request.match_info["event"])
        if occurrence is None:
            return None
        owner, calendars = self.calendars_named(request, caller)
        allowed = {c.id: e for c, e in calendars}
        if occurrence.master.mailbox_id != owner.id or occurrence.master.calendar_id not in allowed:
            raise item_not_found()
        if write:
            self._check_write(caller, allowed[occurrence.master.calendar_id])
        return owner, occurrence

    def event_named(self, request: web.Request, caller: Caller, write: bool) -> tuple[User, Event]:
        owner, calendars = self.calendars_named(request, caller)
        event = self.state.events.find(request.match_info["event"])
        allowed = {c.id: e for c, e in calendars}
        if event is None or event.mailbox_id != owner.id or event.calendar_id not in allowed:
            raise item_not_found()
        hidden = self.state.events.hidden_reads
        if not write and hidden.get(event.key, 0) > 0:
            hidden[event.key] -= 1  # the "created id cannot be found" fault
            raise item_not_found()
        if write:
            self._check_write(caller, allowed[event.calendar_id])
        return owner, event

    def _check_write(self, caller: Caller, can_edit: bool) -> None:
        granted = caller.roles & {"Calendars.ReadWrite"} if caller.app_only else caller.scopes & WRITE_SCOPES
        if not granted or not can_edit:
            raise access_denied()

    def _check_if_match(self, request: web.Request, event: Event) -> None:
        wanted = request.headers.get("If-Match")
        if wanted is None or wanted.strip() == "*" or self.state.switches.if_match != "enforce":
            return
        if wanted.strip().removeprefix("W/").strip('"') != event.change_key:
            # assumed: Graph does not document If-Match on events; the EWS change-key conflict's wording
            raise GraphError(412, "ErrorIrresolvableConflict", "The send or update operation could not be "
                             "performed because the change key passed in the request does not match the current "
                             "change key for the item.")

    def _answer(self, request: web.Request, owner: User, event: Event, status: int = 200,
                expand: list[tuple[str, ...]] | None = None, select: list[str] | None = None) -> web.Response:
        prefs = Preferences.of(request.headers)
        origin = f"{request.scheme}://{request.host}"
        response = odata_json(request, f"users('{owner.id}')/events/$entity",
                              event_json(event, prefs, self.state.switches, origin, expand, select), status)
        preferences_applied(response, prefs)
        return response

    def _answer_occurrence(self, request: web.Request, owner: User, occurrence: Occurrence) -> web.Response:
        prefs = Preferences.of(request.headers)
        body = occurrence_json(occurrence, prefs, self.state.switches, f"{request.scheme}://{request.host}")
        response = odata_json(request, f"users('{owner.id}')/events/$entity", body)
        preferences_applied(response, prefs)
        return response

    # --- routes --------------------------------------------------------------------------------------

    async def list(self, request: web.Request, caller: Caller) -> web.Response:
        query = request.query
        prefs, top, skip, select = page_options(request, self.state.switches.events_page_size,
                                                {"$top", "$skip", "$select", "$filter", "$expand"})
        predicate = parse_filter(query.get("$filter"))
        expand = parse_expand(query.get("$expand"))
        origin = f"{request.scheme}://{request.host}"
        with self.state.lock:
            owner, calendars = self.calendars_named(request, caller)
            calendar = calendars[0][0]
            store = self.state.events
            if predicate is None:
                page = store.page(calendar.id, skip, top + 1)
            else:
                matching = [store.events[k] for k in store.in_calendar(calendar.id) if predicate(store.events[k])]
                page = matching[skip:skip + top + 1]
            values = [event_json(e, prefs, self.state.switches, origin, expand, select) for e in page[:top]]
        body: dict[str, Any] = {"value": values}
        if len(page) > top:
            next_query = {**query, "$skip": str(skip + top)}
            body["@odata.nextLink"] = str(request.url.with_query(next_query))
        response = odata_json(request, f"users('{owner.id}')/events", body)
        preferences_applied(response, prefs)
        return response

    async def get(self, request: web.Request, caller: Caller) -> web.Response:
        expand = parse_expand(request.query.get("$expand"))
        select = [s.strip() for s in request.query["$select"].split(",")] if "$select" in request.query else None
        with self.state.lock:
            found = self._occurrence(request, caller, write=False)
            if found is not None:
                return self._answer_occurrence(request, *found)
            owner, event = self.event_named(request, caller, write=False)
            return self._answer(request, owner, event, expand=expand, select=select)

    async def create(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_body(request)
        with self.state.lock:
            owner, calendars = self.calendars_named(request, caller)
            calendar, can_edit = calendars[0]
            self._check_write(caller, can_edit)
            existing = self.ops.duplicate_of(owner, body)
            if existing is not None:
                # event resource type: transactionId lets the server drop a redundant create; what it answers
                # is not documented (switch transaction_duplicate, assumed)
                mode = self.state.switches.transaction_duplicate
                if mode == "conflict":
                    raise GraphError(409, "ErrorDuplicateTransactionId", "An event with the same transactionId "
                                     "already exists.")
                return self._answer(request, owner, existing, 201 if mode == "created" else 200)
            event = self.ops.create(owner, calendar, body)
            return self._answer(request, owner, event, 201)

    async def update(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_body(request)
        with self.state.lock:
            found = self._occurrence(request, caller, write=True)
            if found is not None:
                self.ops.edit_occurrence(found[1], body)
                return self._answer_occurrence(request, *found)
            owner, event = self.event_named(request, caller, write=True)
            self._check_if_match(request, event)
            self.ops.update(event, body)
            return self._answer(request, owner, event)

    async def delete(self, request: web.Request, caller: Caller) -> web.Response:
        """Deleting an occurrence cancels it: it leaves calendarView and /instances (Delete event)."""
        with self.state.lock:
            found = self._occurrence(request, caller, write=True)
            if found is not None:
                self.ops.cancel_occurrence(found[1])
                return web.Response(status=204)
            _, event = self.event_named(request, caller, write=True)
            self._check_if_match(request, event)
            self.ops.delete(event)
        return web.Response(status=204)

    async def cancel(self, request: web.Request, caller: Caller) -> web.Response:
        """event: cancel: only the organizer; a series master cancels the series, an occurrence that occurrence."""
        if request.can_read_body:
            await read_body(request)  # Comment: accepted, not simulated
        with self.state.lock:
            found = self._occurrence(request, caller, write=True)
            if found is not None:
                if not found[1].master.is_organizer:
                    raise _not_organizer()
                self.ops.cancel_occurrence(found[1])
                return web.Response(status=202)
            _, event = self.event_named(request, caller, write=True)
            if not event.is_organizer:
                raise _not_organizer()
            self.ops.delete(event)
        return web.Response(status=202)

    async def respond(self, request: web.Request, caller: Caller) -> web.Response:
        if request.can_read_body:
            await read_body(request)  # comment and sendResponse: accepted, not simulated
        action = request.path.rstrip("/").rsplit("/", 1)[-1]
        with self.state.lock:
            owner, event = self.event_named(request, caller, write=True)
            self.ops.respond(event, action, owner)
        return web.Response(status=202)

    async def translate(self, request: web.Request, caller: Caller) -> web.Response:
        # Action parameter names are matched case-insensitively: msgraph-sdk sends "InputIds", the docs "inputIds".
        body = {k.lower(): v for k, v in (await read_body(request)).items()}
        ids, source, target = body.get("inputids"), body.get("sourceidtype"), body.get("targetidtype")
        if not isinstance(ids, list) or source not in ID_FORMATS or target not in ID_FORMATS:
            raise bad_request("inputIds, sourceIdType and targetIdType are required; id types are "
                              f"{sorted(ID_FORMATS)}.", "BadRequest")
        if len(ids) > MAX_TRANSLATE:
            raise bad_request(f"At most {MAX_TRANSLATE} ids can be translated at once.", "BadRequest")
        with self.state.lock:
            owner = self.graph.mailbox_owner(request, caller)
            allowed = caller.roles & USER_ROLES if caller.app_only else caller.scopes & USER_SCOPES_SELF
            if not allowed:
                raise access_denied()
            values = []
            for source_id in ids:
                event = self.state.events.find(from_format(str(source_id), source))
                if event is None or event.mailbox_id != owner.id:
                    values.append({"sourceId": source_id, "errorDetails": {
                        "code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}})
                else:
                    values.append({"sourceId": source_id, "targetId": to_format(event, target)})
        request[MAILBOX] = owner.id
        return odata_json(request, "Collection(microsoft.graph.convertIdResult)", {"value": values})


def page_options(request: web.Request, default_size: int, allowed: set[str]
                 ) -> tuple[Preferences, int, int, list[str] | None]:
    """(preferences, $top or Prefer: odata.maxpagesize or the default, $skip, $select) of a list request.

    :raises GraphError: 400 for another $ option or a malformed number."""
    query = request.query
    unknown = {k for k in query if k.startswith("$")} - allowed
    if unknown:
        raise bad_request(f"Query options {sorted(unknown)} are not simulated.", "BadRequest")
    prefs = Preferences.of(request.headers)
    try:
        top = int(query.get("$top") or prefs.max_page_size or default_size)
        skip = int(query.get("$skip", 0))
    except ValueError:
        raise bad_request("$top and $skip take whole numbers.", "BadRequest") from None
    select = [s.strip() for s in query["$select"].split(",")] if "$select" in query else None
    return prefs, max(1, min(top, MAX_TOP)), skip, select


def _not_organizer() -> GraphError:
    # event: cancel: "only the organizer"; the wording is assumed
    return bad_request("Your request can't be completed. You need to be an organizer to cancel a meeting.")


def preferences_applied(response: web.Response, prefs: Preferences, page_size: int | None = None) -> None:
    applied = []
    if page_size is not None:
        applied.append(f"odata.maxpagesize={page_size}")  # OData: the preference honoured is echoed
    if prefs.timezone:
        applied.append(f'outlook.timezone="{prefs.timezone}"')  # Get event: Preference-Applied
    if prefs.immutable:
        applied.append('IdType="ImmutableId"')  # assumed echo
    if applied:
        response.headers["Preference-Applied"] = ", ".join(applied)


# --- id formats (user: translateExchangeIds) -----------------------------------------------------------
# restId and restImmutableEntryId are the ids Graph returns. The binary formats are URL-safe base64 without
# padding plus a digit counting the padding (documented); that they carry the same bytes as the REST ids, and
# that ewsId is their standard base64, is assumed.

ID_FORMATS = frozenset({"restId", "restImmutableEntryId", "ewsId", "entryId", "immutableEntryId"})


def _binary(rest_style: str) -> str:
    raw = base64.urlsafe_b64decode(rest_style)
    encoded = base64.urlsafe_b64encode(raw).decode()
    stripped = encoded.rstrip("=")
    return stripped + str(len(encoded) - len(stripped))


def _from_binary(value: str) -> str:
    if not value or not value[-1].isdigit():
        return ""
    return value[:-1] + "=" * int(value[-1])


def to_format(event: Event, target: str) -> str:
    if target == "restId":
        return event.rest_id
    if target == "restImmutableEntryId":
        return event.immutable_id
    if target == "ewsId":
        return base64.b64encode(base64.urlsafe_b64decode(event.rest_id)).decode()
    return _binary(event.rest_id if target == "entryId" else event.immutable_id)


def from_format(value: str, source: str) -> str:
    """The REST-style id (rest or immutable) that ``value`` of type ``source`` names ("" when malformed)."""
    try:
        if source in ("restId", "restImmutableEntryId"):
            return value
        if source == "ewsId":
            return base64.urlsafe_b64encode(base64.b64decode(value)).decode()
        return _from_binary(value)
    except ValueError:
        return ""
