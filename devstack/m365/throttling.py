"""Outlook throttling per app and mailbox (Microsoft Graph service-specific throttling limits,
https://learn.microsoft.com/en-us/graph/throttling-limits; Microsoft Graph throttling guidance,
https://learn.microsoft.com/en-us/graph/throttling) and injected faults, as one middleware in
front of the Graph routes.

``Throttle.admit``/``release`` take and give back one request of an app+mailbox pair: 4 concurrent requests,
a request budget per 10-minute window and a separate write budget (writes are throttled before reads).
Part 3's ``$batch`` runs each item through the same two calls.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from devstack.m365.graph import GraphAuth, GraphError, graph_error_response
from devstack.m365.state import Fault, SimState
from devstack.serving import MAILBOX

# Outlook resources under a user (the throttling limits page lists event, calendar, calendarGroup, ...).
MAILBOX_SEGMENTS = frozenset({"calendar", "calendars", "calendargroups", "calendarview", "events", "mailboxsettings"})
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_ACTIONS = frozenset({"getschedule"})  # actions POSTed that only read (calendar: getSchedule)
_MAILBOX_PATH = re.compile(r"^/v1\.0/(?:me|users/(?P<user>[^/]+))/(?P<segment>[^/]+)")

FAULT_ERRORS: dict[int, tuple[str, str]] = {
    # 429: the throttling guidance; 503/504: Microsoft Graph error responses,
    # https://learn.microsoft.com/en-us/graph/errors;
    # codes of 500 and 504 are assumed.
    429: ("TooManyRequests", "Too many requests."),
    500: ("generalException", "An unspecified error has occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry after a delay."),
    504: ("UnknownError", "The gateway did not receive a response in time."),
}


class Throttle:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def admit(self, client_id: str, mailbox_id: str, write: bool) -> str:
        """Take a concurrent slot and one request of the pair's budgets; returns the key for ``release``.

        :raises GraphError: 429 ``ApplicationThrottled`` with ``Retry-After`` when the pair is over a limit.
        """
        s = self.state.switches
        key = f"{client_id}|{mailbox_id}"
        with self.state.lock:
            now = self.state.clock.now()
            # Usage accrues while throttled (throttling guidance): refused requests count too.
            requests = self._window(key, now)
            writes = self._window(key + "|write", now) if write else []
            if self.state.in_flight[key] >= s.throttle_concurrency:
                raise self._throttled(key, "MailboxConcurrency", s.throttle_concurrency_retry_after)
            if len(requests) > s.throttle_requests:
                raise self._throttled(key, "MailboxRequests", self._retry_after(requests, s.throttle_requests, now))
            if write and len(writes) > s.throttle_writes:
                raise self._throttled(key, "MailboxWrites", self._retry_after(writes, s.throttle_writes, now))
            self.state.in_flight[key] += 1
            # Peak concurrency, for tests: per pair, and of every Outlook request at once (GET /_sim/counters)
            self.state.outlook_in_flight += 1
            peaks = self.state.peak_concurrency
            peaks[key] = max(peaks[key], self.state.in_flight[key])
            peaks["outlook"] = max(peaks["outlook"], self.state.outlook_in_flight)
            return key

    def release(self, key: str) -> None:
        with self.state.lock:
            self.state.in_flight[key] -= 1
            self.state.outlook_in_flight -= 1
            if self.state.in_flight[key] <= 0:
                del self.state.in_flight[key]

    def _window(self, key: str, now: float) -> list[float]:
        window = self.state.switches.throttle_window_seconds
        times = [t for t in self.state.request_times.get(key, []) if t > now - window]
        times.append(now)
        self.state.request_times[key] = times
        return times

    def _retry_after(self, times: list[float], budget: int, now: float) -> int:
        # A request at t passes once at most budget-1 others lie within (t - window, t].
        leaves = times[len(times) - budget] + self.state.switches.throttle_window_seconds
        return max(1, math.ceil(leaves - now))

    def _throttled(self, key: str, limit: str, retry_after: int) -> GraphError:
        self.state.throttle_counts[key] += 1
        # Code and MailboxConcurrency wording from field reports; the other limits' names are assumed.
        return GraphError(429, "ApplicationThrottled", f"Application is over its {limit} limit.",
                          {"Retry-After": str(retry_after)})


def is_outlook_path(path: str) -> bool:
    """An Outlook request: ``/me/...`` or ``/users/{id}/...`` followed by a mailbox segment."""
    match = _MAILBOX_PATH.match(path)
    return match is not None and match["segment"].lower() in MAILBOX_SEGMENTS


def is_write(request: web.Request) -> bool:
    """What counts against the write budget: a write method, unless the request is an action that only reads."""
    action = request.path.rstrip("/").rsplit("/", 1)[-1].lower()
    return request.method in WRITE_METHODS and action not in READ_ACTIONS


def throttled_mailbox(state: SimState, auth: GraphAuth, request: web.Request) -> tuple[str, str] | None:
    """(client id, mailbox user id) of an Outlook request with a valid token, else None (the handler then
    answers the 401 or 404 itself)."""
    match = _MAILBOX_PATH.match(request.path)
    if match is None or match["segment"].lower() not in MAILBOX_SEGMENTS:
        return None
    try:
        caller = auth.authenticate(request)
    except GraphError:
        return None
    with state.lock:
        user = caller.user if match["user"] is None else state.find_user(match["user"], caller.tenant_id)
    return (caller.client_id, user.id) if user is not None else None


def take_fault(state: SimState, request: web.Request) -> Fault | None:
    with state.lock:
        for fault in state.faults:
            methods = WRITE_METHODS if fault.method == "writes" else {fault.method or request.method}
            if fault.count > 0 and fnmatch.fnmatchcase(request.path, fault.path) and request.method in methods:
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.count -= 1
                return fault
    return None


async def fault_response(state: SimState, request: web.Request, fault: Fault) -> web.StreamResponse | None:
    """The injected answer, or None for a "delay" fault once its hold is over (the request then proceeds).
    "close" closes the connection: the client gets no answer at all."""
    if fault.status in ("timeout", "delay"):
        await asyncio.sleep(fault.hold_seconds)
        if fault.status == "delay":
            return None
        status = 504
    elif fault.status == "close":
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=504)  # never reaches the client (aiohttp drops it on the closed transport)
    else:
        status = int(fault.status)
    code, message = FAULT_ERRORS[status]
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return graph_error_response(request, state, GraphError(status, code, message, headers))


def hide_created(state: SimState, response: web.StreamResponse, reads: int) -> None:
    """The "created id cannot be found" fault: the event a 2xx answer names answers 404 to the next ``reads``
    reads by id (reported by field reports as a created event's id missing for a while; how long is assumed)."""
    if not 200 <= response.status < 300 or not isinstance(response, web.Response) or response.body is None:
        return
    try:
        event_id = json.loads(bytes(response.body)).get("id")  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        return
    with state.lock:
        event = state.events.find(event_id) if isinstance(event_id, str) else None
        if event is not None:
            state.events.hidden_reads[event.key] = reads


def emptied(response: web.StreamResponse) -> web.StreamResponse:
    """The "empty read" fault: a collection page answered with no items, its links kept (a test's stand-in for a
    service answering a full mailbox with nothing; no documented behaviour)."""
    if not isinstance(response, web.Response) or response.body is None or response.status != 200:
        return response
    try:
        body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return response
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        return response
    body["value"] = []
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return web.json_response(body, status=200, headers=headers)


def gate_middleware(state: SimState, auth: GraphAuth) -> web.middleware:  # type: ignore[valid-type]
    throttle = Throttle(state)

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await handler(request)
        key = None
        target = throttled_mailbox(state, auth, request) if request.path.startswith("/v1.0/") else None
        if target is not None:
            request[MAILBOX] = target[1]
            try:
                key = throttle.admit(target[0], target[1], is_write(request))
            except GraphError as exc:
                return graph_error_response(request, state, exc)
        try:
            fault = take_fault(state, request)
            if fault is not None and not fault.after:
                answer = await fault_response(state, request, fault)
                if answer is not None:
                    return answer
            response = await handler(request)
            if fault is not None and fault.after:  # served (a write applied), then the fault answers instead
                if fault.status == "hidden":
                    hide_created(state, response, fault.reads)
                elif fault.status == "empty":
                    return emptied(response)
                else:
                    answer = await fault_response(state, request, fault)
                    if answer is not None:
                        return answer
            return response
        finally:
            if key is not None:
                throttle.release(key)

    return gate
