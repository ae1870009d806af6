"""MailboxDirectory on msgraph-sdk: the signed-in user's profile, and a check that the mailbox's
calendar is reachable (on-premises or unlicensed mailboxes answer MailboxNotEnabledForRESTAPI)."""

from __future__ import annotations

from kiota_abstractions.api_error import APIError
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

from shared.auth.ports import Profile
from shared.clock import Clock, system_clock
from shared.config import Settings
from shared.graph.client import StaticTokenCredential, graph_client
from shared.graph.errors import from_odata_error


class GraphMailboxDirectory:
    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self._settings = settings
        self._clock = clock

    async def profile(self, access_token: str) -> Profile:
        client = graph_client(self._settings, StaticTokenCredential(access_token, self._clock() + 300))
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["displayName", "mail", "userPrincipalName"])
        config = UserItemRequestBuilder.UserItemRequestBuilderGetRequestConfiguration(query_parameters=query)
        try:
            me = await client.me.get(request_configuration=config)
            await client.me.calendar.get()
        except APIError as exc:
            raise from_odata_error(exc) from None
        if me is None:
            raise from_odata_error(APIError("empty /me response"))
        return Profile(display_name=me.display_name or "", mailbox=me.mail or me.user_principal_name or "",
                       username=me.user_principal_name or "")
