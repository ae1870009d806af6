"""Helpers for subscription tests: a Subscription as the product would send it, clients with delegated or
app-only tokens, create and expect an error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription
from msgraph.graph_service_client import GraphServiceClient

from tests.devstack.world import CLIENT_ID, GRAPH_DEFAULT, TENANT_ID, World

MINUTE = 60


class Endpoint(Protocol):
    """Where notifications go: the test webhook, or a Functions app on the local runner."""

    def url(self, path: str) -> str: ...


def parse_time(value: str) -> float:
    """A Graph DateTimeOffset with seven fractional digits and Z ("2026-01-01T00:00:00.1234567Z")."""
    assert value.endswith("Z")
    return datetime.fromisoformat(value[:26] + "+00:00").timestamp()


def minutes_ahead(world: World, minutes: float) -> datetime:
    return datetime.fromtimestamp(world.state.clock.now() + minutes * MINUTE, UTC)


def new_subscription(world: World, hook: Endpoint, resource: str, **overrides: Any) -> Subscription:
    fields: dict[str, Any] = dict(change_type="created,updated,deleted", notification_url=hook.url("notify"),
                                  lifecycle_notification_url=hook.url("lifecycle"), resource=resource,
                                  expiration_date_time=minutes_ahead(world, 4000), client_state="state-1")
    fields.update(overrides)
    return Subscription(**fields)


def delegated_client(world: World, user: str, scopes: list[str] | None = None) -> GraphServiceClient:
    _, tokens = world.sign_in(user, scopes=scopes)
    return world.graph(tokens["access_token"])


def app_token(world: World, roles: list[str] | None = None) -> str:
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    world.state.tenants[TENANT_ID].app_roles[CLIENT_ID] = roles or ["Calendars.Read"]
    token: str = world.msal_app(TENANT_ID).acquire_token_for_client([GRAPH_DEFAULT])["access_token"]
    return token


async def subscribe(world: World, hook: Endpoint, client: GraphServiceClient, resource: str = "me/events",
                    **overrides: Any) -> Subscription:
    created = await client.subscriptions.post(new_subscription(world, hook, resource, **overrides))
    assert created is not None
    assert created.id
    return created


async def create_error(world: World, hook: Endpoint, client: GraphServiceClient, resource: str = "me/events",
                       **overrides: Any) -> tuple[int | None, str | None, str | None]:
    with pytest.raises(ODataError) as raised:
        await client.subscriptions.post(new_subscription(world, hook, resource, **overrides))
    error = raised.value.error
    return raised.value.response_status_code, error.code if error else None, error.message if error else None
