"""The Graph subscription operations the worker needs ("Create subscription",
https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions), as a port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GraphSubscription:
    id: str
    resource: str
    expires_at: float              # epoch seconds, as Graph returned it (it may clamp what was asked)
    notification_url: str = ""
    client_state: str = ""


@dataclass(frozen=True)
class NewSubscription:
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str
    expires_at: float
    client_state: str


class SubscriptionGateway(Protocol):
    async def create(self, account: str, request: NewSubscription) -> GraphSubscription:
        """POST /subscriptions with ``Prefer: IdType="ImmutableId"`` (not retried by the SDK: a retried
        create could leave a duplicate; the queue retries instead).

        :raises GraphError: the usual classes; 400 when the validation handshake failed."""
        ...

    async def renew(self, account: str, subscription_id: str, expires_at: float) -> GraphSubscription:
        """PATCH the expiry. :raises NotFound: the subscription is gone (recreate it)."""
        ...

    async def reauthorize(self, account: str, subscription_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize. :raises NotFound: gone."""
        ...

    async def delete(self, account: str, subscription_id: str) -> None:
        """DELETE; a subscription already gone is fine."""
        ...

    async def list(self, account: str) -> list[GraphSubscription]:
        """The subscriptions this app holds for the account's user (to find strays)."""
        ...
