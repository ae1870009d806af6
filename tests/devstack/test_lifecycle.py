"""Lifecycle notifications to lifecycleNotificationUrl (Reduce missing subscriptions and change
notifications, https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events): reauthorizationRequired
before token or subscription expiry and on revoked permission (notifications
then pause until reauthorized), subscriptionRemoved on a password reset for delegated subscriptions, missed
(also in test_notifications.py), each also fired by the control API."""

from __future__ import annotations

import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription

from tests.devstack.subscribing import MINUTE, app_token, delegated_client, minutes_ahead, subscribe
from tests.devstack.test_notifications import fire, flush
from tests.devstack.webhook import Webhook
from tests.devstack.world import SCOPES, TENANT_ID, World


async def test_reauthorization_required_before_the_token_expires_then_pause(world: World, hook: Webhook):
    """Fires as the access token nears expiry (lead: assumed switch, 15 minutes); notifications keep flowing,
    then pause (assumed: after an hour) and changes made meanwhile are lost; reauthorize resumes them."""
    created = await subscribe(world, hook, delegated_client(world, world.alice))
    world.control("POST", "clock/advance", {"seconds": 44 * MINUTE})
    assert hook.lifecycle_events() == []
    world.control("POST", "clock/advance", {"seconds": MINUTE + 1})
    [event] = hook.items("/lifecycle")
    assert event == {"subscriptionId": created.id, "subscriptionExpirationDateTime": event[
        "subscriptionExpirationDateTime"], "tenantId": TENANT_ID, "clientState": "state-1",
        "lifecycleEvent": "reauthorizationRequired", "resource": "me/events"}
    fire(world, world.alice, event="AAMkAGstill")
    flush(world)
    assert [i["resourceData"]["id"] for i in hook.items()] == ["AAMkAGstill"]
    world.control("POST", "clock/advance", {"seconds": 60 * MINUTE})
    fire(world, world.alice, event="AAMkAGlost")
    flush(world)
    assert [i["resourceData"]["id"] for i in hook.items()] == ["AAMkAGstill"]
    assert world.control("GET", "counters")["notifications"]["lost_while_paused"] == 1
    fresh = delegated_client(world, world.alice)
    await fresh.subscriptions.by_subscription_id(created.id or "").reauthorize.post()
    fire(world, world.alice, event="AAMkAGback")
    flush(world)
    assert [i["resourceData"]["id"] for i in hook.items()] == ["AAMkAGstill", "AAMkAGback"]
    assert hook.lifecycle_events() == ["reauthorizationRequired"]


async def test_reauthorization_required_before_the_subscription_expires(world: World, hook: Webhook):
    """Fires as the subscription nears its expiry; PATCH renews and reauthorizes, and it fires again only
    near the new expiry."""
    world.control("PATCH", "switches", {"access_token_seconds": 86400})
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client, expiration_date_time=minutes_ahead(world, 60))
    world.control("POST", "clock/advance", {"seconds": 46 * MINUTE})
    assert hook.lifecycle_events() == ["reauthorizationRequired"]
    await client.subscriptions.by_subscription_id(created.id or "").patch(
        Subscription(expiration_date_time=minutes_ahead(world, 120)))
    world.control("POST", "clock/advance", {"seconds": 60 * MINUTE})
    assert hook.lifecycle_events() == ["reauthorizationRequired"]
    world.control("POST", "clock/advance", {"seconds": 46 * MINUTE})
    assert hook.lifecycle_events() == ["reauthorizationRequired", "reauthorizationRequired"]


async def test_withdrawn_consent_pauses_until_reauthorized(world: World, hook: Webhook):
    """Revoked permission: reauthorizationRequired at once and notifications pause; reauthorizing needs the
    permission back (403 before), then they flow again."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client)
    world.control("POST", f"users/{world.alice}/withdraw-consent", {})
    flush(world)
    assert hook.lifecycle_events() == ["reauthorizationRequired"]
    fire(world, world.alice)
    flush(world)
    assert hook.items() == []
    with pytest.raises(ODataError) as refused:
        await client.subscriptions.by_subscription_id(created.id or "").reauthorize.post()
    assert refused.value.response_status_code == 403
    again = delegated_client(world, world.alice, scopes=SCOPES)  # the user consents again
    await again.subscriptions.by_subscription_id(created.id or "").reauthorize.post()
    fire(world, world.alice)
    flush(world)
    assert len(hook.items()) == 1


async def test_revoked_sessions_ask_for_reauthorization(world: World, hook: Webhook):
    """revokeSignInSessions revokes the user's tokens: treated as revoked permission (assumed)."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    world.control("POST", f"users/{world.alice}/revoke-sessions")
    flush(world)
    assert hook.lifecycle_events() == ["reauthorizationRequired"]
    assert world.control("GET", "subscriptions")["subscriptions"][0]["paused"] is True


@pytest.mark.parametrize("action", ["reset-password", "delete"])
async def test_password_reset_removes_delegated_subscriptions_only(world: World, hook: Webhook, action: str):
    """Outlook removes delegated subscriptions on a password reset or a disabled account (subscriptionRemoved);
    app-only ones stay; after a reset a confidential client's refresh token keeps working (Refresh tokens in the
    Microsoft identity platform, https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens)."""
    app, tokens = world.sign_in(world.alice)
    delegated = await subscribe(world, hook, world.graph(tokens["access_token"]))
    app_only = await subscribe(world, hook, world.graph(app_token(world)), f"users/{world.alice}/events")
    world.control("POST", f"users/{world.alice}/{action}")
    flush(world)
    [removed] = hook.items("/lifecycle")
    assert (removed["lifecycleEvent"], removed["subscriptionId"]) == ("subscriptionRemoved", delegated.id)
    assert [s["id"] for s in world.control("GET", "subscriptions")["subscriptions"]] == [app_only.id]
    if action == "reset-password":
        assert "access_token" in app.acquire_token_silent(SCOPES, app.get_accounts()[0], force_refresh=True)


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
async def test_control_fires_each_lifecycle_event(world: World, hook: Webhook, event: str):
    """POST /_sim/subscriptions/{id}/lifecycle sends the event; subscriptionRemoved also removes it."""
    created = await subscribe(world, hook, delegated_client(world, world.alice))
    world.control("POST", f"subscriptions/{created.id}/lifecycle", {"event": event})
    flush(world)
    assert hook.lifecycle_events() == [event]
    remaining = world.control("GET", "subscriptions")["subscriptions"]
    assert len(remaining) == (0 if event == "subscriptionRemoved" else 1)


async def test_no_lifecycle_url_no_lifecycle_events(world: World, hook: Webhook):
    """A subscription created without lifecycleNotificationUrl hears no lifecycle events; control removal is
    silent."""
    created = await subscribe(world, hook, delegated_client(world, world.alice), lifecycle_notification_url=None)
    assert world.control("POST", f"subscriptions/{created.id}/lifecycle", {"event": "missed"}) == {"queued": False}
    world.control("DELETE", f"subscriptions/{created.id}")
    flush(world)
    assert hook.posts == []
    assert world.control("GET", "subscriptions")["subscriptions"] == []


async def test_control_reauthorization_with_pause(world: World, hook: Webhook):
    """Control `reauthorizationRequired` with `pause`: notifications stop until the app reauthorizes."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client)
    world.control("POST", f"subscriptions/{created.id}/lifecycle", {"event": "reauthorizationRequired",
                                                                     "pause": True})
    fire(world, world.alice)
    flush(world)
    assert (hook.lifecycle_events(), hook.items()) == (["reauthorizationRequired"], [])
    await client.subscriptions.by_subscription_id(created.id or "").reauthorize.post()
    fire(world, world.alice)
    flush(world)
    assert len(hook.items()) == 1
