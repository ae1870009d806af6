"""SubscriptionGateway on the Graph gateway (shared/graph/gateway.py), as the account's user (delegated):
msgraph-sdk's request builders make the requests, the gateway sends, retries and journals them.

"Create subscription", https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions;
"Update subscription", https://learn.microsoft.com/en-us/graph/api/subscription-update;
"subscription: reauthorize", https://learn.microsoft.com/en-us/graph/api/subscription-reauthorize;
"Delete subscription", https://learn.microsoft.com/en-us/graph/api/subscription-delete;
"List subscriptions", https://learn.microsoft.com/en-us/graph/api/subscription-list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgraph.generated.models.subscription import Subscription

from shared.errors import NotFound, TransientGraphError
from shared.graph.gateway import Call, GraphGateway
from shared.subscriptions.gateway import GraphSubscription, NewSubscription


class MsGraphSubscriptions:
    def __init__(self, gateway: GraphGateway) -> None:
        self._gateway = gateway

    async def create(self, account: str, request: NewSubscription) -> GraphSubscription:
        body = Subscription(change_type=request.change_type, notification_url=request.notification_url,
                            lifecycle_notification_url=request.lifecycle_url, resource=request.resource,
                            expiration_date_time=datetime.fromtimestamp(request.expires_at, tz=UTC),
                            client_state=request.client_state)
        # Not replayable: a POST sent again after a lost answer makes a second subscription (the worker
        # deletes such strays, but should not breed them).
        response = await self._gateway.send(Call(account, "subscribe", write=True, replayable=False),
                                            lambda c: c.subscriptions.to_post_request_information(body))
        return _graph_subscription(response.json_object())

    async def renew(self, account: str, subscription_id: str, expires_at: float) -> GraphSubscription:
        body = Subscription(expiration_date_time=datetime.fromtimestamp(expires_at, tz=UTC))
        response = await self._gateway.send(
            Call(account, "renew", write=True),
            lambda c: c.subscriptions.by_subscription_id(subscription_id).to_patch_request_information(body))
        return _graph_subscription(response.json_object())

    async def reauthorize(self, account: str, subscription_id: str) -> None:
        await self._gateway.send(
            Call(account, "reauthorize", write=True),
            lambda c: c.subscriptions.by_subscription_id(subscription_id).reauthorize.to_post_request_information())

    async def delete(self, account: str, subscription_id: str) -> None:
        try:
            # Deleting is cleanup: unsupported and disconnected accounts must still get rid of theirs.
            await self._gateway.send(
                Call(account, "unsubscribe", write=True, cleanup=True),
                lambda c: c.subscriptions.by_subscription_id(subscription_id).to_delete_request_information())
        except NotFound:
            return  # already gone: what a delete wants

    async def list(self, account: str) -> list[GraphSubscription]:
        response = await self._gateway.send(Call(account, "subscriptions"),
                                            lambda c: c.subscriptions.to_get_request_information())
        value = response.json_object().get("value")
        return [_graph_subscription(s) for s in (value if isinstance(value, list) else [])]


def _graph_subscription(sub: Any) -> GraphSubscription:
    """The fields the worker keeps, from a subscription resource ("subscription resource type",
    https://learn.microsoft.com/en-us/graph/api/resources/subscription)."""
    if not isinstance(sub, dict) or not sub.get("id") or not sub.get("expirationDateTime"):
        raise NotFound("Graph returned no subscription", status=None)
    try:
        expires = datetime.fromisoformat(str(sub["expirationDateTime"]))
    except ValueError:
        raise TransientGraphError("Graph's subscription answer has an unreadable expirationDateTime") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return GraphSubscription(str(sub["id"]), str(sub.get("resource") or ""), expires.timestamp(),
                             str(sub.get("notificationUrl") or ""), str(sub.get("clientState") or ""))
