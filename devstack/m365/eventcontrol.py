"""Control routes for events (docs/devstack.md): what a person does in Outlook (create, edit, move in time or to
another calendar, delete, accept or decline; edit or cancel one occurrence of a series, end a series earlier), each
firing the change notifications Graph would; an event in a custom time zone as desktop Outlook writes it; large
generated mailboxes; delta tokens evicted on demand. Not part of any Microsoft service."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from devstack.m365.delta import Deltas
from devstack.m365.eventdata import Preferences, event_json
from devstack.m365.events import RESPONSES, EventOps
from devstack.m365.graph import GraphError
from devstack.m365.seeding import generate_events
from devstack.m365.series import Occurrence, find_occurrence, occurrence_json
from devstack.m365.state import Calendar, SimState, User
from devstack.m365.timezones import CUSTOM_ZONE


class EventControl:
    def __init__(self, state: SimState, ops: EventOps) -> None:
        self.state = state
        self.ops = ops

    def routes(self) -> list[web.RouteDef]:
        base = "/_sim/users/{user}/events"
        return [
            web.post(base, self.create),
            web.post(base + "/generate", self.generate),
            web.get(base, self.count),
            web.patch(base + "/{event}", self.edit),
            web.delete(base + "/{event}", self.delete),
            web.post(base + "/{event}/move", self.move),
            web.post(base + "/{event}/respond", self.respond),
            web.post(base + "/{event}/truncate", self.truncate),
            web.patch("/_sim/users/{user}/occurrences/{occurrence}", self.edit_occurrence),
            web.delete("/_sim/users/{user}/occurrences/{occurrence}", self.cancel_occurrence),
            web.post("/_sim/users/{user}/delta-tokens/expire", self.expire_delta_tokens),
        ]

    async def _call(self, request: web.Request, action: Any) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        with self.state.lock:
            user = self.state.find_user(request.match_info["user"])
            if user is None:
                raise web.HTTPNotFound(text="unknown user")
            try:
                return action(user, body)
            except GraphError as exc:
                return web.json_response({"error": {"code": exc.code, "message": exc.message}}, status=exc.status)

    def _calendar(self, user: User, calendar_id: str | None) -> Calendar:
        for calendar in self.state.calendars_of(user.id):
            if calendar.id == calendar_id or (calendar_id is None and calendar.is_default):
                return calendar
        raise web.HTTPNotFound(text="unknown calendar")

    def _event(self, user: User, request: web.Request) -> Any:
        event = self.state.events.find(request.match_info["event"])
        if event is None or event.mailbox_id != user.id:
            raise web.HTTPNotFound(text="unknown event")
        return event

    def _occurrence(self, user: User, request: web.Request) -> Occurrence:
        found = find_occurrence(self.state.events, request.match_info["occurrence"])
        if found is None or found.master.mailbox_id != user.id:
            raise web.HTTPNotFound(text="unknown occurrence")
        return found

    def _json(self, request: web.Request, event: Any, status: int = 200) -> web.Response:
        body = event_json(event, Preferences(), self.state.switches, f"{request.scheme}://{request.host}")
        return web.json_response({**body, "immutableId": event.immutable_id, "restId": event.rest_id},
                                 status=status)

    async def create(self, request: web.Request) -> web.Response:
        """``{"calendar"?, "customZone"?: bool, ...event}``: the user creates an event; ``customZone`` stores it
        with originalStartTimeZone ``tzone://Microsoft/Custom`` (write start and end in UTC)."""
        def act(user: User, body: dict[str, Any]) -> web.Response:
            calendar = self._calendar(user, body.pop("calendar", None))
            custom = body.pop("customZone", False)
            event = self.ops.create(user, calendar, body, zone_override=CUSTOM_ZONE if custom else None)
            return self._json(request, event, 201)
        return await self._call(request, act)

    async def edit(self, request: web.Request) -> web.Response:
        return await self._call(request, lambda user, body: self._json(
            request, self.ops.update(self._event(user, request), body)))

    async def delete(self, request: web.Request) -> web.Response:
        def act(user: User, body: dict[str, Any]) -> web.Response:
            self.ops.delete(self._event(user, request))
            return web.json_response({"deleted": request.match_info["event"]})
        return await self._call(request, act)

    async def move(self, request: web.Request) -> web.Response:
        """``{"calendar"}``: into another of the user's calendars (a new REST id, the same immutable id)."""
        def act(user: User, body: dict[str, Any]) -> web.Response:
            event = self._event(user, request)
            old = self.ops.move(event, self._calendar(user, body["calendar"]))
            return web.json_response({"oldRestId": old, "restId": event.rest_id, "immutableId": event.immutable_id})
        return await self._call(request, act)

    async def respond(self, request: web.Request) -> web.Response:
        """``{"response": "accept" | "decline" | "tentativelyAccept"}`` on the user's copy of a meeting."""
        def act(user: User, body: dict[str, Any]) -> web.Response:
            if body.get("response") not in RESPONSES:
                return web.json_response({"error": f"response must be one of {sorted(RESPONSES)}"}, status=400)
            event = self._event(user, request)
            self.ops.respond(event, body["response"], user)
            return self._json(request, event)
        return await self._call(request, act)

    async def truncate(self, request: web.Request) -> web.Response:
        """``{"endDate": "yyyy-mm-dd"}``: the user ends the series on that date (its range becomes endDate)."""
        def act(user: User, body: dict[str, Any]) -> web.Response:
            master = self._event(user, request)
            recurrence = master.props.get("recurrence")
            if not recurrence:
                return web.json_response({"error": "not a series master"}, status=400)
            shortened = {**recurrence, "range": {**recurrence["range"], "type": "endDate",
                                                 "endDate": body["endDate"]}}
            return self._json(request, self.ops.update(master, {"recurrence": shortened}))
        return await self._call(request, act)

    async def edit_occurrence(self, request: web.Request) -> web.Response:
        """``{...event}``: the user edits one occurrence (it becomes an exception)."""
        def act(user: User, body: dict[str, Any]) -> web.Response:
            occurrence = self._occurrence(user, request)
            self.ops.edit_occurrence(occurrence, body)
            return web.json_response(occurrence_json(occurrence, Preferences(), self.state.switches,
                                                     f"{request.scheme}://{request.host}"))
        return await self._call(request, act)

    async def cancel_occurrence(self, request: web.Request) -> web.Response:
        def act(user: User, body: dict[str, Any]) -> web.Response:
            self.ops.cancel_occurrence(self._occurrence(user, request))
            return web.json_response({"cancelled": request.match_info["occurrence"]})
        return await self._call(request, act)

    async def expire_delta_tokens(self, request: web.Request) -> web.Response:
        """Every delta token (next and delta links) of the mailbox is evicted: their next use answers 410."""
        return await self._call(request, lambda user, body: web.json_response(
            {"evicted": Deltas(self.state).evict(user.id)}))

    async def generate(self, request: web.Request) -> web.Response:
        """``{"count", "seed", "calendar"?, "start"?, "series"?}``: ``count`` generated events (not saved;
        regenerated), the first ``series`` of them weekly series."""
        def act(user: User, body: dict[str, Any]) -> web.Response:
            calendar = self._calendar(user, body.get("calendar"))
            started = time.perf_counter()
            made = generate_events(self.state, {"user": user.id, "calendar": calendar.id, "count": body["count"],
                                                "seed": body.get("seed", 1), "series": body.get("series", 0),
                                                "start": body.get("start") or self.state.clock.now()})
            return web.json_response({"created": made, "seconds": round(time.perf_counter() - started, 3)},
                                     status=201)
        return await self._call(request, act)

    async def count(self, request: web.Request) -> web.Response:
        def act(user: User, body: dict[str, Any]) -> web.Response:
            per_calendar = {c.id: self.state.events.count(c.id) for c in self.state.calendars_of(user.id)}
            return web.json_response({"calendars": per_calendar})
        return await self._call(request, act)
