"""The OpenAPI 3.1 document of every HTTP route, served at ``GET /api/openapi.json``.

Written by hand, beside the handlers' conventions (shared/api.py): a test fails when a route that
function_app.py declares is missing here (or one listed here does not exist), and another checks
real responses against these schemas.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from shared.config import QUEUES
from shared.health import VERSION

_KEY: list[dict[str, list[str]]] = [{"functionKey": []}]
_ANONYMOUS: list[dict[str, list[str]]] = []

_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC (ends in Z)"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_BOOKING_PARAM = {"name": "booking", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": "^[A-Za-z0-9._~-]{1,128}$"},
                  "description": "the SaaS's own booking id"}
# The range of the read-side routes (shared/sync/events_api.py, parse_range).
_RANGE_PARAMS = (
    {"name": "start", "in": "query", "required": True, "schema": _TIME, "description": "ISO 8601 with Z or an offset"},
    {"name": "end", "in": "query", "required": True, "schema": _TIME,
     "description": "after start, at most 500 days later"},
)

ERROR_CODES = (
    "invalid_json", "invalid_body", "missing_field", "invalid_field", "payload_too_large",
    "return_url_not_allowed", "result_invalid", "result_expired", "result_for_another_account",
    "result_for_another_reference", "account_not_found", "account_disconnected", "connection_expired",
    "mailbox_bound_to_another_reference", "busy", "unsupported_media_type", "invalid_batch",
    "nothing_held", "round_in_progress", "cursor_expired", "account_not_syncing",
    "booking_not_found", "version_outdated", "version_conflict", "account_not_writable", "attendees_not_allowed",
    "poison_not_found", "poison_already_replayed", "poison_already_discarded", "poison_not_replayable",
)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message"], "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "enum": list(ERROR_CODES),
                         "description": "stable: clients may branch on it"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the request field (or path or query parameter) at fault"},
            },
        }},
    },
    "ConnectSessionRequest": {
        "type": "object", "required": ["external_ref", "return_url"],
        "properties": {
            "external_ref": {"type": "string", "minLength": 1, "maxLength": 256,
                             "description": "the SaaS's own reference of its user"},
            "return_url": {"type": "string", "maxLength": 2048,
                           "description": "where the browser returns; must match ALLOWED_RETURN_URLS"},
            "login_hint": {"type": "string", "maxLength": 256},
        },
    },
    "ConnectSession": {
        "type": "object", "required": ["url", "expires_at"], "additionalProperties": False,
        "properties": {"url": {"type": "string", "description": "the link to send the user to"}, "expires_at": _TIME},
    },
    "ConfirmRequest": {
        "type": "object", "required": ["result", "external_ref"],
        "properties": {
            "result": {"type": "string", "maxLength": 4096, "description": "the connect_result the return URL got"},
            "external_ref": {"type": "string", "maxLength": 256},
            "move": {"type": "boolean", "default": False,
                     "description": "move a mailbox bound to another external_ref to this one"},
        },
    },
    "Account": {
        "type": "object", "additionalProperties": False,
        "required": ["account", "status", "reason", "external_ref", "tenant", "user", "username", "mailbox",
                     "display_name", "scopes", "consented_at", "generation"],
        "properties": {
            "account": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "active", "degraded", "needs_reconnect", "unsupported",
                                                  "disconnected"]},
            "reason": {**_NULLABLE_TEXT, "description": "why the status; see README, \"Account statuses\""},
            "external_ref": _NULLABLE_TEXT, "tenant": _NULLABLE_TEXT, "user": _NULLABLE_TEXT,
            "username": _NULLABLE_TEXT, "mailbox": _NULLABLE_TEXT, "display_name": _NULLABLE_TEXT,
            "scopes": {"type": "array", "items": {"type": "string"}},
            "consented_at": {"oneOf": [_TIME, {"type": "null"}]},
            "generation": {"type": "integer"},
            "token_days_left": {"type": ["integer", "null"], "description": "days before the refresh token's "
                                "90-day inactivity limit, as the reconciler last saw it (null until it has)"},
            "sync": {"type": "object", "description": "in the answer to GET", "additionalProperties": False,
                     "required": ["last_good_sync", "drift_changes", "drift_rounds"],
                     "properties": {
                         "last_good_sync": {"oneOf": [_TIME, {"type": "null"}]},
                         "drift_changes": {"type": "integer", "description": "changes reconcile rounds found "
                                           "that no notification announced (lost notifications)"},
                         "drift_rounds": {"type": "integer"}}},
            "reconnect_url": {"type": "string", "description": "present when status is needs_reconnect"},
            "reconnect_url_expires_at": _TIME,
            "purged": {"type": "boolean", "description": "in the answer to DELETE"},
        },
    },
    "BookingRequest": {
        "type": "object", "required": ["version", "subject"],
        "properties": {
            "version": {"type": "integer", "minimum": 1}, "subject": {"type": "string", "maxLength": 255},
            "body": {"type": "string", "maxLength": 32000}, "all_day": {"type": "boolean", "default": False},
            "start": {"$ref": "#/components/schemas/WallTime"}, "end": {"$ref": "#/components/schemas/WallTime"},
            "start_date": {"type": "string", "format": "date"},
            "end_date": {"type": "string", "format": "date", "description": "exclusive"},
            "location": {"type": "string", "maxLength": 255},
            "show_as": {"type": "string", "enum": ["free", "tentative", "busy", "oof", "workingElsewhere"],
                        "default": "busy"},
            "calendar": {"type": "string", "description": "a calendar of GET .../calendars (default: the primary)"},
            "attendees": {"type": "array", "items": {"type": "string"},
                          "description": "refused while ATTENDEE_POLICY is none"}},
    },
    "WallTime": {
        "type": "object", "required": ["dateTime", "timeZone"],
        "properties": {"dateTime": {"type": "string", "description": "wall clock, no offset"},
                       "timeZone": {"type": "string", "description": "an IANA or Windows zone name"}},
    },
    "Booking": {
        "type": "object", "additionalProperties": False,
        "required": ["booking", "account", "version", "status", "desired", "event_id", "attempts", "last_error",
                     "updated_at"],
        "properties": {
            "booking": {"type": "string"}, "account": {"type": "string"}, "version": {"type": "integer"},
            "status": {"type": "string", "enum": ["pending", "written", "verified", "cancelled", "failed",
                                                  "needs_reconcile", "conflict"]},
            "desired": {"type": "object"}, "event_id": _NULLABLE_TEXT, "attempts": {"type": "integer"},
            "last_error": _NULLABLE_TEXT, "updated_at": {"oneOf": [_TIME, {"type": "null"}]}},
    },
    "BookingsPage": {
        "type": "object", "additionalProperties": False, "required": ["bookings", "next_page"],
        "properties": {"bookings": {"type": "array", "items": {"$ref": "#/components/schemas/Booking"}},
                       "next_page": {"type": ["string", "null"]}},
    },
        "Calendars": {
        "type": "object", "additionalProperties": False, "required": ["calendars"],
        "properties": {"calendars": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "name", "primary", "owner", "sync"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "primary": {"type": "boolean"},
                           "owner": _NULLABLE_TEXT, "sync": {"type": "boolean"}}}}},
    },
    "CalendarsRequest": {
        "type": "object", "required": ["calendars"],
        "properties": {"calendars": {"type": "array", "maxItems": 20, "items": {"type": "string"},
                                     "description": "ids of owned calendars to sync besides the primary one"}},
    },
        "Event": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "calendar", "type", "series_master_id", "subject", "start", "end", "is_all_day",
                     "start_date", "end_date", "zone", "end_zone", "zone_flag", "local_start", "local_end",
                     "show_as", "is_cancelled", "location", "original_start", "recurrence", "recurrence_flag",
                     "booking_id"],
        "properties": {
            "id": {"type": "string", "description": "the immutable event id"}, "calendar": {"type": "string"},
            "type": {"oneOf": [{"type": "string", "enum": ["singleInstance", "occurrence", "exception",
                                                          "seriesMaster"]}, {"type": "null"}]},
            "series_master_id": _NULLABLE_TEXT, "subject": _NULLABLE_TEXT,
            "start": {"oneOf": [_TIME, {"type": "null"}]}, "end": {"oneOf": [_TIME, {"type": "null"}]},
            "is_all_day": {"type": "boolean"},
            "start_date": {"type": ["string", "null"], "description": "all-day: the first day (YYYY-MM-DD)"},
            "end_date": {"type": ["string", "null"], "description": "all-day: the day after the last"},
            "zone": {**_NULLABLE_TEXT, "description": "the event's own zone (IANA)"}, "end_zone": _NULLABLE_TEXT,
            "zone_flag": {"type": ["string", "null"], "enum": ["custom", "unknown", "missing", None],
                          "description": "the zone could not be read: times are shown in UTC"},
            "local_start": {"type": ["string", "null"], "description": "wall clock in zone (no offset)"},
            "local_end": {"type": ["string", "null"]},
            "show_as": _NULLABLE_TEXT, "is_cancelled": {"type": "boolean"}, "location": _NULLABLE_TEXT,
            "original_start": {"oneOf": [_TIME, {"type": "null"}]},
            "recurrence": {"type": ["object", "null"], "description": "a series master's patternedRecurrence"},
            "recurrence_flag": {"type": ["string", "null"], "enum": ["unknown_pattern", None]},
            "booking_id": _NULLABLE_TEXT},
    },
    "EventsPage": {
        "type": "object", "additionalProperties": False, "required": ["events", "next_page"],
        "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                       "next_page": {"type": ["string", "null"]}},
    },
        "Availability": {
        "type": "object", "additionalProperties": False, "required": ["start", "end", "calendars", "busy"],
        "properties": {
            "start": _TIME, "end": _TIME, "calendars": {"type": "array", "items": {"type": "string"}},
            "busy": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["start", "end", "show_as"],
                "properties": {"start": _TIME, "end": _TIME, "show_as": {
                    "type": "string", "enum": ["busy", "tentative", "oof", "workingElsewhere"]}}}}},
    },
        "Change": {
        "type": "object", "additionalProperties": False,
        "required": ["seq", "kind", "calendar", "event", "dedupe", "at"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "kind": {"type": "string", "enum": ["created", "updated", "deleted", "moved", "left_window",
                                                "left_calendar"]},
            "calendar": {"type": "string"}, "event": {"type": "string", "description": "the immutable event id"},
            "dedupe": {"type": "string", "description": "the same change delivered again has the same key"},
            "at": {"oneOf": [_TIME, {"type": "null"}]},
            "to": {"type": "string", "description": "moved: the calendar the event is in now"}},
    },
    "ChangesPage": {
        "type": "object", "additionalProperties": False, "required": ["changes", "cursor", "more", "latest"],
        "properties": {
            "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
            "cursor": {"type": "integer", "description": "the next request's cursor"},
            "more": {"type": "boolean", "description": "more changes follow this page"},
            "latest": {"type": "integer", "description": "the latest sequence written"}},
    },
        "BreakerRequest": {
        "type": "object", "required": ["action"],
        "properties": {"action": {"type": "string", "enum": ["confirm", "reject"],
                                  "description": "confirm: apply the held deletes; reject: keep the events"}},
    },
    "BreakerDecision": {
        "type": "object", "required": ["account", "action", "calendars", "removals"], "additionalProperties": False,
        "properties": {"account": {"type": "string"}, "action": {"type": "string", "enum": ["confirm", "reject"]},
                       "calendars": {"type": "integer", "description": "calendars whose deletes were held"},
                       "removals": {"type": "integer", "description": "held deletes applied or dropped"}},
    },
    "PoisonMessage": {
        "type": "object", "additionalProperties": False,
        "required": ["queue", "id", "state", "kind", "account", "reason", "degraded", "payload", "payload_truncated",
                     "parse_error", "dequeue_count", "enqueued_at", "poisoned_at", "held_at", "updated_at",
                     "replayed_at", "discarded_at", "last_error", "attempts"],
        "properties": {
            "queue": {"type": "string", "enum": list(QUEUES)},
            "id": {"type": "string", "description": "the host's id of the poison queue message"},
            "state": {"type": "string", "enum": ["held", "replayed", "discarded"]},
            "kind": {**_NULLABLE_TEXT, "description": "the message kind; null when the payload does not parse"},
            "account": _NULLABLE_TEXT,
            "reason": {**_NULLABLE_TEXT, "description": "the degraded reason it stands for (poison:{kind})"},
            "degraded": {"type": "boolean", "description": "the account was live and is degraded for it"},
            "payload": {"type": "string", "description": "the message text, redacted and cut to 60,000 bytes (UTF-16)"},
            "payload_truncated": {"type": "boolean"},
            "parse_error": {**_NULLABLE_TEXT, "description": "why the payload is not a valid message"},
            "dequeue_count": {"type": ["integer", "null"], "description": "deliveries of the last failed attempt"},
            "enqueued_at": {"oneOf": [_TIME, {"type": "null"}], "description": "the first copy's enqueue time"},
            "poisoned_at": {"oneOf": [_TIME, {"type": "null"}]},
            "held_at": {"oneOf": [_TIME, {"type": "null"}]}, "updated_at": {"oneOf": [_TIME, {"type": "null"}]},
            "replayed_at": {"oneOf": [_TIME, {"type": "null"}]}, "discarded_at": {"oneOf": [_TIME, {"type": "null"}]},
            "last_error": {"oneOf": [{"type": "null"}, {
                "type": "object", "additionalProperties": False, "required": ["error_class", "detail"],
                "properties": {"error_class": _NULLABLE_TEXT, "detail": _NULLABLE_TEXT}}]},
            "attempts": {"type": "array", "description": "the most recent failed deliveries, newest first",
                         "items": {"type": "object", "additionalProperties": False,
                                   "properties": {"at": {"oneOf": [_TIME, {"type": "null"}]},
                                                  "error_class": _NULLABLE_TEXT, "detail": _NULLABLE_TEXT,
                                                  "http_status": {"type": ["integer", "null"]},
                                                  "graph_error_code": _NULLABLE_TEXT,
                                                  "dequeue_count": {"type": ["integer", "null"]}}}},
        },
    },
    "PoisonPage": {
        "type": "object", "required": ["items", "next_page_token"], "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/PoisonMessage"}},
                       "next_page_token": {**_NULLABLE_TEXT, "description": "pass as page_token for more"}},
    },
    "HealthStatus": {
        "type": "object", "required": ["status"], "additionalProperties": False,
        "properties": {"status": {"type": "string", "enum": ["ok", "misconfigured", "degraded", "alarm"]}},
    },
    "HealthDetails": {
        "type": "object", "required": ["status", "version", "problems"], "additionalProperties": False,
        "properties": {"status": {"type": "string", "enum": ["ok", "misconfigured", "degraded", "alarm"]},
                       "version": {"type": "string"}, "problems": {"type": "array", "items": {"type": "string"}},
                       "reconciler": {
                           "type": "object", "additionalProperties": False,
                           "description": "absent when settings or storage fail",
                           "required": ["last_run", "drift_changes", "drift_rounds", "last_drift_at"],
                           "properties": {
                               "last_run": {"oneOf": [_TIME, {"type": "null"}]},
                               "drift_changes": {"type": "integer", "description": "in total: changes reconcile "
                                                 "rounds found that no notification announced"},
                               "drift_rounds": {"type": "integer"},
                               "last_drift_at": {"oneOf": [_TIME, {"type": "null"}]}}}},
    },
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_ACCOUNT_PARAM = {"name": "account", "in": "path", "required": True, "schema": {"type": "string"}}

_WEBHOOK = {
    "security": _ANONYMOUS,
    "parameters": [{"name": "validationToken", "in": "query", "required": False, "schema": {"type": "string"},
                    "description": "Graph's validation handshake: echoed as text/plain"}],
    "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {
        "200": {"description": "the handshake", "content": {"text/plain": {"schema": {"type": "string"}}}},
        "202": {"description": "accepted; the work is queued"},
        "400": _error("not JSON, or no notifications"), "413": _error("too large"),
        "415": _error("not application/json"),
        "503": {"description": "storage unavailable: Graph retries the delivery"},
    },
}

_POISON_PARAMS = [
    {"name": "queue", "in": "path", "required": True,
     "schema": {"type": "string", "enum": list(QUEUES)}},
    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
]


def _poison_action(summary: str) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "security": _KEY, "parameters": _POISON_PARAMS,
        "responses": {"200": _json("PoisonMessage", "the row as it is now"),
                      "404": _error("no such queue or message"),
                      "409": _error("already replayed or discarded, or (replay) the payload is not a message of "
                                    "this queue")}}}


PATHS: dict[str, dict[str, Any]] = {
    "/api/health": {"get": {
        "summary": "Liveness for probes: the status alone", "security": _ANONYMOUS,
        "responses": {"200": _json("HealthStatus", "ok"), "503": _json("HealthStatus", "cannot work")}}},
    "/api/health/details": {"get": {
        "summary": "The status with its problems (setting names, never values)", "security": _KEY,
        "responses": {"200": _json("HealthDetails", "ok"), "503": _json("HealthDetails", "cannot work")}}},
    "/api/openapi.json": {"get": {
        "summary": "This document", "security": _ANONYMOUS,
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "/api/notifications": {"post": {"summary": "Microsoft Graph change notifications", **_WEBHOOK}},
    "/api/lifecycle": {"post": {"summary": "Microsoft Graph lifecycle notifications", **_WEBHOOK}},
    "/api/connect-sessions": {"post": {
        "summary": "Start connecting a mailbox: a link for the SaaS's user", "security": _KEY,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConnectSessionRequest"}}}},
        "responses": {"201": _json("ConnectSession", "the link"), "400": _error("a field is missing or invalid"),
                      "413": _error("body too large")}}},
    "/api/connect/{session}": {"get": {
        "summary": "The connect link a person opens: redirects to Microsoft's sign-in", "security": _ANONYMOUS,
        "parameters": [{"name": "session", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"302": {"description": "to Microsoft's sign-in"}, "400": _html("not a valid link"),
                      "410": _html("the link expired"), "503": _html("Microsoft cannot be reached")}}},
    "/api/oauth/callback": {
        method: {
            "summary": "Microsoft's answer to the sign-in (form_post, or a query string)", "security": _ANONYMOUS,
            "responses": {
                "302": {"description": "to the session's return_url with connect_result and account, or with "
                                       "connect_error (and account for a reconnect) when the user cancelled or "
                                       "Microsoft refused"},
                "400": _html("unknown, replayed or expired sign-in"), "414": _html("too long"),
                "503": _html("Microsoft cannot be reached")}}
        for method in ("get", "post")},
    "/api/accounts/{account}/confirm": {"post": {
        "summary": "The SaaS confirms a connection for its logged-in user", "security": _KEY,
        "parameters": [_ACCOUNT_PARAM],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConfirmRequest"}}}},
        "responses": {"200": _json("Account", "connected"), "400": _error("invalid request or result"),
                      "403": _error("the result belongs to another account or reference"),
                      "404": _error("no such account"), "409": _error("disconnected, bound elsewhere, or busy"),
                      "410": _error("the result or the connection expired")}}},
    "/api/accounts/{account}": {
        "get": {"summary": "An account's status (with a reconnect link when it needs one)", "security": _KEY,
                "parameters": [_ACCOUNT_PARAM],
                "responses": {"200": _json("Account", "the account"), "404": _error("no such account")}},
        "delete": {"summary": "Disconnect (and optionally purge) an account", "security": _KEY,
                   "parameters": [_ACCOUNT_PARAM, {"name": "purge", "in": "query", "required": False,
                                                   "schema": {"type": "boolean", "default": False}}],
                   "responses": {"200": _json("Account", "disconnected"), "400": _error("purge is not true or false"),
                                 "404": _error("no such account")}},
    },
    "/api/accounts/{account}/breaker": {"post": {
        "summary": "An operator confirms or rejects the deletes the mass-deletion breaker holds", "security": _KEY,
        "parameters": [_ACCOUNT_PARAM],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/BreakerRequest"}}}},
        "responses": {"200": _json("BreakerDecision", "decided"), "400": _error("action is not confirm or reject"),
                      "404": _error("no such account"),
                      "409": _error("nothing is held, or a round is under way (try again in a minute)")}}},
    "/api/accounts/{account}/bookings/{booking}": {
        "put": {"summary": "Record the desired state of a booking (a new version); the outbound writer makes it one "
                           "Outlook event", "security": _KEY, "parameters": [_ACCOUNT_PARAM, _BOOKING_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/BookingRequest"}}}},
                "responses": {"202": _json("Booking", "recorded and queued"),
                              "200": _json("Booking", "this version with this state was recorded already"),
                              "400": _error("a field is invalid (the error names it)"),
                              "404": _error("no such account"),
                              "409": _error("an older version, the same version with another state, or an account "
                                            "whose status does not write")}},
        "delete": {"summary": "Cancel a booking: its Outlook event goes", "security": _KEY,
                   "parameters": [_ACCOUNT_PARAM, _BOOKING_PARAM],
                   "responses": {"202": _json("Booking", "cancellation recorded and queued"),
                                 "200": _json("Booking", "cancelled already"),
                                 "404": _error("no such account or booking"),
                                 "409": _error("the account's status does not write")}},
        "get": {"summary": "A booking's status", "security": _KEY, "parameters": [_ACCOUNT_PARAM, _BOOKING_PARAM],
                "responses": {"200": _json("Booking", "the booking"), "404": _error("no such account or booking")}}},
    "/api/accounts/{account}/bookings": {"get": {
        "summary": "The account's bookings, by booking id", "security": _KEY,
        "parameters": [_ACCOUNT_PARAM,
                       {"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
                       {"name": "page", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "next_page of the previous answer"}],
        "responses": {"200": _json("BookingsPage", "a page"), "400": _error("limit is invalid"),
                      "404": _error("no such account")}}},
    "/api/accounts/{account}/calendars": {
        "get": {"summary": "The calendars the mailbox owns (asked of Graph) and which of them sync",
                "security": _KEY, "parameters": [_ACCOUNT_PARAM],
                "responses": {"200": _json("Calendars", "the calendars"), "404": _error("no such account"),
                              "409": _error("the account's status does not sync (account_not_syncing)")}},
        "put": {"summary": "Choose the calendars to sync besides the primary one, which always syncs; a calendar "
                           "left out stops syncing and its events are reported left_calendar",
                "security": _KEY, "parameters": [_ACCOUNT_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/CalendarsRequest"}}}},
                "responses": {"200": _json("Calendars", "the calendars as now chosen"),
                              "400": _error("not a list of calendar ids the mailbox owns"),
                              "404": _error("no such account"),
                              "409": _error("the account's status does not sync (account_not_syncing)")}}},
    "/api/accounts/{account}/events": {"get": {
        "summary": "The account's events in a range, from the synced store (no Graph call): occurrences as Graph "
                   "expanded them, in order of start (events longer than eight weeks first)",
        "security": _KEY,
        "parameters": [
            _ACCOUNT_PARAM, *_RANGE_PARAMS,
            {"name": "calendar", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
            {"name": "page", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "next_page of the previous answer"}],
        "responses": {"200": _json("EventsPage", "a page (it may be short and still have a next_page)"),
                      "400": _error("a query parameter is missing or invalid"),
                      "404": _error("no such account")}}},
    "/api/accounts/{account}/availability": {"get": {
        "summary": "Busy intervals merged across calendars, from the synced store (no Graph call): showAs busy, "
                   "tentative, oof or workingElsewhere, the strongest winning where they overlap; cancelled "
                   "events and free time left out; all-day events as whole days in their own zone",
        "security": _KEY,
        "parameters": [
            _ACCOUNT_PARAM, *_RANGE_PARAMS,
            {"name": "calendars", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "comma-separated calendar ids, each synced (default: every synced calendar)"}],
        "responses": {"200": _json("Availability", "the busy intervals"),
                      "400": _error("a query parameter is missing or invalid"),
                      "404": _error("no such account")}}},
    "/api/accounts/{account}/changes": {"get": {
        "summary": "The account's change feed from a cursor: every change once, in commit order, gap-free",
        "security": _KEY,
        "parameters": [
            _ACCOUNT_PARAM,
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0,
                                                                            "default": 0},
             "description": "the last sequence processed (0: from the start)"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
        "responses": {"200": _json("ChangesPage", "the changes after the cursor"),
                      "400": _error("cursor or limit is invalid, or the cursor is past the latest change"),
                      "404": _error("no such account"),
                      "410": _error("the cursor is older than FEED_RETENTION_DAYS (cursor_expired): resync from "
                                    "the events API, then follow from the latest sequence")}}},
    "/api/poison": {"get": {
        "summary": "Messages the host gave up on, as the poison table keeps them", "security": _KEY,
        "parameters": [
            {"name": "queue", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(QUEUES)}},
            {"name": "account", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "state", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["held", "replayed", "discarded"], "default": "held"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
            {"name": "page_token", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "next_page_token of the previous page"}],
        "responses": {"200": _json("PoisonPage", "a page (it may be short and still have a next_page_token)"),
                      "400": _error("a query parameter is invalid")}}},
    "/api/poison/{queue}/{id}/replay": _poison_action("Send a held message back to its queue"),
    "/api/poison/{queue}/{id}/discard": _poison_action("Give up on a held message (the row is kept)"),
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Outlook calendar sync", "version": VERSION,
                 "description": "Times are ISO 8601 UTC strings; every JSON error has the Error shape."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key",
                                                "description": "an Azure Functions function key"}},
        },
    }


@cache
def document_bytes() -> bytes:
    return json.dumps(document(), sort_keys=True).encode()
