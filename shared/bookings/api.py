"""The bookings API (function key): what the SaaS wants in Outlook, recorded before anything is sent.

- ``PUT /api/accounts/{account}/bookings/{booking}``: the desired state and its ``version``.
- ``DELETE /api/accounts/{account}/bookings/{booking}``: cancel (the Outlook event goes).
- ``GET /api/accounts/{account}/bookings/{booking}`` and ``GET /api/accounts/{account}/bookings``.

Rows ``bookings / {account} / {booking}``: the desired state (JSON), ``version``, its digest, ``status``
(``pending``, ``written``, ``verified``, ``cancelled``, ``failed``, ``needs_reconcile``, ``conflict``), the
``transaction_id`` (from the booking id and the target calendar, never the version: a create retried under
a later version is still recognised by Graph; "Create event", https://learn.microsoft.com/en-us/graph/api/user-post-events),
the Outlook event id, attempts and the last error. An ``unqueued / {account}|{booking}`` row is written
first and deleted once the ``outbound`` message is sent: the reconciler's timer sends what a crash left
unqueued. The outbound writer (shared/bookings/writer.py) turns each into one verified Outlook event.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from shared.accounts.repository import AccountRepository
from shared.api import RequestError, iso_utc, json_object, query_whole
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.messages import Outbound
from shared.store.ports import BOOKINGS, CALENDARS, Row
from shared.sync.zones import event_zone

UNQUEUED = "unqueued"
MAX_BOOKING_ID = 128
MAX_SUBJECT = 255
MAX_BODY = 32_000
MAX_ATTENDEES = 100
SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere")
STATUSES = ("pending", "written", "verified", "cancelled", "failed", "needs_reconcile", "conflict")
_BOOKING_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
# The namespace of transaction ids: fixed, so the same booking and calendar always give the same id.
_TRANSACTION_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4f5b-9c7e-2b8d4a6e1f30")


async def put_booking(services: Services, account_id: str, booking_id: str, body: bytes) -> HttpResult:
    try:
        _check_booking_id(booking_id)
        data = json_object(body)
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RequestError(400, "invalid_field", "version must be a whole number of at least 1", "version")
        account = await _writable_account(services, account_id)
        desired = await _desired(services, account.account, data)
        digest = _digest(desired)
        stored = await services.tables.get(BOOKINGS, account.account, booking_id)
        if stored is not None:
            stored_version = int(stored.get("version", 0))
            if version < stored_version:
                raise RequestError(409, "version_outdated", f"version {version} is older than the stored "
                                   f"version {stored_version}", "version")
            if version == stored_version:
                if stored.get("digest") != digest:
                    raise RequestError(409, "version_conflict", f"version {version} was stored with another "
                                       "desired state; send a new version", "version")
                return json_result(200, booking_json(stored))  # the same request again: nothing more to do
    except RequestError as exc:
        return exc.result()
    row = await _record(services, account.account, booking_id, version, desired, digest, stored)
    return json_result(202, booking_json(row))


async def cancel_booking(services: Services, account_id: str, booking_id: str) -> HttpResult:
    try:
        _check_booking_id(booking_id)
        account = await _writable_account(services, account_id)
        stored = await services.tables.get(BOOKINGS, account.account, booking_id)
        if stored is None:
            raise RequestError(404, "booking_not_found", "no such booking", "booking")
    except RequestError as exc:
        return exc.result()
    if json.loads(str(stored.get("desired") or "{}")).get("cancelled"):
        return json_result(200, booking_json(stored))  # cancelled already (or on its way)
    desired = {"cancelled": True}
    row = await _record(services, account.account, booking_id, int(stored.get("version", 0)), desired,
                        _digest(desired), stored)
    return json_result(202, booking_json(row))


async def get_booking(services: Services, account_id: str, booking_id: str) -> HttpResult:
    try:
        _check_booking_id(booking_id)
        await _account(services, account_id)
        stored = await services.tables.get(BOOKINGS, account_id, booking_id)
        if stored is None:
            raise RequestError(404, "booking_not_found", "no such booking", "booking")
    except RequestError as exc:
        return exc.result()
    return json_result(200, booking_json(stored))


async def list_bookings(services: Services, account_id: str, params: Mapping[str, str]) -> HttpResult:
    try:
        await _account(services, account_id)
        limit = query_whole(params, "limit", default=100, low=1, high=500)
        after = params.get("page") or None
    except RequestError as exc:
        return exc.result()
    rows = [row async for row in services.tables.query(BOOKINGS, account_id, start=(after + "\x00") if after else None,
                                                       limit=limit + 1)]
    page = rows[:limit]
    return json_result(200, {"bookings": [booking_json(r) for r in page],
                             "next_page": page[-1].row if len(rows) > limit else None})


def booking_json(row: Row) -> dict[str, Any]:
    return {"booking": row.row, "account": row.partition, "version": int(row.get("version", 0)),
            "status": row.get("status"), "desired": json.loads(str(row.get("desired") or "{}")),
            "event_id": row.get("event_id"), "attempts": int(row.get("attempts", 0)),
            "last_error": row.get("last_error"), "updated_at": iso_utc(row.get("updated_at"))}


def transaction_id(booking_id: str, calendar: str) -> str:
    """Graph's ``transactionId`` for a booking's create in a calendar: the same for every retry and version."""
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, f"{booking_id}|{calendar}"))


async def send_unqueued(services: Services) -> int:
    """The reconciler's share: queue every booking recorded whose message was never sent (a crash between)."""
    sent = 0
    async for marker in services.tables.query(BOOKINGS, UNQUEUED):
        if float(marker.get("at", 0.0)) > services.clock() - 60:
            continue  # its own request is still on its way
        account, _, booking = marker.row.partition("|")
        stored = await services.tables.get(BOOKINGS, account, booking)
        if stored is not None:
            await services.queue.send(Outbound(account=account, booking=booking, version=int(stored.get("version", 0))))
        await services.tables.delete(BOOKINGS, UNQUEUED, marker.row)
        sent += 1
    return sent


async def requeue_pending(services: Services, account: str) -> int:
    """Queue again every ``pending`` booking of an account (a reconnect: they waited while it could not write)."""
    sent = 0
    async for row in services.tables.query(BOOKINGS, account):
        if row.get("status") == "pending":
            await services.queue.send(Outbound(account=account, booking=row.row, version=int(row.get("version", 0))))
            sent += 1
    return sent


# --- recording -----------------------------------------------------------------------------------------


async def _record(services: Services, account: str, booking_id: str, version: int, desired: dict[str, Any],
                  digest: str, stored: Row | None) -> Row:
    """The desired state first (with its unqueued marker), then the message, then the marker goes."""
    now = services.clock()
    marker = Row(UNQUEUED, f"{account}|{booking_id}", {"at": now})
    await services.tables.upsert(BOOKINGS, marker)
    calendar = str(desired.get("calendar") or (stored.get("calendar") if stored is not None else "") or "")
    data: dict[str, Any] = dict(stored.data) if stored is not None else {"attempts": 0, "created_at": now}
    data.update({"version": version, "desired": json.dumps(desired, sort_keys=True), "digest": digest,
                 "status": "pending", "updated_at": now})
    if calendar:
        data.update(calendar=calendar, transaction_id=transaction_id(booking_id, calendar))
    row = await services.tables.upsert(BOOKINGS, Row(account, booking_id, data))
    await services.queue.send(Outbound(account=account, booking=booking_id, version=version))
    await services.tables.delete(BOOKINGS, UNQUEUED, marker.row)
    return row


async def _desired(services: Services, account: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The desired state, checked field by field (the error names the field)."""
    subject = data.get("subject")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT:
        raise RequestError(400, "invalid_field", f"subject must be text of 1 to {MAX_SUBJECT} characters", "subject")
    body = data.get("body", "")
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise RequestError(400, "invalid_field", f"body must be text of at most {MAX_BODY} characters", "body")
    all_day = data.get("all_day", False)
    if not isinstance(all_day, bool):
        raise RequestError(400, "invalid_field", "all_day must be true or false", "all_day")
    desired: dict[str, Any] = {"subject": subject, "body": body, "all_day": all_day}
    if all_day:
        first, last = _date(data.get("start_date"), "start_date"), _date(data.get("end_date"), "end_date")
        if last <= first:
            raise RequestError(400, "invalid_field", "end_date must be after start_date (it is exclusive)", "end_date")
        desired.update(start_date=first.isoformat(), end_date=last.isoformat())
    else:
        start, end = _local(data.get("start"), "start"), _local(data.get("end"), "end")
        if end <= start:
            raise RequestError(400, "invalid_field", "end must be after start", "end")
        desired.update(start={"dateTime": data["start"]["dateTime"], "timeZone": data["start"]["timeZone"]},
                       end={"dateTime": data["end"]["dateTime"], "timeZone": data["end"]["timeZone"]})
    location = data.get("location")
    if location is not None and (not isinstance(location, str) or len(location) > MAX_SUBJECT):
        raise RequestError(400, "invalid_field", f"location must be text of at most {MAX_SUBJECT} characters",
                           "location")
    show_as = data.get("show_as", "busy")
    if show_as not in SHOW_AS:
        raise RequestError(400, "invalid_field", f"show_as must be one of {', '.join(SHOW_AS)}", "show_as")
    desired.update(location=location, show_as=show_as)
    attendees = data.get("attendees")
    if attendees is not None:
        if services.settings.attendee_policy == "none":
            raise RequestError(400, "attendees_not_allowed", "ATTENDEE_POLICY is none: this service sends no "
                               "invitations", "attendees")
        if not isinstance(attendees, list) or len(attendees) > MAX_ATTENDEES or not all(
                isinstance(a, str) and "@" in a for a in attendees):
            raise RequestError(400, "invalid_field", f"attendees must be at most {MAX_ATTENDEES} addresses",
                               "attendees")
        desired["attendees"] = sorted(set(attendees))
    calendar = data.get("calendar")
    if calendar is not None:
        if not isinstance(calendar, str) or await services.tables.get(CALENDARS, account, calendar) is None:
            raise RequestError(400, "invalid_field", "calendar is not one of this account's calendars "
                               "(GET /api/accounts/{account}/calendars)", "calendar")
        desired["calendar"] = calendar
    return desired


def _local(value: Any, name: str) -> datetime:
    """A ``{"dateTime", "timeZone"}`` (an IANA or Windows zone) as an aware datetime."""
    from zoneinfo import ZoneInfo

    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str) \
            or not isinstance(value.get("timeZone"), str):
        raise RequestError(400, "invalid_field", f"{name} must be {{\"dateTime\": \"2026-12-10T09:00:00\", "
                           "\"timeZone\": \"Europe/Berlin\"}", name)
    zone = event_zone(value["timeZone"])
    if zone.flag is not None:
        raise RequestError(400, "invalid_field", f"{name}.timeZone is not a zone this service knows",
                           f"{name}.timeZone")
    try:
        wall = datetime.fromisoformat(value["dateTime"])
    except ValueError:
        raise RequestError(400, "invalid_field", f"{name}.dateTime is not an ISO 8601 date-time",
                           f"{name}.dateTime") from None
    if wall.tzinfo is not None:
        raise RequestError(400, "invalid_field", f"{name}.dateTime is a wall-clock time: no offset (the zone says "
                           "it)", f"{name}.dateTime")
    return wall.replace(tzinfo=ZoneInfo(zone.name))


def _date(value: Any, name: str) -> date:
    if not isinstance(value, str):
        raise RequestError(400, "invalid_field", f"{name} must be a date (YYYY-MM-DD) for an all-day booking", name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RequestError(400, "invalid_field", f"{name} must be a date (YYYY-MM-DD): all-day bookings are "
                           "whole days", name) from None


def _digest(desired: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()[:32]


def _check_booking_id(booking_id: str) -> None:
    if not _BOOKING_ID.match(booking_id):
        raise RequestError(400, "invalid_field", f"a booking id is 1 to {MAX_BOOKING_ID} letters, digits or ._~-",
                           "booking")


async def _account(services: Services, account_id: str) -> Any:
    account = await AccountRepository(services.tables).get(account_id)
    if account is None:
        raise RequestError(404, "account_not_found", "no such account", "account")
    return account


async def _writable_account(services: Services, account_id: str) -> Any:
    account = await _account(services, account_id)
    if not account.rules.runs_outbound:
        raise RequestError(409, "account_not_writable", f"the account is {account.status.value}: outbound writes "
                           "wait for it to be active again", "account")
    return account
