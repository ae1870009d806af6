"""Where delta pages come from: a port (``DeltaSource``) and its Graph version on the gateway.

"Get incremental changes to events in a calendar view" (https://learn.microsoft.com/en-us/graph/delta-query-events)
and "event: delta" (https://learn.microsoft.com/en-us/graph/api/event-delta): the first request names the
window (``startDateTime``, ``endDateTime``); every later one follows the ``@odata.nextLink`` or
``@odata.deltaLink`` Graph returned, verbatim, which carries the window inside its token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.graph_service_client import GraphServiceClient

from shared.graph.gateway import Call, GraphGateway, RequestBuilder
from shared.graph.wire import DeltaPage, decode_page
from shared.sync.window import Window


@dataclass(frozen=True)
class FetchedPage:
    page: DeltaPage
    digest: str          # of the body: a page that repeats is the same digest
    size: int            # bytes


@dataclass(frozen=True)
class CalendarRef:
    """A calendar of the mailbox: its Graph id, and whether it is the user's primary calendar (reached
    through the documented v1.0 path ``/users/{id}/calendarView/delta``)."""

    user: str                       # whose mailbox: the user in the Graph path
    id: str
    primary: bool = True
    owner: str | None = None        # whose calendar (its owner's address, as "List calendars" names it)
    acting_user: str | None = None  # whose token reads it (the signed-in user of the account)


__all__ = ["CalendarInfo", "CalendarRef", "DeltaSource", "FetchedPage", "GraphDeltaSource", "Window"]


@dataclass(frozen=True)
class CalendarInfo:
    """A calendar as "List calendars" answers it."""

    id: str
    name: str
    primary: bool          # isDefaultCalendar
    owner: str | None      # the owner's address


class DeltaSource(Protocol):
    async def first(self, account: str, calendar: CalendarRef, window: Window) -> FetchedPage:
        """The first page of a new round over ``window``."""
        ...

    async def follow(self, account: str, calendar: CalendarRef, link: str) -> FetchedPage:
        """The page a stored next or delta link points at."""
        ...

    async def primary_calendar(self, account: str, user: str) -> str:
        """The Graph id of the user's primary calendar."""
        ...

    async def calendars(self, account: str, user: str) -> list[CalendarInfo]:
        """The user's calendars ("List calendars", https://learn.microsoft.com/en-us/graph/api/user-list-calendars)."""
        ...


class GraphDeltaSource:
    def __init__(self, gateway: GraphGateway, page_size: int) -> None:
        self._gateway = gateway
        self._page_size = page_size

    async def first(self, account: str, calendar: CalendarRef, window: Window) -> FetchedPage:
        def build(client: GraphServiceClient) -> RequestInformation:
            query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time=window.start, end_date_time=window.end)
            config = RequestConfiguration[DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters](
                query_parameters=query)
            return _delta(client, calendar).to_get_request_information(config)

        return await self._fetch(account, calendar, build)

    async def follow(self, account: str, calendar: CalendarRef, link: str) -> FetchedPage:
        return await self._fetch(account, calendar,
                                 lambda client: _delta(client, calendar).with_url(link).to_get_request_information())

    async def primary_calendar(self, account: str, user: str) -> str:
        def build(client: GraphServiceClient) -> RequestInformation:
            return client.users.by_user_id(user).calendar.to_get_request_information()

        response = await self._gateway.send(Call(account, "calendar"), build)
        calendar_id = response.json_object().get("id")
        if not isinstance(calendar_id, str) or not calendar_id:
            raise ValueError("Graph returned a calendar without an id")
        return calendar_id

    async def calendars(self, account: str, user: str) -> list[CalendarInfo]:
        found: list[CalendarInfo] = []
        link: str | None = None
        while True:
            url = link

            def build(client: GraphServiceClient, url: str | None = url) -> RequestInformation:
                builder = client.users.by_user_id(user).calendars
                if url is not None:
                    return builder.with_url(url).to_get_request_information()
                return builder.to_get_request_information()

            body = (await self._gateway.send(Call(account, "calendars"), build)).json_object()
            for item in body.get("value") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    owner = (item.get("owner") or {}).get("address") if isinstance(item.get("owner"), dict) else None
                    found.append(CalendarInfo(item["id"], str(item.get("name") or ""),
                                              bool(item.get("isDefaultCalendar")), owner))
            next_link = body.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return found
            link = next_link

    async def _fetch(self, account: str, calendar: CalendarRef, build: RequestBuilder) -> FetchedPage:
        response = await self._gateway.send(Call(account, "delta", calendar=calendar.id), build,
                                            page_size=self._page_size)
        body = response.body
        return FetchedPage(decode_page(body), hashlib.sha256(body).hexdigest()[:32], len(body))


def _delta(client: GraphServiceClient, calendar: CalendarRef) -> DeltaRequestBuilder:
    user = client.users.by_user_id(calendar.user)
    if calendar.primary:
        return user.calendar_view.delta
    # Per-calendar form: the v1.0 SDK builds it; the v1.0 reference page documents only the primary one.
    return user.calendars.by_calendar_id(calendar.id).calendar_view.delta  # type: ignore[return-value]
