"""The outbound writer (queue ``outbound``): one booking's latest desired state made one verified Outlook event.

Three layers against duplicates, none trusted alone ("Create event",
https://learn.microsoft.com/en-us/graph/api/user-post-events; "Add custom data to resources using extended
properties", https://learn.microsoft.com/en-us/graph/extensibility-overview):

1. the attempt is recorded on the booking row before the call;
2. the create carries ``transactionId`` (from booking and calendar, never the version);
3. the event carries the booking id in a single-value extended property (``BOOKING_PROPERTY``, fixed for
   good: events already tagged can never be found under another), searched before any create whose earlier
   attempt has no confirmed event id.

A create is sent once (the gateway retries a write only on 429). A write is done when read back
(get-after-write); an event that cannot be read is looked for by the property, and one not found either is
``needs_reconcile``. An update is a PATCH of the desired fields, a cancel a DELETE (404 counts as done); an
event deleted in Outlook meanwhile makes the booking ``conflict``, never a silent re-create. Accounts whose
status does not write keep their bookings ``pending``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.graph_service_client import GraphServiceClient

from shared.accounts.repository import AccountRepository
from shared.context import Services
from shared.errors import GraphError, NotFound
from shared.graph.gateway import Call, GraphGateway
from shared.messages import Message, Outbound
from shared.ops.journal import JournalEntry
from shared.store.ports import BOOKINGS, CALENDARS, Row

# Permanent: the property's GUID and name are what every tagged event carries.
BOOKING_PROPERTY = "String {0d3c7f3a-5b2e-4c1d-9a8f-6e4b2c1a7d90} Name OutlookSyncBookingId"


@dataclass
class OutboundWriter:
    services: Services
    gateway: GraphGateway

    async def handle(self, message: Message) -> None:
        assert isinstance(message, Outbound)
        row = await self.services.tables.get(BOOKINGS, message.account, message.booking)
        if row is None or message.version < int(row.get("version", 0)):
            return  # gone, or a newer version is queued behind this one
        account = await AccountRepository(self.services.tables).get(message.account)
        if account is None or not account.rules.runs_outbound:
            await self._journal(message.account, "info", "waits: the account's status does not write")
            return
        desired = json.loads(str(row.get("desired") or "{}"))
        user = account.identity.user
        attempts = int(row.get("attempts", 0)) + 1
        await self._merge(row, attempts=attempts, last_attempt_at=self.services.clock())  # before the call
        event_id = row.get("event_id") or None
        if event_id is None and attempts > 1:
            event_id = await self._find(message.account, user, message.booking)  # an earlier create landed?
        try:
            if desired.get("cancelled"):
                await self._cancel(row, user, event_id)
                return
            if event_id is None:
                calendar = str(row.get("calendar") or await self._primary(message.account))
                event_id = await self._create(row, user, calendar, desired)
                await self._merge(row, event_id=event_id, status="written", calendar=calendar)
            else:
                try:
                    await self._send(message.account, "PATCH", f"/users/{_q(user)}/events/{_q(event_id)}",
                                     _fields(desired, self.services.settings.attendee_policy))
                except NotFound:
                    await self._merge(row, status="conflict", last_error="deleted in Outlook")
                    await self._journal(message.account, "error", f"booking {row.row}: its event was deleted in "
                                        "Outlook; not re-created (conflict)")
                    return
            await self._verify(row, user, event_id)
        except GraphError as exc:
            if exc.retryable:
                raise  # the queue tries again (attempt recorded)
            await self._merge(row, status="failed", last_error=exc.code or f"http {exc.status}")
            await self._journal(message.account, "error", f"booking {row.row} failed: {exc.code or exc.status}")

    # --- the calls -------------------------------------------------------------------------------------

    async def _create(self, row: Row, user: str, calendar: str, desired: dict[str, Any]) -> str:
        body = {**_fields(desired, self.services.settings.attendee_policy),
                "transactionId": str(row.get("transaction_id") or ""),
                "singleValueExtendedProperties": [{"id": BOOKING_PROPERTY, "value": row.row}]}
        created = await self._send(row.partition, "POST", f"/users/{_q(user)}/calendars/{_q(calendar)}/events",
                                   body, replayable=False)
        return str(created["id"])

    async def _verify(self, row: Row, user: str, event_id: str) -> None:
        try:
            await self._send(row.partition, "GET", f"/users/{_q(user)}/events/{_q(event_id)}?$select=id,subject")
        except NotFound:
            found = await self._find(row.partition, user, row.row)
            if found is None:
                await self._merge(row, status="needs_reconcile", event_id=event_id,
                                  last_error="written but not readable, nor found by its property")
                return
            event_id = found
        await self._merge(row, status="verified", event_id=event_id, verified_version=int(row.get("version", 0)),
                          last_error=None)
        await self._journal(row.partition, "ok", f"booking {row.row} verified")

    async def _cancel(self, row: Row, user: str, event_id: str | None) -> None:
        if event_id is not None:
            with contextlib.suppress(NotFound):  # gone already: what a cancel wants
                await self._send(row.partition, "DELETE", f"/users/{_q(user)}/events/{_q(event_id)}")
        await self._merge(row, status="cancelled", last_error=None)

    async def _find(self, account: str, user: str, booking: str) -> str | None:
        query = (f"singleValueExtendedProperties/Any(ep: ep/id eq '{BOOKING_PROPERTY}' and ep/value eq "
                 f"'{booking}')")
        answer = await self._send(account, "GET", f"/users/{_q(user)}/events?$filter={quote(query)}&$select=id")
        found = [item["id"] for item in answer.get("value") or [] if isinstance(item, dict) and "id" in item]
        return str(found[0]) if found else None

    async def _send(self, account: str, method: str, path: str, body: dict[str, Any] | None = None, *,
                    replayable: bool = True) -> dict[str, Any]:
        content = json.dumps(body).encode() if body is not None else None

        def build(client: GraphServiceClient) -> RequestInformation:
            info = RequestInformation()
            info.http_method = Method[method]
            info.url = f"{client.request_adapter.base_url}{path}"
            if content is not None:
                info.set_stream_content(content, "application/json")
            return info

        response = await self.gateway.send(Call(account, "outbound", write=method != "GET", replayable=replayable),
                                           build)
        return response.json_object() if response.body else {}

    async def _primary(self, account: str) -> str:
        async for row in self.services.tables.query(CALENDARS, account):
            if row.get("primary"):
                return row.row
        raise GraphError("the account's primary calendar is not known yet (its first sync has not run)",
                         status=409, code="primary_calendar_unknown")

    async def _merge(self, row: Row, **data: Any) -> None:
        await self.services.tables.merge(BOOKINGS, Row(row.partition, row.row,
                                                       {**data, "updated_at": self.services.clock()}))

    async def _journal(self, account: str, outcome: Any, detail: str) -> None:
        await self.services.journal.record(account, JournalEntry("outbound", outcome, detail=detail))


def _fields(desired: dict[str, Any], attendee_policy: str) -> dict[str, Any]:
    """The event's fields as Graph takes them ("event resource type")."""
    if desired.get("all_day"):
        start = {"dateTime": f"{desired['start_date']}T00:00:00", "timeZone": "UTC"}
        end = {"dateTime": f"{desired['end_date']}T00:00:00", "timeZone": "UTC"}
    else:
        start, end = desired["start"], desired["end"]
    fields: dict[str, Any] = {
        "subject": desired.get("subject"), "body": {"contentType": "text", "content": desired.get("body") or ""},
        "start": start, "end": end, "isAllDay": bool(desired.get("all_day")), "showAs": desired.get("show_as", "busy"),
        "location": {"displayName": desired.get("location") or ""}}
    # Attendee-safe: no attendees (so no invitations) unless the policy allows and the booking asks.
    fields["attendees"] = [{"emailAddress": {"address": a}, "type": "required"} for a in desired.get("attendees") or []
                           ] if attendee_policy == "explicit" else []
    return fields


def _q(value: str) -> str:
    return quote(value, safe="")
