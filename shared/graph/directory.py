"""MailboxDirectory on the Graph gateway: the signed-in user's profile, and a check that the mailbox's
calendar is reachable (on-premises or unlicensed mailboxes answer MailboxNotEnabledForRESTAPI).

"Get user", https://learn.microsoft.com/en-us/graph/api/user-get; "Get calendar",
https://learn.microsoft.com/en-us/graph/api/calendar-get.
"""

from __future__ import annotations

from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

from shared.auth.ports import Profile
from shared.clock import Clock, system_clock
from shared.graph.client import StaticTokenCredential
from shared.graph.gateway import Call, GraphGateway

# How long the sign-in's fresh access token is treated as valid by the SDK: the two calls take seconds.
SIGN_IN_TOKEN_SECONDS = 300


class GraphMailboxDirectory:
    def __init__(self, gateway: GraphGateway, clock: Clock = system_clock) -> None:
        self._gateway = gateway
        self._clock = clock

    async def profile(self, access_token: str) -> Profile:
        credential = StaticTokenCredential(access_token, self._clock() + SIGN_IN_TOKEN_SECONDS)
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["displayName", "mail", "userPrincipalName"])
        config = UserItemRequestBuilder.UserItemRequestBuilderGetRequestConfiguration(query_parameters=query)
        call = Call(None, "profile")
        me = await self._gateway.send(call, lambda c: c.me.to_get_request_information(config), credential=credential)
        await self._gateway.send(call, lambda c: c.me.calendar.to_get_request_information(), credential=credential)
        user = me.json_object()

        def text(name: str) -> str:
            value = user.get(name)
            return value if isinstance(value, str) else ""

        return Profile(display_name=text("displayName"), mailbox=text("mail") or text("userPrincipalName"),
                       username=text("userPrincipalName"))
