"""The simulator's real notifications reach the product's webhook and lifecycle receivers through the local
runner: the handshake on subscription create and a change notification ("Receive change notifications through webhooks",
https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks) and a
lifecycle event (§2.7), queued by the product on Azurite. The subscription is made with msgraph-sdk and an
app-only token, so that only the simulator's delivery and the product's receivers are under test here.
The runner shares the test's event loop: control calls that wait on deliveries run in a thread."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from msgraph.generated.models.subscription import Subscription
from msgraph.graph_service_client import GraphServiceClient

from devstack.m365.control import DEMO_TENANT_ID
from shared.config import get_settings
from shared.ids import new_account_id
from shared.messages import parse_message
from shared.webhook.client_state import make_client_state
from shared.wiring import get_work_queue
from tests.devstack.world import graph_client
from tests.e2e.conftest import SAMPLE

ADELE = "a1b2c3d4-0000-4000-8000-0000000000a1"


def _app_client(stack, simulator) -> GraphServiceClient:
    client_id = SAMPLE["CLIENT_ID"]
    simulator.state.ensure_service_principal(DEMO_TENANT_ID, client_id)
    simulator.state.tenants[DEMO_TENANT_ID].app_roles[client_id] = ["Calendars.ReadWrite"]
    token = stack.sim_session.post(f"{stack.sim_url}/{DEMO_TENANT_ID}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": SAMPLE["CLIENT_SECRET"],
        "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
    return graph_client(simulator, token)


async def _queued(queue_name: str, account: str) -> list:
    return [m for m in (parse_message(b) for b in await get_work_queue().peek(queue_name)) if m.account == account]


@pytest.mark.disabled_functions("event_writer")  # the test reads the sync queue itself
async def test_simulator_notifies_the_products_receivers(stack, simulator, monkeypatch):
    monkeypatch.setenv("COALESCE_DELAY_SECONDS", "0")
    get_settings.cache_clear()
    simulator.state.switches.allow_http_loopback_urls = True  # the runner serves http://127.0.0.1
    account = new_account_id()
    client_state = make_client_state(get_settings().client_state_keys[0], account, 1, DEMO_TENANT_ID)
    created = await _app_client(stack, simulator).subscriptions.post(Subscription(
        change_type="created,updated,deleted", resource=f"users/{ADELE}/events",
        notification_url=f"{stack.base}/api/notifications", lifecycle_notification_url=f"{stack.base}/api/lifecycle",
        expiration_date_time=datetime.now(UTC) + timedelta(minutes=4000), client_state=client_state))
    assert created is not None  # both handshakes answered by the product
    await asyncio.to_thread(stack.control, "notifications/change", {"user": ADELE, "changeType": "updated"})
    await asyncio.to_thread(stack.control, f"subscriptions/{created.id}/lifecycle", {"event": "missed"})
    status = await asyncio.to_thread(stack.control, "notifications/flush", {"seconds": 10})
    assert (status["counts"]["sent"], status["counts"]["lifecycle_sent"]) == (1, 1)
    assert sorted(m.reason for m in await _queued("sync", account)) == ["lifecycle", "notification"]
