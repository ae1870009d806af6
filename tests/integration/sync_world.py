"""A connected mailbox for the sync engine's tests through the real parts: the product's event writer on the
real msgraph-sdk, msal and Key Vault client, Azurite for storage, and the Microsoft 365 simulator, which the
test drives as the mailbox's user would (its control API) and reads back as Graph serves it
(``calendarView``, "List calendarView", https://learn.microsoft.com/en-us/graph/api/user-list-calendarview)."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.graph.gateway import GraphGateway
from shared.graph.governor import MailboxGovernor
from shared.graph.wire import decode_page
from shared.messages import Sync, parse_message
from shared.store.ports import CALENDARS, MAILBOX, Row
from shared.sync.probe import GraphEventProbe
from shared.sync.projection import StoredEvent, projection
from shared.sync.reconcile import ReconcilePlan, plan_due
from shared.sync.source import GraphDeltaSource
from shared.sync.writer import EventWriter
from tests.integration.test_connect_real_clients import ADELE


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class SyncWorld:
    def __init__(self, stack: Any, account: str, page_size: int = 5) -> None:
        self.stack = stack
        self.account = account
        self.sleeps = Sleeps()
        self.gateway = GraphGateway(stack.services, stack.auth.broker, MailboxGovernor(), sleep=self.sleeps)
        self.writer = EventWriter(stack.services, GraphDeltaSource(self.gateway, page_size),
                                  GraphEventProbe(self.gateway))
        self.tables = stack.services.tables

    # --- the user, at the simulator --------------------------------------------------------------

    def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.stack.session.request(method, f"{self.stack.sim.url}/_sim/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else {}

    def create(self, subject: str, day: int, hour: int = 9, minutes: int = 30) -> str:
        start = (datetime.now(UTC) + timedelta(days=day)).replace(hour=hour, minute=0, second=0, microsecond=0)
        end = start + timedelta(minutes=minutes)
        made = self.sim("POST", f"users/{ADELE}/events", {
            "subject": subject, "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
        return str(made["immutableId"])

    def edit(self, event_id: str, **changes: Any) -> None:
        self.sim("PATCH", f"users/{ADELE}/events/{event_id}", changes)

    def delete(self, event_id: str) -> None:
        self.sim("DELETE", f"users/{ADELE}/events/{event_id}")

    def move(self, event_id: str, calendar: str) -> None:
        self.sim("POST", f"users/{ADELE}/events/{event_id}/move", {"calendar": calendar})

    def calendars(self) -> tuple[str, str]:
        """(the default calendar's id, another calendar's id) of the mailbox, as the simulator has them."""
        owned = self.stack.sim.state.calendars_of(ADELE)
        return str(owned[0].id), str(next(c.id for c in owned if not c.is_default))

    def series(self, subject: str, day: int, count: int) -> str:
        start = (datetime.now(UTC) + timedelta(days=day)).replace(hour=7, minute=0, second=0, microsecond=0)
        made = self.sim("POST", f"users/{ADELE}/events", {
            "subject": subject, "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "numbered", "startDate": start.strftime("%Y-%m-%d"),
                                     "numberOfOccurrences": count}}})
        return str(made["immutableId"])

    def cancel_occurrence(self, occurrence_id: str) -> None:
        self.sim("DELETE", f"users/{ADELE}/occurrences/{occurrence_id}")

    async def graph_has(self, event_id: str) -> bool:
        """Whether Graph still has the event (an occurrence's id included), in any calendar."""
        token = await self.stack.auth.broker.access_token(self.account)
        response = self.stack.session.get(
            f"{self.stack.services.settings.graph_base_url}/users/{ADELE}/events/{event_id}?$select=id",
            timeout=30, headers={"Authorization": f"Bearer {token.token}"})
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    def switches(self, **values: Any) -> None:
        self.sim("PATCH", "switches", values)

    # --- the product -----------------------------------------------------------------------------

    async def sync(self, reason: str = "manual") -> int:
        """Run a sync message and every continue it leaves; returns the messages run."""
        await self.writer.handle(Sync(account=self.account, reason=reason))  # type: ignore[arg-type]
        ran = 1
        while True:
            bodies = await self.stack.services.queue.peek("sync", 32)
            await self.drain()
            mine = [m for m in map(parse_message, bodies) if m.account == self.account]
            if not mine:
                return ran
            for message in mine:
                await self.writer.handle(message)
                ran += 1

    async def reconcile(self, after_seconds: float) -> ReconcilePlan:
        """The reconciler's timer as it would run ``after_seconds`` from now (its clock moved on, the rest
        of the world's not), then the ``timer`` round it asks for this account, if it does."""
        later = dataclasses.replace(self.stack.services, clock=lambda: time.time() + after_seconds)
        plan = await plan_due(later)
        if self.account in plan.due:
            await self.sync("timer")
        return plan

    async def drain(self) -> None:
        from azure.storage.queue.aio import QueueClient

        from shared.store.factory import QUEUE_API_VERSION

        settings = self.stack.services.settings
        async with QueueClient.from_connection_string(settings.storage.connection_string, "sync",
                                                      api_version=QUEUE_API_VERSION) as queue:
            await queue.clear_messages()

    async def rows(self, prefix: str) -> list[Row]:
        return [r async for r in self.tables.query(MAILBOX, self.account, prefix=prefix)]

    async def calendar_id(self) -> str:
        (row,) = [r async for r in self.tables.query(CALENDARS, self.account)]
        return str(row.row)

    async def store_projection(self) -> dict[str, dict[str, Any]]:
        return {str(r.get("id")): projection(StoredEvent.from_data(dict(r.data))) for r in await self.rows("ev:")
                if not r.get("tombstone")}

    async def graph_projection(self) -> dict[str, dict[str, Any]]:
        """What Graph's calendarView says the window holds, single events through the same projection."""
        calendar = await self.calendar_id()
        cursor = (await self.tables.get(MAILBOX, self.account, f"cursor:{calendar}")).data
        url = (f"{self.stack.services.settings.graph_base_url}/users/{ADELE}/calendarView"
               f"?startDateTime={cursor['window_start']}&endDateTime={cursor['window_end']}")
        token = await self.stack.auth.broker.access_token(self.account)
        events: dict[str, dict[str, Any]] = {}
        while url:
            response = self.stack.session.get(url, timeout=30, headers={
                "Authorization": f"Bearer {token.token}", "Prefer": 'IdType="ImmutableId", odata.maxpagesize=100'})
            response.raise_for_status()
            page = decode_page(response.content)
            for item in page.value:
                events[item.id] = projection(StoredEvent.from_graph(calendar, item))
            url = json.loads(response.content).get("@odata.nextLink")
        return events

    async def feed(self) -> list[Row]:
        return await self.rows("feed:")


async def connected_world(stack: Any, page_size: int = 5) -> SyncWorld:
    """A mailbox connected through the real connect flow, its queued first messages drained (the test runs
    the rounds itself)."""
    account, confirmed = await stack.connect()
    assert confirmed.status == 200
    world = SyncWorld(stack, account, page_size)
    await world.drain()
    return world
