"""Where a stored event went, asked of Graph before a removal is applied.

Inside a round bound to a calendarView window, ``@removed`` with reason ``deleted`` means an event in the
window was deleted, or an event outside the window was added, updated or deleted ("event: delta",
https://learn.microsoft.com/en-us/graph/api/event-delta, "Response"); an event moved to another calendar
leaves this calendar's view the same way. So before deleting a stored event the engine asks where it is:

1. ``GET /users/{id}/events/{event}`` (any calendar of the mailbox): 404 means deleted.
2. For those found, ``GET /users/{id}/calendars/{calendar}/events/{event}``: found means it is still in
   this calendar (outside the window, or the removal was not about it); 404 means it moved.
3. For those that moved, the same GET against each other synced calendar: found means ``moved`` there,
   nowhere means it went to a calendar that is not synced.

A series that changed is checked too: its occurrences in the window, as Graph lists them now, against those
stored (a cancelled occurrence is not always reported as removed). And delta's occurrences are thin (id,
type, series master, times: microsoft-graph-docs#7632), so the series masters of a page's thin occurrences
are read whole (``masters``) to fill them (shared/sync/calendar.py).

Each step goes as JSON batches of at most 20 requests ("Combine multiple HTTP requests using JSON batching",
https://learn.microsoft.com/en-us/graph/json-batching). Graph evaluates each request of a batch against the
throttling limits on its own, so one may answer 429 while the batch answers 200 ("Microsoft Graph throttling
guidance", "Throttling and batching", https://learn.microsoft.com/en-us/graph/throttling): those are sent
again after their Retry-After, a few times, then the slice fails and its message is retried (the answers
already classified are kept, so nothing is asked twice).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import msgspec
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.graph_service_client import GraphServiceClient

from shared.errors import GraphError, TransientGraphError
from shared.graph.gateway import IMMUTABLE_IDS, Call, GraphGateway
from shared.graph.wire import GraphEvent
from shared.sync.projection import utc_instant_of
from shared.sync.window import Window

INSTANCES_PAGE_SIZE = 100
BATCH_LIMIT = 20          # requests per JSON batch (the JSON batching page)
MAX_ROUNDS = 4            # a request throttled inside a batch is sent again at most this often
DEFAULT_WAIT_SECONDS = 2.0
# Asked of each event: enough to tell "outside the window" from "inside it".
SELECT = "$select=start,end,isAllDay,type"

GONE = "gone"            # Graph has no such event in the mailbox: deleted
HERE = "here"            # still in the calendar asked about
LEFT = "left_calendar"   # in the mailbox, in no calendar that is synced
UNKNOWN = "unknown"      # Graph did not say (an error other than 404): never a reason to delete


@dataclass(frozen=True)
class Located:
    where: str                  # GONE, HERE, LEFT, UNKNOWN, or the id of the other synced calendar it is in
    start: str | None = None    # UTC instants, when found
    end: str | None = None


class EventProbe(Protocol):
    async def locate(self, account: str, user: str, calendar: str, ids: Sequence[str],
                     others: Sequence[str] = ()) -> dict[str, Located]:
        """Where each of ``ids`` (stored in ``calendar`` of ``user``'s mailbox) is now; ``others`` are the
        mailbox's other synced calendars."""
        ...

    async def occurrences(self, account: str, user: str, calendar: str, master: str,
                          window: Window) -> set[str] | None:
        """The ids of a series' occurrences and exceptions in ``window`` (cancelled ones are not among them);
        None when the series master is gone."""
        ...

    async def masters(self, account: str, user: str, calendar: str, ids: Sequence[str]) -> dict[str, GraphEvent]:
        """The series masters of ``ids`` as Graph has them now; one that is gone (or unreadable) is left out."""
        ...


class GraphEventProbe:
    def __init__(self, gateway: GraphGateway, sleep: Any = asyncio.sleep) -> None:
        self._gateway = gateway
        self._sleep = sleep

    async def locate(self, account: str, user: str, calendar: str, ids: Sequence[str],
                     others: Sequence[str] = ()) -> dict[str, Located]:
        user_path = f"/users/{quote(user, safe='')}"
        found = await self._get_all(account, calendar, {i: f"{user_path}/events/{quote(i, safe='')}?{SELECT}"
                                                        for i in ids})
        located: dict[str, Located] = {}
        present: dict[str, Located] = {}
        for event_id in ids:
            status, body = found[event_id]
            if status == 404:
                located[event_id] = Located(GONE)
            elif status == 200:
                present[event_id] = Located(HERE, utc_instant_of(body.get("start")), utc_instant_of(body.get("end")))
            else:
                located[event_id] = Located(UNKNOWN)
        remaining = dict(present)
        for candidate in (calendar, *others):
            if not remaining:
                break
            answers = await self._get_all(account, calendar, {
                i: f"{user_path}/calendars/{quote(candidate, safe='')}/events/{quote(i, safe='')}?$select=id"
                for i in remaining})
            for event_id, (status, _) in answers.items():
                if status == 200:
                    seen = remaining.pop(event_id)
                    where = HERE if candidate == calendar else candidate
                    located[event_id] = Located(where, seen.start, seen.end)
                elif status != 404:
                    remaining.pop(event_id)
                    located[event_id] = Located(UNKNOWN)
        for event_id, seen in remaining.items():
            located[event_id] = Located(LEFT, seen.start, seen.end)
        return located

    async def occurrences(self, account: str, user: str, calendar: str, master: str,
                          window: Window) -> set[str] | None:
        # "List instances" (https://learn.microsoft.com/en-us/graph/api/event-list-instances): the occurrences
        # and exceptions in the range, cancelled ones left out, paged by @odata.nextLink.
        link: str | None = (f"/users/{quote(user, safe='')}/events/{quote(master, safe='')}/instances"
                            f"?startDateTime={quote(window.start)}&endDateTime={quote(window.end)}&$select=id")
        ids: set[str] = set()
        while link is not None:
            url = link

            def build(client: GraphServiceClient, url: str = url) -> RequestInformation:
                info = RequestInformation()
                info.http_method = Method.GET
                info.url = url if url.startswith("https://") else f"{client.request_adapter.base_url}{url}"
                return info

            try:
                response = await self._gateway.send(Call(account, "instances", calendar=calendar), build,
                                                    page_size=INSTANCES_PAGE_SIZE)
            except GraphError as exc:
                if exc.status == 404:
                    return None
                raise
            body = response.json_object()
            ids.update(str(item["id"]) for item in body.get("value") or [] if isinstance(item, dict) and "id" in item)
            next_link = body.get("@odata.nextLink")
            link = next_link if isinstance(next_link, str) and next_link else None
        return ids

    async def masters(self, account: str, user: str, calendar: str, ids: Sequence[str]) -> dict[str, GraphEvent]:
        # "Get event" (https://learn.microsoft.com/en-us/graph/api/event-get) by the series master's id.
        user_path = f"/users/{quote(user, safe='')}"
        answers = await self._get_all(account, calendar, {i: f"{user_path}/events/{quote(i, safe='')}" for i in ids})
        found: dict[str, GraphEvent] = {}
        for master_id, (status, body) in answers.items():
            if status != 200 or not isinstance(body, dict):
                continue
            try:
                found[master_id] = msgspec.json.decode(json.dumps(body).encode(), type=GraphEvent)
            except msgspec.ValidationError:
                continue  # not an event as Graph documents it: its occurrences stay thin
        return found

    async def _get_all(self, account: str, calendar: str, urls: dict[str, str]) -> dict[str, tuple[int, Any]]:
        """Every GET answered (status, JSON body), 20 to a batch; throttled ones sent again."""
        answers: dict[str, tuple[int, Any]] = {}
        pending = dict(urls)
        for _ in range(MAX_ROUNDS):
            if not pending:
                return answers
            ids = list(pending)
            waits: list[float] = []
            for start in range(0, len(ids), BATCH_LIMIT):
                chunk = {i: pending[i] for i in ids[start:start + BATCH_LIMIT]}
                for event_id, (status, body, wait) in (await self._batch(account, calendar, chunk)).items():
                    if status in (429, 503, 504):
                        waits.append(wait)
                        continue
                    answers[event_id] = (status, body)
                    pending.pop(event_id)
            if pending:
                await self._sleep(max(waits, default=DEFAULT_WAIT_SECONDS))
        if pending:
            raise TransientGraphError(f"{len(pending)} requests of a JSON batch stayed throttled")
        return answers

    async def _batch(self, account: str, calendar: str, chunk: dict[str, str]) -> dict[str, tuple[int, Any, float]]:
        numbered = dict(enumerate(chunk))  # batch ids are strings unique within the batch: "0".."19"
        payload = {"requests": [{"id": str(n), "method": "GET", "url": chunk[event_id],
                                 "headers": {"Prefer": IMMUTABLE_IDS}} for n, event_id in numbered.items()]}
        content = json.dumps(payload).encode()

        def build(client: GraphServiceClient) -> RequestInformation:
            info = RequestInformation()
            info.http_method = Method.POST
            info.url = f"{client.request_adapter.base_url}/$batch"
            info.set_stream_content(content, "application/json")
            return info

        response = await self._gateway.send(Call(account, "locate", calendar=calendar), build)
        body = response.json_object()
        results: dict[str, tuple[int, Any, float]] = {}
        for item in body.get("responses") or []:
            if not isinstance(item, dict) or not str(item.get("id", "")).isdigit():
                continue
            n = int(str(item["id"]))
            if n not in numbered:
                continue
            headers = {str(k).lower(): v for k, v in (item.get("headers") or {}).items()}
            try:
                wait = float(headers.get("retry-after", DEFAULT_WAIT_SECONDS))
            except (TypeError, ValueError):
                wait = DEFAULT_WAIT_SECONDS
            status = int(item.get("status", 0))
            results[numbered[n]] = (status, item.get("body") if isinstance(item.get("body"), dict) else {}, wait)
        missing = [event_id for n, event_id in numbered.items() if event_id not in results]
        for event_id in missing:  # an answer the batch left out: asked again, like a throttled one
            results[event_id] = (503, {}, DEFAULT_WAIT_SECONDS)
        return results
