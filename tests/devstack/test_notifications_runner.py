"""The simulator notifying a Functions app served by the local runner (docs/devstack.md): the handshake and
notifications go over real HTTP to `func.HttpRequest` handlers, as they will for the product's webhook.
The runner lives on the test's event loop, so control calls run in a thread while it serves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from devstack.runner.host import Runner
from tests.devstack.conftest import app_module
from tests.devstack.subscribing import delegated_client, subscribe
from tests.devstack.test_notifications import fire, flush
from tests.devstack.world import World

pytestmark = pytest.mark.azurite


@dataclass
class RunnerEndpoint:
    runner: Runner

    def url(self, path: str) -> str:
        return f"{self.runner.base_url}/api/{path}"


async def test_a_functions_app_on_the_runner_receives_notifications(world: World, start_runner):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks) handshake and Receive change
    notifications through webhooks (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks);
    Reduce missing subscriptions and change notifications
    (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events) notifications to the runner's
    http://127.0.0.1 URL (switch
    allow_http_loopback_urls, assumed), both answered by azure.functions handlers."""
    received = app_module("webhook_app").RECEIVED
    received.clear()
    endpoint = RunnerEndpoint(await start_runner("webhook_app:app"))
    world.control("PATCH", "switches", {"allow_http_loopback_urls": True})
    client = delegated_client(world, world.alice)
    created = await subscribe(world, endpoint, client, notification_url=endpoint.url("notifications"))
    await asyncio.to_thread(fire, world, world.alice, "created", event="AAMkAGrunner")
    await asyncio.to_thread(world.control, "POST", f"subscriptions/{created.id}/lifecycle", {"event": "missed"})
    await asyncio.to_thread(flush, world)
    assert sorted((route, item.get("changeType") or item["lifecycleEvent"]) for route, item in received) == [
        ("lifecycle", "missed"), ("notifications", "created"), ("notifications", "updated")]
    assert all(item["subscriptionId"] == created.id and item["clientState"] == "state-1" for _, item in received)
    counts = world.control("GET", "counters")["notifications"]
    assert (counts["sent"], counts["lifecycle_sent"], counts["validations_passed"]) == (2, 1, 2)
