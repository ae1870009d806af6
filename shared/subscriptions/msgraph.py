"""SubscriptionGateway on msgraph-sdk, authenticated as the account's user (delegated)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.subscription import Subscription
from msgraph.graph_service_client import GraphServiceClient

from shared.auth.credential import TokenBroker
from shared.config import Settings
from shared.errors import NotFound
from shared.graph.client import graph_client
from shared.graph.errors import from_odata_error
from shared.subscriptions.gateway import GraphSubscription, NewSubscription


class MsGraphSubscriptions:
    def __init__(self, settings: Settings, broker: TokenBroker) -> None:
        self._settings = settings
        self._broker = broker

    def _client(self, account: str, *, cleanup: bool = False) -> GraphServiceClient:
        return graph_client(self._settings, self._broker.credential(account, cleanup=cleanup))

    async def create(self, account: str, request: NewSubscription) -> GraphSubscription:
        body = Subscription(change_type=request.change_type, notification_url=request.notification_url,
                            lifecycle_notification_url=request.lifecycle_url, resource=request.resource,
                            expiration_date_time=datetime.fromtimestamp(request.expires_at, tz=UTC),
                            client_state=request.client_state)
        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", 'IdType="ImmutableId"')
        # No SDK retry for a create: a retried POST whose first answer was lost makes a duplicate.
        config.options = [RetryHandlerOption(max_retries=0)]
        try:
            created = await self._client(account).subscriptions.post(body, request_configuration=config)
        except APIError as exc:
            raise from_odata_error(exc) from None
        return _graph_subscription(created)

    async def renew(self, account: str, subscription_id: str, expires_at: float) -> GraphSubscription:
        body = Subscription(expiration_date_time=datetime.fromtimestamp(expires_at, tz=UTC))
        try:
            updated = await self._client(account).subscriptions.by_subscription_id(subscription_id).patch(body)
        except APIError as exc:
            raise from_odata_error(exc) from None
        return _graph_subscription(updated)

    async def reauthorize(self, account: str, subscription_id: str) -> None:
        try:
            await self._client(account).subscriptions.by_subscription_id(subscription_id).reauthorize.post()
        except APIError as exc:
            raise from_odata_error(exc) from None

    async def delete(self, account: str, subscription_id: str) -> None:
        try:
            # Deleting is cleanup: unsupported and disconnected accounts must still get rid of theirs.
            await self._client(account, cleanup=True).subscriptions.by_subscription_id(subscription_id).delete()
        except APIError as exc:
            error = from_odata_error(exc)
            if not isinstance(error, NotFound):
                raise error from None

    async def list(self, account: str) -> list[GraphSubscription]:
        try:
            page = await self._client(account).subscriptions.get()
        except APIError as exc:
            raise from_odata_error(exc) from None
        return [_graph_subscription(s) for s in (page.value if page and page.value else [])]


def _graph_subscription(sub: Subscription | None) -> GraphSubscription:
    if sub is None or not sub.id or sub.expiration_date_time is None:
        raise NotFound("Graph returned no subscription", status=None)
    return GraphSubscription(sub.id, sub.resource or "", sub.expiration_date_time.timestamp(),
                             sub.notification_url or "", sub.client_state or "")
