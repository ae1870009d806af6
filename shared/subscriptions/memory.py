"""An in-memory SubscriptionGateway for unit tests: Graph's subscription rules that the worker relies
on (ids, clamped lifetimes, 404 for a gone subscription), and a record of calls."""

from __future__ import annotations

import uuid
from dataclasses import replace

from shared.clock import Clock
from shared.errors import NotFound
from shared.subscriptions.gateway import GraphSubscription, NewSubscription


class InMemorySubscriptionGateway:
    def __init__(self, clock: Clock, max_lifetime_minutes: int = 4230) -> None:
        self._clock = clock
        self.max_lifetime = max_lifetime_minutes * 60
        self.subscriptions: dict[str, tuple[str, GraphSubscription]] = {}  # id -> (account, subscription)
        self.calls: list[tuple[str, str]] = []

    def _clamp(self, expires_at: float) -> float:
        return min(expires_at, self._clock() + self.max_lifetime)

    def live(self, account: str) -> list[GraphSubscription]:
        now = self._clock()
        return [s for a, s in self.subscriptions.values() if a == account and s.expires_at > now]

    async def create(self, account: str, request: NewSubscription) -> GraphSubscription:
        self.calls.append(("create", account))
        sub = GraphSubscription(str(uuid.uuid4()), request.resource, self._clamp(request.expires_at),
                                request.notification_url, request.client_state)
        self.subscriptions[sub.id] = (account, sub)
        return sub

    def _get(self, account: str, subscription_id: str) -> GraphSubscription:
        found = self.subscriptions.get(subscription_id)
        if found is None or found[0] != account or found[1].expires_at <= self._clock():
            raise NotFound("subscription not found", status=404, code="ResourceNotFound")
        return found[1]

    async def renew(self, account: str, subscription_id: str, expires_at: float) -> GraphSubscription:
        self.calls.append(("renew", subscription_id))
        sub = replace(self._get(account, subscription_id), expires_at=self._clamp(expires_at))
        self.subscriptions[sub.id] = (account, sub)
        return sub

    async def reauthorize(self, account: str, subscription_id: str) -> None:
        self.calls.append(("reauthorize", subscription_id))
        self._get(account, subscription_id)

    async def delete(self, account: str, subscription_id: str) -> None:
        self.calls.append(("delete", subscription_id))
        self.subscriptions.pop(subscription_id, None)

    async def list(self, account: str) -> list[GraphSubscription]:
        return self.live(account)
